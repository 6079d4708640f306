import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import argon2 from 'argon2';
import { syncDir } from '../audit/files.js';
import { frozenAttributes, type PrincipalAttributes } from '../core/principal-attributes.js';

/**
 * API keys: `bwk_<key-id>_<secret>`. The id is 16 hex digits (public: it names the key in logs,
 * `keys list` and the audit log); the secret is 32 random bytes, base64url. Only an argon2id hash
 * of the secret is stored. The file store is one JSON file written atomically with mode 0600
 * under a lock file; the server never writes it (last-used times go to a sidecar file), so
 * `keys revoke` cannot race a running server's write. The PostgreSQL store is in
 * postgres-key-store.ts.
 */
export const KEY_PREFIX = 'bwk_';
const ID_RE = /^[0-9a-f]{16}$/;
const SECRET_RE = /^[A-Za-z0-9_-]{43,128}$/;

export interface KeyRecord {
  readonly id: string;
  readonly principal: string;
  readonly roles: readonly string[];
  readonly tier: string;
  readonly created: string;
  readonly expires: string | null;
  readonly revoked: string | null;
  /** argon2id PHC string of the secret. */
  readonly hash: string;
  /**
   * Verified attributes of the key's principal (`keys create --attr name=value`), carried into the
   * principal on authentication. Absent on keys created without any (and on older stores).
   */
  readonly attributes?: PrincipalAttributes | undefined;
}

export interface KeyFile {
  readonly version: 1;
  readonly keys: KeyRecord[];
}

export interface ParsedToken {
  readonly id: string;
  readonly secret: string;
}

/** Split a presented bearer token; null when it is not shaped like one of ours. */
export function parseApiKey(token: string): ParsedToken | null {
  if (!token.startsWith(KEY_PREFIX)) return null;
  const rest = token.slice(KEY_PREFIX.length);
  const i = rest.indexOf('_');
  if (i < 0) return null;
  const id = rest.slice(0, i);
  const secret = rest.slice(i + 1);
  if (!ID_RE.test(id) || !SECRET_RE.test(secret)) return null;
  return { id, secret };
}

/** `90d`, `12h`, `30m`, `3600s` → milliseconds. */
export function parseDuration(spec: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(spec.trim());
  if (!m) throw new Error(`expected a duration like 90d, 12h, 30m or 3600s, got ${JSON.stringify(spec)}`);
  const n = Number(m[1]);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  if (n <= 0) throw new Error('the duration must be positive');
  return n * unit;
}

export function readKeyFile(file: string): KeyFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keys: [] };
    throw err;
  }
  const parsed = JSON.parse(text) as KeyFile;
  if (parsed?.version !== 1 || !Array.isArray(parsed.keys)) throw new Error(`${file}: not a Bulwark key store (version 1)`);
  return parsed;
}

/** Write to a temporary file (0600), fsync, rename over the store, fsync the folder. */
export function writeKeyFile(file: string, data: KeyFile): void {
  writeAtomic(file, `${JSON.stringify(data, null, 2)}\n`);
}

export function writeAtomic(file: string, text: string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  syncDir(dir);
}

export interface CreateKeyOptions {
  readonly principal: string;
  readonly roles: readonly string[];
  readonly tier: string;
  readonly expiresInMs?: number | undefined;
  readonly now?: Date;
  /** Stored only when there is at least one; not well-formed ones throw (attributesProblems says why). */
  readonly attributes?: PrincipalAttributes | undefined;
}

/** A new key: the token (shown once) and the record to store (argon2id hash only). */
export async function mintKey(opts: CreateKeyOptions): Promise<{ token: string; record: KeyRecord }> {
  const attributes = frozenAttributes(opts.attributes);
  const id = crypto.randomBytes(8).toString('hex');
  const secret = crypto.randomBytes(32).toString('base64url');
  const now = opts.now ?? new Date();
  const record: KeyRecord = {
    id,
    principal: opts.principal,
    roles: [...opts.roles],
    tier: opts.tier,
    created: now.toISOString(),
    expires: opts.expiresInMs === undefined ? null : new Date(now.getTime() + opts.expiresInMs).toISOString(),
    revoked: null,
    hash: await argon2.hash(secret, { type: argon2.argon2id }),
    ...(attributes ? { attributes } : {}),
  };
  return { token: `${KEY_PREFIX}${id}_${secret}`, record };
}

/** Mint a key and add it to a file store. */
export async function createKey(file: string, opts: CreateKeyOptions): Promise<{ token: string; record: KeyRecord }> {
  const minted = await mintKey(opts);
  await addKeyToFile(file, minted.record);
  return minted;
}

export async function addKeyToFile(file: string, record: KeyRecord): Promise<void> {
  await withKeyFileLock(file, () => {
    const store = readKeyFile(file);
    writeKeyFile(file, { version: 1, keys: [...store.keys, record] });
  });
}

/** Mark a key revoked; false when no such key. Revoking twice keeps the first time. */
export async function revokeKey(file: string, id: string, now = new Date()): Promise<boolean> {
  return withKeyFileLock(file, () => {
    const store = readKeyFile(file);
    let found = false;
    const keys = store.keys.map((k) => {
      if (k.id !== id) return k;
      found = true;
      return k.revoked ? k : { ...k, revoked: now.toISOString() };
    });
    if (found) writeKeyFile(file, { version: 1, keys });
    return found;
  });
}

const LOCK_WAIT_MS = 15_000;
const LOCK_STALE_MS = 30_000;

/**
 * Read-modify-write of the store under `<file>.lock` (O_EXCL, holding our pid): two `keys create`
 * runs at once must not each write a copy that lacks the other's key. A lock whose holder is
 * gone (or that is older than 30 s, which no write takes) is broken.
 */
export async function withKeyFileLock<T>(file: string, fn: () => T): Promise<T> {
  const lock = `${file}.lock`;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (fd !== undefined) {
      try {
        fs.writeSync(fd, `${process.pid}\n`);
        fs.closeSync(fd);
        return fn();
      } finally {
        fs.rmSync(lock, { force: true });
      }
    }
    if (lockIsStale(lock)) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(`${lock}: the key store is locked by another process (remove the lock file if no bulwark keys command is running)`);
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
  }
}

function lockIsStale(lock: string): boolean {
  try {
    const st = fs.statSync(lock);
    if (Date.now() - st.mtimeMs > LOCK_STALE_MS) return true;
    const pid = Number(fs.readFileSync(lock, 'utf8').trim());
    // An empty file is a lock being written this instant: not stale.
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  } catch {
    return false;
  }
}

/** The sidecar the server writes last-used times to: `<keys_file>.usage.json`. */
export function usageFileOf(file: string): string {
  return `${file}.usage.json`;
}

export function readUsage(file: string): Record<string, string> {
  try {
    const u = JSON.parse(fs.readFileSync(usageFileOf(file), 'utf8')) as unknown;
    return u && typeof u === 'object' && !Array.isArray(u) ? (u as Record<string, string>) : {};
  } catch {
    return {};
  }
}

export type KeyState = 'active' | 'revoked' | 'expired';

export function keyState(k: KeyRecord, nowMs = Date.now()): KeyState {
  if (k.revoked) return 'revoked';
  if (k.expires && Date.parse(k.expires) <= nowMs) return 'expired';
  return 'active';
}
