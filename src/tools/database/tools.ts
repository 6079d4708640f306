import { z } from 'zod';
import { analyseSql, DEFAULT_SQL_FUNCTIONS, type SqlAnalysis, type SqlOptions } from '../../analysis/sql.js';
import { lineageOf, relationsUnknown, rowFilteredViews, viewsRead, type Lineage, type LineageView, type SqlCatalog } from '../../analysis/sql-lineage.js';
import { checkMaskPlacement, parseColumnRules, planMasks, type MaskPlan } from '../../analysis/sql-masks.js';
import { catalogFor } from './catalog.js';
import { applyRowFilters, loadRowFilterDeparser, parseRowFilters, ROW_FILTER_ALIAS } from '../../analysis/sql-row-filter.js';
import { refuse } from '../../core/denial.js';
import type { Authorised } from '../../core/call.js';
import type { ToolDefinition, ToolEnv } from '../types.js';
import { DenialError, type Denial } from '../../core/denial.js';
import type { SqlExecutionFacts, SqlFacts, SqlListFacts, TableAnswerFacts } from '../../core/facts.js';
import type { PolicyAnswer } from '../../policy/questions.js';
import type { DatabaseExecutor, PlanLimits, QueryCaps, QueryResult, QueryRun } from './pg-executor.js';
import { recordable } from '../../../sandbox/db/plan-gate.js';

/** What the database family's analysis produces for the policy and the record. */
type SqlFamily = { readonly sql: SqlFacts };
/** query_database: the exact text the analyser parsed, and its column lineage (the masks' input). */
type QueryPinned = {
  readonly text: string;
  readonly lineage: Lineage | undefined;
  readonly catalog: SqlCatalog | undefined;
  /** Why lineage could not be resolved: enforced after the decision, where masks need it. */
  readonly lineageRefusal?: Denial | undefined;
  /** Why a view the query reads cannot be followed: enforced after the decision, always. */
  readonly viewRefusal?: Denial | undefined;
};
type QueryCall = Authorised<z.output<typeof queryInput>, SqlFamily, QueryPinned>;

const READ_ONLY = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false } as const;
const REDACTED = '[REDACTED]';

/** The analyser's options for query_database: the first analysis and a row filter rewrite's use the same. */
function sqlOptionsFor(env: ToolEnv): SqlOptions {
  const db = env.config.database;
  return { maxBytes: db.max_sql_bytes, functions: db.functions ?? DEFAULT_SQL_FUNCTIONS, defaultSchema: db.default_schema, allowCatalogs: db.allow_catalogs };
}

/**
 * The policy's `row_filters` obligation applied to the analysed text (src/analysis/sql-row-filter.ts):
 * the text and parameters to run instead, or the analysed ones when the query reads no filtered
 * table. Fails closed: an obligation it cannot apply refuses the call.
 */
async function rowFiltered(
  call: QueryCall,
  env: ToolEnv,
): Promise<{ text: string; params: readonly (string | number | boolean | null)[]; filtered: boolean; analysis?: SqlAnalysis }> {
  const { text } = call.pinned;
  const filters = parseRowFilters(call.decision.obligations.row_filters);
  if (filters.length === 0) return { text, params: call.args.params, filtered: false };
  // The rewrite filters references to a table in the query's own text; a view's definition is not
  // rewritten, so a filtered table reached through a view would be read whole (the policy emits a
  // table's filters when the query reaches it through a view too: facts.sql.views).
  const sql = call.facts.sql.kind === 'select' ? call.facts.sql : undefined;
  // A relation the catalog does not know yet may be a view over a filtered table (the policy then
  // emits every filter of the principal's roles): refused until the catalog knows what it reads.
  if (sql?.tables_unknown && sql.tables_unknown.length > 0) {
    refuse(
      'sql_rejected',
      `The query reads ${sql.tables_unknown.join(', ')}, which the catalog does not know (yet); with row filters in force it cannot be checked.`,
      ['sql.catalog_unknown_table'],
      { tables: sql.tables_unknown },
    );
  }
  const views = sql?.views ?? [];
  const through = rowFilteredViews(
    filters.map((f) => f.table),
    views,
  );
  if (through.length > 0) {
    const names = [...new Set(through.map((x) => `${x.table} (through ${x.view})`))].sort();
    refuse(
      'sql_rejected',
      `The query reads row-filtered data through a view, where the filter cannot be applied: ${names.join(', ')}.`,
      ['sql.row_filter_view'],
      { views: through },
    );
  }
  try {
    await loadRowFilterDeparser();
  } catch {
    refuse('unavailable', 'The SQL deparser the row filters need could not be loaded.', ['sql.row_filter_unavailable']);
  }
  const r = applyRowFilters(text, call.args.params, filters, call.principal, sqlOptionsFor(env), sql?.tables);
  if (r === null) return { text, params: call.args.params, filtered: false };
  // The rewrite wraps references; it must not change which relations are read.
  const before = call.facts.sql.kind === 'select' ? call.facts.sql.tables : [];
  if (r.analysis.facts.tables.join(',') !== [...before].join(',')) {
    refuse('sql_rejected', 'The query cannot be filtered as the policy requires: the rewrite changed the relations read.', ['sql.row_filter_unsupported']);
  }
  recordFact(call, 'row_filters', { tables: r.tables, references: r.references, text_sha256: r.text_sha256, executed_sha256: r.executed_sha256 });
  return { text: r.text, params: r.params, filtered: true, analysis: r.analysis };
}

