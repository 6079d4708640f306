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
 * It also holds the definitions of views and materialized views, which lineage expands so that
 * column rules and row filters follow a view to its base tables (see CATALOG_SQL).
 */

/**
 * One round trip, three kinds of rows (k):
 * - 'c': every relation the role can name, with its columns; the system schemas' columns only when
 *   queries may read them ($1 = database.allow_catalogs: otherwise the analyser refuses those
 *   relations first, and their names alone decide how an unqualified name resolves);
 * - 'v': the definition of every view and materialized view outside the system schemas, as
 *   `pg_get_viewdef` prints it: it qualifies a name only where it is not visible on the session's
 *   search_path, which the executor sets to the analyser's (pg_catalog, <default_schema>, pg_temp)
 *   for this query as for every other, so a bare name in it resolves as lineage resolves one;
 * - 'p': the schemas that search_path made effective (`current_schemas(true)`), so a definition is
 *   trusted only when it was printed under the search_path lineage assumes (checked in load()).
 */
const CATALOG_SQL = `select 'c' as k, n.nspname as s, c.relname as t, a.attname as c, a.attnum as i, null::text as d
   from pg_catalog.pg_class c
   join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        and ($1::boolean or n.nspname not in ('pg_catalog', 'information_schema'))
  where c.relkind in ('r','v','m','p','f') and n.nspname <> 'pg_toast' and n.nspname !~ '^pg_(toast_)?temp'
 union all
 select 'v', n.nspname, c.relname, null, null, pg_catalog.pg_get_viewdef(c.oid)
   from pg_catalog.pg_class c
   join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('v','m') and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and n.nspname !~ '^pg_(toast_)?temp'
 union all
 select 'p', null, null, null, null, pg_catalog.array_to_string(pg_catalog.current_schemas(true), ' ')
  order by 1, 2, 3, 5`;

const MAX_CATALOG_COLUMNS = 200_000;
const MISS_REFRESH_MS = 5_000;
/** database.catalog_refresh_ms's default, for an environment built without the config schema. */
const DEFAULT_REFRESH_MS = 60_000;

class Snapshot implements SqlCatalog {
  constructor(
    readonly version: number,
    private readonly tables: ReadonlyMap<string, readonly string[]>,
    /** View definitions; null for every view when they were printed under another search_path. */
    private readonly views: ReadonlyMap<string, string | null>,
    readonly loadedAt: number,
  ) {}

  columns(schema: string, table: string): readonly string[] | undefined {
    return this.tables.get(`${schema}\u0000${table}`);
  }

  has(schema: string, table: string): boolean {
    return this.tables.has(`${schema}\u0000${table}`);
  }

  viewDefinition(schema: string, table: string): string | null | undefined {
    return this.views.get(`${schema}\u0000${table}`);
  }
}

/**
 * Whether the schemas effective when the definitions were printed are the ones lineage assumes
 * (pg_catalog, then the default schema when it exists; the session's own temporary schema aside).
 */
export function searchPathAsAssumed(effective: string, defaultSchema: string): boolean {
  const schemas = effective.split(' ').filter((x) => x !== '' && !/^pg_temp_\d+$/.test(x));
  return schemas[0] === 'pg_catalog' && (schemas.length === 1 || (schemas.length === 2 && schemas[1] === defaultSchema));
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
    private readonly defaultSchema: string,
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
    const definitions = new Map<string, string | null>();
    let effective: string | undefined;
    for (const row of rows) {
      const key = `${String(row.s)}\u0000${String(row.t)}`;
      if (row.k === 'p') {
        effective = String(row.d);
        continue;
      }
      // A view whose definition came back NULL (dropped while being read) is a view all the same.
      if (row.k === 'v') {
        definitions.set(key, typeof row.d === 'string' ? row.d : null);
        continue;
      }
      let cols = tables.get(key);
      if (cols === undefined) tables.set(key, (cols = []));
      if (row.c !== null && row.c !== undefined) cols.push(String(row.c));
    }
    // Printed under another search_path, a bare name in a definition may mean another relation: every view is then refused.
    if (effective === undefined || !searchPathAsAssumed(effective, this.defaultSchema)) for (const k of definitions.keys()) definitions.set(k, null);
    this.current = new Snapshot(++versions, tables, definitions, performance.now());
    return this.current;
  }
}

const catalogs = new WeakMap<DatabaseExecutor, DatabaseCatalog>();

/** The one catalog of an executor (the tools share it: describe_table's refresh helps query_database). */
export function catalogFor(executor: DatabaseExecutor, refreshMs: number, withSystemColumns: boolean, defaultSchema: string): DatabaseCatalog {
  let c = catalogs.get(executor);
  if (c === undefined) {
    c = new DatabaseCatalog(executor, refreshMs, withSystemColumns, defaultSchema);
    catalogs.set(executor, c);
  }
  return c;
}
