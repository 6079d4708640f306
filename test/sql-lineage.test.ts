/**
 * Column lineage (issue 13 item 1) and masks as policy over it (item 2).
 *
 * - lineageOf over libpg-query's tree with a fixed catalog: copies and derived values through
 *   aliases, renames, joins (USING, NATURAL), LATERAL, CTEs (recursive too), set operations,
 *   functions in FROM, whole rows; predicate uses; unqualified names resolved against the catalog;
 *   ambiguous and unknown references refused.
 * - planMasks: mask / allow / refuse and predicates, and redact_columns as the simple form.
 * - Through the gate on a real PostgreSQL: the policy's column_rules (policies/sql_columns.rego)
 *   from the data, the catalog read from pg_catalog (refreshed on a miss and on describe_table),
 *   queries the name-based first step refused (a star in an expression on a table without masked
 *   columns) now run with exact results, and row filters with masks together.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import postgres from 'postgres';
import { parseSync } from 'libpg-query';
import { analyseSql, initSqlAnalysis, SQL_REASON_CODES } from '../src/analysis/sql.js';
import { LINEAGE_REASON_CODES, lineageOf, staticCatalog, type Lineage } from '../src/analysis/sql-lineage.js';
import { checkMaskPlacement, MASK_REASON_CODES, parseColumnRules, planMasks } from '../src/analysis/sql-masks.js';
import { ROW_FILTER_REASON_CODES } from '../src/analysis/sql-row-filter.js';
import { DenialError } from '../src/core/denial.js';
import { makeSandbox, readAudit, ROOT, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const CATALOG = staticCatalog({
  'public.customers': ['id', 'name', 'region', 'email'],
  'public.orders': ['id', 'customer_id', 'total', 'created_at', 'status'],
  'public.users': ['id', 'name', 'nickname', 'email', 'deleted'],
  'analytics.events': ['id', 'user_id'],
  'pg_catalog.pg_class': [],
});

const E = 'public.customers.email';

function lin(sql: string): Lineage {
  return lineageOf(analyseSql(sql).stmt, CATALOG, 'public');
}

function refusal(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof DenialError) return [err.denial.code, ...err.denial.reasons];
    throw err;
  }
  return ['no refusal'];
}

t.before(async () => {
  await initSqlAnalysis();
});

t.test('lineage: copies, derived values and uses', async (t) => {
  const cases: [string, Lineage][] = [
    ['SELECT email FROM customers', { outputs: [{ name: 'email', columns: [E], copy: true }], used: [] }],
    ['SELECT email AS contact FROM customers', { outputs: [{ name: 'contact', columns: [E], copy: true }], used: [] }],
    ['SELECT lower(email) FROM customers', { outputs: [{ name: 'lower', columns: [E], copy: false }], used: [] }],
    ['SELECT email::int FROM customers', { outputs: [{ name: 'email', columns: [E], copy: false }], used: [] }],
    ['SELECT e FROM customers c(a, b, d, e)', { outputs: [{ name: 'e', columns: [E], copy: true }], used: [] }],
    ['SELECT x FROM (SELECT email AS x FROM customers) s', { outputs: [{ name: 'x', columns: [E], copy: true }], used: [] }],
    ['WITH w AS (SELECT * FROM customers) SELECT w.email FROM w', { outputs: [{ name: 'email', columns: [E], copy: true }], used: [] }],
    ['SELECT n.x FROM customers c, LATERAL (SELECT c.email AS x) n', { outputs: [{ name: 'x', columns: [E], copy: true }], used: [] }],
    [
      'SELECT email FROM customers UNION ALL SELECT email FROM users',
      { outputs: [{ name: 'email', columns: [E, 'public.users.email'], copy: true }], used: [] },
    ],
    [
      'SELECT email FROM customers UNION SELECT name FROM users',
      { outputs: [{ name: 'email', columns: [E, 'public.users.name'], copy: true }], used: [E, 'public.users.name'] },
    ],
    [
      'SELECT c FROM customers c',
      { outputs: [{ name: 'c', columns: [E, 'public.customers.id', 'public.customers.name', 'public.customers.region'], copy: false }], used: [] },
    ],
    [
      'SELECT total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE region = $1',
      {
        outputs: [{ name: 'total', columns: ['public.orders.total'], copy: true }],
        used: ['public.customers.id', 'public.customers.region', 'public.orders.customer_id'],
      },
    ],
    [
      'SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE customer_id = customers.id)',
      { outputs: [{ name: 'id', columns: ['public.customers.id'], copy: true }], used: ['public.customers.id', 'public.orders.customer_id'] },
    ],
    [
      'SELECT email AS region FROM customers ORDER BY region',
      { outputs: [{ name: 'region', columns: [E], copy: true }], used: [E, 'public.customers.region'] },
    ],
    [
      'SELECT region, count(*) FROM customers GROUP BY 1',
      {
        outputs: [
          { name: 'region', columns: ['public.customers.region'], copy: true },
          { name: 'count', columns: [], copy: false },
        ],
        used: ['public.customers.region'],
      },
    ],
    [
      'WITH RECURSIVE r(e, n) AS (SELECT email, 1 FROM customers UNION ALL SELECT e, n + 1 FROM r WHERE n < 2) SELECT e FROM r',
      { outputs: [{ name: 'e', columns: [E], copy: false }], used: [] },
    ],
    [
      'SELECT value FROM customers c, jsonb_each_text(to_jsonb(c))',
      { outputs: [{ name: 'value', columns: [E, 'public.customers.id', 'public.customers.name', 'public.customers.region'], copy: false }], used: [] },
    ],
    // The window's ordering shapes the value: it counts as a source too (an over-approximation).
    [
      'SELECT first_value(id) OVER (PARTITION BY email) AS f FROM customers',
      { outputs: [{ name: 'f', columns: [E, 'public.customers.id'], copy: false }], used: [E] },
    ],
    ['SELECT DISTINCT email FROM customers', { outputs: [{ name: 'email', columns: [E], copy: true }], used: [E] }],
    ['SELECT id FROM analytics.events', { outputs: [{ name: 'id', columns: ['analytics.events.id'], copy: true }], used: [] }],
    [
      'SELECT * FROM customers JOIN users USING (id)',
      {
        outputs: [
          { name: 'id', columns: ['public.customers.id'], copy: true },
          { name: 'name', columns: ['public.customers.name'], copy: true },
          { name: 'region', columns: ['public.customers.region'], copy: true },
          { name: 'email', columns: [E], copy: true },
          { name: 'name', columns: ['public.users.name'], copy: true },
          { name: 'nickname', columns: ['public.users.nickname'], copy: true },
          { name: 'email', columns: ['public.users.email'], copy: true },
          { name: 'deleted', columns: ['public.users.deleted'], copy: true },
        ],
        used: ['public.customers.id', 'public.users.id'],
      },
    ],
    [
      'VALUES (1, (SELECT email FROM customers LIMIT 1))',
      {
        outputs: [
          { name: 'column1', columns: [], copy: false },
          { name: 'column2', columns: [E], copy: false },
        ],
        used: [],
      },
    ],
  ];
  // Output names as PostgreSQL figures them decide what an outer name resolves to: COLLATE keeps
  // the column's name; a name that may be an unnamed column's also resolves further out (both count).
  cases.push(
    [
      'SELECT (SELECT email FROM (SELECT email COLLATE "C" FROM customers) s LIMIT 1) AS x FROM users',
      { outputs: [{ name: 'x', columns: [E], copy: false }], used: [] },
    ],
    ['SELECT (SELECT email FROM (SELECT 1 + 1) s) AS x FROM customers', { outputs: [{ name: 'x', columns: [E], copy: false }], used: [] }],
  );
  for (const [sql, want] of cases) t.same(lin(sql), want, sql);
});

t.test('lineage: unresolvable and ambiguous references refuse (fail closed)', async (t) => {
  t.same(
    refusal(() => lin('SELECT id FROM orders, customers')),
    ['sql_rejected', 'sql.column_ambiguous'],
    'id is in both',
  );
  t.same(
    refusal(() => lin('SELECT nope FROM customers')),
    ['sql_rejected', 'sql.column_unresolved'],
  );
  t.same(
    refusal(() => lin('SELECT "EMAIL" FROM customers')),
    ['sql_rejected', 'sql.column_unresolved'],
    'a quoted name is case-sensitive',
  );
  t.same(
    refusal(() => lin('SELECT id FROM ghosts')),
    ['sql_rejected', 'sql.catalog_unknown_table'],
  );
  t.same(
    refusal(() => lin('SELECT a FROM customers c(a, b, c, d, e)')),
    ['sql_rejected', 'sql.column_unresolved'],
    'more alias names than columns',
  );
  t.same(
    refusal(() => lin('WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT email FROM customers) SELECT * FROM a')),
    ['sql_rejected', 'sql.lineage_unsupported'],
    'a forward reference between recursive CTEs',
  );
  // Unqualified names resolve against the catalog: total exists only in orders.
  t.same(
    lin('SELECT total, region FROM orders o JOIN customers c ON c.id = o.customer_id').outputs.map((o) => o.columns),
    [['public.orders.total'], ['public.customers.region']],
  );
});

t.test('planMasks: mask, allow, refuse and predicates', async (t) => {
  const copy = lin('SELECT id, email AS contact FROM customers');
  t.same(planMasks(copy, new Map(), ['email']), { outputs: [{ index: 1, name: 'contact' }], masked: [E], used: [], touched: [E] }, 'redact_columns: mask');
  t.same(
    refusal(() => planMasks(lin('SELECT lower(email) FROM customers'), new Map(), ['email'])),
    ['sql_rejected', 'sql.masked_column_use'],
  );
  t.same(
    refusal(() => planMasks(lin("SELECT id FROM customers WHERE email LIKE 'a%'"), new Map(), ['email'])),
    ['sql_rejected', 'sql.column_in_predicate'],
  );
  const allow = parseColumnRules({ [E]: { action: 'allow', predicates: true } });
  t.same(planMasks(lin("SELECT lower(email) FROM customers WHERE email LIKE 'a%'"), allow, ['email']).used, [E], 'allow with predicates');
  const maskPred = parseColumnRules({ [E]: { action: 'mask', predicates: true } });
  t.same(planMasks(lin("SELECT email FROM customers WHERE email LIKE 'a%'"), maskPred, []).masked, [E], 'mask with predicates allowed');
  t.same(
    refusal(() => planMasks(lin('SELECT email FROM customers'), parseColumnRules({ [E]: { action: 'refuse' } }), [])),
    ['sql_rejected', 'sql.column_refused'],
  );
  t.same(
    planMasks(lin('SELECT id FROM customers'), parseColumnRules({ [E]: { action: 'refuse' } }), []).touched,
    [],
    'an untouched refused column is no matter',
  );
  for (const bad of [[], { email: { action: 'mask' } }, { [E]: { action: 'hide' } }, { [E]: { action: 'mask', predicates: 'yes' } }, { [E]: null }]) {
    t.same(
      refusal(() => parseColumnRules(bad)),
      ['policy_error', 'sql.column_rules_invalid'],
      JSON.stringify(bad),
    );
  }
  const plan = planMasks(copy, new Map(), ['email']);
  t.same(
    refusal(() => checkMaskPlacement(plan, 2, ['id'])),
    ['sql_rejected', 'sql.mask_mismatch'],
    'fewer result columns than outputs',
  );
  t.same(
    refusal(() => checkMaskPlacement(plan, 2, ['id', 'email'])),
    ['sql_rejected', 'sql.mask_mismatch'],
    'a masked output under another name',
  );
  checkMaskPlacement(plan, 2, ['id', 'contact']);
  const registries = [SQL_REASON_CODES, ROW_FILTER_REASON_CODES, LINEAGE_REASON_CODES, MASK_REASON_CODES].map((r) => Object.keys(r));
  const all = registries.flat();
  t.equal(new Set(all).size, all.length, 'every reason code is registered once');
});

// ---------------------------------------------------------------------------------------------
// Through the gate on a real PostgreSQL

const DATA = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: Record<string, any> };

let db: TestDatabase;
t.before(async () => {
  db = await createTestDatabase();
});
t.teardown(async () => {
  await db?.drop();
});

async function gateWith(t: Test, data: unknown, principal: Record<string, unknown>): Promise<{ gate: InProcessGate; box: Sandbox }> {
  const box = makeSandbox({ database: { url: db.readerUrl, statement_timeout_ms: 5000 }, principals: { stdio: { ...principal, tier: 'local' } } });
  const dataPath = path.join(box.dir, 'policy-data.json');
  fs.writeFileSync(dataPath, JSON.stringify(data));
  fs.appendFileSync(box.configPath, `policy:\n  data: ${JSON.stringify(dataPath)}\n`);
  const gate = await inProcessGate(box.configPath);
  t.teardown(async () => {
    await gate.close();
    box.cleanup();
  });
  return { gate, box };
}

t.test('the policy decides per column (column_rules in the data) over the lineage', async (t) => {
  const data = structuredClone(DATA);
  data.bulwark.database.column_rules = {
    analyst: { 'public.customers.email': { action: 'mask', predicates: true }, 'users.email': { action: 'allow' }, nickname: { action: 'refuse' } },
  };
  const { gate, box } = await gateWith(t, data, { id: 'ann', roles: ['analyst'] });
  const q = (sql: string, params: unknown[] = []) => gate.call('query_database', { sql, params });
  const masked = await q('SELECT id, email FROM customers WHERE email LIKE $1 ORDER BY id', ['c1%']);
  t.equal(masked.status, 'ok', `mask with predicates: the filter runs (${masked.denial?.message ?? ''})`);
  t.same(masked.result?.structured.rows, [
    { id: 1, email: '[REDACTED]' },
    { id: 10, email: '[REDACTED]' },
    { id: 11, email: '[REDACTED]' },
    { id: 12, email: '[REDACTED]' },
    { id: 13, email: '[REDACTED]' },
    { id: 14, email: '[REDACTED]' },
    { id: 15, email: '[REDACTED]' },
    { id: 16, email: '[REDACTED]' },
    { id: 17, email: '[REDACTED]' },
    { id: 18, email: '[REDACTED]' },
    { id: 19, email: '[REDACTED]' },
  ]);
  const rec = readAudit(gate.app.deps.config.audit.path).find((r) => r.request_id === masked.requestId);
  t.same(rec?.facts.sql.masks, { masked: [E], used: [E] }, 'the record names the masked and the used column');
  t.same(rec?.decision?.obligations?.column_rules, { [E]: { action: 'mask', predicates: true } }, 'the obligation as the policy gave it');
  t.same((await q('SELECT lower(email) AS l FROM customers')).denial?.reasons, ['sql.masked_column_use'], 'still no derived value');
  const allowed = await q('SELECT lower(email) AS l FROM users WHERE id = 1');
  t.same(allowed.result?.structured.rows, [{ l: 'user1@example.com' }], 'users.email is allowed for this role (table.column key)');
  t.same(
    (await q('SELECT id FROM users WHERE email = $1', ['user1@example.com'])).denial?.reasons,
    ['sql.column_in_predicate'],
    'allow, predicates default false',
  );
  const refused = await q('SELECT nickname FROM users');
  t.same([refused.denial?.code, refused.denial?.reasons], ['sql_rejected', ['sql.column_refused']]);
  t.same((await q('SELECT u FROM users u')).denial?.reasons, ['sql.column_refused'], 'a whole row carries the refused column');
  t.same((await q('SELECT id, name FROM users WHERE id = 3')).result?.structured.rows, [{ id: 3, name: 'user3' }], 'other columns are untouched');
  // phone/ssn of redact_columns are still masks (no such columns here); the simple form stays.
  void box;
});

t.test('queries the name-based step refused now run with exact results; unqualified names use the catalog', async (t) => {
  const { gate } = await gateWith(t, DATA, { id: 'ann', roles: ['analyst'] });
  const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  t.teardown(() => admin.end());
  const exact: [string, string][] = [
    ['SELECT to_jsonb(o) AS j FROM orders o ORDER BY o.id LIMIT 3', 'SELECT to_jsonb(o) AS j FROM orders o ORDER BY o.id LIMIT 3'],
    [
      'SELECT row_to_json(s)::text AS j FROM (SELECT id, region FROM customers) s ORDER BY 1 LIMIT 3',
      'SELECT row_to_json(s)::text AS j FROM (SELECT id, region FROM customers) s ORDER BY 1 LIMIT 3',
    ],
    ['SELECT count(*)::int AS n FROM (SELECT DISTINCT region FROM customers) s', 'SELECT count(*)::int AS n FROM (SELECT DISTINCT region FROM customers) s'],
    ['SELECT region, count(*)::int AS n FROM customers GROUP BY 1 ORDER BY 1', 'SELECT region, count(*)::int AS n FROM customers GROUP BY 1 ORDER BY 1'],
    ['SELECT * FROM orders ORDER BY 1 LIMIT 3', 'SELECT * FROM orders ORDER BY 1 LIMIT 3'],
    [
      'SELECT sum(total)::text AS s FROM orders JOIN customers ON customers.id = customer_id WHERE region = $1',
      "SELECT sum(total)::text AS s FROM orders JOIN customers ON customers.id = customer_id WHERE region = 'north'",
    ],
    [
      'SELECT name FROM customers NATURAL JOIN (SELECT id, region FROM customers) r ORDER BY id LIMIT 2',
      'SELECT name FROM customers NATURAL JOIN (SELECT id, region FROM customers) r ORDER BY id LIMIT 2',
    ],
    [
      'SELECT json_agg(c ORDER BY c.id)::text AS j FROM (SELECT id, name FROM customers WHERE id < 3) c',
      'SELECT json_agg(c ORDER BY c.id)::text AS j FROM (SELECT id, name FROM customers WHERE id < 3) c',
    ],
  ];
  for (const [sql, truth] of exact) {
    const o = await gate.call('query_database', { sql, params: sql.includes('$1') ? ['north'] : [] });
    const want = JSON.parse(JSON.stringify(await admin.unsafe(truth)));
    t.equal(o.status, 'ok', `${sql}: ok (${o.denial?.message ?? ''})`);
    t.same(JSON.parse(JSON.stringify(o.result?.structured.rows ?? null)), want, `${sql}: exact`);
  }
  const star = await gate.call('query_database', {
    sql: 'SELECT * FROM customers JOIN orders ON orders.customer_id = customers.id WHERE orders.id = 1',
    params: [],
  });
  t.equal((star.result?.structured.rows as Record<string, unknown>[])[0]?.email, '[REDACTED]', 'a star over a join masks the email');
  const none = await gate.call('query_database', { sql: 'SELECT id, email FROM customers WHERE id < 0', params: [] });
  t.same([none.status, none.result?.structured.rows], ['ok', []], 'an empty result with a masked column');
  const amb = await gate.call('query_database', { sql: 'SELECT id FROM orders, customers', params: [] });
  t.same([amb.denial?.code, amb.denial?.reasons], ['sql_rejected', ['sql.column_ambiguous']], 'ambiguous: refused before PostgreSQL sees it');
});

t.test('the catalog is read from the database, refreshed on a miss and on describe_table', async (t) => {
  const { gate } = await gateWith(t, DATA, { id: 'ann', roles: ['analyst'] });
  const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  t.teardown(() => admin.end());
  const first = await gate.call('query_database', { sql: 'SELECT count(*)::int AS n FROM customers', params: [] });
  t.same(first.result?.structured.rows, [{ n: 20 }]);
  const reader = new URL(db.readerUrl).username;
  await admin.unsafe(`CREATE TABLE late (id int, email text); INSERT INTO late VALUES (1, 'late@example.com'); GRANT SELECT ON late TO ${reader}`);
  const late = await gate.call('query_database', { sql: 'SELECT id, email FROM late', params: [] });
  t.same(
    late.result?.structured.rows,
    [{ id: 1, email: '[REDACTED]' }],
    `a table created after the catalog was read: refreshed on the miss (${late.denial?.message ?? ''})`,
  );
  await admin.unsafe('ALTER TABLE late ADD COLUMN note text');
  const stale = await gate.call('query_database', { sql: 'SELECT note FROM late', params: [] });
  t.same(stale.denial?.reasons, ['sql.column_unresolved'], 'a column added since: unknown to the cached catalog (fail closed)');
  const d = await gate.call('describe_table', { table: 'public.late' });
  t.equal(d.status, 'ok');
  const fresh = await gate.call('query_database', { sql: 'SELECT note FROM late', params: [] });
  t.same(fresh.result?.structured.rows, [{ note: null }], 'describe_table refreshed it');
});

t.test('row filters and masks together: lineage on the executed tree', async (t) => {
  const data = structuredClone(DATA);
  data.bulwark.roles.customer = { tools: ['describe_table', 'list_tables', 'query_database'] };
  data.bulwark.database.tables.customer = ['public.customers', 'public.orders'];
  data.bulwark.database.redact_columns.customer = ['email'];
  const { gate } = await gateWith(t, data, { id: '7', roles: ['customer'] });
  const o = await gate.call('query_database', {
    sql: 'SELECT c.id, c.email AS contact, o.id AS order_id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY 3 LIMIT 2',
    params: [],
  });
  t.equal(o.status, 'ok', o.denial?.message ?? '');
  t.ok(
    (o.result?.structured.rows as Record<string, unknown>[]).every((r) => r.id === 7 && r.contact === '[REDACTED]'),
    'only the principal’s rows, email masked',
  );
  const rec = readAudit(gate.app.deps.config.audit.path).find((r) => r.request_id === o.requestId);
  t.ok(rec?.facts.sql.row_filters, 'the filters were applied');
  t.same(rec?.facts.sql.masks, { masked: [E], used: [] });
  const leak = await gate.call('query_database', { sql: "SELECT count(*) FROM customers WHERE email LIKE 'c%'", params: [] });
  t.same(leak.denial?.reasons, ['sql.column_in_predicate'], 'the filter column is the policy’s; the user’s predicate on email is still refused');
});

t.test("output names and counts are PostgreSQL's own (checked with Describe on the real server)", async (t) => {
  const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  t.teardown(() => admin.end());
  const shapes = [
    'SELECT * FROM customers c(a, b, d, e)',
    'SELECT x.* FROM (SELECT email AS x, lower(name), name::text, region COLLATE "C", CASE WHEN id > 1 THEN 1 END, 1 + 1 FROM customers) x',
    'SELECT * FROM customers JOIN users USING (id, name)',
    'SELECT * FROM customers NATURAL JOIN (SELECT id, region FROM customers) r',
    'SELECT * FROM customers FULL JOIN users USING (email)',
    'SELECT j.* FROM (customers c JOIN orders o ON o.customer_id = c.id) AS j',
    'SELECT * FROM (SELECT coalesce(email, name), greatest(id, 1), nullif(region, $1), ARRAY[id], ROW(id), (SELECT max(total) FROM orders), ARRAY(SELECT 1), EXISTS (SELECT 1), current_date FROM customers) s',
    'WITH w(a) AS (SELECT email, id FROM customers) SELECT * FROM w',
    'SELECT * FROM generate_series(1, 2) g, unnest(ARRAY[1]) WITH ORDINALITY AS u',
    "SELECT * FROM customers c, jsonb_each(to_jsonb(c)), json_array_elements('[1]')",
    "SELECT * FROM json_to_record('{}') AS r(a int, b text)",
    'SELECT email FROM customers UNION ALL SELECT name FROM users',
    'VALUES (1, 2), (3, 4)',
    'TABLE orders',
    'SELECT (c).name, c.email::text, c FROM customers c',
    'SELECT id, email AS "Email", count(*) OVER (PARTITION BY region) FROM customers',
  ];
  for (const sql of shapes) {
    const described = await admin.unsafe(sql, sql.includes('$1') ? ['x'] : []).describe();
    const names = (described.columns ?? []).map((c: { name: string }) => c.name);
    // libpg-query's tree directly: the analyser's other rules (parser agreement, the function list)
    // refuse some of these shapes, but the names must be right whatever reaches lineage.
    const tree = parseSync(sql) as { stmts: { stmt: unknown }[] };
    const mine = refusal(() =>
      t.same(
        lineageOf(tree.stmts[0]?.stmt, CATALOG, 'public').outputs.map((o) => o.name),
        names,
        sql,
      ),
    );
    t.same(mine, ['no refusal'], `${sql}: analysed`);
  }
});