/** 42703 naming the filter subquery's alias: the policy's filter column does not exist. */
function filterColumnMissing(err: unknown): boolean {
  if (!(err instanceof DenialError) || !err.denial.reasons.includes('db.query_error') || err.denial.detail?.sqlstate !== '42703') return false;
  return err.denial.message.includes(`${ROW_FILTER_ALIAS}.`);
}

function executor(env: ToolEnv): DatabaseExecutor {
  if (!env.database) refuse('unavailable', 'No database is configured (database.url).', ['db.not_configured']);
  return env.database;
}

/** The call's cancellation and deadline: the executor bounds every wait by them. */
function runOf(call: Authorised): QueryRun {
  return { signal: call.context.signal, deadline: call.context.deadline };
}

function queryCapsFor(call: Authorised, env: ToolEnv, asked?: number): QueryCaps {
  const db = env.config.database;
  return {
    maxRows: Math.min(db.max_rows, call.caps.maxRows ?? db.max_rows, asked ?? Infinity),
    maxBytes: Math.min(db.max_result_bytes, call.caps.maxBytes),
    timeoutMs: Math.min(db.statement_timeout_ms, call.caps.timeoutMs, call.context.deadline?.remainingMs() ?? Infinity),
    lockTimeoutMs: db.lock_timeout_ms,
  };
}

/**
 * The cost gate's limits: the policy's `max_plan_cost` / `max_plan_rows` obligations. A policy
 * skips the gate for a query it marks cheap by not emitting them (policies/authz.rego: a
 * fingerprint listed in `database.cheap_queries`), and then no EXPLAIN is sent.
 */
function planLimits(call: Authorised): PlanLimits | undefined {
  const o = call.decision.obligations as Readonly<Record<string, unknown>>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
  const maxCost = num(o.max_plan_cost);
  const maxRows = num(o.max_plan_rows);
  return maxCost === undefined && maxRows === undefined ? undefined : { maxCost, maxRows };
}

/**
 * The planner's estimate joins the call's recorded facts (under `sql.plan`, beside what the policy
 * saw; the policy decided before it existed), for a refused plan and a run one alike.
 */
function recordPlan(call: QueryCall, plan: Record<string, unknown>): void {
  recordFact(call, 'plan', plan);
}

/** Adds what the executor learnt (plan estimate, masked columns) to the call's recorded facts. */
function recordFact<K extends keyof SqlExecutionFacts>(call: QueryCall, key: K, value: SqlExecutionFacts[K]): void {
  const sql: SqlExecutionFacts = call.facts.sql;
  sql[key] = value;
}

/** Lineage of one analysed statement per catalog version, reused for the same cached parse. */
const lineages = new WeakMap<object, { version: number; lineage: Lineage }>();

function lineageCached(a: SqlAnalysis, catalog: SqlCatalog, defaultSchema: string): Lineage {
  const key = a.stmt as object;
  const hit = lineages.get(key);
  if (hit && hit.version === catalog.version) return hit.lineage;
  const lineage = lineageOf(a.stmt, catalog, defaultSchema);
  lineages.set(key, { version: catalog.version, lineage });
  return lineage;
}

/** The views one analysed statement reads, per catalog version (viewsRead scans the whole tree). */
const viewReads = new WeakMap<object, { version: number; lineage: Lineage | undefined; views: LineageView[] }>();

