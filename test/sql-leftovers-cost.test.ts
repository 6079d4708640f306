/**
 * The cost gate (issue 13, item 4), against a real PostgreSQL: EXPLAIN (FORMAT JSON) of exactly the
 * analysed text, with the same parameters, in the query's own read-only transaction, before it
 * runs; a plan over the limits is refused with `sql.cost_exceeded` and the estimate.
 *
 * The executor is driven directly (PgExecutor with plan caps) and through query_database's own
 * execute(), with the policy's obligations given in the call, so each limit can be set exactly;
 * test/plan-limits-default.test.ts drives the gate end to end with the shipped policy's limits.
 * Nothing here is a stub: the planner, the transaction and the refusals are PostgreSQL's.
 */
import t from 'tap';
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { PgExecutor, type QueryCaps } from '../src/tools/database/pg-executor.js';
import { initSqlAnalysis, sqlSessionSettings } from '../src/analysis/sql.js';
import { DenialError } from '../src/core/denial.js';
import { queryDatabaseTool } from '../src/tools/database/tools.js';
import type { Authorised } from '../src/core/call.js';
import type { ToolEnv } from '../src/tools/types.js';

let db: TestDatabase;
let ex: PgExecutor;
const LIMITS = { maxCost: 10_000_000, maxRows: 100_000_000 };
const caps = (plan?: QueryCaps['plan'], timeoutMs = 3000): QueryCaps => ({ maxRows: 1000, maxBytes: 1 << 20, timeoutMs, lockTimeoutMs: 500, plan });

t.before(async () => {
  await initSqlAnalysis();
  db = await createTestDatabase();
  const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  const reader = decodeURIComponent(new URL(db.readerUrl).username);
  for (const name of ['big_a', 'big_b', 'big_c', 'big_d']) {
    await admin.unsafe(`CREATE TABLE ${name} AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g`);
    await admin.unsafe(`CREATE INDEX ON ${name} (id)`);
    await admin.unsafe(`GRANT SELECT ON ${name} TO "${reader}"`);
  }
  await admin.unsafe('ANALYZE');
  await admin.end();
  ex = new PgExecutor({ url: db.readerUrl, maxConnections: 1, idleTimeoutS: 5, maxLifetimeS: 60, connectTimeoutS: 5, session: sqlSessionSettings() });
});
t.teardown(async () => {
  await ex?.close();
  await db?.drop();
});

interface PlanDetail {
  readonly plan_cost: number;
  readonly plan_rows: number;
  readonly max_plan_cost?: number;
  readonly max_plan_rows?: number;
}
const detail = (e: DenialError) => e.denial.detail as unknown as PlanDetail;

const refusal = async (sql: string, params: (string | number)[] = [], c: QueryCaps = caps(LIMITS)): Promise<DenialError> => {
  const e = await ex.query(sql, params, c).then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof DenialError)) throw new Error(`${sql}: expected a refusal, got ${String(e)}`);
  return e;
};

t.test('a four-way cross join of large tables is refused before it runs', async (t) => {
  const rows = await refusal('SELECT * FROM big_a, big_b, big_c, big_d');
  t.equal(rows.denial.code, 'sql_rejected');
  t.same(rows.denial.reasons, ['sql.cost_exceeded']);
  const d = detail(rows);
  // 50,000^4 rows: beyond 2^53, so the detail (which the audit record keeps, in canonical JSON)
  // gives 2^53 − 1, "at least this much"; the message keeps the planner's own figure.
  t.equal(d.plan_rows, Number.MAX_SAFE_INTEGER, `estimated rows in the detail (${d.plan_rows})`);
  t.match(rows.denial.message, /estimated rows 6250000000000000000 > 100000000/);
  t.ok(d.plan_cost > LIMITS.maxCost, `estimated cost in the detail (${d.plan_cost})`);
  t.equal(d.max_plan_cost, LIMITS.maxCost);
  t.equal(d.max_plan_rows, LIMITS.maxRows);
  t.match(rows.denial.message, /estimated cost .* > 10000000/);
  // count(*) returns one row but would scan 6.25e18: refused on cost. With a 1.5 s statement
  // timeout, had it run, the answer would have been a timeout, not this refusal.
  const count = await refusal('SELECT count(*) FROM big_a, big_b, big_c, big_d', [], caps(LIMITS, 1500));
  t.same(count.denial.reasons, ['sql.cost_exceeded']);
  t.ok(detail(count).plan_cost > LIMITS.maxCost);
  t.ok(detail(count).plan_rows <= 1, 'one estimated row: refused on cost alone');
  const ok = await ex.query('SELECT count(*)::int AS n FROM big_a', [], caps(LIMITS));
  t.same(ok.rows, [{ n: 50000 }], 'the connection is clean and reused after a refusal (one connection in the pool)');
  t.ok(ok.plan && ok.plan.total_cost > 0 && ok.plan.rows === 1, `the estimate comes back with the result: ${JSON.stringify(ok.plan)}`);
});

