import { refuse, DenialError } from '../../core/denial.js';
import type { SqlCatalog } from '../../analysis/sql-lineage.js';
import type { DatabaseExecutor, QueryRun } from './pg-executor.js';

/**
 * The database's real column lists for lineage (src/analysis/sql-lineage.ts), read from pg_catalog
 * through the same executor the queries use (the real server or the embedded PGlite), so it sees
 * exactly the relations and columns the query role would. Cached per executor; refreshed when
 * older than `refreshMs` (on the next use), on describe_table, and once when a query names a
 * relation it does not know (at most every MISS_REFRESH_MS, so unknown names cannot drive a
 * catalog read per call). A catalog that cannot be read fails closed (`unavailable`).
 */

/**
 * Every relation the role can name, with its columns; the system schemas' columns only when
 * queries may read them ($1 = database.allow_catalogs: otherwise the analyser refuses those
 * relations first, and their names alone decide how an unqualified name resolves).
 */
const CATALOG_SQL = `select n.nspname as s, c.relname as t, a.attname as c
   from pg_catalog.pg_class c
   join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        and ($1::boolean or n.nspname not in ('pg_catalog', 'information_schema'))
  where c.relkind in ('r','v','m','p','f') and n.nspname <> 'pg_toast' and n.nspname !~ '^pg_(toast_)?temp'
  order by n.nspname, c.relname, a.attnum`;

const MAX_CATALOG_COLUMNS = 200_000;
const MISS_REFRESH_MS = 5_000;
/** database.catalog_refresh_ms's default, for an environment built without the config schema. */
const DEFAULT_REFRESH_MS = 60_000;

class Snapshot implements SqlCatalog {
  constructor(
    readonly version: number,
    private readonly tables: ReadonlyMap<string, readonly string[]>,
    readonly loadedAt: number,
  ) {}

  columns(schema: string, table: string): readonly string[] | undefined {
    return this.tables.get(`${schema}\u0000${table}`);
  }

  has(schema: string, table: string): boolean {
    return this.tables.has(`${schema}\u0000${table}`);
  }
}

let versions = 0;

export class DatabaseCatalog {
  private current: Snapshot | undefined;
  private loading: Promise<Snapshot> | undefined;
  private lastMissRefresh = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly executor: DatabaseExecutor,
    private readonly refreshMs: number,
    private readonly withSystemColumns: boolean,
  ) {}

  /** The catalog, loading or refreshing it first when it is missing or older than refreshMs. */
  async get(run: QueryRun = {}): Promise<SqlCatalog> {
    const c = this.current;
    const maxAge = Number.isFinite(this.refreshMs) ? this.refreshMs : DEFAULT_REFRESH_MS;
    if (c && performance.now() - c.loadedAt < maxAge) return c;
    return this.refresh(run);
  }

  /** Refresh after a miss (an unknown relation), rate-limited; returns the catalog to retry with, or undefined. */
  async refreshAfterMiss(run: QueryRun = {}): Promise<SqlCatalog | undefined> {
    const now = performance.now();
    if (now - this.lastMissRefresh < MISS_REFRESH_MS) return undefined;
    this.lastMissRefresh = now;
    return this.refresh(run);
  }

  /** Forget the cached lists (describe_table saw the table; the next query reads them afresh). */
  invalidate(): void {
    this.current = undefined;
  }

  async refresh(run: QueryRun = {}): Promise<SqlCatalog> {
    this.loading ??= this.load(run).finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(run: QueryRun): Promise<Snapshot> {
    let rows: readonly Record<string, unknown>[];
    try {
      const r = await this.executor.query(
        CATALOG_SQL,
        [this.withSystemColumns === true],
        { maxRows: MAX_CATALOG_COLUMNS, maxBytes: 64 << 20, timeoutMs: 10_000, lockTimeoutMs: 1000 },
        run,
      );
      if (r.truncated) throw new Error('the catalog has more columns than the cap');
      rows = r.rows;
    } catch (err) {
      if (err instanceof DenialError && err.denial.code !== 'tool_error') throw err;
      return refuse('unavailable', "The database's catalog could not be read, so column references cannot be resolved.", ['sql.catalog_unavailable']);
    }
    const tables = new Map<string, string[]>();
    for (const row of rows) {
      const key = `${String(row.s)}\u0000${String(row.t)}`;
      let cols = tables.get(key);
      if (cols === undefined) tables.set(key, (cols = []));
      if (row.c !== null && row.c !== undefined) cols.push(String(row.c));
    }
    this.current = new Snapshot(++versions, tables, performance.now());
    return this.current;
  }
}

const catalogs = new WeakMap<DatabaseExecutor, DatabaseCatalog>();

/** The one catalog of an executor (the tools share it: describe_table's refresh helps query_database). */
export function catalogFor(executor: DatabaseExecutor, refreshMs: number, withSystemColumns: boolean): DatabaseCatalog {
  let c = catalogs.get(executor);
  if (c === undefined) {
    c = new DatabaseCatalog(executor, refreshMs, withSystemColumns);
    catalogs.set(executor, c);
  }
  return c;
}