function viewsCached(a: SqlAnalysis, catalog: SqlCatalog, defaultSchema: string, lineage: Lineage | undefined): LineageView[] {
  const key = a.stmt as object;
  const hit = viewReads.get(key);
  if (hit && hit.version === catalog.version && hit.lineage === lineage) return hit.views;
  const views = viewsRead(a.stmt, catalog, defaultSchema, lineage);
  viewReads.set(key, { version: catalog.version, lineage, views });
  return views;
}

/** A refusal of the query's text (sql_rejected) is kept for after the decision; anything else fails the call now. */
function deferred(err: unknown): Denial {
  if (err instanceof DenialError && err.denial.code === 'sql_rejected') return err.denial;
  throw err;
}

interface Resolved {
  readonly lineage?: Lineage | undefined;
  readonly catalog?: SqlCatalog;
  readonly lineageRefusal?: Denial | undefined;
  /** The views the query reads (those it names), with the tables they reach. */
  readonly views?: LineageView[] | undefined;
  readonly viewRefusal?: Denial | undefined;
  /** Relations the query reads that the catalog does not know. */
  readonly unknown?: string[] | undefined;
}

/**
 * The query's column lineage against the database's catalog (the policy reads it, the masks apply
 * over it), and the views it reads (row filters need them, even when lineage fails). A relation
 * the catalog does not know triggers one (rate-limited) refresh and a retry. Refusals of the text
 * are returned, not thrown: a name the catalog cannot resolve is decided after the policy, so a
 * forbidden table is refused as forbidden whether it exists or not (no oracle for the catalog).
 * Without a database nothing can run; execute refuses (db.not_configured), so none is computed.
 */
async function lineageFor(a: SqlAnalysis, call: { context: { signal?: AbortSignal | undefined } }, env: ToolEnv): Promise<Resolved> {
  if (!env.database) return {};
  const db = env.config.database;
  const catalogs = catalogFor(env.database, db.catalog_refresh_ms, db.allow_catalogs, db.default_schema);
  const run: QueryRun = { signal: call.context.signal };
  let catalog = await catalogs.get(run);
  let lineage: Lineage | undefined;
  let lineageRefusal: Denial | undefined;
  try {
    lineage = lineageCached(a, catalog, db.default_schema);
  } catch (err) {
    lineageRefusal = deferred(err);
    const fresh = lineageRefusal.reasons.includes('sql.catalog_unknown_table') ? await catalogs.refreshAfterMiss(run) : undefined;
    if (fresh !== undefined) {
      catalog = fresh;
      try {
        lineage = lineageCached(a, fresh, db.default_schema);
        lineageRefusal = undefined;
      } catch (again) {
        lineageRefusal = deferred(again);
      }
    }
  }
  let views: LineageView[] | undefined;
  let viewRefusal: Denial | undefined;
  try {
    views = viewsCached(a, catalog, db.default_schema, lineage);
  } catch (err) {
    viewRefusal = deferred(err);
  }
  // Only when lineage failed can a relation be unknown (lineage refuses an unknown name).
  const unknown = lineageRefusal ? relationsUnknown(a.stmt, catalog, db.default_schema, a.facts.tables) : [];
  return { lineage, catalog, lineageRefusal, views, viewRefusal, unknown };
}

/**
 * The masks (issue 13 item 2): the policy's column_rules and redact_columns over the pinned
 * lineage, before anything runs. Refusals name the columns and join the record.
 */
function maskPlan(call: QueryCall): MaskPlan {
  const { lineage } = call.pinned;
  const redact = call.caps.redactColumns;
  const rulesValue = call.decision.obligations.column_rules;
  try {
    const rules = parseColumnRules(rulesValue);
    if (lineage === undefined) {
      if (rules.size > 0 || redact.length > 0) {
        if (call.pinned.lineageRefusal) throw new DenialError(call.pinned.lineageRefusal);
        refuse('sql_rejected', 'The query cannot be checked against the masked columns.', ['sql.masked_column_use']);
      }
      return { outputs: [], masked: [], used: [], touched: [] };
    }
    const plan = planMasks(lineage, rules, redact);
    if (plan.masked.length > 0 || plan.used.length > 0) recordFact(call, 'masks', { masked: plan.masked, used: plan.used });
    return plan;
  } catch (err) {
    if (err instanceof DenialError) recordFact(call, 'masks', { refused: err.denial.detail?.columns ?? [] });
    throw err;
  }
}

