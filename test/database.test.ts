import t from 'tap';
import postgres from 'postgres';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { ATTACKS, LEGIT } from './sql-corpus.js';
import { PgExecutor } from '../src/tools/database/pg-executor.js';
import { sqlSessionSettings } from '../src/analysis/sql.js';
import { DenialError } from '../src/core/denial.js';

// Against a real PostgreSQL (started by `npm test`): the shipped SELECT-only role, the gate, the
// policy and the executor together.
let db: TestDatabase;
let gate: InProcessGate;
let canaryBefore: string;
const sb = makeSandbox();

async function canary(): Promise<string> {
  const a = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  const [r] = await a`select count(*)::int as n, md5(string_agg(id || ':' || v, ',' order by id)) as h from canary`;
  const [o] = await a`select count(*)::int as n from orders`;
  await a.end();
  return `${r!.n}/${r!.h}/${o!.n}`;
}

function withDb(extra: Record<string, unknown> = {}) {
  return makeSandbox({ database: { url: db.readerUrl, statement_timeout_ms: 1500, ...extra } });
}

t.before(async () => {
  db = await createTestDatabase();
  canaryBefore = await canary();
  const s = withDb();
  gate = await inProcessGate(s.configPath);
});
t.teardown(async () => {
  await gate?.close();
  await db?.drop();
  sb.cleanup();
});

const inSchema = (tables?: readonly string[]) => !tables || tables.every((x) => x.startsWith('public.') || x.startsWith('analytics.'));

t.test('legitimate analytical queries run and return rows', async (t) => {
  const runnable = LEGIT.filter((q) => inSchema(q.tables) && !/\$\d/.test(q.sql) && !/"Sales"/.test(q.sql));
  t.ok(runnable.length >= 25, `${runnable.length} legitimate queries`);
  for (const q of runnable) {
    const o = await gate.call('query_database', { sql: q.sql });
    t.equal(o.status, 'ok', `${q.name}: ${JSON.stringify(o.denial)}`);
  }
  const params = await gate.call('query_database', { sql: 'SELECT id, name FROM users WHERE id = $1', params: [7] });
  t.same(params.result?.structured.rows, [{ id: 7, name: 'user7' }]);
  const count = await gate.call('query_database', {
    sql: "SELECT count(*) FILTER (WHERE status = 'paid') AS paid, count(*) FILTER (WHERE status <> 'paid') AS unpaid FROM orders",
  });
  t.same(count.result?.structured.rows, [{ paid: '160', unpaid: '40' }], 'correct rows (count is bigint, returned as text)');
  const median = await gate.call('query_database', { sql: 'SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) AS m FROM sales' });
  t.same(median.result?.structured.rows, [{ m: 15.5 }]);
  const json = await gate.call('query_database', {
    sql: "SELECT payload->>'event' AS e FROM events WHERE payload->>'kind' = $1 ORDER BY id LIMIT 2",
    params: ['click'],
  });
  t.same(json.result?.structured.rows, [{ e: 'e2' }, { e: 'e4' }]);
  const fp = count.result?.structured.fingerprint as string;
  t.match(fp, /^sqlt1:[0-9a-f]{64}$/, 'a normalised query id comes back and is audited');
});

t.test('the attack corpus is refused and changes nothing', async (t) => {
  // Entries with analyser options test those options; the gate runs the configured defaults.
  const attacks = ATTACKS.filter((a) => !a.opts);
  t.ok(attacks.length >= 80, `${attacks.length} attacks`);
  for (const a of attacks) {
    const o = await gate.call('query_database', { sql: a.sql });
    t.not(o.status, 'ok', `${a.name} refused`);
    t.ok(
      o.denial && ['sql_rejected', 'invalid_input', 'policy_denied', 'unavailable'].includes(o.denial.code),
      `${a.name}: ${o.denial?.code} ${o.denial?.reasons}`,
    );
  }
  t.equal(await canary(), canaryBefore, 'canary table and orders unchanged');
  // Nothing leaked into the pool: settings, locks, open transactions.
  const probe = new PgExecutor({ url: db.readerUrl, maxConnections: 1, idleTimeoutS: 5, maxLifetimeS: 60, connectTimeoutS: 5, session: sqlSessionSettings() });
  const r = await probe.query(
    "select current_setting('search_path') as sp, current_setting('application_name') as app, (select count(*) from pg_locks where locktype = 'advisory')::int as advisory",
    [],
    { maxRows: 5, maxBytes: 1 << 20, timeoutMs: 2000, lockTimeoutMs: 500 },
  );
  await probe.close();
  t.same(r.rows, [{ sp: 'pg_catalog, public, pg_temp', app: 'bulwark', advisory: 0 }]);
  const a = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  const [idle] = await a`select count(*)::int as n from pg_stat_activity where datname = ${db.name} and state like 'idle in transaction%'`;
  await a.end();
  t.equal(idle!.n, 0, 'no session left idle in a transaction');
});

