/**
 * Column rules and row filters follow into views (issue 13, views), end to end through the gate:
 * on a real PostgreSQL (the shipped SELECT-only role) and on PGlite, with views, views of views,
 * materialized views, a view in another schema, a view over a table in another schema, a view
 * renaming its columns, expression columns, a view filtering on the masked column, a
 * security_barrier view WITH CHECK OPTION, and views over row-filtered tables.
 *
 * - As `analyst` (email redacted: mask, no predicates): no shape returns a real email or anything
 *   derived from one, in rows or in error text; a bare copy through any view is masked, anything
 *   computed from it or compared on it (in the query or in the view's definition) refused; the
 *   record names the base columns and the views they were reached through; legitimate view
 *   queries keep exact results (compared with the same text run directly on the database).
 * - As `customer` (row filters on customers and orders by the principal's id): the filtered tables
 *   read directly return that customer's rows only; every query reaching them through a view is
 *   refused with `sql.row_filter_view`, a view over unfiltered tables runs.
 * - The catalog reads definitions through the executor's own search_path: with `default_schema:
 *   analytics`, the same views resolve to the same base columns.
 *
 * PGlite: the embedded demo database (sandbox/db/demo-seed.ts) has no views and its worker runs
 * only its own seed, so the view shapes run through the full gate against an in-process PGlite
 * seeded with the same tables and views, queried with the embedded worker's transaction protocol
 * (READ ONLY, SET LOCAL search_path, the extended protocol, ROLLBACK). The real embedded worker is
 * exercised too: its catalog (now with view definitions) loads and masks still hold there.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import postgres from 'postgres';
import { PGlite } from '@electric-sql/pglite';
import { runGate } from '../src/gate/run.js';
import type { GateOutcome } from '../src/core/call.js';
import type { DatabaseExecutor, QueryCaps, QueryResult } from '../src/tools/database/pg-executor.js';
import { mapDatabaseError } from '../sandbox/db/errors.js';
import { jsonSafe } from '../sandbox/db/json-safe.js';
import { makeSandbox, readAudit, ROOT } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const VIEWS_SQL = `
CREATE VIEW contacts AS SELECT name, email AS contact FROM customers;
CREATE VIEW contacts2 AS SELECT contact AS c2, name FROM contacts;
CREATE VIEW deep1 AS SELECT * FROM contacts2;
CREATE VIEW deep2 AS SELECT c2 AS addr, name FROM deep1;
CREATE MATERIALIZED VIEW mat_contacts AS SELECT id, email AS mail FROM customers;
CREATE MATERIALIZED VIEW mat_lower AS SELECT id, lower(email) AS le FROM customers;
CREATE VIEW analytics.north_customers AS SELECT id, name, email FROM public.customers WHERE region = 'north';
CREATE VIEW event_users AS SELECT e.id, e.user_id, c.email FROM analytics.events e JOIN customers c ON c.id = e.user_id;
CREATE VIEW renamed(a, b, c) AS SELECT id, name, email FROM customers;
CREATE VIEW exprs AS SELECT id, lower(email) AS le, length(email) AS n, name || '!' AS shout FROM customers;
CREATE VIEW corp_customers AS SELECT id, name FROM customers WHERE email LIKE 'c1%';
CREATE VIEW safe_customers AS SELECT id, name, region FROM customers;
CREATE VIEW barrier WITH (security_barrier) AS SELECT id, name, region, email FROM customers WHERE region <> 'nowhere' WITH CHECK OPTION;
CREATE VIEW order_totals AS SELECT c.region, sum(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.region;
CREATE VIEW all_emails AS SELECT email FROM customers UNION ALL SELECT email FROM users;
CREATE VIEW sales_summary AS SELECT region, sum(amount) AS total FROM sales GROUP BY region;
CREATE VIEW whole AS SELECT c AS rec FROM customers c;
`;

/** PGlite gets the tables the shapes read (the same data as test/helpers/database.ts), then the views. */
const PGLITE_SEED = `
CREATE SCHEMA analytics;
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, nickname text, email text, deleted boolean NOT NULL DEFAULT false);
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL, email text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), status text NOT NULL DEFAULT 'paid');
CREATE TABLE sales (region text, product text, amount numeric);
CREATE TABLE analytics.events (id int, user_id int);
INSERT INTO users SELECT g, 'user' || g, NULL, 'user' || g || '@example.com', false FROM generate_series(1, 40) g;
INSERT INTO customers SELECT g, 'customer' || g, (ARRAY['north','south','east','west'])[1 + g % 4], 'c' || g || '@example.com' FROM generate_series(1, 20) g;
INSERT INTO orders SELECT g, 1 + g % 20, (g * 7 % 500) + 0.5, timestamptz '2024-01-01' + (g || ' hours')::interval, CASE WHEN g % 5 = 0 THEN 'refunded' ELSE 'paid' END FROM generate_series(1, 200) g;
INSERT INTO sales SELECT (ARRAY['north','south'])[1 + g % 2], (ARRAY['a','b','c'])[1 + g % 3], g FROM generate_series(1, 30) g;
INSERT INTO analytics.events SELECT g, g FROM generate_series(1, 10) g;
${VIEWS_SQL}
ANALYZE;
`;

