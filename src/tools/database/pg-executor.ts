import postgres from 'postgres';
import { refuse } from '../../errors/denial.js';
import { mapDatabaseError } from './errors.js';
import { jsonSafe } from './json-safe.js';

export interface PgExecutorOptions {
  readonly url: string;
  readonly maxConnections: number;
  readonly idleTimeoutS: number;
  readonly maxLifetimeS: number;
  readonly connectTimeoutS: number;
  /** Session settings the analyser assumed (search_path, standard_conforming_strings). */
  readonly session: Readonly<Record<string, string>>;
}

export interface QueryCaps {
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly lockTimeoutMs: number;
}

export interface QueryResult {
  readonly columns: { name: string; type: number }[];
  readonly rows: Record<string, unknown>[];
  readonly row_count: number;
  readonly truncated: boolean;
  readonly truncated_reason?: 'max_rows' | 'max_bytes';
  readonly duration_ms: number;
}

type Param = string | number | boolean | null;


const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'EPIPE', 'ENOTFOUND']);

/**
 * Runs analysed SELECTs on PostgreSQL and nothing else. Extended protocol only (postgres.js never
 * sends a text with the simple protocol when parameters are bound, and `prepare: false` keeps
 * statements unnamed so DISCARD ALL cannot strand a cached one). Every query runs on a reserved
 * connection inside BEGIN READ ONLY with transaction-local timeouts, through a cursor that stops
 * at the row and byte caps, and ends in ROLLBACK, never COMMIT; DISCARD ALL then clears anything
 * the session kept (advisory locks, GUCs, LISTEN, holdable cursors) before the pool reuses it.
 */
/** What the database tools need from an executor: the real server or the embedded one. */
export interface DatabaseExecutor {
  query(text: string, params: readonly Param[], caps: QueryCaps, signal?: AbortSignal): Promise<QueryResult>;
  close(): Promise<void>;
}

export class PgExecutor implements DatabaseExecutor {
  private readonly sql: postgres.Sql;

  constructor(private readonly opts: PgExecutorOptions) {
    this.sql = postgres(opts.url, {
      max: opts.maxConnections,
      idle_timeout: opts.idleTimeoutS,
      max_lifetime: opts.maxLifetimeS,
      connect_timeout: opts.connectTimeoutS,
      prepare: false,
      onnotice: () => undefined,
      connection: { application_name: 'bulwark', ...opts.session },
      types: {},
    });
  }

  async ping(): Promise<void> {
    await this.sql`select 1`;
  }

  /** Run one analysed statement; `text` is exactly what the analyser accepted. */
  async query(text: string, params: readonly Param[], caps: QueryCaps, signal?: AbortSignal): Promise<QueryResult> {
    return this.withRetry(() => this.queryOnce(text, params, caps, signal));
  }

  private async withRetry<T>(fn: () => Promise<T>): Promise<T> {
    // A dropped connection before the statement ran is retried with backoff; then `unavailable`.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (!CONNECTION_ERRORS.has(code)) throw err;
        lastErr = err;
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt + Math.random() * 50));
      }
    }
    return refuse('unavailable', 'The database is unreachable.', ['db.unreachable'], { error: String((lastErr as Error)?.message ?? lastErr).slice(0, 200) });
  }

  private async queryOnce(text: string, params: readonly Param[], caps: QueryCaps, signal?: AbortSignal): Promise<QueryResult> {
    const started = performance.now();
    const conn = await this.sql.reserve();
    let running: { cancel: () => void } | undefined;
    const onAbort = () => running?.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    let clean = false;
    try {
      // One round trip for BEGIN and the SET LOCALs (they end with the transaction). This is the
      // only simple-protocol text we send, and it is ours: a constant with integers we computed,
      // never text from the call (that goes only through the extended protocol below).
      const ms = (n: number) => String(Math.max(1, Math.floor(n)));
      await conn.unsafe(
        `begin transaction isolation level repeatable read read only; set local statement_timeout = ${ms(caps.timeoutMs)}; ` +
          `set local lock_timeout = ${ms(caps.lockTimeoutMs)}; set local idle_in_transaction_session_timeout = ${ms(caps.timeoutMs + 1000)}`,
      );
      const rows: Record<string, unknown>[] = [];
      let columns: { name: string; type: number }[] = [];
      let bytes = 0;
      let truncated: QueryResult['truncated_reason'];
      const q = conn.unsafe(text, params as Param[], { prepare: false });
      running = q as unknown as { cancel: () => void };
      if (signal?.aborted) refuse('cancelled', 'The client cancelled the call.', ['call.cancelled']);
      const batch = Math.max(1, Math.min(500, caps.maxRows + 1));
      outer: for await (const chunk of q.cursor(batch)) {
        if (!columns.length) columns = ((chunk as unknown as { columns?: { name: string; type: number }[] }).columns ?? []).map((c) => ({ name: c.name, type: c.type }));
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
      // The rows are in hand: answer now. The transaction ends (ROLLBACK, never COMMIT) and the
      // session is cleared in the background, pipelined; the connection returns to the pool only
      // after both, so no other call can see it before it is clean.
      clean = true;
      void this.endAndRelease(conn);
      if (!columns.length && rows.length) columns = Object.keys(rows[0] as object).map((name) => ({ name, type: 0 }));
      const base = { columns, rows, row_count: rows.length, duration_ms: Math.round((performance.now() - started) * 1000) / 1000 };
      return truncated ? { ...base, truncated: true, truncated_reason: truncated } : { ...base, truncated: false };
    } catch (err) {
      if (signal?.aborted) refuse('cancelled', 'The client cancelled the call; the query was cancelled on the server.', ['call.cancelled']);
      mapDatabaseError(err, caps.timeoutMs);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      // Whatever happened, the connection leaves in a clean state or not at all.
      if (!clean) await this.endAndRelease(conn);
    }
  }

  private async endAndRelease(conn: postgres.ReservedSql): Promise<void> {
    try {
      // Both sent at once (one round trip); DISCARD ALL runs after the ROLLBACK on this connection.
      await Promise.all([conn`rollback`, conn`discard all`]);
    } catch {
      /* a broken connection: the pool drops it itself */
    }
    try {
      conn.release();
    } catch {
      /* already gone */
    }
  }

  /**
   * What `bulwark doctor` checks about the role we connect as: it must be able to SELECT and
   * nothing else, so that a query that got past the analyser still cannot do harm.
   */
  async roleProblems(): Promise<string[]> {
    const caps = { maxRows: 500, maxBytes: 1 << 20, timeoutMs: 5000, lockTimeoutMs: 1000 };
    const [r] = (await this.query(
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
    )).rows as { superuser: boolean; createrole: boolean; createdb: boolean; bypassrls: boolean; temp: boolean; write_grants: number; owned_tables: number; create_schemas: number; risky_functions: string }[];
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
