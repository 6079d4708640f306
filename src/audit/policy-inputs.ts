import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson } from './canonical-json.js';
import { sha256Hex } from './chain.js';
import { scanLines, type LogPaths } from './files.js';

/**
 * The exact policy input of each decision, for `audit replay` (issue 12). The outcome record keeps
 * only `policy_input_sha256`, the SHA-256 of the input's RFC 8785 canonical JSON; the input itself
 * is copied, content-addressed, into a file beside the log (`<stem>.inputs.jsonl`, one
 * `<sha256> <canonical JSON>` line per decision). Why not inline: the input holds the arguments in
 * full (SQL parameters, API bodies, script source), which the record deliberately reduces
 * (`auditArgs`); the copy is exactly as sensitive as those arguments, so it lives in its own file
 * that can be given its own retention and permissions, or be turned off (audit.replay_inputs:
 * false keeps the hash, and replay then says "cannot replay"). The hash sits in the hash-chained
 * record, so a copy that was changed is detected; a copy that was deleted makes its record
 * "cannot replay", never silently skipped.
 */
export interface PolicyInputCopy {
  readonly sha256: string;
  /** The canonical JSON the hash is over. */
  readonly text: string;
}

/** The copy travels with the record's fields to the log, which writes it before the record. */
const copies = new WeakMap<object, PolicyInputCopy>();

/** The canonical hash and text of a policy input; undefined when it has no canonical form. */
export function policyInputCopy(input: unknown): PolicyInputCopy | undefined {
  try {
    const text = canonicalJson(input);
    return { sha256: sha256Hex(text), text };
  } catch {
    return undefined;
  }
}

export function attachPolicyInput<F extends object>(fields: F, copy: PolicyInputCopy): F {
  copies.set(fields, copy);
  return fields;
}

export function policyInputOf(fields: object): PolicyInputCopy | undefined {
  return copies.get(fields);
}

export function policyInputsPath(p: LogPaths): string {
  return path.join(p.dir, `${p.stem}.inputs.jsonl`);
}

/**
 * The writer. `put` only buffers; the file log writes the buffer in the same turn as the records it
 * belongs to, before them, and in `fsync` mode fdatasyncs it alongside the log.
 */
export class PolicyInputStore {
  private pending: string[] = [];
  private constructor(
    private readonly fd: number,
    readonly file: string,
  ) {}

  static open(file: string): PolicyInputStore {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    return new PolicyInputStore(fs.openSync(file, 'a', 0o600), file);
  }

  put(copy: PolicyInputCopy): void {
    this.pending.push(`${copy.sha256} ${copy.text}\n`);
  }

  /** Write what was put (synchronously, to the page cache). */
  flush(): void {
    if (!this.pending.length) return;
    const buf = Buffer.from(this.pending.join(''));
    this.pending = [];
    for (let off = 0; off < buf.length;) off += fs.writeSync(this.fd, buf, off, buf.length - off);
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    try {
      this.flush();
      fs.fdatasyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
    }
  }
}

/** Copies are gathered into chunks of this size: one allocation per chunk, not one per copy. */
const ARENA_CHUNK = 1 << 20;

/**
 * The copies in a file, by hash, as UTF-8 bytes (views into a few shared chunks: the policy engine
 * is handed a copy of its own, see audit-replay.ts): only those `wanted` (all when not given). A copy
 * whose bytes do not hash to its name is returned as `bad` (replay reports it), never as an input.
 */
export function readPolicyInputs(file: string, wanted?: ReadonlySet<string>): { inputs: Map<string, Uint8Array>; bad: Set<string> } {
  const inputs = new Map<string, Uint8Array>();
  const bad = new Set<string>();
  if (!fs.existsSync(file)) return { inputs, bad };
  let chunk = Buffer.allocUnsafe(0);
  let used = 0;
  scanLines(file, (buf, start, end) => {
    if (end - start < 66 || buf[start + 64] !== 0x20) return;
    const sha = buf.toString('latin1', start, start + 64);
    if (wanted && !wanted.has(sha)) return;
    if (inputs.has(sha)) return;
    const bytes = buf.subarray(start + 65, end);
    if (sha256Hex(bytes) !== sha) {
      bad.add(sha);
      return;
    }
    if (used + bytes.length > chunk.length) {
      chunk = Buffer.allocUnsafe(Math.max(ARENA_CHUNK, bytes.length));
      used = 0;
    }
    bytes.copy(chunk, used);
    inputs.set(sha, chunk.subarray(used, used + bytes.length));
    used += bytes.length;
    bad.delete(sha);
  });
  return { inputs, bad };
}