/** The policy's `redact_columns` obligation, applied to every row before it leaves the server. */
function redact(r: QueryResult, columns: readonly string[]): { result: QueryResult; redacted: string[] } {
  if (!columns.length) return { result: r, redacted: [] };
  const set = new Set(columns.map((c) => c.toLowerCase()));
  const hit = r.columns.map((c) => c.name).filter((n) => set.has(n.toLowerCase()));
  if (!hit.length) return { result: r, redacted: [] };
  const rows = r.rows.map((row) => {
    const out = { ...row };
    for (const n of hit) if (n in out) out[n] = REDACTED;
    return out;
  });
  return { result: { ...r, rows }, redacted: hit };
}

function table(text: string, r: QueryResult): string {
  if (!r.rows.length) return `(no rows)${r.truncated ? ` — truncated (${r.truncated_reason})` : ''}`;
  const names = r.columns.map((c) => c.name);
  const lines = [names.join('\t'), ...r.rows.slice(0, 50).map((row) => names.map((n) => JSON.stringify(row[n] ?? null)).join('\t'))];
  if (r.rows.length > 50) lines.push(`… ${r.rows.length - 50} more rows in structuredContent`);
  if (r.truncated) lines.push(`… truncated (${r.truncated_reason})`);
  void text;
  return lines.join('\n');
}

const param = z.union([z.string().max(65_536), z.number(), z.boolean(), z.null()]);

const queryInput = z
  .object({
    sql: z
      .string()
      .min(1)
      .max(10 * 1024 * 1024)
      .describe('One SELECT statement. Use $1, $2, … with `params` for values.'),
    params: z.array(param).max(100).default([]),
    max_rows: z.number().int().positive().optional(),
  })
  .strict();

const RESULT_SCHEMA = {
  type: 'object',
  properties: {
    columns: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, type: { type: 'integer' } } } },
    rows: { type: 'array', items: { type: 'object' } },
    row_count: { type: 'integer' },
    truncated: { type: 'boolean' },
    truncated_reason: { type: 'string' },
    duration_ms: { type: 'number' },
    redacted_columns: { type: 'array', items: { type: 'string' } },
    fingerprint: { type: 'string' },
  },
  required: ['columns', 'rows', 'row_count', 'truncated'],
} as const;

