/**
 * Row filters from policy (issue 13 item 3), against a real PostgreSQL: the policy's `row_filters`
 * obligation rewrites every reference to a filtered table into a filtered subquery, and no query
 * shape returns a row the filter excludes.
 *
 * The oracle: a second database holding only the rows the filter lets through. Each shape's
 * answer through the rewrite, on the full data, must equal the same text's answer on that
 * database, run unfiltered. The filters are the example the shipped policy data gives its
 * `customer` role (policies/data.json): customers.id = principal.id, orders.customer_id =
 * principal.id and orders.status <> 'refunded'. The principal is "7".
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import postgres from 'postgres';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { makeSandbox, readAudit, ROOT, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { analyseSql, initSqlAnalysis, SQL_REASON_CODES, sqlSessionSettings } from '../src/analysis/sql.js';
import { applyRowFilters, loadRowFilterDeparser, parseRowFilters, ROW_FILTER_REASON_CODES, type RowFilterPrincipal } from '../src/analysis/sql-row-filter.js';
import { PgExecutor, type QueryCaps } from '../src/tools/database/pg-executor.js';
import { queryDatabaseTool } from '../src/tools/database/tools.js';
import { DenialError } from '../src/core/denial.js';
import type { Authorised } from '../src/core/call.js';
import type { ToolEnv } from '../src/tools/types.js';

type Param = string | number | boolean | null;
type Row = Record<string, unknown>;

const DATA = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: Record<string, any> };
const SHIPPED_FILTERS = DATA.bulwark.database.row_filters.customer as unknown[];
const FILTERS = parseRowFilters(SHIPPED_FILTERS);
const PRINCIPAL: RowFilterPrincipal = { id: '7', roles: ['customer'], auth: 'stdio', tier: 'local' };
const CAPS: QueryCaps = { maxRows: 10_000, maxBytes: 16 << 20, timeoutMs: 5000, lockTimeoutMs: 1000 };

let db: TestDatabase;
let truth: TestDatabase;
let real: PgExecutor;
let oracle: PgExecutor;

const executor = (url: string) =>
  new PgExecutor({ url, maxConnections: 2, idleTimeoutS: 5, maxLifetimeS: 60, connectTimeoutS: 5, session: sqlSessionSettings() });

/** The same extra objects in both databases: some of customer 7's orders refunded, and a view over orders. */
async function prepare(d: TestDatabase): Promise<postgres.Sql> {
  const admin = postgres(d.adminUrl, { max: 1, onnotice: () => undefined });
  const reader = decodeURIComponent(new URL(d.readerUrl).username);
  await admin.unsafe(`UPDATE orders SET status = 'refunded' WHERE id % 3 = 0`);
  await admin.unsafe(`CREATE VIEW orders_v AS SELECT * FROM orders`);
  await admin.unsafe(`GRANT SELECT ON orders_v TO "${reader}"`);
  return admin;
}

t.before(async () => {
  await initSqlAnalysis();
  await loadRowFilterDeparser();
  [db, truth] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  await (await prepare(db)).end();
  const admin = await prepare(truth);
  // The oracle database: exactly the rows the shipped filters let principal "7" see.
  await admin.unsafe(`DELETE FROM orders WHERE NOT (customer_id = 7 AND status <> 'refunded')`);
  await admin.unsafe(`DELETE FROM customers WHERE id <> 7`);
  await admin.unsafe('ANALYZE');
  await admin.end();
  real = executor(db.readerUrl);
  oracle = executor(truth.readerUrl);
});
t.teardown(async () => {
  await real?.close();
  await oracle?.close();
  await Promise.all([db?.drop(), truth?.drop()]);
});

const sorted = (rows: readonly Row[]) => rows.map((r) => JSON.stringify(r)).sort();