t.test('CPU bombs are stopped by the statement timeout; the server keeps serving', async (t) => {
  const o = await gate.call('query_database', { sql: 'SELECT count(*) FROM generate_series(1, 10000000000) g' });
  t.equal(o.denial?.code, 'timeout');
  t.ok(o.denial?.reasons.includes('db.statement_timeout'));
  const after = await gate.call('query_database', { sql: 'SELECT 1 AS one' });
  t.same(after.result?.structured.rows, [{ one: 1 }]);
});

t.test('parser DoS inputs are refused fast', async (t) => {
  for (const [label, sql] of [
    ['10 MB', `SELECT '${'x'.repeat(10 * 1024 * 1024)}'`],
    ['10,000 nested parentheses', `SELECT ${'('.repeat(10000)}1${')'.repeat(10000)}`],
  ] as const) {
    const t0 = performance.now();
    const o = await gate.call('query_database', { sql });
    t.ok(o.denial, `${label} refused: ${o.denial?.code}`);
    t.ok(performance.now() - t0 < 2000, `${label} refused in ${Math.round(performance.now() - t0)} ms`);
  }
});

t.test('caps: rows, and the policy: tables and redaction', async (t) => {
  const capped = await gate.call('query_database', { sql: 'SELECT id FROM orders ORDER BY id', max_rows: 5 });
  t.equal(capped.result?.structured.row_count, 5);
  t.equal(capped.result?.structured.truncated, true);
  t.equal(capped.result?.structured.truncated_reason, 'max_rows');
  const salaries = await gate.call('query_database', { sql: 'SELECT * FROM hr.salaries' });
  t.equal(salaries.denial?.code, 'policy_denied');
  t.ok(salaries.denial?.reasons.includes('sql.table_not_allowed'));

  const analystBox = makeSandbox({ database: { url: db.readerUrl }, principals: { stdio: { id: 'ann', roles: ['analyst'], tier: 'local' } } });
  const analyst = await inProcessGate(analystBox.configPath);
  t.teardown(() => analyst.close());
  const r = await analyst.call('query_database', { sql: 'SELECT id, name, email FROM users ORDER BY id LIMIT 2' });
  t.same(r.result?.structured.rows, [
    { id: 1, name: 'user1', email: '[REDACTED]' },
    { id: 2, name: 'user2', email: '[REDACTED]' },
  ]);
  t.same(r.result?.structured.redacted_columns, ['email']);
  const ae = await analyst.call('query_database', { sql: 'SELECT id FROM analytics.events' });
  t.equal(ae.denial?.code, 'policy_denied', 'analysts read public.* only');
});

t.test('list_tables and describe_table show only what the principal may read', async (t) => {
  const l = await gate.call('list_tables', {});
  const names = (l.result?.structured.tables as { schema: string; name: string }[]).map((x) => `${x.schema}.${x.name}`);
  t.ok(names.includes('public.orders') && names.includes('analytics.events'));
  t.notOk(names.includes('hr.salaries'), 'hr.salaries is hidden');
  t.notOk(
    names.some((n) => n.startsWith('Sales.')),
    'tables outside the grants are hidden',
  );
  // The policy's answer for every table is evidence: the record names what was hidden and why.
  const rec = readAudit(gate.app.deps.config.audit.path).find((r) => r.request_id === l.requestId);
  const answers = rec?.facts?.sql?.tables_filtered as { table: string; allow: boolean; reasons: string[] }[];
  t.equal(rec?.facts.sql.kind, 'list');
  const salaries = { table: 'hr.salaries', allow: false, reasons: ['sql.table_not_allowed'] };
  t.same(
    answers.find((a) => a.table === 'hr.salaries'),
    salaries,
    'hr.salaries: hidden by the policy, recorded',
  );
  t.same(
    answers.find((a) => a.table === 'public.orders'),
    { table: 'public.orders', allow: true, reasons: [] },
  );
  t.same(
    answers.filter((a) => a.allow).map((a) => a.table),
    names.map((n) => n.toLowerCase()),
    'the allowed answers are exactly the tables listed',
  );
  t.equal(rec?.facts.sql.tables_asked, answers.length);
  t.equal(rec?.facts.sql.tables_hidden, answers.length - names.length);
  t.ok(rec?.facts.sql.tables_hidden > 0);
  const d = await gate.call('describe_table', { table: 'public.orders' });
  const cols = d.result?.structured.columns as { name: string; type: string; nullable: boolean; default: string | null }[];
  t.same(
    cols.map((c) => c.name),
    ['id', 'customer_id', 'total', 'created_at', 'status'],
  );
  t.equal(cols.find((c) => c.name === 'total')?.type, 'numeric(10,2)');
  t.equal(cols.find((c) => c.name === 'status')?.default, "'paid'::text");
  t.ok((d.result?.structured.row_estimate as number) > 0);
  const hidden = await gate.call('describe_table', { table: 'hr.salaries' });
  t.equal(hidden.denial?.code, 'policy_denied');
});