export const queryDatabaseTool: ToolDefinition<z.output<typeof queryInput>, SqlFamily, QueryPinned> = {
  name: 'query_database',
  family: 'database',
  description:
    'Run one read-only SELECT on the configured PostgreSQL database. The text is parsed by the PostgreSQL parser; only SELECTs over allowed tables and functions run, in a READ ONLY transaction that is rolled back, with row, byte and time caps. Pass values as $1… parameters.',
  annotations: { title: 'Query database', ...READ_ONLY },
  input: queryInput,
  outputSchema: RESULT_SCHEMA,
  async analyse(call, env) {
    // Raw text (up to the schema's generous cap) goes to hygiene first, which refuses long text fast.
    const a = analyseSql(call.args.sql, sqlOptionsFor(env));
    if (a.facts.params !== call.args.params.length) {
      refuse('invalid_input', `The query uses ${a.facts.params} parameter(s) but ${call.args.params.length} were given.`, ['sql.param_count']);
    }
    const { lineage, catalog, lineageRefusal, views, viewRefusal, unknown } = await lineageFor(a, call, env);
    return {
      facts: {
        sql: {
          ...a.facts,
          ...(lineage ? { lineage } : {}),
          ...(lineageRefusal ? { lineage_unresolved: lineageRefusal.reasons } : {}),
          ...(views && views.length > 0 ? { views } : {}),
          ...(unknown && unknown.length > 0 ? { tables_unknown: unknown } : {}),
        },
      },
      pinned: { text: a.text, lineage, catalog, lineageRefusal, viewRefusal },
    };
  },
  async execute(call, env) {
    executor(env);
    // A view that cannot be followed hides which base columns and tables the query reaches: refused
    // whether or not masks or row filters apply (they may apply to what is behind it).
    if (call.pinned.viewRefusal) throw new DenialError(call.pinned.viewRefusal);
    const masks = maskPlan(call);
    const { text, params, filtered, analysis } = await rowFiltered(call, env);
    // Lineage on the tree that will run: the rewrite wraps each filtered table in a subquery with
    // the same columns under the same alias, so every output must derive exactly as analysed.
    if (analysis && call.pinned.lineage && call.pinned.catalog) {
      const executed = lineageCached(analysis, call.pinned.catalog, env.config.database.default_schema);
      if (JSON.stringify(executed.outputs) !== JSON.stringify(call.pinned.lineage.outputs)) {
        refuse('sql_rejected', 'The query cannot be filtered as the policy requires: the rewrite changed what the outputs derive from.', [
          'sql.row_filter_unsupported',
        ]);
      }
    }
    const masked = masks.touched;
    const plan = planLimits(call);
    let r: QueryResult;
    try {
      r = await executor(env).query(text, params, { ...queryCapsFor(call, env, call.args.max_rows), plan }, runOf(call));
    } catch (err) {
      if (filtered && filterColumnMissing(err)) {
        refuse('policy_error', "The policy's row filter names a column the table does not have.", ['sql.row_filter_column'], {
          tables: call.facts.sql.row_filters?.tables ?? [],
        });
      }
      if (err instanceof DenialError && err.denial.reasons.includes('sql.cost_exceeded')) recordPlan(call, { ...(err.denial.detail ?? {}), refused: true });
      // The server's error text may quote values; for a query that touches masked columns only
      // the SQLSTATE and a fixed sentence leave.
      if (err instanceof DenialError && masked.length > 0 && err.denial.reasons.includes('db.query_error')) {
        refuse(err.denial.code, 'The database rejected a query that reads masked columns (its message is withheld).', err.denial.reasons, {
          sqlstate: err.denial.detail?.sqlstate ?? null,
        });
      }
      throw err;
    }
    if (r.plan)
      // The estimate is already recordable (judgePlan); a policy's limits beyond 2^53 ("unlimited")
      // are made so here, as plan-gate.ts does for a refused plan, or the record would lose its facts.
      recordPlan(call, {
        plan_cost: r.plan.total_cost,
        plan_rows: r.plan.rows,
        ms: r.plan.ms,
        ...(plan?.maxCost === undefined ? {} : { max_plan_cost: recordable(plan.maxCost) }),
        ...(plan?.maxRows === undefined ? {} : { max_plan_rows: recordable(plan.maxRows) }),
      });
    // No rows, nothing to mask (and an empty cursor reports no columns).
    if (r.rows.length > 0)
      checkMaskPlacement(
        masks,
        call.pinned.lineage?.outputs.length ?? 0,
        r.columns.map((c) => c.name),
      );
    const { result, redacted } = redact(r, [...call.caps.redactColumns, ...masks.outputs.map((o) => o.name)]);
    const fingerprint = call.facts.sql.kind === 'select' ? call.facts.sql.fingerprint : undefined;
    return {
      text: table(text, result),
      structured: { ...result, redacted_columns: redacted, fingerprint },
      metrics: { duration_ms: result.duration_ms, cpu_ms: 0, heap_bytes: 0, output_bytes: Buffer.byteLength(JSON.stringify(result.rows)) },
    };
  },
  auditArgs: (args) => ({
    sql: args.sql.length > 16_384 ? `${args.sql.slice(0, 16_384)}…` : args.sql,
    params_count: args.params.length,
    max_rows: args.max_rows ?? null,
  }),
};

const TABLE_NAME = /^[a-z_][a-z0-9_$]{0,62}\.[a-z_][a-z0-9_$]{0,62}$/;

const listInput = z
  .object({
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_$]{0,62}$/)
      .optional(),
  })
  .strict();

/** list_tables decides on no facts; its executor records the policy's answer per table under `sql`. */
type ListFamily = { sql?: SqlListFacts };
type ListCall = Authorised<z.output<typeof listInput>, ListFamily, Record<string, never>>;

/** Answers kept in the record per call: a schema may hold thousands of tables; the counts cover all. */
const TABLE_ANSWERS_KEPT = 200;

/** Without the policy's questions nothing is shown (fail closed). */
const NOT_ASKED: PolicyAnswer = { allow: false, reasons: [], error: 'policy.not_available' };

/**
 * Filtered by the same policy that decides queries: a table is listed only if this principal
 * could describe it. The answers join the call's recorded facts, since they decided what it saw.
 */
function readableTables(call: ListCall, env: ToolEnv, rows: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  const answers: TableAnswerFacts[] = [];
  let hidden = 0;
  let error: string | undefined;
  const tables = rows.filter((row) => {
    const table = `${String(row.schema)}.${String(row.name)}`.toLowerCase();
    const answer = env.policy ? env.policy.mayReadTable(call, table) : NOT_ASKED;
    if (answers.length < TABLE_ANSWERS_KEPT) answers.push({ table, ...answer });
    if (!answer.allow) hidden += 1;
    error ??= answer.error;
    return answer.allow;
  });
  // Once per call, not per table: a broken policy fails every table alike.
  if (error) env.logger.error('the policy could not answer for tables to list; they are hidden', { request_id: call.context.requestId, reason: error });
  call.facts.sql = { kind: 'list', tables_filtered: answers, tables_asked: rows.length, tables_hidden: hidden };
  return tables;
}

