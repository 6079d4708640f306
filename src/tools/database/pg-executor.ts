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
      await conn`rollback`;
      await conn`discard all`;
      clean = true;
      if (!columns.length && rows.length) columns = Object.keys(rows[0] as object).map((name) => ({ name, type: 0 }));
      const base = { columns, rows, row_count: rows.length, duration_ms: Math.round((performance.now() - started) * 1000) / 1000 };
      return truncated ? { ...base, truncated: true, truncated_reason: truncated } : { ...base, truncated: false };
    } catch (err) {
      if (signal?.aborted) refuse('cancelled', 'The client cancelled the call; the query was cancelled on the server.', ['call.cancelled']);
      mapDatabaseError(err, caps.timeoutMs);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!clean) {
        // Whatever happened, the connection leaves in a clean state or not at all.
        try {
          await conn`rollback`;
          await conn`discard all`;
          conn.release();
        } catch {
          try {
            conn.release();
          } catch {
            /* the pool drops broken connections itself */
          }
        }
      } else {
        conn.release();
      }
    }
  }

  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }
}