async function filtered(sql: string, params: Param[] = []): Promise<{ rows: Row[]; text: string }> {
  analyseSql(sql); // an accepted query, as the gate would hand it over
  const r = applyRowFilters(sql, params, FILTERS, PRINCIPAL);
  if (r === null) throw new Error(`${sql}: no filtered table found`);
  return { rows: (await real.query(r.text, r.params, CAPS)).rows, text: r.text };
}

// Each shape reads orders and/or customers; many try to reach rows of other customers or refunded ones.
const SHAPES: [string, Param[]?][] = [
  ['SELECT id FROM orders'],
  ['SELECT o.id, o.total, o.status FROM orders o'],
  ['SELECT * FROM orders'],
  ['SELECT a.id AS a, b.id AS b FROM orders a JOIN orders b ON a.customer_id = b.customer_id'],
  ['SELECT a.id AS a, b.id AS b FROM orders a, orders b WHERE a.id < b.id'],
  ['SELECT o.id, c.name, c.region FROM orders o JOIN customers c ON c.id = o.customer_id'],
  ['SELECT c.id, o.id AS oid FROM customers c LEFT JOIN orders o ON o.customer_id = c.id'],
  ['SELECT o.id, u.name FROM orders o RIGHT JOIN users u ON u.id = o.customer_id'],
  ['SELECT o.id, u.name FROM users u FULL JOIN orders o ON u.id = o.customer_id'],
  ['SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total > $1)', [1]],
  ['SELECT id FROM users WHERE id IN (SELECT customer_id FROM orders)'],
  ['SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = u.id)'],
  ['SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = u.id)'],
  ['SELECT id FROM orders WHERE id = ANY (SELECT id FROM orders)'],
  ['SELECT id FROM orders o WHERE o.total > (SELECT avg(total) FROM orders)'],
  ['SELECT * FROM (SELECT id, total FROM orders) s'],
  ['SELECT s.id FROM (SELECT * FROM (SELECT * FROM orders) i) s'],
  ['SELECT (SELECT count(*) FROM orders) AS n'],
  ['SELECT (SELECT array_agg(id ORDER BY id) FROM orders) AS ids'],
  ['SELECT c.id, (SELECT count(*) FROM orders o2 WHERE o2.customer_id = c.id) AS n FROM customers c'],
  ['SELECT u.id, (SELECT max(total) FROM orders o WHERE o.customer_id = u.id) AS m FROM users u'],
  ['WITH x AS (SELECT * FROM orders) SELECT id FROM x'],
  ['WITH x AS (SELECT customer_id, count(*) AS n FROM orders GROUP BY 1), y AS (SELECT * FROM x) SELECT * FROM y'],
  ['WITH orders AS (SELECT * FROM public.orders WHERE total > 0) SELECT count(*) AS n FROM orders'],
  ['WITH c AS MATERIALIZED (SELECT * FROM customers) SELECT id, region FROM c'],
  [
    'WITH RECURSIVE r(id) AS (SELECT min(id) FROM orders UNION ALL SELECT (SELECT min(o.id) FROM orders o WHERE o.id > r.id) FROM r WHERE r.id IS NOT NULL) SELECT id FROM r WHERE id IS NOT NULL',
  ],
  ['WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < (SELECT count(*) FROM orders)) SELECT max(i) AS m FROM n'],
  ['SELECT id FROM orders UNION SELECT id FROM orders WHERE total > 100'],
  ['SELECT id FROM orders UNION ALL SELECT customer_id FROM orders'],
  ['SELECT id FROM orders INTERSECT SELECT id FROM orders WHERE total > $1', [50]],
  ['SELECT id FROM users EXCEPT SELECT customer_id FROM orders'],
  ['SELECT customer_id FROM orders EXCEPT SELECT id FROM users WHERE id > 100'],
  ['SELECT x.id FROM (SELECT * FROM orders UNION ALL SELECT * FROM orders) x'],
  ['SELECT c.id, l.n FROM customers c CROSS JOIN LATERAL (SELECT count(*) AS n FROM orders o WHERE o.customer_id = c.id) l'],
  ['SELECT u.id, l.id AS oid FROM users u, LATERAL (SELECT id FROM orders o WHERE o.customer_id = u.id ORDER BY id LIMIT 2) l'],
  ['SELECT * FROM customers c JOIN LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id) o2 ON true'],
  ['SELECT id FROM public.orders'],
  ['SELECT public_orders.id FROM public.orders AS public_orders'],
  ['SELECT "id" FROM "orders"'],
  ['SELECT "O"."id" FROM public."orders" AS "O"'],
  ['SELECT ID FROM ORDERS'],
  ['TABLE orders'],
  ['TABLE customers'],
  ['SELECT * FROM orders o(a, b)'],
  ['SELECT row_to_json(o) AS j FROM orders o'],
  ['SELECT to_jsonb(c) AS j FROM customers c'],
  ['SELECT json_agg(o ORDER BY o.id) AS j FROM orders o'],
  ['SELECT row_to_json(orders) AS j FROM orders'],
  ['SELECT count(*) AS n, sum(total) AS s FROM orders'],
  ['SELECT status, count(*) AS n FROM orders GROUP BY status'],
  ['SELECT status, count(*) AS n FROM orders GROUP BY GROUPING SETS ((status), ())'],
  ['SELECT id, max(total) OVER () AS m, row_number() OVER (ORDER BY id) AS r FROM orders'],
  ['SELECT id FROM orders WHERE customer_id <> 7'],
  ['SELECT id FROM orders WHERE status = $1', ['refunded']],
  ['SELECT id FROM orders WHERE customer_id = $1', [8]],
  ['SELECT id FROM orders ORDER BY id LIMIT 3 OFFSET 1'],
  ['SELECT DISTINCT customer_id FROM orders'],
  ['SELECT * FROM customers'],
  ['SELECT * FROM customers WHERE region = $1', ['north']],
  ['SELECT c.region, count(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.region'],
  ['SELECT count(*) AS n FROM orders, customers'],
  ['SELECT o.id FROM orders o NATURAL JOIN (SELECT id FROM orders) p'],
  ['SELECT o.id FROM orders o JOIN customers c ON true WHERE c.id = o.customer_id OR false'],
  ['SELECT id, true AS t, false AS f FROM orders WHERE (total > 0) = true'],
  ['SELECT o.id FROM orders o JOIN customers c USING (id)'],
  ['VALUES ((SELECT count(*) FROM orders))'],
  ['SELECT CASE WHEN EXISTS (SELECT 1 FROM orders WHERE customer_id = 3) THEN 1 ELSE 0 END AS leak'],
  ["SELECT 'a\\b' AS s, count(*) AS n FROM orders"],
  ['SELECT id FROM orders WHERE total::text LIKE $1', ['%5%']],
  // The filter subquery's own alias, taken by the query: inner names shadow outer ones.
  ['SELECT id FROM users bulwark_rf WHERE EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = bulwark_rf.id)'],
  ['SELECT bulwark_rf.id FROM orders bulwark_rf'],
  ['SELECT o.id FROM orders o WHERE o.customer_id IN (SELECT bulwark_rf.id FROM customers bulwark_rf)'],
];