// Every seeded email is user<N>@example.com or c<N>@example.com; "example" is in nothing else.
const LEAK = /example|moc\.elpmaxe|@ex/i;

/** Shapes over views that must not return an email: each is masked (a bare copy) or refused. */
const ATTACKS: [string, unknown[]?][] = [
  ['SELECT contact FROM contacts'],
  ['SELECT * FROM contacts'],
  ['SELECT name, contact AS x FROM contacts'],
  ['SELECT c2 FROM contacts2'],
  ['SELECT addr FROM deep2'],
  ['SELECT lower(addr) AS l FROM deep2'],
  ['SELECT mail FROM mat_contacts'],
  ['SELECT le FROM mat_lower'],
  ['SELECT * FROM mat_lower'],
  ['SELECT email FROM event_users'],
  ['SELECT c FROM renamed'],
  ['SELECT * FROM renamed'],
  ['SELECT le FROM exprs'],
  ['SELECT n FROM exprs'],
  ['SELECT * FROM exprs'],
  ['SELECT id, name FROM corp_customers'],
  ['SELECT count(*) FROM corp_customers'],
  ['SELECT email FROM barrier'],
  ['SELECT email FROM all_emails'],
  ['SELECT rec FROM whole'],
  ['SELECT lower(contact) AS l FROM contacts'],
  ['SELECT contact::int FROM contacts'],
  ["SELECT contact || '' AS contact FROM contacts"],
  ['SELECT md5(contact) AS h FROM contacts'],
  ["SELECT string_agg(contact, ',') AS s FROM contacts"],
  ['SELECT max(mail) AS m FROM mat_contacts'],
  ['SELECT count(DISTINCT c2) AS n FROM contacts2'],
  ["SELECT name FROM contacts WHERE contact LIKE 'c1%'"],
  ['SELECT name FROM contacts WHERE contact = $1', ['c1@example.com']],
  ['SELECT name FROM contacts ORDER BY contact'],
  ['SELECT name, count(*) FROM contacts GROUP BY contact, name'],
  ['SELECT DISTINCT contact FROM contacts'],
  ['SELECT x FROM contacts x'],
  ['SELECT row_to_json(x) AS j FROM contacts x'],
  ['SELECT to_jsonb(m) AS j FROM mat_contacts m'],
  ['SELECT json_agg(d) AS j FROM deep2 d'],
  ['WITH w AS (SELECT * FROM contacts) SELECT lower(contact) AS l FROM w'],
  ['WITH w AS (SELECT * FROM contacts) SELECT contact FROM w'],
  ['SELECT contact FROM contacts UNION SELECT name FROM customers'],
  ['SELECT (SELECT contact FROM contacts LIMIT 1) AS x'],
  ['SELECT n.contact FROM customers c, LATERAL (SELECT contact FROM contacts WHERE name = c.name) n'],
  ['SELECT c.id FROM customers c JOIN contacts k ON k.contact = c.email'],
  ['SELECT id FROM customers WHERE email IN (SELECT contact FROM contacts)'],
  ['SELECT first_value(mail) OVER (ORDER BY id) AS f FROM mat_contacts'],
  ['SELECT id, row_number() OVER (ORDER BY mail) AS r FROM mat_contacts'],
  ['SELECT "contact" AS "CONTACT" FROM "contacts"'],
  ['SELECT public.contacts.contact AS x FROM public.contacts'],
  ['SELECT k.* FROM contacts k'],
  ['SELECT e FROM renamed r(x, y, e)'],
  ["SELECT jsonb_build_object('e', mail) AS j FROM mat_contacts"],
  ['SELECT id FROM event_users WHERE email IS NOT NULL'],
  ['SELECT email, count(*) OVER (PARTITION BY email) AS n FROM all_emails'],
];

