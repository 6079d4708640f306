import postgres from 'postgres';
import { DenialError, refuse, type Denial } from '../../core/denial.js';
import type { CallDeadline } from '../../core/call.js';
import { isConnectionError, mapDatabaseError, unavailableReason } from '../../../sandbox/db/errors.js';
import { jsonSafe } from '../../../sandbox/db/json-safe.js';
import { explainText, judgePlan, type PlanEstimate, type PlanLimits } from '../../../sandbox/db/plan-gate.js';

export interface PgExecutorOptions {
  readonly url: string;
  readonly maxConnections: number;
  readonly idleTimeoutS: number;
  readonly maxLifetimeS: number;
  readonly connectTimeoutS: number;
  /** Session settings the analyser assumed (search_path, standard_conforming_strings). */
  readonly session: Readonly<Record<string, string>>;
  /** Told once when the database becomes unreachable and once when it is back (for logs, /ready). */
  readonly onStateChange?: ((state: 'down' | 'up', detail: Record<string, unknown>) => void) | undefined;
}

export interface QueryCaps {
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly lockTimeoutMs: number;
  /** The cost gate: when given, the planner's estimate is checked before the query runs. */
  readonly plan?: PlanLimits | undefined;
}

// The cost gate's vocabulary lives beside its logic, shared with the embedded executor.
export type { PlanEstimate, PlanLimits };

/** The call a query runs for: its cancellation and the gate's deadline. */
export interface QueryRun {
  readonly signal?: AbortSignal | undefined;
  readonly deadline?: CallDeadline | undefined;
}

export interface QueryResult {
  readonly columns: { name: string; type: number }[];
  readonly rows: Record<string, unknown>[];
  readonly row_count: number;
  readonly truncated: boolean;
  readonly truncated_reason?: 'max_rows' | 'max_bytes';
  readonly duration_ms: number;
  /** Present when the cost gate ran. */
  readonly plan?: PlanEstimate;
}

type Param = string | number | boolean | null;

/** What the database tools need from an executor: the real server or the embedded one. */
export interface DatabaseExecutor {
  query(text: string, params: readonly Param[], caps: QueryCaps, run?: QueryRun): Promise<QueryResult>;
  close(): Promise<void>;
}

/**
 * What patches/postgres+3.4.10.patch adds: reserve() takes a signal (a caller that stops waiting
 * leaves the queue), and a reserved connection can be destroyed rather than released.
 */
interface Reserved extends postgres.ReservedSql<Record<string, never>> {
  destroy(): void;
}
type Reserve = (opts?: { signal?: AbortSignal }) => Promise<Reserved>;

/** While the database is known to be down, a call waits this long for a connection, then answers. */
const DOWN_WAIT_MS = 1000;
/** Connection failures are retried (a fresh connection) within this window from the first one. */
const RETRY_WINDOW_MS = 1500;
const MAX_ATTEMPTS = 3;
/** A retry starts only if at least this much of the call's budget is left. */
const MIN_ATTEMPT_MS = 250;
/** statement_timeout ends this long before the budget, so the server's cancel is the answer. */
const STATEMENT_MARGIN_MS = 100;
/** After a cancel, the query gets this long to stop by itself; then its connection is destroyed. */
const ABORT_GRACE_MS = 150;
/** Without a gate deadline, past the budget by this much the executor stops waiting on the server. */
const OVERRUN_MS = 200;
/** ROLLBACK and DISCARD ALL must be done within this; otherwise the connection is destroyed. */
const CLEANUP_MS = 2000;

const ACQUIRE_TIMEOUT = Symbol('acquire timeout');

/**
 * Runs analysed SELECTs on PostgreSQL and nothing else. Extended protocol only for text from the
 * call (`.cursor()` never uses the simple protocol, and `prepare: false` keeps statements
 * unnamed so DISCARD ALL cannot strand a cached one). Every query runs on a reserved connection
 * inside BEGIN READ ONLY with transaction-local timeouts, through a cursor that stops at the row
 * and byte caps, and ends in ROLLBACK, never COMMIT; DISCARD ALL then clears anything the session
 * kept (advisory locks, GUCs, LISTEN, holdable cursors) before the pool reuses it.
 *
 * Faults: a connection that fails, or whose call is cancelled, is destroyed, never released, so
 * the pool reconnects afresh; connection failures are retried briefly and then answered
 * `unavailable`; every wait (a connection, the server) is bounded by the call's deadline, and a
 * wait for a connection is marked on the deadline so the gate answers `unavailable` there.
 */
