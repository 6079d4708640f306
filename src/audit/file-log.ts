import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AuditUnavailableError, errorCode, type Appended, type AuditLog, type AuditLogOptions } from './audit-log.js';
import { MAX_LINE_BYTES, parseStrict } from './canonical-json.js';
import { chainHashFast, GENESIS_PREV, isoNow, LineBuffer, unsealLine } from './chain.js';
import { lastUsableCheckpoint, makeCheckpointLine, type CheckpointOptions, type DurableState } from './checkpoint.js';
import {
  acquireLock,
  firstLine,
  lastLine,
  logPaths,
  readManifest,
  scanLines,
  segmentName,
  syncDir,
  writeManifest,
  type LogPaths,
  type Manifest,
} from './files.js';
import { genesisFor } from './genesis.js';
import { Frontier, leafHashLatin1 } from './merkle.js';
import type { FileResumed, RecoveryFields, Restarted, SetAsideBytes, TornTail } from './record-type.js';
import { NO_REFUSED_APPENDS, RefusedAppends } from './refused-appends.js';
import { policyInputOf, PolicyInputStore } from './policy-inputs.js';
import { recordBody } from './seal-record.js';

/** The genesis record a new log starts with, or undefined when none is configured. */
/**
 * The records sealed since the last write: they share one promise, settled when their write (and
 * in `fsync` mode their fdatasync) is done. Their bytes are in the log's LineBuffer.
 */
interface Batch {
  readonly done: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  lastSeq: number;
  lastHash: string;
  /** Request ids of its records: named in the recovery record if the batch cannot be written. */
  readonly requestIds: string[];
  records: number;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers await `done`; in `async` mode nobody does, and a failure is reported by `writable`.
  done.catch(() => undefined);
  return { done, resolve, reject, lastSeq: 0, lastHash: '', requestIds: [], records: 0 };
}

/**
 * fdatasync through the callback API: a few microseconds less per call than FileHandle.datasync
 * (no handle bookkeeping), which counts with one caller in `fsync` mode. Only for the flush loop,
 * which rotation and close wait for, so the descriptor cannot be closed under it. Resolves with
 * the time it completed (performance.now()), for onSync.
 */
function datasync(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve(performance.now()))));
}

function parseRecordLine(line: string): { seq: number; prev: string; hash: string; body: string } | undefined {
  const s = unsealLine(line);
  if (!s) return undefined;
  try {
    const rec = parseStrict(s.body) as { seq?: unknown; prev?: unknown };
    if (typeof rec.seq !== 'number' || typeof rec.prev !== 'string') return undefined;
    return { seq: rec.seq, prev: rec.prev, hash: s.hash, body: s.body };
  } catch {
    return undefined;
  }
}

/**
 * A torn last record (the process died mid-write) is set aside: its bytes go to
 * `<segment>.torn-<ts>` and the segment is cut back to its last complete line, so the chain
 * resumes from the last intact record and nothing is chained over or silently dropped. A tail
 * that is in fact a complete record lacking only its newline is completed instead.
 */