t.test('defence in depth: with the analyser bypassed, the role and the protocol still refuse', async (t) => {
  const ex = new PgExecutor({ url: db.readerUrl, maxConnections: 1, idleTimeoutS: 5, maxLifetimeS: 60, connectTimeoutS: 5, session: sqlSessionSettings() });
  t.teardown(() => ex.close());
  const caps = { maxRows: 10, maxBytes: 1 << 20, timeoutMs: 3000, lockTimeoutMs: 500 };
  const fail = async (sql: string) =>
    ex.query(sql, [], caps).then(
      () => undefined,
      (e: unknown) => e,
    );
  const multi = await fail('SELECT 1; DELETE FROM canary');
  t.ok(multi, 'the extended protocol refuses two statements');
  for (const sql of [
    'SELECT pg_sleep(5)',
    "SELECT set_config('statement_timeout', '0', false)",
    'SELECT pg_advisory_lock(1)',
    'SELECT * FROM hr.salaries',
    'SELECT lo_creat(-1)',
  ]) {
    const e = await fail(sql);
    t.ok(e instanceof DenialError, `${sql} refused by the database`);
    t.match((e as DenialError).denial.reasons.join(','), /db\.permission_denied/, sql);
  }
  const write = await fail('WITH d AS (DELETE FROM canary RETURNING 1) SELECT count(*) FROM d');
  t.ok(write instanceof DenialError);
  t.equal(await canary(), canaryBefore);
});

t.test('every database call is audited with its facts', async (t) => {
  const o = await gate.call('query_database', { sql: 'SELECT count(*) FROM orders' });
  t.equal(o.status, 'ok');
  const recs = readAudit(gate.app.deps.config.audit.path).filter((r) => r.tool === 'query_database');
  const last = recs.at(-1)!;
  t.same(last.facts.sql.tables, ['public.orders']);
  t.match(last.facts.sql.fingerprint, /^sqlt1:/);
  t.equal(last.args.sql, 'SELECT count(*) FROM orders');
  t.ok(recs.some((r) => r.outcome.code === 'sql_rejected'));
});

t.test("doctor's role check: the shipped role passes, a superuser does not", async (t) => {
  for (const [url, clean] of [
    [db.readerUrl, true],
    [db.adminUrl, false],
  ] as const) {
    const ex = new PgExecutor({ url, maxConnections: 1, idleTimeoutS: 5, maxLifetimeS: 60, connectTimeoutS: 5, session: sqlSessionSettings() });
    const problems = await ex.roleProblems();
    await ex.close();
    if (clean) t.same(problems, [], 'sql/database-readonly-role.sql gives a SELECT-only role');
    else {
      t.ok(
        problems.some((p) => /superuser/.test(p)),
        problems.join('; '),
      );
      t.ok(problems.some((p) => /pg_sleep/.test(p)));
    }
  }
});

t.test('bulwark doctor reports the database role', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { BIN } = await import('./helpers/fixtures.js');
  const { cleanChildEnv } = await import('./helpers/child-env.js');
  for (const [url, ok] of [
    [db.readerUrl, true],
    [db.adminUrl, false],
  ] as const) {
    const box = makeSandbox({ database: { url } });
    const r = spawnSync(process.execPath, [BIN, 'doctor', '--config', box.configPath, '--json'], { encoding: 'utf8', env: cleanChildEnv() });
    box.cleanup();
    const check = (JSON.parse(r.stdout) as { checks: { check: string; ok: boolean; detail: string }[] }).checks.find((c) => c.check === 'database role');
    t.equal(check?.ok, ok, check?.detail ?? 'no database role check');
    t.equal(r.status, ok ? 0 : 1);
    t.notMatch(r.stdout, new URL(url).password, 'the password is never printed');
  }
});