export class PgExecutor implements DatabaseExecutor {
  private readonly sql: postgres.Sql;
  private down: { since: number; reason: string; code: string; error: string } | undefined;
  /** Calls waiting for a connection: when the database is found down, they wait no longer than DOWN_WAIT_MS. */
  private readonly waiting = new Set<{ started: number; giveUp: AbortController; timer: NodeJS.Timeout }>();

  constructor(private readonly opts: PgExecutorOptions) {
    this.sql = postgres(opts.url, {
      max: opts.maxConnections,
      idle_timeout: opts.idleTimeoutS,
      max_lifetime: opts.maxLifetimeS,
      connect_timeout: opts.connectTimeoutS,
      // Reconnect soon after the server is back (the default grows to 20 s between attempts).
      backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
      prepare: false,
      onnotice: () => undefined,
      connection: { application_name: 'bulwark', ...opts.session },
      types: {},
    });
  }

  /** False from a connection failure until the next query succeeds. */
  get reachable(): boolean {
    return this.down === undefined;
  }

  /** One full round (reserve, BEGIN, SELECT, ROLLBACK), bounded: what /ready and doctor use. */
  async ping(timeoutMs = 2000): Promise<void> {
    await this.query('select 1', [], { maxRows: 1, maxBytes: 1024, timeoutMs, lockTimeoutMs: 1000 });
  }

  /** Run one analysed statement; `text` is exactly what the analyser accepted. */
  async query(text: string, params: readonly Param[], caps: QueryCaps, run: QueryRun = {}): Promise<QueryResult> {
    const started = performance.now();
    // The gate's deadline when there is one; otherwise the caps' time from now.
    const endAt = run.deadline ? run.deadline.at : started + caps.timeoutMs;
    let firstFailure: number | undefined;
    for (let attempt = 1; ; attempt++) {
      const progress = { sent: false };
      try {
        const result = await this.attempt(text, params, caps, run, endAt, started, progress);
        this.markUp();
        return result;
      } catch (err) {
        if (err instanceof DenialError) throw err;
        if (run.signal?.aborted) throw abortDenial(run.signal);
        if (!isConnectionError(err)) {
          mapDatabaseError(err, caps.timeoutMs);
          throw err;
        }
        this.markDown(err);
        firstFailure ??= performance.now();
        // Only a call whose statement was not sent yet is tried again on a fresh connection: one
        // whose backend went away mid-query is answered now (running it again could take the
        // whole budget, and the client can retry as well as we can).
        const pause = 50 * 2 ** (attempt - 1) + Math.random() * 25;
        const now = performance.now();
        if (!progress.sent && attempt < MAX_ATTEMPTS && now - firstFailure + pause < RETRY_WINDOW_MS && endAt - now - pause > MIN_ATTEMPT_MS) {
          await sleep(pause, run.signal);
          if (run.signal?.aborted) throw abortDenial(run.signal);
          continue;
        }
        refuse('unavailable', 'The database is unreachable; try again shortly.', reasonsFor(unavailableReason(err)), {
          cause: String((err as { code?: unknown }).code ?? ''),
          attempts: attempt,
        });
      }
    }
  }