t.test('no query shape returns a row the filter excludes (oracle: a database holding only the allowed rows)', async (t) => {
  t.ok(SHAPES.length >= 60, `${SHAPES.length} shapes`);
  let differs = 0;
  for (const [sql, params = []] of SHAPES) {
    const got = await filtered(sql, params);
    const want = await oracle.query(sql, params, CAPS);
    t.same(sorted(got.rows), sorted(want.rows), `${sql} => ${got.text}`);
    const unfiltered = await real.query(sql, params, CAPS);
    if (JSON.stringify(sorted(unfiltered.rows)) !== JSON.stringify(sorted(want.rows))) differs++;
  }
  t.ok(differs >= SHAPES.length - 5, `${differs} of ${SHAPES.length} shapes answer differently without the filter (the oracle is not vacuous)`);
});

t.test("the shortcut on the analysis's table list never skips a filtered reference", async (t) => {
  const probe = (sql: string, params: Param[], tables?: readonly string[]) => {
    try {
      const r = applyRowFilters(sql, params, FILTERS, PRINCIPAL, {}, tables);
      return r === null ? null : { text: r.text, params: r.params };
    } catch (err) {
      if (err instanceof DenialError) return { refused: err.denial.reasons };
      throw err;
    }
  };
  const extra: [string, Param[]?][] = [
    ['SELECT id FROM "ORDERS"'],
    ['SELECT id FROM public.orders'],
    ['SELECT u.id FROM users u'],
    ['WITH orders AS (SELECT 1 AS id) SELECT id FROM orders'],
    ['SELECT 1 AS one'],
    ['VALUES (1), (2)'],
  ];
  let skipped = 0;
  for (const [sql, params = []] of [...SHAPES, ...extra]) {
    const tables = analyseSql(sql).facts.tables;
    const full = probe(sql, params);
    const quick = probe(sql, params, tables);
    t.same(quick, full, sql);
    if (full === null) skipped++;
  }
  t.ok(skipped >= 3, `${skipped} shapes read no filtered table`);
});