export const listTablesTool: ToolDefinition<z.output<typeof listInput>, ListFamily, Record<string, never>> = {
  name: 'list_tables',
  family: 'database',
  description: 'List the tables and views this principal may read, with row estimates.',
  annotations: { title: 'List tables', ...READ_ONLY },
  input: listInput,
  outputSchema: { type: 'object', properties: { tables: { type: 'array', items: { type: 'object' } } }, required: ['tables'] },
  async analyse() {
    return { facts: {}, pinned: {} };
  },
  async execute(call, env) {
    const r = await executor(env).query(
      `select n.nspname as schema, c.relname as name, case c.relkind when 'r' then 'table' when 'v' then 'view' when 'm' then 'materialized_view' when 'p' then 'partitioned_table' when 'f' then 'foreign_table' end as kind,
              greatest(c.reltuples, 0)::bigint as row_estimate
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r','v','m','p','f') and n.nspname not in ('pg_catalog','information_schema','pg_toast')
          and ($1::text is null or n.nspname = $1::text)
        order by 1, 2`,
      [call.args.schema ?? null],
      { ...queryCapsFor(call, env), maxRows: 10_000 },
      runOf(call),
    );
    const tables = readableTables(call, env, r.rows);
    return { text: tables.map((t) => `${t.schema}.${t.name} (${t.kind}, ~${t.row_estimate} rows)`).join('\n') || '(no tables)', structured: { tables } };
  },
};

const describeInput = z.object({ table: z.string().min(3).max(130).describe('schema.table') }).strict();

export const describeTableTool: ToolDefinition<z.output<typeof describeInput>, SqlFamily, { readonly table: string }> = {
  name: 'describe_table',
  family: 'database',
  description: 'Columns of one table this principal may read: types, nullability, defaults, and a row estimate.',
  annotations: { title: 'Describe table', ...READ_ONLY },
  input: describeInput,
  outputSchema: {
    type: 'object',
    properties: { table: { type: 'string' }, columns: { type: 'array', items: { type: 'object' } }, row_estimate: { type: 'integer' } },
    required: ['table', 'columns'],
  },
  async analyse(call, env) {
    const name = call.args.table.toLowerCase().includes('.')
      ? call.args.table.toLowerCase()
      : `${env.config.database.default_schema}.${call.args.table.toLowerCase()}`;
    if (!TABLE_NAME.test(name)) refuse('sql_rejected', 'A table is named as schema.table with plain identifiers.', ['sql.bad_table_name']);
    return { facts: { sql: { statements: 1, kind: 'describe', tables: [name], functions: [] } }, pinned: { table: name } };
  },
  async execute(call, env) {
    const [schema, name] = call.pinned.table.split('.') as [string, string];
    const r = await executor(env).query(
      `select a.attname as name, pg_catalog.format_type(a.atttypid, a.atttypmod) as type, not a.attnotnull as nullable,
              pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default, greatest(c.reltuples, 0)::bigint as row_estimate
         from pg_catalog.pg_attribute a
         join pg_catalog.pg_class c on c.oid = a.attrelid
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped
        order by a.attnum`,
      [schema, name],
      { ...queryCapsFor(call, env), maxRows: 2000 },
      runOf(call),
    );
    // describe_table looks at the live table: the column lists lineage resolves against are read afresh.
    const db = env.config.database;
    catalogFor(executor(env), db.catalog_refresh_ms, db.allow_catalogs, db.default_schema).invalidate();
    if (!r.rows.length) refuse('tool_error', `No table ${schema}.${name}.`, ['db.no_such_table']);
    const columns = r.rows.map(({ row_estimate: _r, ...c }) => c);
    const rowEstimate = Number(r.rows[0]?.row_estimate ?? 0);
    return {
      text: columns.map((c) => `${c.name} ${c.type}${c.nullable ? '' : ' not null'}${c.default ? ` default ${c.default}` : ''}`).join('\n'),
      structured: { table: `${schema}.${name}`, columns, row_estimate: rowEstimate },
    };
  },
};

export const databaseTools = [queryDatabaseTool, listTablesTool, describeTableTool] as const;
