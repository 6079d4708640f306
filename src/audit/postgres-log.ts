import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import os from 'node:os';
import { redactUrl } from '../config/redact-url.js';
import { AuditUnavailableError, errorCode, type Appended, type AuditLog, type AuditLogOptions } from './audit-log.js';
import { canonicalJson, MAX_LINE_BYTES } from './canonical-json.js';
import { GENESIS_PREV, sha256Hex } from './chain.js';
import { genesisFor } from './genesis.js';
import { makeCheckpointLine } from './checkpoint.js';
import { Frontier, leafHash } from './merkle.js';
import { readCheckpointNote } from './note.js';
import type { PostgresResumed, RecoveryFields, RefusedFields, Restarted } from './record-type.js';
import { NO_REFUSED_APPENDS, RefusedAppends } from './refused-appends.js';
import { sealRecord } from './seal-record.js';
import { policyInputOf, type PolicyInputCopy } from './policy-inputs.js';
import { WitnessClient } from './witness-client.js';
import { PostgresWitnessSide, postgresCosignatureLines } from './postgres-witness.js';
import { verifySegments, type Segment, type VerifyOptions, type VerifyReport } from './verify.js';

/** sql/audit-postgres.sql in the package (dist/src/audit → three levels up). */
export const AUDIT_POSTGRES_SQL = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'sql', 'audit-postgres.sql');

/** Advisory-lock namespace for audit streams (the first key of the two-key form). */
const LOCK_CLASS = 0x42_57_41; // "BWA"

/** After a failed write: the first try to resume, then back-off up to once a second. */
const RECOVER_FIRST_MS = 250;
const RECOVER_MAX_MS = 1000;
/** Request ids of refused appends named in the recovery record (the count is exact). */
const REFUSED_IDS_KEPT = 32;

interface Pending {
  readonly fields: Readonly<Record<string, unknown>>;
  readonly resolve: (a: Appended) => void;
  readonly reject: (err: Error) => void;
}

type Sql = postgres.Sql<Record<string, never>>;

export function connect(url: string): Sql {
  // Reconnect soon after the server is back (the default back-off grows to 20 s).
  return postgres(url, {
    max: 2,
    onnotice: () => undefined,
    connect_timeout: 10,
    idle_timeout: 30,
    backoff: (n: number) => Math.min(0.05 * 2 ** n, 0.5),
  }) as unknown as Sql;
}