t.test('the plan is for the same parameters', async (t) => {
  const few = await ex.query('SELECT id FROM big_a WHERE id < $1 ORDER BY id', [5], caps({ maxRows: 1000 }));
  t.same(
    few.rows.map((r) => r.id),
    [1, 2, 3, 4],
  );
  t.ok(few.plan!.rows < 1000, `few rows estimated for $1 = 5 (${few.plan!.rows})`);
  const many = await refusal('SELECT id FROM big_a WHERE id < $1 ORDER BY id', [40000], caps({ maxRows: 1000 }));
  t.same(many.denial.reasons, ['sql.cost_exceeded'], 'the same text with $1 = 40000 is refused: the estimate used the bound value');
  t.ok(detail(many).plan_rows > 1000);
});

t.test('every shape the analyser accepts can be explained', async (t) => {
  const shapes: [string, unknown[]][] = [
    ['VALUES (1), (2)', [{ column1: 1 }, { column1: 2 }]],
    ['TABLE banned_users', [{ user_id: 1 }, { user_id: 2 }]],
    ['-- a leading comment\nSELECT 1 AS x; -- and a trailing one', [{ x: 1 }]],
    ['/* block */ (SELECT 2 AS x)', [{ x: 2 }]],
    ['WITH w AS (SELECT 3 AS x) SELECT x FROM w', [{ x: 3 }]],
    ["SELECT 'a\\b' AS s", [{ s: 'a\\b' }]],
  ];
  for (const [sql, rows] of shapes) {
    const r = await ex.query(sql, [], caps(LIMITS));
    t.same(r.rows, rows, `${sql.replace(/\n/g, ' ')}: runs`);
    t.ok(r.plan, 'and was explained');
  }
  const table = await refusal('TABLE big_a', [], caps({ maxRows: 100 }));
  t.same(table.denial.reasons, ['sql.cost_exceeded'], 'TABLE t gets the gate like SELECT * FROM t');
  const noPlan = await ex.query('SELECT 1 AS x', [], caps());
  t.equal(noPlan.plan, undefined, 'without limits no EXPLAIN is made (a query the policy marks cheap)');
});

t.test('the EXPLAIN runs inside the read-only transaction and its timeouts', async (t) => {
  // A plan that takes longer than the statement timeout (planning folds immutable calls) ends
  // in the executor's typed timeout like the query itself would: it runs under the same SET LOCAL.
  const slow = await ex.query("SELECT length(repeat(md5('x'), 20000000)) AS n", [], caps(LIMITS, 300)).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(
    slow instanceof DenialError,
    `a slow plan is refused with a typed code (${(slow as DenialError)?.denial?.code}: ${(slow as DenialError)?.denial?.reasons})`,
  );
  const writes = await ex.query('SELECT count(*)::int AS n FROM canary', [], caps(LIMITS));
  t.same(writes.rows, [{ n: 100 }], 'nothing changed');
  const a = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  const [idle] = await a`select count(*)::int as n from pg_stat_activity where datname = ${db.name} and state like 'idle in transaction%'`;
  await a.end();
  t.equal(idle!.n, 0, 'no session left in a transaction after refusals');
});

t.test("query_database applies the policy's plan obligations and records the estimate in the facts", async (t) => {
  const env = {
    config: { database: { max_rows: 1000, max_result_bytes: 1 << 20, statement_timeout_ms: 3000, lock_timeout_ms: 500 } },
    database: ex,
  } as unknown as ToolEnv;
  // A call as the gate would hand it over (the decision and caps the policy gave); built by hand
  // because the engine does not yet carry these two obligations from the policy.
  const call = (sql: string, obligations: Record<string, unknown>) =>
    ({
      tool: 'query_database',
      args: { sql, params: [] },
      facts: { sql: { tables: ['public.big_a'] } },
      pinned: { text: sql },
      decision: { allow: true, reasons: [], obligations },
      caps: { timeoutMs: 3000, maxBytes: 1 << 20, redactColumns: [] },
      context: { signal: new AbortController().signal },
    }) as unknown as Authorised<{ sql: string; params: never[] }>;
  const big = call('SELECT * FROM big_a, big_b, big_c, big_d', { max_plan_cost: 1e7, max_plan_rows: 1e8 });
  const e = await queryDatabaseTool.execute(big as never, env).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(e instanceof DenialError && e.denial.reasons.includes('sql.cost_exceeded'), 'refused');
  const plan = (big.facts as { sql: { plan?: Record<string, unknown> } }).sql.plan;
  t.ok(
    plan && plan.plan_rows === Number.MAX_SAFE_INTEGER && plan.refused === true && plan.max_plan_rows === 1e8,
    `the estimate is in the recorded facts: ${JSON.stringify(plan)}`,
  );
  const small = call('SELECT id FROM big_a WHERE id = 7', { max_plan_rows: 10 });
  const r = await queryDatabaseTool.execute(small as never, env);
  t.same(r.structured.rows as unknown[], [{ id: 7 }]);
  const p2 = (small.facts as { sql: { plan?: Record<string, unknown> } }).sql.plan;
  t.ok(p2 && p2.plan_rows === 1 && p2.max_plan_rows === 10 && !('refused' in p2), `a run query records its estimate too: ${JSON.stringify(p2)}`);
  const cheap = call('SELECT * FROM big_a, big_b LIMIT 1', {});
  const c = await queryDatabaseTool.execute(cheap as never, env);
  t.equal((c.structured.rows as unknown[]).length, 1, 'no plan obligation (a query marked cheap): no gate');
  t.notOk((cheap.facts as { sql: { plan?: unknown } }).sql.plan, 'and no estimate recorded');
});