t.test('a view is another relation: refused by the table list, or filtered in its own right', async (t) => {
  const sql = 'SELECT id FROM orders_v';
  t.equal(applyRowFilters(sql, [], FILTERS, PRINCIPAL), null, 'a filter on orders does not reach into a view over it (documented)');
  const viewFilters = parseRowFilters([...SHIPPED_FILTERS, { table: 'public.orders_v', column: 'customer_id', op: '=', value: { principal: 'id' } }]);
  const r = applyRowFilters(sql, [], viewFilters, PRINCIPAL);
  const rows = (await real.query(r!.text, r!.params, CAPS)).rows;
  const mine = (await real.query('SELECT id FROM orders_v WHERE customer_id = 7', [], CAPS)).rows;
  t.ok(mine.length > 0, 'principal 7 has orders');
  t.same(sorted(rows), sorted(mine), 'with its own filter the view shows principal 7 rows only');
});

t.test('generated combinations of the shapes leak nothing (fast-check)', async (t) => {
  // A source of order ids, then wrappers: subquery, CTE, set operation, sublinks, LATERAL, join.
  const source = fc.constantFrom(
    'SELECT id FROM orders',
    'SELECT o.id FROM orders o',
    'SELECT id FROM public.orders',
    'SELECT "x".id FROM "orders" "x"',
    'SELECT id FROM (TABLE orders) t0',
    'SELECT o.customer_id AS id FROM orders o',
    'SELECT c.id FROM customers c',
  );
  const wraps: ((q: string, n: number) => string)[] = [
    (q, n) => `SELECT id FROM (${q}) w${n}`,
    (q, n) => `WITH c${n} AS (${q}) SELECT id FROM c${n}`,
    (q, n) => `SELECT id FROM (${q}) u${n} UNION ALL SELECT id FROM orders`,
    (q, n) => `SELECT id FROM (${q}) u${n} INTERSECT SELECT customer_id FROM orders`,
    (q) => `SELECT id FROM users WHERE id IN (${q})`,
    (q, n) => `SELECT e${n}.id FROM (${q}) e${n} WHERE EXISTS (SELECT 1 FROM orders z WHERE z.id = e${n}.id OR z.customer_id = e${n}.id)`,
    (q, n) => `SELECT l${n}.id FROM customers k${n}, LATERAL (SELECT id FROM (${q}) i WHERE i.id >= k${n}.id) l${n}`,
    (q, n) => `SELECT j${n}.id FROM (${q}) j${n} JOIN orders o${n} ON o${n}.id = j${n}.id`,
    (q, n) => `SELECT (SELECT max(id) FROM (${q}) m${n}) AS id`,
  ];
  const wrap = fc.constantFrom(...wraps);
  const query = fc.tuple(source, fc.array(wrap, { minLength: 0, maxLength: 4 })).map(([s, ws]) => ws.reduce<string>((q, w, i) => w(q, i), s));
  await fc.assert(
    fc.asyncProperty(query, async (sql) => {
      const got = await filtered(sql);
      const want = await oracle.query(sql, [], CAPS);
      if (JSON.stringify(sorted(got.rows)) !== JSON.stringify(sorted(want.rows))) throw new Error(`${sql}: ${got.text} answers differently`);
    }),
    { numRuns: 60, seed: 1307 },
  );
  t.pass('60 generated queries agree with the oracle');
});