/** Apply sql/audit-postgres.sql (as an administrator, once). */
export async function installPostgresSchema(url: string): Promise<void> {
  const sql = connect(url);
  try {
    await sql.unsafe(fs.readFileSync(AUDIT_POSTGRES_SQL, 'utf8'));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * The audit log in PostgreSQL, for several replicas writing one chain per stream. Each flush is
 * one transaction that takes a transaction-scoped advisory lock for the stream, reads the head,
 * seals the queued records onto it and inserts them: concurrent appenders in this process share
 * the transaction (group commit), other processes wait for the lock, so the chain stays one
 * line. A trigger re-checks every insert (seq, prev, hash) and refuses UPDATE, DELETE, TRUNCATE.
 * A call resolves after COMMIT whatever the durability mode: the seq comes from the database.
 *
 * A failed write (the server restarted, the connection dropped) fails the log: appends are
 * refused with AuditUnavailableError, and the log tries to resume on its own, soon after the
 * failure and then about once a second (and on an append, at most as often). Resuming is one
 * more flush: under the stream lock it reads the head from the database, so the chain continues
 * from what is really there (also a batch whose COMMIT was sent but not acknowledged), and its
 * first record is `audit.recovery`, saying when and why the log failed and what it refused
 * meanwhile. Nothing already written is touched.
 */
export class PostgresAuditLog implements AuditLog {
  private queue: Pending[] = [];
  private flushing = false;
  private failure: Error | undefined;
  private failedAt: Date | undefined;
  private readonly refused = new RefusedAppends(REFUSED_IDS_KEPT);
  /**
   * Keep the exact policy inputs the records hash (audit.replay_inputs): in
   * bulwark_audit_policy_input, inserted in the transaction that inserts their records.
   */
  private keepInputs = false;
  /** Sends each checkpoint this writer signs to the configured witnesses (postgres-witness.ts). */
  private witness: WitnessClient | undefined;
  private recoverTimer: NodeJS.Timeout | undefined;
  private recoverDelayMs = RECOVER_FIRST_MS;
  private recovering = false;
  private lastRecoverAt = 0;
  private closed = false;
  private seq = 0;
  private sinceCheckpoint = 0;
  private lastCheckpointAt = Date.now();
  private tick: NodeJS.Timeout | undefined;
  private checkpointing: Promise<void> = Promise.resolve();
  private readonly maxLine: number;

  private constructor(
    private readonly sql: Sql,
    private readonly opts: AuditLogOptions,
    private readonly stream: string,
  ) {
    this.maxLine = opts.maxLineBytes ?? MAX_LINE_BYTES;
  }

  static async open(opts: AuditLogOptions): Promise<PostgresAuditLog> {
    if (!opts.postgresUrl) throw new AuditUnavailableError('audit.backend is postgres but audit.postgres_url is not set');
    const sql = connect(opts.postgresUrl);
    const stream = opts.stream ?? 'default';
    const log = new PostgresAuditLog(sql, opts, stream);
    let newStream: boolean;
    try {
      const [head] = await sql`SELECT seq FROM bulwark_audit WHERE stream = ${stream} ORDER BY seq DESC LIMIT 1`;
      log.seq = head ? Number(head.seq) : 0;
      newStream = !head;
      if (!head && opts.genesis) {
        // Nothing appended yet: the genesis record alone (unless another replica was first).
        await log.insert([]);
        const [now] = await sql`SELECT seq FROM bulwark_audit WHERE stream = ${stream} ORDER BY seq DESC LIMIT 1`;
        log.seq = now ? Number(now.seq) : 0;
      }
    } catch (err) {
      await sql.end({ timeout: 5 });
      throw new AuditUnavailableError(
        `audit PostgreSQL backend unavailable (apply sql/audit-postgres.sql and grant bulwark_audit_writer): ${(err as Error).message}`,
      );
    }
    log.keepInputs = opts.policyInputs !== undefined;
    if (opts.witnesses?.length && opts.checkpoint) log.witness = new WitnessClient(new PostgresWitnessSide(sql, stream), opts.witnesses, opts.onWarning);
    if (opts.checkpoint) {
      const every = Math.max(10, Math.min(opts.checkpoint.everyMs, 1000));
      log.tick = setInterval(() => log.maybeCheckpoint(false), every);
      log.tick.unref();
      // A stream this writer just began holds only its genesis record: nothing was left unsigned.
      if (!newStream) await log.signLeftovers();
    }
    return log;
  }

  /**
   * As the file backend does: when the stream's last records are past its last checkpoint (every
   * writer stopped, was killed, before signing them), mark where this writer starts and sign at
   * once, so verify ends that unsigned span here instead of counting the downtime as unsigned.
   * Another writer of the stream that is merely between checkpoints gets an early checkpoint.
   */
  private async signLeftovers(): Promise<void> {
    if (this.seq === 0) return;
    let cpSize: number;
    try {
      const [last] = await this.sql`SELECT max(size) AS size FROM bulwark_audit_checkpoint WHERE stream = ${this.stream}`;
      cpSize = last?.size === null || last?.size === undefined ? 0 : Number(last.size);
    } catch (err) {
      this.opts.onWarning?.('audit log: could not read the last checkpoint at start-up', { stream: this.stream, error: (err as Error).message });
      return;
    }
    if (cpSize >= this.seq) return;
    const restarted: Restarted = { action: 'restarted', last_checkpoint_size: cpSize, unsigned_from: cpSize + 1, unsigned_to: this.seq };
    this.opts.onWarning?.('audit log: records past the last checkpoint at start-up; signing them now', { stream: this.stream, ...restarted });
    try {
      await this.append({ event: 'audit.recovery', recovery: restarted } satisfies RecoveryFields);
      this.maybeCheckpoint(true);
      await this.checkpointing;
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) throw err;
    }
  }

  get writable(): boolean {
    return !this.failure && !this.closed;
  }

  /** The highest seq this process has written or seen. */
  get lastSeq(): number {
    return this.seq;
  }

  async append(fields: Readonly<Record<string, unknown>>): Promise<Appended> {
    if (this.closed) throw new AuditUnavailableError('audit log is closed');
    if (this.failure) {
      this.noteRefused(fields);
      // An append is also a reason to try again, at most about once a second.
      if (!this.recovering && Date.now() - this.lastRecoverAt >= RECOVER_MAX_MS) void this.tryRecover();
      throw new AuditUnavailableError(`audit log failed earlier: ${this.failure.message}`);
    }
    // Refuse what cannot be hashed reproducibly now, before it joins a transaction with others
    // (seq, ts, prev and v add well under 300 bytes).
    canonicalJson(fields, this.maxLine - 400);
    const done = new Promise<Appended>((resolve, reject) => this.queue.push({ fields, resolve, reject }));
    void this.flush();
    return done;
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length && !this.failure) {
        const batch = this.queue;
        this.queue = [];
        let sealed: Appended[];
        try {
          sealed = await this.insert(batch.map((p) => p.fields));
        } catch (err) {
          // A lost connection or a refused insert: the callers are told nothing was recorded
          // (they withhold their results), and the log is failed until it resumes.
          this.fail(err as Error, batch);
          return;
        }
        batch.forEach((p, i) => p.resolve(sealed[i] as Appended));
        this.wrote(sealed);
      }
    } finally {
      this.flushing = false;
    }
  }

  /** One transaction: the stream lock, the head as the database has it, the rows sealed onto it. */
  private async insert(records: readonly Readonly<Record<string, unknown>>[]): Promise<Appended[]> {
    return (await this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${this.stream}))`;
      const [head] = await tx`SELECT seq, hash FROM bulwark_audit WHERE stream = ${this.stream} ORDER BY seq DESC LIMIT 1`;
      let seq = head ? Number(head.seq) : 0;
      let prev = head ? String(head.hash) : GENESIS_PREV;
      // A new stream starts with its genesis record, decided under the stream lock so that of
      // several replicas starting at once exactly one writes it.
      const genesis = head ? undefined : genesisFor(this.opts);
      const all = genesis ? [genesis, ...records] : records;
      if (!all.length) return [];
      // The inputs before the records that name them, in the same transaction: a committed record
      // never names an input that is not there (content-addressed: a repeated input is one row).
      if (this.keepInputs) {
        const copies = new Map<string, PolicyInputCopy>();
        for (const f of records) {
          const c = policyInputOf(f);
          if (c) copies.set(c.sha256, c);
        }
        if (copies.size) {
          const rows = [...copies.values()].map((c) => ({ stream: this.stream, sha256: c.sha256, input: c.text }));
          await tx`INSERT INTO bulwark_audit_policy_input ${tx(rows, 'stream', 'sha256', 'input')} ON CONFLICT DO NOTHING`;
        }
      }
      const rows = all.map((fields) => {
        seq += 1;
        const { line, hash } = sealRecord(fields, seq, prev, this.maxLine);
        const row = { stream: this.stream, seq, line, prev, hash };
        prev = hash;
        return row;
      });
      await tx`INSERT INTO bulwark_audit ${tx(rows, 'stream', 'seq', 'line', 'prev', 'hash')}`;
      return rows.slice(genesis ? 1 : 0).map((r) => ({ seq: r.seq, hash: r.hash }));
    })) as unknown as Appended[];
  }

  private wrote(sealed: readonly Appended[]): void {
    this.seq = Math.max(this.seq, (sealed[sealed.length - 1] as Appended).seq);
    this.sinceCheckpoint += sealed.length;
    this.maybeCheckpoint(false);
  }

  private fail(err: Error, batch: readonly Pending[]): void {
    if (!this.failure) {
      this.failedAt = new Date();
      this.opts.onWarning?.('audit log write failed; appends are refused until it resumes', {
        backend: 'postgres',
        stream: this.stream,
        error: err.message,
        code: errorCode(err),
      });
    }
    this.failure = err;
    const e = new AuditUnavailableError(`audit write failed: ${err.message}`);
    const pending = [...batch, ...this.queue];
    this.queue = [];
    for (const p of pending) {
      this.noteRefused(p.fields);
      p.reject(e);
    }
    this.scheduleRecovery();
  }

  private noteRefused(fields: Readonly<Record<string, unknown>>): void {
    // (its own count is carried over by the caller)
    if (fields.event === 'audit.refused') return;
    this.refused.note(fields);
  }

  private scheduleRecovery(): void {
    if (this.recoverTimer || this.recovering || this.closed) return;
    this.recoverTimer = setTimeout(() => {
      this.recoverTimer = undefined;
      void this.tryRecover();
    }, this.recoverDelayMs);
    this.recoverTimer.unref();
  }

  /** Resume: the recovery record, sealed onto the head the database has, makes the log writable again. */
  private async tryRecover(): Promise<void> {
    if (!this.failure || this.closed || this.recovering) return;
    this.recovering = true;
    this.lastRecoverAt = Date.now();
    clearTimeout(this.recoverTimer);
    this.recoverTimer = undefined;
    const failure = this.failure;
    const refused = this.refused.take();
    try {
      while (this.flushing) await new Promise((r) => setImmediate(r));
      const recovery: PostgresResumed = {
        backend: 'postgres',
        action: 'resumed',
        stream: this.stream,
        reason: failure.message.slice(0, 300),
        code: errorCode(failure),
        failed_at: this.failedAt?.toISOString() ?? null,
        resumed_at: new Date().toISOString(),
        refused_appends: refused ?? NO_REFUSED_APPENDS,
      };
      const [sealed] = await this.insert([{ event: 'audit.recovery', recovery } satisfies RecoveryFields]);
      this.failure = undefined;
      this.failedAt = undefined;
      this.recoverDelayMs = RECOVER_FIRST_MS;
      this.wrote([sealed as Appended]);
      this.opts.onWarning?.('audit log resumed after a write failure', {
        ...recovery,
        refused_appends: recovery.refused_appends.count,
        seq: (sealed as Appended).seq,
      });
      // Appends refused while the recovery record was being written are counted in the chain
      // too, in a record of their own right after it.
      const meanwhile = this.refused.take();
      if (meanwhile) {
        const record: RefusedFields = {
          event: 'audit.refused',
          refused: { backend: 'postgres', stream: this.stream, reason: 'the log was resuming', refused_appends: meanwhile },
        };
        // The log failed again: these count in the next recovery record.
        void this.append(record).catch(() => this.refused.putBack(meanwhile));
      }
    } catch {
      // Still failing: the refusals counted so far go into the next recovery record.
      this.refused.putBack(refused);
      this.recoverDelayMs = Math.min(RECOVER_MAX_MS, this.recoverDelayMs * 2);
      this.recovering = false;
      this.scheduleRecovery();
      return;
    }
    this.recovering = false;
  }

  private maybeCheckpoint(force: boolean): void {
    const cp = this.opts.checkpoint;
    if (!cp || this.sinceCheckpoint === 0) return;
    if (!force && this.sinceCheckpoint < cp.everyRecords && Date.now() - this.lastCheckpointAt < cp.everyMs) return;
    this.sinceCheckpoint = 0;
    this.lastCheckpointAt = Date.now();
    this.checkpointing = this.checkpointing
      .then(() => this.checkpoint())
      .catch((err: Error) => {
        this.opts.onWarning?.('audit checkpoint could not be written', { stream: this.stream, error: err.message });
      });
  }

  /** Under the stream lock: extend the last checkpoint's frontier with the rows after it, sign, insert. */
  private async checkpoint(): Promise<void> {
    const cp = this.opts.checkpoint;
    if (!cp) return;
    let signed: { note: string; size: number } | undefined;
    await this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${this.stream}))`;
      const [last] = await tx`SELECT size, note, frontier FROM bulwark_audit_checkpoint WHERE stream = ${this.stream} ORDER BY size DESC LIMIT 1`;
      let frontier = new Frontier();
      if (last) {
        const f = Frontier.fromState(
          Number(last.size),
          (last.frontier as string[]).map((b) => Buffer.from(b, 'base64')),
        );
        // Only a frontier that folds to the signed root is trusted; otherwise start over.
        if (f.root().equals(readCheckpointNote(String(last.note), []).root)) frontier = f;
      }
      let head = '';
      await tx`SELECT seq, line, hash FROM bulwark_audit WHERE stream = ${this.stream} AND seq > ${frontier.size} ORDER BY seq`.cursor(1000, (rows) => {
        for (const r of rows) {
          if (Number(r.seq) !== frontier.size + 1) throw new Error(`stream ${this.stream} has a gap at seq ${frontier.size + 1}`);
          frontier.appendHash(leafHash(Buffer.from(String(r.line), 'utf8')));
          head = String(r.hash);
        }
      });
      if (!head) return;
      const line = makeCheckpointLine(cp, { size: frontier.size, head, frontier: frontier.snapshotLatin1() });
      const ins =
        await tx`INSERT INTO bulwark_audit_checkpoint (stream, size, note, frontier) VALUES (${this.stream}, ${line.size}, ${line.note}, ${tx.array([...line.frontier])}) ON CONFLICT DO NOTHING RETURNING size`;
      if (cp.mirrorPath) {
        await fs.promises.mkdir(path.dirname(path.resolve(cp.mirrorPath)), { recursive: true, mode: 0o700 });
        await fs.promises.appendFile(cp.mirrorPath, `${JSON.stringify(line)}\n`, { mode: 0o600 });
      }
      // Another replica signed this size first: its checkpoint is the stream's, and it submits it.
      if (ins.length) signed = line;
    });
    if (!signed) return;
    // Witnesses get it once it is committed; their answers never hold up the log.
    void this.witness?.submit(signed.note, signed.size);
    void this.opts.onCheckpoint?.(signed.note, signed.size);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing || this.queue.length) await new Promise((r) => setImmediate(r));
    this.closed = true;
    clearTimeout(this.recoverTimer);
    while (this.recovering) await new Promise((r) => setTimeout(r, 10));
    if (this.tick) clearInterval(this.tick);
    if (!this.failure) this.maybeCheckpoint(true);
    await this.checkpointing;
    // The last checkpoint's cosignatures are stored before the connection goes (each witness
    // answers or times out within its timeout).
    await this.witness?.idle();
    await this.sql.end({ timeout: 5 });
  }
}

