import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson } from './canonical-json.js';
import { chainHash, GENESIS_PREV, sealLine, unsealLine } from './chain.js';

export const AUDIT_RECORD_VERSION = 1;

export type Durability = 'fsync' | 'batch' | 'async';

export interface AuditLogOptions {
  readonly path: string;
  readonly durability: Durability;
  /** `batch`: the longest a written record waits for its fdatasync. */
  readonly batchMs: number;
}

export class AuditUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditUnavailableError';
  }
}

interface Pending {
  readonly line: string;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export interface Appended {
  readonly seq: number;
  readonly hash: string;
}

/** Reads the last intact record of an existing log so the chain resumes from it. */
function resumePoint(file: string): { seq: number; prev: string } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { seq: 0, prev: GENESIS_PREV };
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return { seq: 0, prev: GENESIS_PREV };
    // Records are bounded in length, so the last one sits in the final window.
    const window = Math.min(size, 1024 * 1024);
    const buf = Buffer.alloc(window);
    fs.readSync(fd, buf, 0, window, size - window);
    const text = buf.toString('utf8');
    if (!text.endsWith('\n')) {
      throw new AuditUnavailableError(`${file} ends in a torn record (a crash mid-write?); run \`bulwark audit verify ${file}\` and move the log aside before starting`);
    }
    const lines = text.slice(0, -1).split('\n');
    const last = lines[lines.length - 1] ?? '';
    const sealed = unsealLine(last);
    const seq = sealed ? (JSON.parse(sealed.body) as { seq?: unknown }).seq : undefined;
    if (!sealed || typeof seq !== 'number') throw new AuditUnavailableError(`${file}: the last record is not a sealed audit record; run \`bulwark audit verify\``);
    return { seq, prev: sealed.hash };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Append-only, hash-chained JSONL. One writer per file; records are sealed in call order and
 * written with O_APPEND. In `fsync` mode a call resolves only after fdatasync, and every record
 * that arrived while a sync was running shares the next one (group commit). After any write
 * failure the log refuses all further appends: a gap in the chain must never be papered over.
 */
export class AuditLog {
  private seq: number;
  private prev: string;
  private queue: Pending[] = [];
  private flushing = false;
  private failure: Error | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private dirty = false;
  private closed = false;

  private constructor(private readonly fh: fs.promises.FileHandle, private readonly opts: AuditLogOptions, start: { seq: number; prev: string }) {
    this.seq = start.seq;
    this.prev = start.prev;
  }

  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    await fs.promises.mkdir(path.dirname(opts.path), { recursive: true, mode: 0o700 });
    const start = resumePoint(opts.path);
    const fh = await fs.promises.open(opts.path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
    return new AuditLog(fh, opts, start);
  }

  get lastSeq(): number {
    return this.seq;
  }

  get writable(): boolean {
    return !this.failure && !this.closed;
  }

  /**
   * Seal the record now (seq, ts, prev, hash) and resolve when it is as durable as the mode
   * promises. Throws AuditUnavailableError if it cannot be recorded; the caller withholds the result.
   */
  async append(fields: Record<string, unknown>): Promise<Appended> {
    if (this.failure) throw new AuditUnavailableError(`audit log failed earlier: ${this.failure.message}`);
    if (this.closed) throw new AuditUnavailableError('audit log is closed');
    const seq = this.seq + 1;
    const body = canonicalJson({ ...fields, v: AUDIT_RECORD_VERSION, seq, ts: new Date().toISOString(), prev: this.prev });
    const hash = chainHash(this.prev, body);
    this.seq = seq;
    this.prev = hash;
    const line = `${sealLine(body, hash)}\n`;
    const done = new Promise<void>((resolve, reject) => this.queue.push({ line, resolve, reject }));
    void this.flush();
    if (this.opts.durability === 'async') {
      done.catch(() => undefined);
      return { seq, hash };
    }
    await done;
    return { seq, hash };
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.fh.write(batch.map((p) => p.line).join(''));
          if (this.opts.durability === 'fsync') await this.fh.datasync();
          else this.scheduleSync();
        } catch (err) {
          this.failure = err as Error;
          const e = new AuditUnavailableError(`audit write failed: ${(err as Error).message}`);
          for (const p of [...batch, ...this.queue]) p.reject(e);
          this.queue = [];
          return;
        }
        for (const p of batch) p.resolve();
      }
    } finally {
      this.flushing = false;
    }
  }

  private scheduleSync(): void {
    this.dirty = true;
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (!this.dirty || this.failure) return;
      this.dirty = false;
      this.fh.datasync().catch((err: Error) => {
        this.failure = err;
      });
    }, this.opts.batchMs);
    this.syncTimer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing || this.queue.length) await new Promise((r) => setImmediate(r));
    this.closed = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (!this.failure) await this.fh.datasync().catch(() => undefined);
    await this.fh.close();
  }
}