t.test('what the rewrite does not touch', async (t) => {
  t.equal(applyRowFilters('SELECT id FROM users', [], FILTERS, PRINCIPAL), null, 'a query that reads no filtered table runs as analysed');
  t.equal(applyRowFilters('WITH orders AS (SELECT 1 AS id) SELECT id FROM orders', [], FILTERS, PRINCIPAL), null, 'a CTE named like the table is the CTE');
  const cte = applyRowFilters('WITH orders AS (SELECT * FROM orders) SELECT count(*) FROM orders', [], FILTERS, PRINCIPAL);
  t.equal(cte?.references, 1, 'a non-recursive CTE named like the table reads the table in its body, which is filtered once');
  const r = applyRowFilters('SELECT id FROM orders WHERE total > $1 AND status = $2', [5, 'paid'], FILTERS, PRINCIPAL);
  t.same(r?.params, [5, 'paid', '7', 'refunded'], "the filters' values are parameters after the caller's");
  t.notMatch(r?.text ?? '', /'7'|refunded/, 'no value is written into the text');
  t.match(r?.text ?? '', /\$3/);
  t.equal(r?.analysis.facts.params, 4, 'the re-analysis sees them');
  t.equal(r?.text_sha256, crypto.createHash('sha256').update('SELECT id FROM orders WHERE total > $1 AND status = $2').digest('hex'));
  t.equal(r?.executed_sha256, crypto.createHash('sha256').update(r!.text).digest('hex'));
  // `schema.table.column` names the table itself, which is now a subquery under the table's name:
  // PostgreSQL refuses the reference, so the query fails instead of reading unfiltered rows.
  const three = applyRowFilters('SELECT public.orders.id FROM public.orders', [], FILTERS, PRINCIPAL)!;
  const e = await real.query(three.text, three.params, CAPS).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(e instanceof DenialError && e.denial.reasons.includes('db.query_error'), `a schema-qualified column reference fails (${String(e)})`);
});