/** The stream as one segment for the verifier; rows in seq order (the primary key). */
export function postgresSegment(sql: Sql, stream: string): Segment {
  const name = `postgres:${stream}`;
  // Line numbers are row positions in seq order (they equal seq while nothing is missing).
  const feed = async (fromRow: number, sink: (buf: Buffer, start: number, end: number, lineNo: number) => boolean | void): Promise<void> => {
    let lineNo = fromRow;
    let stop = false;
    await sql`SELECT line FROM bulwark_audit WHERE stream = ${stream} ORDER BY seq OFFSET ${fromRow - 1}`.cursor(5000, (rows) => {
      const buf = Buffer.from(`${rows.map((r) => String(r.line)).join('\n')}\n`, 'utf8');
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0) break;
        if (sink(buf, start, nl, lineNo) === false) {
          stop = true;
          return sql.CLOSE;
        }
        lineNo++;
        start = nl + 1;
      }
      return undefined;
    });
    void stop;
  };
  return {
    name,
    first_seq: 1,
    prev: GENESIS_PREV,
    exists: true,
    async scan(sink) {
      await feed(1, sink);
      return {};
    },
    async lines(from, count) {
      const out: string[] = [];
      await feed(from, (buf, start, end) => {
        out.push(buf.toString('utf8', start, end));
        return out.length < count;
      });
      return out;
    },
  };
}