let db: TestDatabase;
let pglite: PGlite;

t.before(async () => {
  db = await createTestDatabase();
  const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(VIEWS_SQL);
  await admin.end();
  pglite = await PGlite.create();
  await pglite.exec(PGLITE_SEED);
});
t.teardown(async () => {
  await db?.drop();
  await pglite?.close();
});

/**
 * PGlite in this process, queried as the embedded worker queries it (sandbox/db/pglite-worker.ts):
 * a READ ONLY transaction with the analyser's search_path, the call's text through the extended
 * protocol, rows made JSON-safe under the row cap, then ROLLBACK.
 */
class InProcessPglite implements DatabaseExecutor {
  constructor(
    private readonly pg: PGlite,
    private readonly searchPath: string,
  ) {}

  async query(text: string, params: readonly (string | number | boolean | null)[], caps: QueryCaps): Promise<QueryResult> {
    const started = performance.now();
    await this.pg.exec(`BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = ${this.searchPath}`);
    try {
      let r: Awaited<ReturnType<typeof this.pg.query<Record<string, unknown>>>>;
      try {
        r = await this.pg.query<Record<string, unknown>>(text, [...params], { rowMode: 'object' });
      } catch (err) {
        mapDatabaseError(err, 0);
        throw err;
      }
      const rows = r.rows.slice(0, caps.maxRows).map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, jsonSafe(v)])));
      const base = {
        columns: r.fields.map((f) => ({ name: f.name, type: f.dataTypeID })),
        rows,
        row_count: rows.length,
        duration_ms: performance.now() - started,
      };
      return r.rows.length > caps.maxRows ? { ...base, truncated: true, truncated_reason: 'max_rows' } : { ...base, truncated: false };
    } finally {
      await this.pg.exec('ROLLBACK');
    }
  }

  async close(): Promise<void> {}
}

type Caller = (sql: string, params?: unknown[]) => Promise<GateOutcome>;

interface Target {
  readonly name: string;
  /** A gate for `principal` with `data` as policy data and these database settings. */
  gate(t: Test, data: unknown, principal: Record<string, unknown>, database?: Record<string, unknown>): Promise<{ call: Caller; gate: InProcessGate }>;
  /** The same text run directly on the database (not through the gate), for expected results. */
  direct(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** A statement run as the database's owner, outside the gate. */
  admin(sql: string): Promise<void>;
}

const DATA = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: Record<string, any> };

async function gateOn(t: Test, database: Record<string, unknown>, data: unknown, principal: Record<string, unknown>): Promise<InProcessGate> {
  const box = makeSandbox({ database, principals: { stdio: { ...principal, tier: 'local' } } });
  const dataPath = path.join(box.dir, 'policy-data.json');
  fs.writeFileSync(dataPath, JSON.stringify(data));
  fs.appendFileSync(box.configPath, `policy:\n  data: ${JSON.stringify(dataPath)}\n`);
  const gate = await inProcessGate(box.configPath);
  t.teardown(async () => {
    await gate.close();
    box.cleanup();
  });
  return gate;
}

const postgresTarget: Target = {
  name: 'postgres',
  async gate(t, data, principal, database = {}) {
    const gate = await gateOn(t, { url: db.readerUrl, statement_timeout_ms: 5000, ...database }, data, principal);
    return { gate, call: (sql, params = []) => gate.call('query_database', { sql, params }) };
  },
  async direct(sql, params = []) {
    const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
    try {
      return [...(await admin.unsafe(sql, params as never[]))];
    } finally {
      await admin.end();
    }
  },
  async admin(sql) {
    const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
    try {
      await admin.unsafe(sql);
    } finally {
      await admin.end();
    }
  },
};

const pgliteTarget: Target = {
  name: 'pglite',
  async gate(t, data, principal, database = {}) {
    // No database.url: the app builds its embedded executor (never started here); the gate's
    // database is this PGlite instead, with the search_path the config implies.
    const gate = await gateOn(t, { statement_timeout_ms: 5000, ...database }, data, principal);
    const schema = typeof database.default_schema === 'string' ? database.default_schema : 'public';
    const exec = new InProcessPglite(pglite, `pg_catalog, ${schema}, pg_temp`);
    const deps = { ...gate.app.deps, toolEnv: { ...gate.app.deps.toolEnv, database: exec }, toolEnvOf: () => undefined };
    const call: Caller = (sql, params = []) =>
      runGate(
        {
          tool: 'query_database',
          args: { sql, params },
          context: { transport: 'stdio', requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal },
        },
        deps,
      );
    return { gate, call };
  },
  async direct(sql, params = []) {
    return (await pglite.query<Record<string, unknown>>(sql, params as unknown[])).rows;
  },
  async admin(sql) {
    await pglite.exec(sql);
  },
};