  private async attempt(
    text: string,
    params: readonly Param[],
    caps: QueryCaps,
    run: QueryRun,
    endAt: number,
    started: number,
    progress: { sent: boolean },
  ): Promise<QueryResult> {
    // Waiting for a connection and for BEGIN is waiting on the database: at the deadline the
    // gate answers `unavailable` for it, not `timeout`.
    const clearMark = run.deadline?.waitingOn('database');
    let conn: Reserved;
    try {
      conn = await this.acquire(run, endAt);
    } catch (err) {
      clearMark?.();
      throw err;
    }
    let running: { cancel: () => unknown } | undefined;
    let halted: 'aborted' | 'overrun' | undefined;
    let destroyTimer: NodeJS.Timeout | undefined;
    const halt = (why: 'aborted' | 'overrun') => {
      if (halted) return;
      halted = why;
      // Stop the work on the server now; if the query does not end by itself promptly, the
      // connection goes (a server that does not answer cannot hold the call).
      try {
        running?.cancel();
      } catch {
        /* nothing running */
      }
      destroyTimer = setTimeout(() => conn.destroy(), ABORT_GRACE_MS);
    };
    const onAbort = () => halt('aborted');
    run.signal?.addEventListener('abort', onAbort, { once: true });
    const overrun = setTimeout(() => halt('overrun'), Math.max(0, endAt - performance.now()) + OVERRUN_MS);
    let clean = false;
    let marked = true;
    try {
      if (run.signal?.aborted) halt('aborted');
      if (halted) throw new Error('halted before BEGIN');
      // One round trip for BEGIN and the SET LOCALs (they end with the transaction). This is the
      // only simple-protocol text we send, and it is ours: a constant with integers we computed,
      // never text from the call (that goes only through the extended protocol below).
      const ms = (n: number) => String(Math.max(1, Math.floor(n)));
      const statementMs = Math.min(caps.timeoutMs, endAt - performance.now() - STATEMENT_MARGIN_MS);
      await conn.unsafe(
        `begin transaction isolation level repeatable read read only; set local statement_timeout = ${ms(statementMs)}; ` +
          `set local lock_timeout = ${ms(Math.min(caps.lockTimeoutMs, statementMs))}; set local idle_in_transaction_session_timeout = ${ms(statementMs + 1000)}`,
      );
      clearMark?.();
      marked = false;
      const plan = caps.plan
        ? await this.checkPlan(
            conn,
            text,
            params,
            caps.plan,
            (q) => (running = q),
            () => halted,
          )
        : undefined;
      const rows: Record<string, unknown>[] = [];
      let columns: { name: string; type: number }[] = [];
      let bytes = 0;
      let truncated: QueryResult['truncated_reason'];
      const q = conn.unsafe(text, params as Param[], { prepare: false });
      running = q as unknown as { cancel: () => unknown };
      progress.sent = true;
      if (halted) throw new Error('halted before the query');
      const batch = Math.max(1, Math.min(500, caps.maxRows + 1));
      // The loop body never awaits: a connection that closes between batches is seen by the next
      // read, so a result cut short by a fault is never returned as complete.
      outer: for await (const chunk of q.cursor(batch)) {
        if (!columns.length)
          columns = ((chunk as unknown as { columns?: { name: string; type: number }[] }).columns ?? []).map((c) => ({ name: c.name, type: c.type }));
        for (const row of chunk as Record<string, unknown>[]) {
          if (rows.length >= caps.maxRows) {
            truncated = 'max_rows';
            break outer;
          }
          const safe: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(row)) safe[k] = jsonSafe(v);
          bytes += Buffer.byteLength(JSON.stringify(safe));
          if (bytes > caps.maxBytes) {
            truncated = 'max_bytes';
            break outer;
          }
          rows.push(safe);
        }
      }
      if (halted) throw new Error('halted');
      // The rows are in hand: answer now. The transaction ends (ROLLBACK, never COMMIT) and the
      // session is cleared in the background, pipelined; the connection returns to the pool only
      // after both, so no other call can see it before it is clean.
      clean = true;
      if (!columns.length && rows.length) columns = Object.keys(rows[0] as object).map((name) => ({ name, type: 0 }));
      const base = { columns, rows, row_count: rows.length, duration_ms: Math.round((performance.now() - started) * 1000) / 1000, ...(plan ? { plan } : {}) };
      return truncated ? { ...base, truncated: true, truncated_reason: truncated } : { ...base, truncated: false };
    } catch (err) {
      if (halted === 'aborted' && run.signal?.aborted) throw abortDenial(run.signal);
      if (halted === 'overrun') {
        if (marked) refuse('unavailable', 'The database did not answer within the call’s time.', ['db.unreachable', 'db.no_answer']);
        refuse('timeout', 'The query did not finish within the call’s time; it was cancelled.', ['db.deadline']);
      }
      throw err;
    } finally {
      if (marked) clearMark?.();
      run.signal?.removeEventListener('abort', onAbort);
      clearTimeout(overrun);
      if (halted) {
        // A connection whose call was stopped is never reused: a late cancel could hit the next
        // call's query, and its state is unknown.
        clearTimeout(destroyTimer);
        conn.destroy();
      } else if (clean) {
        void this.endAndRelease(conn);
      } else {
        // The query failed: if the connection is alive it is cleaned and reused; if it is not,
        // the cleanup fails and the connection is destroyed.
        void this.endAndRelease(conn);
      }
    }
  }

  /**
   * The cost gate: EXPLAIN (FORMAT JSON) of exactly the analysed text, with the same parameters, in
   * the same READ ONLY transaction and under the same statement_timeout, before the query runs.
   * EXPLAIN without ANALYZE plans and does not execute. The text goes through the extended protocol
   * like the query itself; the prefix is ours and constant, and the analyser accepted exactly one
   * SELECT (VALUES and TABLE included), which is what EXPLAIN accepts. A plan whose estimated total
   * cost or rows exceed the limits is refused (`sql_rejected`, `sql.cost_exceeded`) with the estimate;
   * sandbox/db/plan-gate.ts reads and judges the plan for the embedded PGlite too.
   */
  private async checkPlan(
    conn: Reserved,
    text: string,
    params: readonly Param[],
    limits: PlanLimits,
    setRunning: (q: { cancel: () => unknown }) => void,
    halted: () => unknown,
  ): Promise<PlanEstimate> {
    const t0 = performance.now();
    const q = conn.unsafe(explainText(text), params as Param[], { prepare: false });
    setRunning(q as unknown as { cancel: () => unknown });
    const rows = (await q) as unknown as Record<string, unknown>[];
    if (halted()) throw new Error('halted during the plan check');
    return judgePlan(rows, limits, t0);
  }

  /** A connection from the pool, waiting no longer than the budget allows. */
  private async acquire(run: QueryRun, endAt: number): Promise<Reserved> {
    if (run.signal?.aborted) throw abortDenial(run.signal);
    const budget = Math.min(endAt - performance.now(), this.down ? DOWN_WAIT_MS : Infinity);
    if (budget <= 0) refuse('unavailable', 'No time was left to reach the database.', ['db.unreachable', 'db.no_time']);
    const giveUp = new AbortController();
    const wait = { started: performance.now(), giveUp, timer: setTimeout(() => giveUp.abort(ACQUIRE_TIMEOUT), budget) };
    this.waiting.add(wait);
    const onAbort = () => giveUp.abort(run.signal?.reason);
    run.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const conn = await (this.sql.reserve as unknown as Reserve)({ signal: giveUp.signal });
      if (typeof conn.destroy !== 'function') {
        // Unpatched postgres.js kills the process when a reserved connection's backend goes away.
        conn.release();
        throw new Error('postgres.js is not patched (patches/postgres+3.4.10.patch is applied by npm install)');
      }
      return conn;
    } catch (err) {
      if (run.signal?.aborted) throw abortDenial(run.signal);
      if (giveUp.signal.aborted) {
        if (this.down) refuse('unavailable', 'The database is unreachable; try again shortly.', reasonsFor(this.down.reason), { cause: this.down.code });
        refuse('unavailable', 'No database connection became free in time.', ['db.pool_busy']);
      }
      throw err;
    } finally {
      clearTimeout(wait.timer);
      this.waiting.delete(wait);
      run.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async endAndRelease(conn: Reserved): Promise<void> {
    const timer = setTimeout(() => conn.destroy(), CLEANUP_MS);
    try {
      // Both sent at once (one round trip); DISCARD ALL runs after the ROLLBACK on this connection.
      await Promise.all([conn`rollback`, conn`discard all`]);
      clearTimeout(timer);
      conn.release();
    } catch {
      // A broken connection, or one that did not clean up in time: it is not reused.
      clearTimeout(timer);
      conn.destroy();
    }
  }

  private markDown(err: unknown): void {
    if (this.down) return;
    this.down = {
      since: performance.now(),
      reason: unavailableReason(err),
      code: String((err as { code?: unknown }).code ?? ''),
      error: String((err as Error)?.message ?? err).slice(0, 200),
    };
    this.opts.onStateChange?.('down', { reason: this.down.reason, code: this.down.code, error: this.down.error });
    // Calls that started waiting while the database looked fine now wait as if it were down.
    const now = performance.now();
    for (const w of this.waiting) {
      clearTimeout(w.timer);
      w.timer = setTimeout(() => w.giveUp.abort(ACQUIRE_TIMEOUT), Math.max(0, w.started + DOWN_WAIT_MS - now));
    }
  }

  private markUp(): void {
    if (!this.down) return;
    const downMs = Math.round(performance.now() - this.down.since);
    this.down = undefined;
    this.opts.onStateChange?.('up', { down_ms: downMs });
  }

  /**
   * What `bulwark doctor` checks about the role we connect as: it must be able to SELECT and
   * nothing else, so that a query that got past the analyser still cannot do harm.
   */
  async roleProblems(): Promise<string[]> {
    const caps = { maxRows: 500, maxBytes: 1 << 20, timeoutMs: 5000, lockTimeoutMs: 1000 };
    const [r] = (
      await this.query(
        `select r.rolsuper as superuser, r.rolcreaterole as createrole, r.rolcreatedb as createdb, r.rolbypassrls as bypassrls,
              has_database_privilege(current_database(), 'TEMP') as temp,
              (select count(*) from information_schema.role_table_grants g where g.grantee = current_user and g.privilege_type <> 'SELECT')::int as write_grants,
              (select count(*) from pg_catalog.pg_class c where c.relowner = r.oid and c.relkind in ('r','p','v','m'))::int as owned_tables,
              (select count(*) from pg_catalog.pg_namespace n where n.nspname !~ '^(pg_|information_schema)' and has_schema_privilege(n.oid, 'CREATE'))::int as create_schemas,
              coalesce((select string_agg(distinct p.proname, ',' order by p.proname) from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'pg_catalog' and has_function_privilege(p.oid, 'EXECUTE')
                   and (p.proname in ('pg_sleep','set_config','pg_terminate_backend','pg_cancel_backend','pg_notify','pg_read_file','pg_read_binary_file','pg_ls_dir','pg_stat_file','txid_current','pg_current_xact_id','query_to_xml','table_to_xml','cursor_to_xml','pg_reload_conf')
                        or p.proname like 'lo\\_%' or p.proname like 'pg\\_advisory%')), '') as risky_functions
         from pg_catalog.pg_roles r where r.rolname = current_user`,
        [],
        caps,
      )
    ).rows as {
      superuser: boolean;
      createrole: boolean;
      createdb: boolean;
      bypassrls: boolean;
      temp: boolean;
      write_grants: number;
      owned_tables: number;
      create_schemas: number;
      risky_functions: string;
    }[];
    const problems: string[] = [];
    if (!r) return ['the current role was not found in pg_roles'];
    if (r.superuser) problems.push('the role is a superuser');
    if (r.createrole || r.createdb) problems.push('the role may create roles or databases');
    if (r.bypassrls) problems.push('the role bypasses row-level security');
    if (r.temp) problems.push('the role may create temporary tables (REVOKE TEMPORARY)');
    if (r.write_grants > 0) problems.push(`the role holds ${r.write_grants} non-SELECT table grant(s)`);
    if (r.owned_tables > 0) problems.push(`the role owns ${r.owned_tables} table(s) or view(s), so it can write them`);
    if (r.create_schemas > 0) problems.push(`the role may CREATE in ${r.create_schemas} schema(s)`);
    if (r.risky_functions) problems.push(`the role may EXECUTE side-effecting functions: ${r.risky_functions}`);
    return problems;
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}

/** The answer for a call whose signal was aborted: the gate's own denial at its deadline, else a client cancel. */
function abortDenial(signal: AbortSignal): DenialError {
  const reason = signal.reason as Partial<Denial> | undefined;
  if (reason && typeof reason.code === 'string' && typeof reason.message === 'string' && Array.isArray(reason.reasons))
    return new DenialError(reason as Denial);
  return new DenialError({ code: 'cancelled', message: 'The client cancelled the call; the query was stopped.', reasons: ['call.cancelled'] });
}

function reasonsFor(reason: string): string[] {
  return reason === 'db.unreachable' ? [reason] : ['db.unreachable', reason];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