/** Checkpoints of a stream, written to a temporary checkpoints file for the verifier. */
export async function postgresCheckpointLines(sql: Sql, stream: string): Promise<string> {
  const rows = await sql`SELECT size, note, frontier FROM bulwark_audit_checkpoint WHERE stream = ${stream} ORDER BY size`;
  return rows.map((r) => `${JSON.stringify({ note: String(r.note), size: Number(r.size), frontier: r.frontier as string[] })}\n`).join('');
}

export async function verifyPostgres(url: string, stream: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const sql = connect(url);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-verify-'));
  try {
    const cpFile = path.join(dir, `${stream.replace(/[^A-Za-z0-9_-]/g, '_')}.checkpoints.jsonl`);
    fs.writeFileSync(cpFile, await postgresCheckpointLines(sql, stream), { mode: 0o600 });
    const sources = [{ file: cpFile, mirror: false }, ...(opts.mirrors ?? []).map((f) => ({ file: path.resolve(f), mirror: true }))];
    // The cosignatures as the file backend keeps them (read as checkpoints too).
    const cosFile = path.join(dir, 'cosignatures.jsonl');
    fs.writeFileSync(cosFile, await postgresCosignatureLines(sql, stream), { mode: 0o600 });
    const r = await verifySegments(`${redactUrl(url)}#${stream}`, [postgresSegment(sql, stream)], sources, { cosignaturesFile: cosFile, ...opts });
    // The temporary files are not where the checkpoints live: name the tables instead.
    const fix = (f: string) =>
      f === cpFile ? `postgres:bulwark_audit_checkpoint#${stream}` : f === cosFile ? `postgres:bulwark_audit_cosignature#${stream}` : f;
    return {
      ...r,
      checkpoints: { ...r.checkpoints, sources: r.checkpoints.sources.map(fix) },
      ...(r.problem
        ? {
            problem: {
              ...r.problem,
              segment:
                r.problem.segment === path.basename(cpFile)
                  ? 'bulwark_audit_checkpoint'
                  : r.problem.segment === path.basename(cosFile)
                    ? 'bulwark_audit_cosignature'
                    : r.problem.segment,
              ...(r.problem.checkpoint ? { checkpoint: { ...r.problem.checkpoint, file: fix(r.problem.checkpoint.file) } } : {}),
            },
          }
        : {}),
    };
  } finally {
    await sql.end({ timeout: 5 });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The policy input copies of a stream, by hash, as UTF-8 bytes: only those `wanted`. A row whose
 * bytes do not hash to its name (the table's CHECK makes that need a dropped constraint) is `bad`.
 */
export async function postgresPolicyInputs(
  url: string,
  stream: string,
  wanted: ReadonlySet<string>,
): Promise<{ inputs: Map<string, Uint8Array>; bad: Set<string> }> {
  const inputs = new Map<string, Uint8Array>();
  const bad = new Set<string>();
  if (!wanted.size) return { inputs, bad };
  const sql = connect(url);
  try {
    const all = [...wanted];
    for (let i = 0; i < all.length; i += 5000) {
      const rows = await sql`SELECT sha256, input FROM bulwark_audit_policy_input WHERE stream = ${stream} AND sha256 IN ${sql(all.slice(i, i + 5000))}`;
      for (const r of rows) {
        const sha = String(r.sha256);
        const bytes = new Uint8Array(Buffer.from(String(r.input), 'utf8'));
        if (sha256Hex(bytes) === sha) inputs.set(sha, bytes);
        else bad.add(sha);
      }
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
  return { inputs, bad };
}
