import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { syncDir } from '../audit/files.js';

/**
 * Every policy that ever decided a call, kept by its revision so `audit replay` finds it months later
 * (issue 12). Content-addressed: the revision is sha256(wasm || 0x00 || data JSON), exactly as
 * WasmPolicyEngine computes it, so an entry is its own integrity check. A put that does not hash to
 * its revision is refused, and so is a get whose files do not: a forged entry cannot stand in for
 * the policy that made a decision.
 *
 * Layout: `<dir>/<revision>/policy.wasm` and `<dir>/<revision>/data.json` (what `opa eval` reads),
 * written into a temporary folder, fsynced and renamed into place, so an entry is whole or absent.
 */
export interface PolicyFiles {
  readonly wasm: Uint8Array;
  /** The policy data exactly as hashed: `JSON.stringify(data ?? {})`. */
  readonly data: string;
}

export interface PolicyArchive {
  readonly dir: string;
  /** Store a policy under its revision; idempotent; refuses a revision the files do not hash to. */
  put(revision: string, files: PolicyFiles): Promise<void>;
  /** The policy of a revision, null when the archive has none; throws PolicyArchiveError on a hash mismatch. */
  get(revision: string): Promise<PolicyFiles | null>;
}

export class PolicyArchiveError extends Error {
  override name = 'PolicyArchiveError';
}

const REVISION = /^[0-9a-f]{64}$/;
const WASM_FILE = 'policy.wasm';
const DATA_FILE = 'data.json';

/** The revision of a policy: sha256 over the wasm, a NUL byte and the data JSON (engine.ts computes the same). */
export function policyRevision(wasm: Uint8Array, data: string): string {
  return crypto.createHash('sha256').update(wasm).update('\0').update(data).digest('hex');
}

function checkRevision(revision: string): void {
  // Also keeps a revision from naming a path outside the archive.
  if (!REVISION.test(revision)) throw new PolicyArchiveError(`"${revision}" is not a policy revision (64 lowercase hex digits)`);
}

function writeSynced(file: string, content: Uint8Array | string): void {
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

async function readEntry(entry: string): Promise<PolicyFiles | null> {
  try {
    const [wasm, data] = await Promise.all([fs.promises.readFile(path.join(entry, WASM_FILE)), fs.promises.readFile(path.join(entry, DATA_FILE), 'utf8')]);
    return { wasm: new Uint8Array(wasm.buffer, wasm.byteOffset, wasm.byteLength), data };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // A folder without its files is a damaged entry, not a missing one.
      if (fs.existsSync(entry)) throw new PolicyArchiveError(`${entry} is incomplete (${WASM_FILE} or ${DATA_FILE} is missing)`);
      return null;
    }
    throw err;
  }
}

export function openPolicyArchive(dir: string): PolicyArchive {
  const root = path.resolve(dir);
  const entryOf = (revision: string): string => path.join(root, revision);

  async function get(revision: string): Promise<PolicyFiles | null> {
    checkRevision(revision);
    const files = await readEntry(entryOf(revision));
    if (!files) return null;
    const actual = policyRevision(files.wasm, files.data);
    if (actual !== revision) throw new PolicyArchiveError(`archive entry ${revision} does not hash to its revision (its files hash to ${actual}): refused`);
    return files;
  }

  async function put(revision: string, files: PolicyFiles): Promise<void> {
    checkRevision(revision);
    const actual = policyRevision(files.wasm, files.data);
    if (actual !== revision) throw new PolicyArchiveError(`the policy files hash to ${actual}, not to the revision ${revision}: not archived`);
    // Idempotent: an entry already there is kept (and checked: a damaged one is reported, never overwritten).
    if (await get(revision)) return;
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    const tmp = path.join(root, `.tmp-${revision}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    fs.mkdirSync(tmp, { mode: 0o700 });
    try {
      writeSynced(path.join(tmp, WASM_FILE), files.wasm);
      writeSynced(path.join(tmp, DATA_FILE), files.data);
      syncDir(tmp);
      try {
        fs.renameSync(tmp, entryOf(revision));
      } catch (err) {
        // Another process archived the same revision first: theirs is the same content, checked below.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        if (!(await get(revision))) throw err;
      }
      syncDir(root);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  return { dir: root, put, get };
}

/** Archive the policy a server loaded: the wasm file as read now and its data as the engine hashed it. */
export async function archiveLoadedPolicy(archive: PolicyArchive, revision: string, wasmPath: string, data: unknown): Promise<void> {
  const wasm = await fs.promises.readFile(wasmPath);
  await archive.put(revision, { wasm: new Uint8Array(wasm.buffer, wasm.byteOffset, wasm.byteLength), data: JSON.stringify(data ?? {}) });
}

/**
 * What evaluates the archived wasm, named in every outcome record (`policy_engine`): the revision
 * pins the policy (the wasm carries what `opa build` made of it), this pins its runtime.
 */
export const POLICY_ENGINE = `@open-policy-agent/opa-wasm@${opaWasmVersion()}`;

function opaWasmVersion(): string {
  try {
    // The package's exports do not include package.json: find it above the entry point.
    let dir = path.dirname(createRequire(import.meta.url).resolve('@open-policy-agent/opa-wasm'));
    for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (!fs.existsSync(file)) continue;
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === '@open-policy-agent/opa-wasm' && typeof pkg.version === 'string') return pkg.version;
    }
  } catch {
    // Fall through: the record says the version is unknown rather than guessing.
  }
  return 'unknown';
}