/** The analyst may read analytics.* here too (the view in another schema). */
function analystData(): unknown {
  const data = structuredClone(DATA);
  data.bulwark.database.tables.analyst = ['public.*', 'analytics.*'];
  return data;
}

/** The shipped `customer` row filters, with the role granted the query tool and these relations. */
function customerData(): unknown {
  const data = structuredClone(DATA);
  data.bulwark.roles.customer = { tools: ['query_database'] };
  data.bulwark.database.tables.customer = [
    'public.customers',
    'public.orders',
    'public.contacts',
    'public.contacts2',
    'public.deep2',
    'public.mat_contacts',
    'public.order_totals',
    'public.safe_customers',
    'public.sales_summary',
    'public.sales',
    'public.nosuch_rel',
    'public.fresh_postgres',
    'public.fresh_pglite',
  ];
  return data;
}

const norm = (rows: unknown) => JSON.parse(JSON.stringify(rows)) as unknown;

for (const target of [postgresTarget, pgliteTarget]) {
  t.test(`${target.name}: no view shape returns a real email or anything derived from one`, async (t) => {
    const { gate, call } = await target.gate(t, analystData(), { id: 'ann', roles: ['analyst'] });
    t.ok(ATTACKS.length >= 50, `${ATTACKS.length} shapes`);
    let masked = 0;
    let refused = 0;
    for (const [sql, params] of ATTACKS) {
      const o = await call(sql, params ?? []);
      t.notMatch(
        JSON.stringify({ result: o.result?.structured ?? null, denial: o.denial ?? null }),
        LEAK,
        `${sql}: no email (${o.status} ${o.denial?.reasons.join(',') ?? ''})`,
      );
      if (o.status === 'ok') {
        t.ok((o.result?.structured.redacted_columns as string[]).length > 0, `${sql}: ran only because it was masked`);
        masked++;
      } else {
        t.equal(o.denial?.code, 'sql_rejected', `${sql}: refused by the analysis (${o.denial?.message})`);
        refused++;
      }
    }
    t.ok(masked >= 12 && refused >= 30, `${masked} masked, ${refused} refused`);
    const recs = readAudit(gate.app.deps.config.audit.path).filter((r) => r.tool === 'query_database');
    t.notMatch(JSON.stringify(recs.map((r) => r.outcome)), LEAK, 'no email in the recorded outcomes');
    const by = (sql: string) => recs.find((r) => r.args?.sql === sql);
    t.same(by('SELECT contact FROM contacts')?.facts.sql.masks, { masked: ['public.customers.email'], used: [] }, 'the masked column is the base column');
    t.same(
      by('SELECT contact FROM contacts')?.facts.sql.views,
      [{ view: 'public.contacts', tables: ['public.customers'], columns: ['public.customers.email'] }],
      'the record shows the base column reached through the view',
    );
    t.same(
      by('SELECT addr FROM deep2')?.facts.sql.views,
      [{ view: 'public.deep2', tables: ['public.contacts', 'public.contacts2', 'public.customers', 'public.deep1'], columns: ['public.customers.email'] }],
      'three views deep',
    );
    t.same(by('SELECT le FROM mat_lower')?.outcome.reasons, ['sql.masked_column_use'], 'an expression column of a materialized view');
    t.same(by('SELECT le FROM mat_lower')?.facts.sql.masks, { refused: ['public.customers.email'] });
    t.same(by('SELECT id, name FROM corp_customers')?.outcome.reasons, ['sql.column_in_predicate'], "the view's WHERE on the masked column");
    t.same(by('SELECT rec FROM whole')?.outcome.reasons, ['sql.masked_column_use'], 'a whole-row column of a view');
    t.same(
      by('SELECT email FROM event_users')?.facts.sql.views?.[0]?.tables,
      ['analytics.events', 'public.customers'],
      'a view over a table in another schema',
    );
  });

  t.test(`${target.name}: legitimate view queries keep exact results`, async (t) => {
    const { call } = await target.gate(t, analystData(), { id: 'ann', roles: ['analyst'] });
    const exact: [string, unknown[]?][] = [
      ['SELECT name FROM contacts ORDER BY name LIMIT 3'],
      ['SELECT region, count(*)::int AS n FROM safe_customers GROUP BY region ORDER BY region'],
      ['SELECT region, revenue::text AS revenue FROM order_totals ORDER BY region'],
      ['SELECT a, b FROM renamed WHERE a <= 3 ORDER BY a'],
      ['SELECT shout FROM exprs WHERE id = $1', [7]],
      ['SELECT id, name, region FROM barrier WHERE id < 4 ORDER BY id'],
      ['SELECT id, name FROM analytics.north_customers ORDER BY id'],
      ['SELECT user_id FROM event_users ORDER BY id LIMIT 4'],
      ['SELECT region, total::text AS total FROM sales_summary ORDER BY region'],
      ['SELECT name FROM deep2 ORDER BY name DESC LIMIT 2'],
      ['SELECT s.name, t.revenue::text AS revenue FROM safe_customers s JOIN order_totals t USING (region) WHERE s.id = 2'],
      ['SELECT count(*)::int AS n FROM mat_lower'],
    ];
    for (const [sql, params] of exact) {
      const o = await call(sql, params ?? []);
      t.equal(o.status, 'ok', `${sql}: ok (${o.denial?.message ?? ''})`);
      const want = await target.direct(sql, params ?? []);
      t.ok(want.length > 0, `${sql}: the expectation has rows`);
      t.same(norm(o.result?.structured.rows), norm(want), `${sql}: exact result`);
    }
    // Bare copies through views: the masked column is masked, the rest exact.
    const mat = await call('SELECT id, mail FROM mat_contacts WHERE id <= 2 ORDER BY id');
    t.same(mat.result?.structured.rows, [
      { id: 1, mail: '[REDACTED]' },
      { id: 2, mail: '[REDACTED]' },
    ]);
    const north = await call('SELECT id, email FROM analytics.north_customers ORDER BY id LIMIT 2');
    t.same(
      north.result?.structured.rows,
      [
        { id: 4, email: '[REDACTED]' },
        { id: 8, email: '[REDACTED]' },
      ],
      'a view in another schema',
    );
  });

  t.test(`${target.name}: a view over a row-filtered table is refused; the table itself is filtered`, async (t) => {
    const { gate, call } = await target.gate(t, customerData(), { id: '3', roles: ['customer'] });
    const own = await call('SELECT id, name FROM customers ORDER BY id');
    t.same(own.result?.structured.rows, [{ id: 3, name: 'customer3' }], `the filter holds on the table (${own.denial?.message ?? ''})`);
    const others = /customer(?!3\b)\d+|"region":"(?!east)/;
    const through = [
      'SELECT name FROM contacts',
      'SELECT * FROM contacts2',
      'SELECT name FROM deep2',
      'SELECT id FROM mat_contacts',
      'SELECT region, revenue FROM order_totals',
      'SELECT id, name FROM safe_customers',
      'SELECT count(*) FROM safe_customers',
      'SELECT o.id FROM orders o JOIN safe_customers s ON s.id = o.customer_id',
      'SELECT id FROM customers WHERE id IN (SELECT id FROM safe_customers)',
      'WITH x AS (SELECT * FROM safe_customers) SELECT * FROM x',
      'SELECT name FROM customers UNION ALL SELECT name FROM safe_customers',
      'SELECT (SELECT count(*) FROM order_totals) AS n',
    ];
    for (const sql of through) {
      const o = await call(sql);
      t.same([o.denial?.code, o.denial?.reasons], ['sql_rejected', ['sql.row_filter_view']], `${sql}: refused`);
      t.notMatch(JSON.stringify(o.result?.structured ?? null), others, `${sql}: no other customer's row`);
    }
    const refusedRec = readAudit(gate.app.deps.config.audit.path).find((r) => r.args?.sql === 'SELECT name FROM deep2');
    t.same(
      refusedRec?.facts.sql.views?.[0]?.tables,
      ['public.contacts', 'public.contacts2', 'public.customers', 'public.deep1'],
      'the record shows the tables behind the view',
    );
    t.same(
      refusedRec?.decision?.obligations?.row_filters?.map((f: { table: string }) => f.table),
      ['public.customers'],
      "the policy emitted the table's filter for the view",
    );
    // A view created after the catalog was read, queried while a catalog refresh is rate-limited
    // (a miss just refreshed it): unknown to lineage, so nothing shows what it reads. The policy
    // then emits every filter of the role and the gate refuses; after a refresh it is a view over
    // customers (sql.row_filter_view). Either way it does not run.
    t.not((await call('SELECT 1 AS x FROM nosuch_rel')).status, 'ok', 'a miss (refreshes the catalog, then rate-limits the next refresh)');
    const fresh = `fresh_${target.name}`;
    await target.admin(`CREATE VIEW ${fresh} AS SELECT id, name FROM customers`);
    const late = await call(`SELECT id, name FROM ${fresh}`);
    t.equal(late.denial?.code, 'sql_rejected', `a view the catalog does not know yet: refused (${late.denial?.message ?? late.status})`);
    t.ok(
      ['sql.catalog_unknown_table', 'sql.row_filter_view'].includes(late.denial?.reasons[0] ?? ''),
      `refused as unknown (within the refresh limit) or as a view over customers (after it): ${late.denial?.reasons.join(',')}`,
    );
    t.notMatch(JSON.stringify(late.result?.structured ?? null), others, 'no other customer');
    const lateRec = readAudit(gate.app.deps.config.audit.path).find((r) => r.request_id === late.requestId);
    if (late.denial?.reasons[0] === 'sql.catalog_unknown_table') {
      t.same(lateRec?.facts.sql.tables_unknown, [`public.${fresh}`], 'the record names the unknown relation');
      t.same(
        new Set(lateRec?.decision?.obligations?.row_filters?.map((f: { table: string }) => f.table)),
        new Set(['public.customers', 'public.orders']),
        'every filter of the role came with it',
      );
    }
    const summary = await call('SELECT region, total::text AS total FROM sales_summary ORDER BY region');
    t.equal(summary.status, 'ok', `a view over unfiltered tables runs (${summary.denial?.message ?? ''})`);
    t.same(norm(summary.result?.structured.rows), norm(await target.direct('SELECT region, total::text AS total FROM sales_summary ORDER BY region')));
  });

  t.test(`${target.name}: definitions resolve through the executor's search_path (default_schema: analytics)`, async (t) => {
    const { gate, call } = await target.gate(t, analystData(), { id: 'ann', roles: ['analyst'] }, { default_schema: 'analytics' });
    // Printed under search_path = pg_catalog, analytics: public names come qualified, analytics names bare.
    const o = await call('SELECT email FROM public.event_users');
    t.same(o.result?.structured.redacted_columns, ['email'], `masked through the view (${o.denial?.message ?? ''})`);
    t.notMatch(JSON.stringify(o.result?.structured ?? null), LEAK);
    const n = await call('SELECT lower(email) AS l FROM north_customers');
    t.same(n.denial?.reasons, ['sql.masked_column_use'], 'a view in the default schema, over public.customers');
    const recs = readAudit(gate.app.deps.config.audit.path);
    const rec = recs.find((r) => r.request_id === o.requestId);
    t.same(rec?.facts.sql.views?.[0]?.tables, ['analytics.events', 'public.customers'], 'the bare name in the definition is analytics.events');
    t.same(rec?.facts.sql.lineage?.outputs, [{ name: 'email', columns: ['public.customers.email'], copy: true }]);
  });
}

t.test('the real embedded worker: its catalog with view definitions loads on PGlite and masks hold', async (t) => {
  const sb = makeSandbox({ database: { statement_timeout_ms: 5000 }, principals: { stdio: { id: 'ann', roles: ['analyst'], tier: 'local' } } });
  const embedded = await inProcessGate(sb.configPath);
  t.teardown(async () => {
    await embedded.close();
    sb.cleanup();
  });
  // The worker boots (and seeds) on first use, which can outlast one call's deadline on a loaded machine.
  for (let i = 0; i < 6 && (await embedded.call('list_tables', {})).status !== 'ok'; i++);
  const o = await embedded.call('query_database', { sql: 'SELECT id, email AS contact FROM customers ORDER BY id LIMIT 1', params: [] });
  t.same(o.result?.structured.rows, [{ id: 1, contact: '[REDACTED]' }], `lineage resolved against the worker's catalog (${o.denial?.message ?? ''})`);
  const d = await embedded.call('query_database', { sql: 'SELECT lower(email) AS l FROM customers', params: [] });
  t.same(d.denial?.reasons, ['sql.masked_column_use']);
});