function recoverTail(p: LogPaths, end: number, tail: Buffer, last: { seq: number; hash: string } | undefined): TornTail {
  const sha256 = crypto.createHash('sha256').update(tail).digest('hex');
  const text = tail.toString('utf8');
  const rec = Buffer.from(text, 'utf8').equals(tail) ? parseRecordLine(text) : undefined;
  const expectSeq = last ? last.seq + 1 : undefined;
  if (rec && (expectSeq === undefined || rec.seq === expectSeq) && (!last || rec.prev === last.hash) && chainHashFast(rec.prev, rec.body) === rec.hash) {
    const fd = fs.openSync(p.active, 'a');
    try {
      fs.writeSync(fd, '\n');
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return { action: 'completed', segment: path.basename(p.active), offset: end, bytes: tail.length, sha256 };
  }
  const aside = `${p.active}.torn-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const fd = fs.openSync(aside, 'wx', 0o600);
  try {
    fs.writeSync(fd, tail);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.truncateSync(p.active, end);
  const afd = fs.openSync(p.active, 'r+');
  try {
    fs.fdatasyncSync(afd);
  } finally {
    fs.closeSync(afd);
  }
  syncDir(p.dir);
  return { action: 'set_aside', segment: path.basename(p.active), offset: end, bytes: tail.length, sha256, set_aside: path.basename(aside) };
}

/** First retry soon after a failure; then doubling up to the cap. */
const RECOVER_FIRST_MS = 250;
const RECOVER_MAX_MS = 5000;
/** Request ids of refused appends named in the recovery record (the count is exact). */
const REFUSED_IDS_KEPT = 100;

interface LoadedState {
  readonly manifest: Manifest;
  readonly start: { seq: number; prev: string };
  readonly recovery: TornTail | undefined;
  readonly frontier: Frontier | undefined;
  readonly cpSize: number;
  readonly fh: fs.promises.FileHandle;
  readonly bytes: number;
}

/**
 * Read the log as it is on disk and open its active segment for appending: finish a rotation a
 * crash interrupted, set aside a torn last record, check that the active segment continues the
 * manifest, and rebuild the Merkle frontier. Used at start-up and when the log resumes after a
 * write failure, so both see the same state the same way.
 */
async function loadState(p: LogPaths, opts: AuditLogOptions): Promise<LoadedState> {
  const maxLine = opts.maxLineBytes ?? MAX_LINE_BYTES;
  let manifest = readManifest(p);
  const activeExists = fs.existsSync(p.active);
  // A rotation that crashed between writing the manifest and renaming the active segment.
  const lastSeg = manifest?.segments[manifest.segments.length - 1];
  if (manifest && lastSeg && activeExists && !fs.existsSync(path.join(p.dir, lastSeg.file))) {
    const first = firstLine(p.active, maxLine);
    const rec = first && parseRecordLine(first.toString('utf8'));
    if (rec && rec.seq === lastSeg.first_seq) {
      fs.renameSync(p.active, path.join(p.dir, lastSeg.file));
      syncDir(p.dir);
    }
  }
  let recovery: TornTail | undefined;
  let last: { seq: number; hash: string } | undefined;
  let firstRec: { seq: number; prev: string } | undefined;
  if (fs.existsSync(p.active) && fs.statSync(p.active).isFile()) {
    const ll = lastLine(p.active, maxLine);
    if (ll.line) {
      const rec = parseRecordLine(ll.line.toString('utf8'));
      if (!rec) throw new AuditUnavailableError(`${p.active}: the last complete line is not a sealed audit record; run \`bulwark audit verify ${p.active}\``);
      last = { seq: rec.seq, hash: rec.hash };
    }
    if (ll.tail) {
      recovery = recoverTail(p, ll.end, ll.tail, last);
      if (recovery.action === 'completed') {
        const rec = parseRecordLine(ll.tail.toString('utf8'));
        if (rec) last = { seq: rec.seq, hash: rec.hash };
      }
    }
    const fl = firstLine(p.active, maxLine);
    const f = fl && parseRecordLine(fl.toString('utf8'));
    if (fl && !f) throw new AuditUnavailableError(`${p.active}: the first line is not a sealed audit record; run \`bulwark audit verify ${p.active}\``);
    if (f) firstRec = { seq: f.seq, prev: f.prev };
  }
  if (!manifest) {
    manifest = {
      v: 1,
      stream: opts.stream ?? 'default',
      active: path.basename(p.active),
      active_first_seq: firstRec?.seq ?? 1,
      active_prev: firstRec?.prev ?? GENESIS_PREV,
      segments: [],
    };
    writeManifest(p, manifest);
  } else if (firstRec && (firstRec.seq !== manifest.active_first_seq || firstRec.prev !== manifest.active_prev)) {
    throw new AuditUnavailableError(`${p.active} does not continue the segments in ${p.manifest}; run \`bulwark audit verify ${p.active}\``);
  }
  const start = last ? { seq: last.seq, prev: last.hash } : { seq: manifest.active_first_seq - 1, prev: manifest.active_prev };

  let frontier: Frontier | undefined;
  let cpSize = 0;
  if (opts.checkpoint) {
    const rebuilt = rebuildFrontier(p, manifest, opts.checkpoint, start.seq, opts.onWarning);
    frontier = rebuilt?.frontier;
    cpSize = rebuilt?.cpSize ?? 0;
  }
  const fh = await fs.promises.open(p.active, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
  try {
    const bytes = (await fh.stat()).size;
    return { manifest, start, recovery, frontier, cpSize, fh, bytes };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Append-only, hash-chained JSONL in segments. One writer per log (a lock file). Records are
 * sealed in call order and written with O_APPEND. In `fsync` mode a call resolves only after
 * fdatasync, and every record that arrived while a sync was running shares the next one (group
 * commit); `batch` syncs at most every batchMs; `async` does not wait. After a write failure the
 * log refuses every append until it resumes by itself (tryRecover): a gap in the chain is never
 * papered over, and what could not be written is set aside and named in a recovery record.
 *
 * With checkpoints on, the writer keeps the Merkle frontier over the written records (one leaf
 * hash and on average one node hash per record) and signs a checkpoint over durable records only,
 * so a crash cannot leave a checkpoint that the log on disk falls short of.
 */
export class FileAuditLog implements AuditLog {
  private seq: number;
  private prev: string;
  private writtenSeq: number;
  private writtenHash: string;
  /** Sealed, not yet written: their bytes are in `lines`. */
  private open: Batch | undefined;
  private readonly lines = new LineBuffer();
  private flushing = false;
  private failure: Error | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private tick: NodeJS.Timeout | undefined;
  private dirty = false;
  private closed = false;
  private durable: DurableState;
  private lastCheckpoint: { size: number; at: number };
  private checkpointWrites: Promise<void> = Promise.resolve();
  private cpHandles: fs.promises.FileHandle[] = [];
  private activeOpenedAt = Date.now();
  /** Bumped whenever the active handle is retired (rotation), so a late sync error on it is ignored. */
  private generation = 0;
  private rotating = false;
  private kicked = false;
  private readonly maxLine: number;
  /** Bytes of the active segment whose records were acknowledged to their callers. */
  private ackedBytes: number;
  private failedAt: Date | undefined;
  private recoverTimer: NodeJS.Timeout | undefined;
  private recoverDelayMs = RECOVER_FIRST_MS;
  private recovering = false;
  /** Appends refused while the log was failed: summarised in the recovery record. */
  private readonly refused = new RefusedAppends(REFUSED_IDS_KEPT);
  /** Copies of the policy inputs the records hash (policy-inputs.ts), written before their records. */
  private inputs: PolicyInputStore | undefined;

  private constructor(
    private fh: fs.promises.FileHandle,
    private readonly opts: AuditLogOptions,
    private readonly paths: LogPaths,
    private manifest: Manifest,
    private activeBytes: number,
    private frontier: Frontier | undefined,
    private readonly releaseLock: () => void,
    start: { seq: number; prev: string },
    cpSize: number,
  ) {
    this.seq = start.seq;
    this.prev = start.prev;
    this.writtenSeq = start.seq;
    this.writtenHash = start.prev;
    this.maxLine = opts.maxLineBytes ?? MAX_LINE_BYTES;
    this.ackedBytes = activeBytes;
    this.durable = { size: start.seq, head: start.prev, frontier: frontier?.snapshotLatin1() ?? [], seg: manifest.active_first_seq, offset: activeBytes };
    this.lastCheckpoint = { size: cpSize, at: Date.now() };
  }

  static async open(opts: AuditLogOptions): Promise<FileAuditLog> {
    const p = logPaths(opts.path);
    await fs.promises.mkdir(p.dir, { recursive: true, mode: 0o700 });
    const release = acquireLock(p.lock);
    try {
      const st = await loadState(p, opts);
      const log = new FileAuditLog(st.fh, opts, p, st.manifest, st.bytes, st.frontier, release, st.start, st.cpSize);
      if (opts.policyInputs) log.inputs = PolicyInputStore.open(opts.policyInputs);
      await log.openCheckpointSinks();
      log.startTimer();
      // A new log (nothing written, no segment before it) starts with its genesis record.
      const genesis = st.start.seq === 0 && st.manifest.active_first_seq === 1 && st.manifest.segments.length === 0 ? genesisFor(opts) : undefined;
      if (genesis) {
        try {
          await log.append(genesis);
        } catch (err) {
          // A write that fails (a full disk) fails the log as any append would: the server starts,
          // refuses calls audit_unavailable, and the recovery writes the genesis record first.
          if (!(err instanceof AuditUnavailableError)) throw err;
        }
      }
      if (st.recovery) {
        opts.onWarning?.('audit log: recovered a torn last record at start-up', { ...st.recovery });
        await log.append({ event: 'audit.recovery', recovery: st.recovery } satisfies RecoveryFields);
      }
      // The writer before this one stopped (was killed) with records no checkpoint covers yet. Mark
      // where this writer's life starts and sign at once: verify ends the dead writer's unsigned
      // span at this record, so the time the log was down is not counted as an unsigned stretch.
      if (opts.checkpoint && st.frontier && st.cpSize < st.start.seq && !genesis) {
        const restarted: Restarted = {
          action: 'restarted',
          last_checkpoint_size: st.cpSize,
          unsigned_from: st.cpSize + 1,
          unsigned_to: st.start.seq,
        };
        opts.onWarning?.('audit log: the previous writer stopped before signing its last records; signing them now', { ...restarted });
        try {
          await log.append({ event: 'audit.recovery', recovery: restarted } satisfies RecoveryFields);
          await log.checkpointNow();
        } catch (err) {
          if (!(err instanceof AuditUnavailableError)) throw err;
        }
      }
      return log;
    } catch (err) {
      release();
      throw err;
    }
  }

  get lastSeq(): number {
    return this.seq;
  }

  get writable(): boolean {
    return !this.failure && !this.closed;
  }

  /** The segment files, manifest and checkpoints this log writes. */
  get files(): LogPaths {
    return this.paths;
  }

  async append(fields: Readonly<Record<string, unknown>>): Promise<Appended> {
    if (this.failure) {
      this.noteRefused(fields);
      throw new AuditUnavailableError(`audit log failed earlier: ${this.failure.message}`);
    }
    if (this.closed) throw new AuditUnavailableError('audit log is closed');
    const seq = this.seq + 1;
    // Throws CanonicalJsonError before anything changes.
    const body = recordBody(fields, seq, this.prev, isoNow(), this.maxLine);
    const input = policyInputOf(fields);
    if (input) this.inputs?.put(input);
    this.lines.seal(body, this.prev);
    const hash = this.lines.hash;
    this.seq = seq;
    this.prev = hash;
    const batch = (this.open ??= newBatch());
    batch.lastSeq = seq;
    batch.lastHash = hash;
    batch.records++;
    if (typeof fields.request_id === 'string' && batch.requestIds.length < REFUSED_IDS_KEPT) batch.requestIds.push(fields.request_id);
    this.kick();
    if (this.opts.durability !== 'async') await batch.done;
    return { seq, hash };
  }

  /** Make everything appended so far durable and sign a checkpoint over it now (after a restart). */
  private async checkpointNow(): Promise<void> {
    while (this.flushing || this.open || this.kicked) await new Promise((r) => setImmediate(r));
    if (this.failure || this.closed) return;
    await this.fh.datasync();
    await this.inputs?.sync();
    this.markDurable();
    this.maybeCheckpoint(true);
    await this.checkpointWrites;
  }

  /** Start a flush after the current turn, so every append made in it shares one write. */
  private kick(): void {
    if (this.kicked || this.flushing) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      void this.flush();
    });
  }

  private fail(err: Error, inFlight: Batch | undefined): void {
    if (!this.failure) {
      this.failedAt = new Date();
      this.opts.onWarning?.('audit log write failed; appends are refused until it resumes', { error: err.message, code: errorCode(err) });
    }
    this.failure = err;
    // The records of the batches that could not be written count as refused too.
    for (const b of [inFlight, this.open]) {
      if (!b) continue;
      for (let k = 0; k < b.records; k++) this.noteRefused({ request_id: b.requestIds[k] });
    }
    this.scheduleRecovery();
    const e = new AuditUnavailableError(`audit write failed: ${err.message}`);
    inFlight?.reject(e);
    this.open?.reject(e);
    this.open = undefined;
    this.lines.clear();
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.open && !this.failure) {
        const batch = this.open;
        this.open = undefined;
        try {
          // One write(2) per batch, straight to the page cache: a synchronous write of a few
          // hundred KiB costs less than the thread-pool round trip of an async one, and the slow
          // part (fdatasync) stays asynchronous. Being synchronous, it is done with the buffer
          // before any later append seals into it.
          const buf = this.lines.bytes();
          // The input copies first: a record never names an input that was not written before it.
          this.inputs?.flush();
          for (let off = 0; off < buf.length;) off += fs.writeSync(this.fh.fd, buf, off, buf.length - off);
          this.activeBytes += buf.length;
          const fsync = this.opts.durability === 'fsync';
          const t0 = performance.now();
          const inputsSynced = fsync ? this.inputs?.sync() : undefined;
          inputsSynced?.catch(() => undefined);
          const synced = fsync ? datasync(this.fh.fd) : undefined;
          // Awaited below; should anything in between throw, its rejection must not go unhandled.
          synced?.catch(() => undefined);
          // The Merkle leaves and nodes while the fdatasync runs (the buffer is still intact).
          const frontier = this.frontier;
          if (frontier) this.lines.leaves((leaf) => frontier.appendLatin1(leaf));
          this.lines.clear();
          this.writtenSeq = batch.lastSeq;
          this.writtenHash = batch.lastHash;
          if (synced) {
            const t1 = await synced;
            await inputsSynced;
            this.opts.onSync?.((t1 - t0) / 1000);
            this.markDurable();
          } else {
            this.scheduleSync();
          }
        } catch (err) {
          this.fail(err as Error, batch);
          return;
        }
        this.ackedBytes = this.activeBytes;
        batch.resolve();
        this.maybeCheckpoint(false);
        try {
          await this.maybeRotate();
        } catch (err) {
          this.fail(err as Error, undefined);
          return;
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private current(): DurableState {
    return {
      size: this.writtenSeq,
      head: this.writtenHash,
      frontier: this.frontier?.snapshotLatin1() ?? [],
      seg: this.manifest.active_first_seq,
      offset: this.activeBytes,
    };
  }

  private markDurable(state: DurableState = this.current()): void {
    if (state.size >= this.durable.size) this.durable = state;
  }

  private scheduleSync(): void {
    this.dirty = true;
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (!this.dirty || this.failure || this.closed) return;
      if (this.rotating) {
        // Rotation syncs and swaps the handle; try again on the new one.
        this.scheduleSync();
        return;
      }
      this.dirty = false;
      const target = this.current();
      const gen = this.generation;
      const t0 = performance.now();
      this.fh.datasync().then(
        () => {
          this.opts.onSync?.((performance.now() - t0) / 1000);
          this.markDurable(target);
          this.maybeCheckpoint(false);
        },
        (err: Error) => {
          // A handle that rotation or close retired was synced by them before it was closed.
          if (gen === this.generation && !this.closed && !this.failure) this.fail(err, undefined);
        },
      );
    }, this.opts.batchMs);
    this.syncTimer.unref();
  }

  private startTimer(): void {
    const cp = this.opts.checkpoint;
    const rot = this.opts.rotation;
    if (!cp && !rot?.maxAgeMs) return;
    const every = Math.max(10, Math.min(cp?.everyMs ?? 1000, 1000));
    this.tick = setInterval(() => {
      this.maybeCheckpoint(false);
      if (rot?.maxAgeMs && !this.flushing && !this.closed && Date.now() - this.activeOpenedAt >= rot.maxAgeMs) void this.rotateNow();
    }, every);
    this.tick.unref();
  }

  private async rotateNow(): Promise<void> {
    if (this.flushing || this.failure || this.closed) return;
    this.flushing = true;
    try {
      await this.maybeRotate();
    } catch (err) {
      this.fail(err as Error, undefined);
    } finally {
      this.flushing = false;
    }
    if (this.open) this.kick();
  }

  private async openCheckpointSinks(): Promise<void> {
    const cp = this.opts.checkpoint;
    if (!cp) return;
    const files = [this.paths.checkpoints, ...(cp.mirrorPath ? [path.resolve(cp.mirrorPath)] : [])];
    for (const f of files) {
      await fs.promises.mkdir(path.dirname(f), { recursive: true, mode: 0o700 });
      this.cpHandles.push(await fs.promises.open(f, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600));
    }
  }

  /** Sign when due: `everyRecords` new durable records, or `everyMs` since the last checkpoint. */
  private maybeCheckpoint(force: boolean): void {
    const cp = this.opts.checkpoint;
    if (!cp || !this.frontier) return;
    const d = this.durable;
    if (d.size <= this.lastCheckpoint.size) return;
    const due = force || d.size - this.lastCheckpoint.size >= cp.everyRecords || Date.now() - this.lastCheckpoint.at >= cp.everyMs;
    if (!due) return;
    this.lastCheckpoint = { size: d.size, at: Date.now() };
    const cpLine = makeCheckpointLine(cp, d);
    const line = `${JSON.stringify(cpLine)}\n`;
    this.checkpointWrites = this.checkpointWrites.then(async () => {
      for (const [i, h] of this.cpHandles.entries()) {
        try {
          await h.write(line);
          await h.datasync();
        } catch (err) {
          this.opts.onWarning?.('audit checkpoint could not be written', {
            sink: i === 0 ? this.paths.checkpoints : cp.mirrorPath,
            error: (err as Error).message,
          });
        }
      }
      // Witnesses (C2SP tlog-witness) get it after it is on disk; their answers never hold up the log.
      void this.opts.onCheckpoint?.(cpLine.note, cpLine.size);
    });
  }

  private async maybeRotate(): Promise<void> {
    const rot = this.opts.rotation;
    if (!rot || this.activeBytes === 0) return;
    const bySize = rot.maxBytes !== undefined && this.activeBytes >= rot.maxBytes;
    const byAge = rot.maxAgeMs !== undefined && Date.now() - this.activeOpenedAt >= rot.maxAgeMs;
    if (!bySize && !byAge) return;
    // Everything written so far becomes durable and signed before the segment is sealed.
    await this.fh.datasync();
    this.markDurable();
    this.maybeCheckpoint(true);
    const name = segmentName(this.paths, this.manifest.active_first_seq);
    const entry = {
      file: name,
      first_seq: this.manifest.active_first_seq,
      last_seq: this.writtenSeq,
      prev: this.manifest.active_prev,
      last_hash: this.writtenHash,
      bytes: this.activeBytes,
    };
    const next: Manifest = {
      ...this.manifest,
      active_first_seq: this.writtenSeq + 1,
      active_prev: this.writtenHash,
      segments: [...this.manifest.segments, entry as never],
    };
    // Manifest first, then the rename: open() completes a rename that a crash interrupted.
    writeManifest(this.paths, next);
    this.generation++;
    this.rotating = true;
    try {
      await this.fh.close();
      fs.renameSync(this.paths.active, path.join(this.paths.dir, name));
      syncDir(this.paths.dir);
      this.fh = await fs.promises.open(this.paths.active, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    } finally {
      this.rotating = false;
    }
    this.manifest = next;
    this.activeBytes = 0;
    this.ackedBytes = 0;
    this.activeOpenedAt = Date.now();
  }

  private noteRefused(fields: Readonly<Record<string, unknown>>): void {
    this.refused.note(fields);
    this.scheduleRecovery();
  }

  /** Try to resume after a failure: soon after it, then with back-off up to RECOVER_MAX_MS. */
  private scheduleRecovery(): void {
    if (this.recoverTimer || this.recovering || this.closed) return;
    this.recoverTimer = setTimeout(() => {
      this.recoverTimer = undefined;
      void this.tryRecover();
    }, this.recoverDelayMs);
    this.recoverTimer.unref();
  }

  /**
   * Resume after a write failure (disk full, an I/O error), without a restart: the active
   * segment is cut back to the last record its caller was told was written, and the bytes past
   * it (records whose callers got `audit_unavailable`, or a torn write) are set aside in a
   * `.unacked-<ts>` file, exactly as start-up sets aside a torn tail. The state is then read from
   * disk as at start-up, and a recovery record continues the chain, naming what was set aside
   * and how many appends were refused meanwhile. Until that record is written, nothing is.
   */
  private async tryRecover(): Promise<void> {
    if (!this.failure || this.closed || this.recovering) return;
    this.recovering = true;
    try {
      while (this.flushing) await new Promise((r) => setImmediate(r));
      if (this.syncTimer) clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
      this.dirty = false;
      this.generation++;
      await this.fh.close().catch(() => undefined);
      const setAside = this.cutToAcknowledged();
      const st = await loadState(this.paths, this.opts);
      this.fh = st.fh;
      this.manifest = st.manifest;
      this.activeBytes = st.bytes;
      this.ackedBytes = st.bytes;
      this.frontier = st.frontier;
      this.seq = st.start.seq;
      this.prev = st.start.prev;
      this.writtenSeq = st.start.seq;
      this.writtenHash = st.start.prev;
      this.durable = {
        size: st.start.seq,
        head: st.start.prev,
        frontier: st.frontier?.snapshotLatin1() ?? [],
        seg: st.manifest.active_first_seq,
        offset: st.bytes,
      };
      this.lastCheckpoint = { size: Math.min(this.lastCheckpoint.size, st.start.seq), at: this.lastCheckpoint.at };
      this.lines.clear();
      const failure = this.failure;
      const refused = this.refused.take();
      const recovery: FileResumed = {
        action: 'resumed',
        reason: failure.message.slice(0, 300),
        code: errorCode(failure),
        failed_at: this.failedAt?.toISOString() ?? null,
        resumed_at: new Date().toISOString(),
        set_aside: setAside ?? null,
        torn: st.recovery ?? null,
        refused_appends: refused ?? NO_REFUSED_APPENDS,
      };
      this.failure = undefined;
      try {
        // A log whose genesis record could not be written (the disk was full at start-up) still starts with it.
        const genesis = st.start.seq === 0 && st.manifest.segments.length === 0 ? genesisFor(this.opts) : undefined;
        if (genesis) await this.append(genesis);
        await this.append({ event: 'audit.recovery', recovery } satisfies RecoveryFields);
      } catch (err) {
        // Still failing (the disk is still full): fail() scheduled the next try. The refusals
        // counted so far are carried into the next recovery record.
        this.refused.putBack(refused);
        throw err;
      }
      this.recoverDelayMs = RECOVER_FIRST_MS;
      this.failedAt = undefined;
      this.opts.onWarning?.('audit log resumed after a write failure', { ...recovery, refused_appends: recovery.refused_appends.count });
    } catch (err) {
      this.recoverDelayMs = Math.min(RECOVER_MAX_MS, this.recoverDelayMs * 2);
      if (!this.failure) this.failure = err as Error;
      this.recovering = false;
      this.scheduleRecovery();
      return;
    }
    this.recovering = false;
  }

  /** Cut the active segment back to its acknowledged bytes; what was past them goes to a file beside it. */
  private cutToAcknowledged(): SetAsideBytes | undefined {
    let size: number;
    try {
      size = fs.statSync(this.paths.active).size;
    } catch {
      return undefined;
    }
    // Only while the segment on disk is still the one this log was writing (a rotation the
    // failure interrupted is finished by loadState; rotation syncs everything first, so a
    // rotated-away segment holds nothing unacknowledged).
    const onDisk = readManifest(this.paths);
    if (!onDisk || onDisk.active_first_seq !== this.manifest.active_first_seq || size <= this.ackedBytes) return undefined;
    const fd = fs.openSync(this.paths.active, 'r+');
    try {
      const tail = Buffer.alloc(size - this.ackedBytes);
      let off = 0;
      while (off < tail.length) {
        const n = fs.readSync(fd, tail, off, tail.length - off, this.ackedBytes + off);
        if (n === 0) break;
        off += n;
      }
      const aside = `${this.paths.active}.unacked-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      const afd = fs.openSync(aside, 'wx', 0o600);
      try {
        fs.writeSync(afd, tail, 0, off);
        fs.fdatasyncSync(afd);
      } finally {
        fs.closeSync(afd);
      }
      fs.ftruncateSync(fd, this.ackedBytes);
      fs.fdatasyncSync(fd);
      syncDir(this.paths.dir);
      return {
        file: path.basename(aside),
        offset: this.ackedBytes,
        bytes: off,
        sha256: crypto.createHash('sha256').update(tail.subarray(0, off)).digest('hex'),
      };
    } finally {
      fs.closeSync(fd);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing || this.open || this.recovering) await new Promise((r) => setImmediate(r));
    this.closed = true;
    if (this.recoverTimer) clearTimeout(this.recoverTimer);
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (this.tick) clearInterval(this.tick);
    if (!this.failure) {
      try {
        await this.fh.datasync();
        this.markDurable();
        this.maybeCheckpoint(true);
      } catch {
        // The failure is already reported to the callers.
      }
    }
    await this.checkpointWrites;
    for (const h of this.cpHandles) await h.close().catch(() => undefined);
    await this.fh.close().catch(() => undefined);
    try {
      this.inputs?.close();
    } catch {
      // Copies that could not be synced are missing at replay, which says so.
    }
    this.releaseLock();
  }
}

/**
 * The Merkle frontier at the log's end, for checkpoints: from the last usable checkpoint (its
 * frontier folds to its signed root) plus the records after it, or from the first record.
 */
function rebuildFrontier(
  p: LogPaths,
  manifest: Manifest,
  cp: CheckpointOptions,
  size: number,
  warn: AuditLogOptions['onWarning'],
): { frontier: Frontier; cpSize: number } | undefined {
  const segments = [
    ...manifest.segments.map((s) => ({ file: path.join(p.dir, s.file), first: s.first_seq })),
    { file: p.active, first: manifest.active_first_seq },
  ];
  let frontier = new Frontier();
  let startIdx = 0;
  let startOffset = 0;
  let cpSize = 0;
  const usable = lastUsableCheckpoint(p.checkpoints, cp.signer);
  if (usable && usable.cp.size <= size && usable.cp.raw.seg !== undefined && usable.cp.raw.offset !== undefined) {
    const idx = segments.findIndex((s) => s.first === usable.cp.raw.seg);
    if (idx >= 0) {
      frontier = usable.frontier;
      startIdx = idx;
      startOffset = usable.cp.raw.offset;
      cpSize = usable.cp.size;
    }
  }
  if (startIdx === 0 && startOffset === 0 && (segments[0]?.first ?? 1) !== 1) {
    warn?.('audit checkpoints disabled: the first segments are gone and no checkpoint covers them', { manifest: p.manifest });
    return undefined;
  }
  for (let i = startIdx; i < segments.length; i++) {
    const s = segments[i] as { file: string };
    if (s.file === p.active && !fs.existsSync(s.file)) continue;
    if (!fs.existsSync(s.file)) {
      warn?.('audit checkpoints disabled: a segment is missing', { segment: s.file });
      return undefined;
    }
    scanLines(
      s.file,
      (buf, start, end) => {
        frontier.appendLatin1(leafHashLatin1(buf.subarray(start, end)));
      },
      i === startIdx ? startOffset : 0,
    );
  }
  if (frontier.size !== size) {
    warn?.('audit checkpoints disabled: the records on disk do not match the last checkpoint', { expected: size, found: frontier.size });
    return undefined;
  }
  return { frontier, cpSize };
}
