/**
 * Issue 13, item 4, SQL side, against a real PostgreSQL through the gate and the policy:
 * - `TABLE t` is `SELECT * FROM t` (PostgreSQL's grammar makes it one): same facts and fingerprint,
 *   same table allow-list, same redaction;
 * - a bare VALUES list is allowed (it reads nothing); its expressions get every rule;
 * - a backslash inside a standard string is an ordinary character (standard_conforming_strings on):
 *   such queries run and return what PostgreSQL reads, and the facts the policy sees are that
 *   reading (the backslash-quote differential is still two statements, and a subquery behind a
 *   backslash string is decided by the table policy).
 */
import t from 'tap';
import { makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;
let gate: InProcessGate;
let analyst: InProcessGate;
const boxes: Sandbox[] = [];

t.before(async () => {
  db = await createTestDatabase();
  const dev = makeSandbox({ database: { url: db.readerUrl, statement_timeout_ms: 3000 } });
  const ann = makeSandbox({
    database: { url: db.readerUrl, statement_timeout_ms: 3000 },
    principals: { stdio: { id: 'ann', roles: ['analyst'], tier: 'local' } },
  });
  boxes.push(dev, ann);
  gate = await inProcessGate(dev.configPath);
  analyst = await inProcessGate(ann.configPath);
});
t.teardown(async () => {
  await gate?.close();
  await analyst?.close();
  await db?.drop();
  for (const b of boxes) b.cleanup();
});

const q = (g: InProcessGate, sql: string, params: unknown[] = []) => g.call('query_database', { sql, params });
const byId = (rows: unknown) => [...(rows as { id: number }[])].sort((a, b) => a.id - b.id);

t.test('TABLE t is SELECT * FROM t: rows, facts, fingerprint, allow-list and redaction', async (t) => {
  const table = await q(gate, 'TABLE users');
  const select = await q(gate, 'SELECT * FROM users');
  t.equal(table.status, 'ok');
  t.equal(table.result?.structured.row_count, 40);
  t.same(byId(table.result?.structured.rows), byId(select.result?.structured.rows), 'the same rows as SELECT *');
  t.equal(table.result?.structured.fingerprint, select.result?.structured.fingerprint, 'the same fingerprint: one tree');

  const audit = readAudit(gate.app.deps.config.audit.path).filter((r) => r.tool === 'query_database' && r.args?.sql === 'TABLE users');
  t.same(audit.at(-1)?.facts.sql.tables, ['public.users'], 'the record names the table');
  t.same(audit.at(-1)?.facts.sql.columns, ['*'], 'and the star');

  for (const sql of [
    'TABLE hr.salaries',
    'TABLE ONLY hr.salaries',
    'TABLE hr.salaries*',
    'SELECT 1 UNION ALL SELECT count(*) FROM (TABLE hr.salaries) s',
    'WITH x AS (TABLE hr.salaries) SELECT count(*) FROM x',
  ]) {
    const o = await q(gate, sql);
    t.equal(o.denial?.code, 'policy_denied', `${sql}: denied by the table allow-list`);
    t.ok(o.denial?.reasons.includes('sql.table_not_allowed'), `${sql}: sql.table_not_allowed`);
  }
  const catalog = await q(gate, 'TABLE pg_authid');
  t.same(catalog.denial?.reasons, ['sql.catalog_not_allowed'], 'a catalog by TABLE is refused like SELECT * FROM it');

  const red = await q(analyst, 'TABLE users');
  t.equal(red.status, 'ok');
  const rows = red.result?.structured.rows as { email: string }[];
  t.equal(rows.length, 40);
  t.ok(
    rows.every((r) => r.email === '[REDACTED]'),
    'the analyst gets email redacted through TABLE as through SELECT *',
  );
  t.same(red.result?.structured.redacted_columns, ['email']);
  t.notMatch(JSON.stringify(red.result), /@example\.com/, 'no email leaves the server');
  const other = await q(analyst, 'TABLE analytics.events');
  t.equal(other.denial?.code, 'policy_denied', 'analysts read public.* only, through TABLE too');
});

t.test('a bare VALUES list runs; its expressions get every rule', async (t) => {
  const v = await q(gate, "VALUES (1, 'a'), (2, 'b') ORDER BY 1 DESC");
  t.equal(v.status, 'ok');
  t.same(v.result?.structured.rows, [
    { column1: 2, column2: 'b' },
    { column1: 1, column2: 'a' },
  ]);
  const fn = await q(gate, 'VALUES (pg_sleep(1))');
  t.same(fn.denial?.reasons, ['sql.function_not_allowed']);
  const sub = await q(gate, 'VALUES ((SELECT max(salary) FROM hr.salaries))');
  t.equal(sub.denial?.code, 'policy_denied', 'a subquery inside VALUES is decided by the table allow-list');
  const ok = await q(gate, 'VALUES ((SELECT count(*) FROM orders))');
  t.same(ok.result?.structured.rows, [{ column1: '200' }]);
  const param = await q(gate, 'VALUES ($1::int + 1)', [41]);
  t.same(param.result?.structured.rows, [{ column1: 42 }]);
});

t.test("backslashes in standard strings: legitimate queries run with PostgreSQL's reading", async (t) => {
  const cases: [string, unknown[]][] = [
    ["SELECT 'a\\b' AS x", [{ x: 'a\\b' }]],
    ["SELECT 'x\\' AS a, 'y' AS b", [{ a: 'x\\', b: 'y' }]],
    ["SELECT length('\\\\') AS n", [{ n: 2 }]],
    ["SELECT name FROM users WHERE (name || '%') LIKE 'user7\\%'", [{ name: 'user7' }]],
    ["SELECT count(*)::int AS n FROM users WHERE name LIKE 'user1\\_'", [{ n: 0 }]],
    ["SELECT regexp_replace('a  b', '\\s+', ' ') AS r", [{ r: 'a b' }]],
    ["SELECT 'C:\\dir\\' || name AS p FROM users WHERE id = 3", [{ p: 'C:\\dir\\user3' }]],
    ["SELECT 'it''s \\' AS s", [{ s: "it's \\" }]],
  ];
  for (const [sql, rows] of cases) {
    const o = await q(gate, sql);
    t.equal(o.status, 'ok', `${sql}: ok (${o.denial?.reasons.join(',') ?? ''})`);
    t.same(o.result?.structured.rows, rows, `${sql}: PostgreSQL's result`);
  }
  const rec = readAudit(gate.app.deps.config.audit.path)
    .filter((r) => r.tool === 'query_database' && r.args?.sql === "SELECT 'x\\' AS a, 'y' AS b")
    .at(-1);
  t.equal(rec?.facts.sql.agreement, 'both', 'node-sql-parser agreed once the backslashes were neutralised');
});

t.test('backslash attacks are still refused, and the facts are what the server reads', async (t) => {
  const two = await q(gate, "SELECT '\\' ; DROP TABLE users; -- '");
  t.same(two.denial?.reasons, ['sql.multi_statement'], 'the backslash-quote differential is two statements to PostgreSQL');
  const hidden = await q(gate, "SELECT '\\' , (SELECT max(salary) FROM hr.salaries) -- '");
  t.equal(hidden.denial?.code, 'policy_denied', 'the subquery behind a backslash string is seen, and the table is denied');
  t.ok(hidden.denial?.reasons.includes('sql.table_not_allowed'));
  const fn = await q(gate, "SELECT '\\' , pg_sleep(5) -- '");
  t.same(fn.denial?.reasons, ['sql.function_not_allowed']);
  // Allowed table: the server reads a string and a subquery, exactly as the facts said.
  const read = await q(gate, "SELECT '\\' AS s, (SELECT count(*)::int FROM users) AS n -- '");
  t.equal(read.status, 'ok');
  t.same(read.result?.structured.rows, [{ s: '\\', n: 40 }]);
  // Still refused: E'' strings node-sql-parser cannot parse, a stray backslash, U& escapes.
  const e = await q(gate, "SELECT E'it\\'s' AS s FROM users");
  t.same(e.denial?.reasons, ['sql.parser_disagreement']);
  const u = await q(gate, "SELECT U&'\\0041' FROM users");
  t.same(u.denial?.reasons, ['sql.parser_disagreement']);
  const users = await q(gate, 'SELECT count(*)::int AS n FROM users');
  t.same(users.result?.structured.rows, [{ n: 40 }], 'users is intact');
});