const refusalOf = (f: () => unknown): DenialError => {
  try {
    f();
  } catch (err) {
    if (err instanceof DenialError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
};

t.test('an obligation the gate cannot apply fails closed with a typed code', async (t) => {
  const bad: [unknown, string][] = [
    ['public.orders', 'not a list'],
    [[null], 'an entry that is not an object'],
    [[{ tabel: 'public.orders', column: 'id', op: 'is_null' }], 'a misspelt key'],
    [[{ table: 'orders', column: 'id', op: 'is_null' }], 'a table without its schema'],
    [[{ table: 'public.orders', column: 'id; drop table x', op: 'is_null' }], 'a column that is not a plain identifier'],
    [[{ table: 'public.orders', column: 'id', op: 'like', value: { const: '%' } }], 'an operator outside the list'],
    [[{ table: 'public.orders', column: 'id', op: '=' }], 'a missing value'],
    [[{ table: 'public.orders', column: 'id', op: '=', value: { sql: '1=1' } }], 'a value that is neither const nor principal'],
    [[{ table: 'public.orders', column: 'id', op: '=', value: { const: null } }], 'a null const (= NULL is never true: is_null says it)'],
    [[{ table: 'public.orders', column: 'id', op: '=', value: { const: [1, 2] } }], 'a list for ='],
    [[{ table: 'public.orders', column: 'id', op: 'in', value: { const: [] } }], 'an empty in list'],
    [[{ table: 'public.orders', column: 'id', op: 'is_null', value: { const: 1 } }], 'a value for is_null'],
    [[{ table: 'public.orders', column: 'id', op: '=', value: { principal: 'roles' } }], 'a list attribute with ='],
  ];
  for (const [value, why] of bad) {
    const e = refusalOf(() => parseRowFilters(value));
    t.equal(e.denial.code, 'policy_error', `${why}: policy_error`);
    t.same(e.denial.reasons, ['sql.row_filter_invalid'], why);
  }
  const attr = refusalOf(() => parseRowFilters([{ table: 'public.orders', column: 'region', op: '=', value: { principal: 'region' } }]));
  t.same([attr.denial.code, attr.denial.reasons], ['policy_error', ['sql.row_filter_attribute']], 'an attribute principals do not carry');
  const empty = refusalOf(() =>
    applyRowFilters('SELECT id FROM orders', [], parseRowFilters([{ table: 'public.orders', column: 'id', op: '=', value: { principal: 'tier' } }]), {
      ...PRINCIPAL,
      tier: '',
    }),
  );
  t.same([empty.denial.code, empty.denial.reasons], ['policy_error', ['sql.row_filter_attribute']], 'an attribute this principal lacks');
  const sample = refusalOf(() => applyRowFilters('SELECT id FROM orders TABLESAMPLE bernoulli (50)', [], FILTERS, PRINCIPAL));
  t.same([sample.denial.code, sample.denial.reasons], ['sql_rejected', ['sql.row_filter_unsupported']], 'TABLESAMPLE on a filtered table cannot be wrapped');
  t.equal(applyRowFilters('SELECT id FROM users TABLESAMPLE bernoulli (50)', [], FILTERS, PRINCIPAL), null, 'TABLESAMPLE elsewhere is untouched');
  for (const code of Object.keys(ROW_FILTER_REASON_CODES)) t.notOk(Object.hasOwn(SQL_REASON_CODES, code), `${code} is registered once`);
});

// ---------------------------------------------------------------------------------------------
// query_database: the tool reads the obligation from the decision

const env = () =>
  ({
    config: {
      database: { max_rows: 1000, max_result_bytes: 1 << 20, statement_timeout_ms: 3000, lock_timeout_ms: 500, max_sql_bytes: 16384, default_schema: 'public' },
    },
    database: real,
  }) as unknown as ToolEnv;

/** A call as the gate hands it over: analysed by the tool itself, with the policy's obligations. */
async function authorised(sql: string, params: Param[], obligations: Record<string, unknown>, principal: RowFilterPrincipal = PRINCIPAL) {
  const base = { tool: 'query_database', args: { sql, params }, principal, context: { signal: new AbortController().signal } };
  const a = await queryDatabaseTool.analyse(base as never, env());
  return {
    ...base,
    facts: a.facts,
    pinned: a.pinned,
    decision: { allow: true, reasons: [], obligations },
    caps: { timeoutMs: 3000, maxBytes: 1 << 20, redactColumns: [] },
  } as unknown as Authorised<{ sql: string; params: Param[] }>;
}

const run = async (call: Authorised<{ sql: string; params: Param[] }>) =>
  queryDatabaseTool.execute(call as never, env()).then(
    (r) => ({ ok: r, err: undefined }),
    (err: unknown) => ({ ok: undefined, err: err as DenialError }),
  );

t.test('query_database applies the row_filters obligation and records both text hashes', async (t) => {
  const sql = 'SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > $1';
  const call = await authorised(sql, [0], { row_filters: SHIPPED_FILTERS });
  const { ok } = await run(call);
  const want = await oracle.query(sql, [0], CAPS);
  t.same(sorted(ok!.structured.rows as Row[]), sorted(want.rows), 'the answer is the filtered one');
  const facts = (call.facts as { sql: { row_filters?: Record<string, unknown> } }).sql.row_filters;
  t.same(facts?.tables, ['public.customers', 'public.orders']);
  t.equal(facts?.references, 2);
  t.equal(facts?.text_sha256, crypto.createHash('sha256').update(sql).digest('hex'), 'the analysed text hash');
  t.not(facts?.executed_sha256, facts?.text_sha256, 'and the executed one differs');

  const plain = await authorised('SELECT count(*)::int AS n FROM orders', [], {});
  t.same((await run(plain)).ok?.structured.rows, [{ n: 200 }], 'without the obligation nothing is filtered');
  t.notOk((plain.facts as { sql: { row_filters?: unknown } }).sql.row_filters, 'and nothing is recorded');

  const missing = await authorised('SELECT id FROM orders', [], {
    row_filters: [{ table: 'public.orders', column: 'region', op: '=', value: { const: 'north' } }],
  });
  const e = (await run(missing)).err;
  t.equal(e?.denial.code, 'policy_error', 'a filter column the table lacks: policy_error');
  t.same(e?.denial.reasons, ['sql.row_filter_column']);
  t.notMatch(JSON.stringify(e?.denial ?? {}), /north/, 'the denial carries no filter value');

  const malformed = await authorised('SELECT id FROM users', [], { row_filters: [{ invalid: 'row_filters of a role is not a list' }] });
  t.same(
    (await run(malformed)).err?.denial.reasons,
    ['sql.row_filter_invalid'],
    "the policy's marker for an unreadable entry refuses even a query on another table",
  );

  const cost = await authorised('SELECT id FROM orders', [], { row_filters: SHIPPED_FILTERS, max_plan_cost: 1e9 });
  await run(cost);
  t.ok((cost.facts as { sql: { plan?: { plan_rows: number } } }).sql.plan, 'the cost gate explains the executed (filtered) text');
});

// ---------------------------------------------------------------------------------------------
// Through the whole gate: the policy (policy.wasm) emits the obligation for the customer role

t.test('through the gate with the shipped example rule (customer role added the way an operator would)', async (t) => {
  const data = structuredClone(DATA);
  data.bulwark.roles.customer = { tools: ['describe_table', 'list_tables', 'query_database'] };
  data.bulwark.database.tables.customer = ['public.customers', 'public.orders', 'public.users'];
  const box: Sandbox = makeSandbox({
    database: { url: db.readerUrl, statement_timeout_ms: 3000 },
    principals: { stdio: { id: '7', roles: ['customer'], tier: 'local' } },
  });
  const dataPath = path.join(box.dir, 'policy-data.json');
  fs.writeFileSync(dataPath, JSON.stringify(data));
  fs.appendFileSync(box.configPath, `policy:\n  data: ${JSON.stringify(dataPath)}\n`);
  const gate: InProcessGate = await inProcessGate(box.configPath);
  t.teardown(async () => {
    await gate.close();
    box.cleanup();
  });
  for (const [sql, params = []] of SHAPES.filter(([s]) => !/orders_v/.test(s))) {
    const o = await gate.call('query_database', { sql, params });
    const want = await oracle.query(sql, params, CAPS);
    t.same(sorted((o.result?.structured.rows as Row[]) ?? []), sorted(want.rows), `gate: ${sql} (${o.status} ${o.denial?.reasons.join(',') ?? ''})`);
  }
  const view = await gate.call('query_database', { sql: 'SELECT id FROM orders_v', params: [] });
  t.same([view.denial?.code, view.denial?.reasons], ['policy_denied', ['sql.table_not_allowed']], 'the view over orders is not in the role’s table list');
  const records = readAudit(box.auditPath).filter((r) => r.tool === 'query_database' && r.facts?.sql?.row_filters);
  t.ok(records.length >= SHAPES.length - 2, `${records.length} records carry the applied filters`);
  const first = records.find((r) => r.facts.sql.row_filters.tables.includes('public.orders'));
  t.match(first?.facts.sql.row_filters, { references: Number, text_sha256: /^[0-9a-f]{64}$/, executed_sha256: /^[0-9a-f]{64}$/ });
});

t.test('the embedded PGlite executor gets the same rewrite', async (t) => {
  // Two embedded gates over the same deterministic demo seed: the customer's answer must equal an
  // unfiltered role's answer to the same question with the filter written out by hand.
  const data = structuredClone(DATA);
  data.bulwark.roles.customer = { tools: ['query_database'] };
  data.bulwark.database.tables.customer = ['public.customers', 'public.orders', 'public.order_items'];
  const mk = (id: string, roles: string[]) => {
    // Generous times: the embedded database seeds itself on the first query, on a loaded machine.
    const box = makeSandbox({
      execution: { timeout_ms: 60_000 },
      database: { statement_timeout_ms: 30_000 },
      principals: { stdio: { id, roles, tier: 'local' } },
    });
    const dataPath = path.join(box.dir, 'policy-data.json');
    fs.writeFileSync(dataPath, JSON.stringify(data));
    fs.appendFileSync(box.configPath, `policy:\n  data: ${JSON.stringify(dataPath)}\n`);
    return box;
  };
  const cBox = mk('7', ['customer']);
  const aBox = mk('root', ['admin']); // no redactions: the truth may use whole rows
  const customer = await inProcessGate(cBox.configPath);
  const analyst = await inProcessGate(aBox.configPath);
  t.teardown(async () => {
    await customer.close();
    await analyst.close();
    cBox.cleanup();
    aBox.cleanup();
  });
  // The first query starts each embedded database (seeded on start): warm both before comparing.
  for (const g of [customer, analyst]) {
    const warm = await g.call('query_database', { sql: 'SELECT count(*)::int AS n FROM customers', params: [] });
    t.equal(warm.status, 'ok', `the embedded database starts (${warm.denial?.reasons.join(',') ?? ''})`);
  }
  const allowed = "customer_id = 7 AND status <> 'refunded'";
  const pairs: [string, string][] = [
    ['SELECT id FROM orders', `SELECT id FROM orders WHERE ${allowed}`],
    ['TABLE orders', `SELECT * FROM orders WHERE ${allowed}`],
    ['SELECT count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id', `SELECT count(*) AS n FROM orders o WHERE ${allowed}`],
    ['SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = customers.id)', 'SELECT 7 AS id'],
    [
      'WITH x AS (SELECT * FROM orders) SELECT sum(i.quantity) AS q FROM x JOIN order_items i ON i.order_id = x.id',
      `SELECT sum(i.quantity) AS q FROM orders x JOIN order_items i ON i.order_id = x.id WHERE ${allowed.replace(/customer_id|status/g, 'x.$&')}`,
    ],
    ['SELECT id FROM orders UNION SELECT id FROM orders WHERE status = $1', `SELECT id FROM orders WHERE ${allowed}`],
    ['SELECT row_to_json(o) AS j FROM orders o', `SELECT row_to_json(o) AS j FROM orders o WHERE ${allowed}`],
  ];
  for (const [sql, truthSql] of pairs) {
    const params = sql.includes('$1') ? ['refunded'] : [];
    const got = await customer.call('query_database', { sql, params });
    const want = await analyst.call('query_database', { sql: truthSql, params: [] });
    t.equal(want.status, 'ok', `truth: ${truthSql}`);
    t.same(sorted((got.result?.structured.rows as Row[]) ?? []), sorted((want.result?.structured.rows as Row[]) ?? []), `embedded: ${sql} (${got.status})`);
  }
  const unfiltered = await analyst.call('query_database', { sql: 'SELECT count(*)::int AS n FROM orders', params: [] });
  t.ok((unfiltered.result?.structured.rows as Row[])[0]!.n === 400, 'the demo has 400 orders; the customer sees only its own');
});
