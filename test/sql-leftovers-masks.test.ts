/**
 * Masks over column lineage (issue 13 items 1-2), against a real PostgreSQL and the embedded PGlite
 * through the gate with the `analyst` role (email, phone, ssn redacted: mask, no predicates), with
 * columns resolved against each database's catalog: no shape below may return a real email or
 * anything derived from one, in rows or in error text; a bare copy (renamed or not, through
 * subqueries, CTEs, UNION ALL) is masked, anything computed from it or compared on it refused;
 * plain analytics keep working with exact results.
 */
import t from 'tap';
import postgres from 'postgres';
import { makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
let analyst: InProcessGate;
let box: Sandbox;

t.before(async () => {
  db = await createTestDatabase();
  box = makeSandbox({ database: { url: db.readerUrl, statement_timeout_ms: 3000 }, principals: { stdio: { id: 'ann', roles: ['analyst'], tier: 'local' } } });
  analyst = await inProcessGate(box.configPath);
});
t.teardown(async () => {
  await analyst?.close();
  await db?.drop();
  box?.cleanup();
});

const q = (sql: string, params: unknown[] = []) => analyst.call('query_database', { sql, params });
// Every seeded email is user<N>@example.com or c<N>@example.com; "example" is in nothing else.
const LEAK = /example|moc\.elpmaxe|@ex/i;

const ATTACKS: [string, unknown[]?][] = [
  ['SELECT name, email AS contact FROM customers'],
  ['SELECT name, email AS "EMAIL2" FROM customers'],
  ['SELECT lower(email) FROM customers'],
  ['SELECT upper(email) AS email FROM customers'],
  ["SELECT email || '' AS email FROM customers"],
  ['SELECT email::int FROM customers'],
  ['SELECT CAST(email AS int) AS n FROM customers'],
  ['SELECT substr(email, 1, 3) AS email FROM customers'],
  ['SELECT left(email, 5) FROM customers'],
  ['SELECT reverse(email) AS r FROM customers'],
  ['SELECT md5(email) AS h FROM customers'],
  ['SELECT length(email) AS n FROM customers'],
  ["SELECT coalesce(email, 'x') AS email FROM customers"],
  ["SELECT CASE WHEN email LIKE 'c1%' THEN 1 ELSE 0 END AS b FROM customers"],
  ["SELECT nullif(email, '') AS email FROM customers"],
  ["SELECT greatest(email, 'a') AS email FROM customers"],
  ["SELECT string_agg(email, ',') AS all FROM customers"],
  ['SELECT array_agg(email) AS a FROM customers'],
  ['SELECT json_agg(email) AS a FROM customers'],
  ['SELECT max(email) AS email FROM customers'],
  ['SELECT first_value(email) OVER () AS email FROM customers'],
  ['SELECT lag(email) OVER (ORDER BY id) AS email FROM customers'],
  ['SELECT count(*) FROM customers WHERE email LIKE $1', ['c1%']],
  ['SELECT id FROM customers WHERE email = $1', ['c1@example.com']],
  ["SELECT id FROM customers WHERE email > 'c5'"],
  ['SELECT id FROM customers ORDER BY email'],
  ['SELECT email FROM customers ORDER BY 1'],
  ['SELECT region, count(*) FROM customers GROUP BY email, region'],
  ['SELECT DISTINCT email FROM customers'],
  ['SELECT c FROM customers c'],
  ['SELECT customers FROM customers'],
  ['SELECT row_to_json(c) AS j FROM customers c'],
  ['SELECT to_jsonb(c) AS j FROM customers c'],
  ['SELECT json_agg(c) AS j FROM customers c'],
  ['SELECT to_jsonb(c.*) AS j FROM customers c'],
  ['SELECT row(c.*)::text AS r FROM customers c'],
  ['SELECT c::text AS r FROM customers c'],
  ['SELECT * FROM customers c(a, b, d, e)'],
  ['SELECT * FROM (SELECT * FROM customers) s(a, b, d, e)'],
  ['WITH x(a, b, d, e) AS (SELECT * FROM customers) SELECT * FROM x'],
  ["SELECT 1 AS a, 'b' AS b, 'c' AS c, 'd' AS d UNION ALL SELECT * FROM customers"],
  ["SELECT id, name, region, '-' AS x FROM customers UNION ALL SELECT id, name, region, email FROM customers"],
  ['SELECT name FROM customers UNION SELECT email FROM customers'],
  ['SELECT x FROM (SELECT email AS x FROM customers) s'],
  ['WITH x AS (SELECT email AS e FROM customers) SELECT e FROM x'],
  ['SELECT email FROM (SELECT email FROM customers) s'],
  ['SELECT (SELECT email FROM customers LIMIT 1) AS email'],
  ["SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM customers c2 WHERE c2.email LIKE 'c1%')"],
  ['SELECT n.x FROM customers c, LATERAL (SELECT c.email AS x) n'],
  ['SELECT s FROM (SELECT * FROM customers) s'],
  ['SELECT row_to_json(s) AS j FROM (SELECT * FROM customers) s'],
  ['WITH x AS (SELECT * FROM customers) SELECT json_agg(x) AS j FROM x'],
  ['SELECT u.name FROM users u JOIN customers c USING (email)'],
  ['SELECT name FROM users NATURAL JOIN customers'],
  ['SELECT "EMAIL" FROM customers'],
  ['SELECT Email AS contact FROM customers'],
  ['SELECT c."email" AS x FROM customers c'],
  ['SELECT public.customers.email AS x FROM public.customers'],
  ['VALUES ((SELECT email FROM customers WHERE id = 1))'],
  ['SELECT unnest(array[email]) AS x FROM customers'],
  ["SELECT jsonb_build_object('e', email) AS j FROM customers"],
  ["SELECT format('%s', email) AS f FROM customers"],
  ["SELECT regexp_replace(email, '@', ' at ') AS e FROM customers"],
  ['SELECT email FROM customers GROUP BY 1'],
  ['SELECT name, email FROM customers WHERE email IS NOT NULL'],
  ["SELECT name FROM users WHERE phone = '1'"],
  ['SELECT * FROM customers ORDER BY 4'],
  ['SELECT id FROM (SELECT * FROM customers ORDER BY 4) s'],
  ['SELECT count(*) FROM (SELECT DISTINCT * FROM customers) s'],
  ['SELECT id, row_number() OVER (ORDER BY email) AS r FROM customers'],
  // Lineage through renames, joins, set operations and functions in FROM.
  ['SELECT e FROM customers c(a, b, d, e)'],
  ['SELECT t.email FROM (TABLE customers) t'],
  ['SELECT x.email FROM customers x JOIN orders o ON o.customer_id = x.id'],
  ['SELECT email FROM customers UNION ALL SELECT email FROM customers'],
  ['SELECT email FROM customers INTERSECT SELECT email FROM customers'],
  ['SELECT email FROM customers EXCEPT SELECT name FROM customers'],
  ['WITH RECURSIVE r(e, n) AS (SELECT email, 1 FROM customers UNION ALL SELECT e, n + 1 FROM r WHERE n < 2) SELECT e FROM r'],
  ['SELECT value FROM customers c, jsonb_each_text(to_jsonb(c))'],
  ['SELECT key, value FROM customers c, json_each(row_to_json(c)) AS k'],
  ['SELECT u FROM customers c, unnest(array[c.email]) u'],
  ['SELECT count(DISTINCT email) AS n FROM customers'],
  ['SELECT count(email) AS n FROM customers'],
  ['SELECT id FROM customers c WHERE c.* IS NOT NULL'],
  ["SELECT id FROM customers GROUP BY id HAVING max(email) > 'c'"],
  ['SELECT email FROM customers LIMIT (SELECT length(max(email)) FROM customers)'],
  ['SELECT email AS region FROM customers ORDER BY region'],
  ['SELECT email, count(*) OVER (PARTITION BY email) AS n FROM customers'],
  ['SELECT "customers"."email" FROM "customers"'],
  ['SELECT CUSTOMERS.EMAIL AS x FROM Customers'],
  ['SELECT * FROM customers NATURAL JOIN customers c2'],
  ['SELECT m.email FROM (SELECT * FROM customers ORDER BY id) m'],
  ['SELECT c.email FROM customers c WHERE EXISTS (SELECT 1 FROM customers d WHERE d.email = c.email)'],
  ["SELECT email FROM customers WHERE id IN (SELECT id FROM customers WHERE email LIKE 'c1%')"],
  ['SELECT ARRAY(SELECT email FROM customers) AS a'],
  ['SELECT c.id FROM customers c JOIN customers d ON d.email = c.email'],
  ['SELECT email FROM customers FETCH FIRST 2 ROWS ONLY'],
  ['SELECT s.email FROM customers s TABLESAMPLE BERNOULLI (100)'],
  ['SELECT j.* FROM (customers c JOIN orders o ON o.customer_id = c.id) AS j(i, n, r, e)'],
  ['SELECT c.email FROM orders o, LATERAL (SELECT * FROM customers WHERE id = o.customer_id) c'],
  ["SELECT 'x' AS email, name FROM customers WHERE email IS NULL"],
];

t.test('no shape returns a real email or anything derived from one', async (t) => {
  t.ok(ATTACKS.length >= 60, `${ATTACKS.length} shapes`);
  for (const [sql, params] of ATTACKS) {
    const o = await q(sql, params ?? []);
    const text = JSON.stringify({ result: o.result?.structured ?? null, denial: o.denial ?? null });
    t.notMatch(text, LEAK, `${sql}: nothing of an email comes back (${o.status} ${o.denial?.reasons.join(',') ?? ''})`);
    if (o.status === 'ok') {
      // Allowed only as a bare copy that the mask covers.
      t.ok((o.result?.structured.redacted_columns as string[]).length > 0 || !/email/i.test(sql), `${sql}: ran only because it was masked`);
    } else {
      t.equal(
        o.denial?.code === 'sql_rejected' || o.denial?.code === 'policy_denied' || o.denial?.code === 'tool_error',
        true,
        `${sql}: refused with a typed code (${o.denial?.code})`,
      );
    }
  }
  const recs = readAudit(analyst.app.deps.config.audit.path).filter((r) => r.tool === 'query_database');
  t.notMatch(JSON.stringify(recs.map((r) => r.outcome)), LEAK, 'no email in the recorded outcomes');
  const maskReasons = ['sql.masked_column_use', 'sql.column_in_predicate'];
  const masked = recs.filter((r) => (r.outcome?.reasons ?? []).some((x: string) => maskReasons.includes(x)));
  t.ok(masked.length >= 50, `${masked.length} refusals recorded with a mask reason`);
  const contact = recs.find((r) => r.args?.sql === 'SELECT name, email AS contact FROM customers');
  t.same(contact?.facts.sql.masks, { masked: ['public.customers.email'], used: [] }, 'a renamed bare copy is masked, and the record says which column');
  t.same(contact?.facts.sql.lineage.outputs[1], { name: 'contact', columns: ['public.customers.email'], copy: true }, 'the lineage the policy saw');
  const whole = recs.find((r) => r.args?.sql === 'SELECT c FROM customers c');
  t.same(whole?.facts.sql.masks, { refused: ['public.customers.email'] }, 'a whole-row reference derives from the masked column');
  const where = recs.find((r) => r.args?.sql === 'SELECT id FROM customers WHERE email = $1');
  t.same(where?.outcome.reasons, ['sql.column_in_predicate']);
  const named = await q('SELECT id FROM customers WHERE email = $1', ['c1@example.com']);
  t.match(named.denial?.message ?? '', /public\.customers\.email/, 'the reason names the column');
  t.same(named.denial?.detail?.columns, ['public.customers.email']);
});

t.test('bare copies are masked; legitimate analytics keep exact results', async (t) => {
  const bare = await q('SELECT id, name, email FROM customers ORDER BY id LIMIT 2');
  t.same(bare.result?.structured.rows, [
    { id: 1, name: 'customer1', email: '[REDACTED]' },
    { id: 2, name: 'customer2', email: '[REDACTED]' },
  ]);
  const rec = readAudit(analyst.app.deps.config.audit.path).find((r) => r.request_id === bare.requestId);
  t.same(rec?.facts.sql.masks, { masked: ['public.customers.email'], used: [] }, 'the record names the columns masked in the result');
  const qualified = await q('SELECT c.id, c.email FROM customers c WHERE c.id = 3');
  t.same(qualified.result?.structured.rows, [{ id: 3, email: '[REDACTED]' }]);
  const star = await q('SELECT * FROM customers WHERE id = 4');
  t.same(star.result?.structured.rows, [{ id: 4, name: 'customer4', region: 'north', email: '[REDACTED]' }]);
  const table = await q('TABLE customers');
  t.ok((table.result?.structured.rows as { email: string }[]).every((r) => r.email === '[REDACTED]'));
  const cteStar = await q('WITH x AS (SELECT * FROM customers) SELECT id, email FROM x WHERE id = 5');
  t.same(cteStar.result?.structured.rows, [{ id: 5, email: '[REDACTED]' }], 'a star in a CTE keeps the names; the outer bare copy is masked');
  // The expected revenue, computed directly on the server as the superuser (not through the gate).
  const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  const [rev] = await admin`select sum(o.total)::text as r from orders o join customers c on c.id = o.customer_id where c.region = 'north'`;
  await admin.end();
  const legit: [string, unknown[]][] = [
    [
      'SELECT region, count(*)::int AS n FROM customers GROUP BY region ORDER BY region',
      [
        { region: 'east', n: 5 },
        { region: 'north', n: 5 },
        { region: 'south', n: 5 },
        { region: 'west', n: 5 },
      ],
    ],
    [
      'SELECT c.region, sum(o.total)::text AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.region = $1 GROUP BY c.region',
      [{ region: 'north', revenue: rev!.r }],
    ],
    ['SELECT count(*)::int AS n FROM (SELECT * FROM customers) s', [{ n: 20 }]],
    [
      'SELECT jsonb_agg(t ORDER BY t.id) AS j FROM (SELECT id, region FROM customers WHERE id <= 2) t',
      [
        {
          j: [
            { id: 1, region: 'south' },
            { id: 2, region: 'east' },
          ],
        },
      ],
    ],
    [
      "SELECT d::date::text AS day FROM generate_series(timestamp '2024-01-01', timestamp '2024-01-02', interval '1 day') d",
      [{ day: '2024-01-01' }, { day: '2024-01-02' }],
    ],
  ];
  for (const [sql, rows] of legit) {
    const o = await q(sql, sql.includes('$1') ? ['north'] : []);
    t.equal(o.status, 'ok', `${sql}: ok (${o.denial?.message ?? ''})`);
    t.same(o.result?.structured.rows, rows, `${sql}: exact result`);
  }
});

t.test('a database error on a query that reads masked columns withholds the server text', async (t) => {
  // A bare email copy with an error elsewhere: the server's message could quote values.
  const o = await q('SELECT email, 1 / (id - id) AS boom FROM customers');
  t.equal(o.denial?.code, 'tool_error');
  t.same(o.denial?.reasons, ['db.query_error']);
  t.match(o.denial?.message ?? '', /message is withheld/);
  t.equal(o.denial?.detail?.sqlstate, '22012', 'the SQLSTATE is kept');
});

t.test('the same shapes on the embedded PGlite demo database leak nothing either', async (t) => {
  const sb = makeSandbox({ database: { statement_timeout_ms: 5000 }, principals: { stdio: { id: 'ann', roles: ['analyst'], tier: 'local' } } });
  const embedded = await inProcessGate(sb.configPath);
  t.teardown(async () => {
    await embedded.close();
    sb.cleanup();
  });
  // The embedded database's worker boots (and seeds) on first use; on a loaded machine that can
  // outlast one call's deadline, which is not what this test is about: wait for it first.
  for (let i = 0; i < 6 && (await embedded.call('list_tables', {})).status !== 'ok'; i++);
  const warm = await embedded.call('query_database', { sql: 'SELECT id, email FROM customers ORDER BY id LIMIT 1', params: [] });
  t.same(
    warm.result?.structured.rows,
    [{ id: 1, email: '[REDACTED]' }],
    `the demo has customers with emails, masked as a bare copy (${warm.denial?.message ?? ''})`,
  );
  // Shapes over the demo's tables only (it has no users table and no phone column).
  const shapes = ATTACKS.filter(([sql]) => !/\busers\b|phone/.test(sql));
  t.ok(shapes.length >= 55, `${shapes.length} shapes`);
  let refused = 0;
  for (const [sql, params] of shapes) {
    const o = await embedded.call('query_database', { sql, params: params ?? [] });
    t.notMatch(JSON.stringify({ result: o.result?.structured ?? null, denial: o.denial ?? null }), LEAK, `embedded: ${sql}`);
    if (o.denial?.reasons.some((r) => r === 'sql.masked_column_use' || r === 'sql.column_in_predicate')) refused++;
  }
  t.ok(refused >= 50, `${refused} refused by the masks before reaching PGlite`);
});
