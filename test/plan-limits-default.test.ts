/**
 * The cost gate as shipped (issue 13, item 4): the default policy data gives every role plan limits
 * (policies/data.json, database.plan_limits), so out of the box a cross join of large tables is
 * refused before it runs, with the planner's estimate in the denial and in the audit record, while
 * reporting queries run with exact results. Through the whole gate (policy wasm, audit log), on the
 * real PostgreSQL and on the embedded PGlite, which judges plans with the same code
 * (sandbox/db/plan-gate.ts). A query the policy lists in `database.cheap_queries` gets no limits
 * and no EXPLAIN.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import postgres from 'postgres';
import { makeSandbox, readAudit, ROOT, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import type { GateOutcome } from '../src/core/call.js';

// The embedded database boots in seconds, more on a loaded machine.
t.setTimeout(300_000);

const SHIPPED = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as {
  bulwark: { database: Record<string, unknown> & { plan_limits: Record<string, { max_plan_cost: number; max_plan_rows: number }> } };
};
const LIMITS = SHIPPED.bulwark.database.plan_limits;
const ANALYST = { id: 'ann', roles: ['analyst'], tier: 'local' };

/** The README's first query (its "Try it" line), exactly as written there. */
const README_QUERY = 'SELECT region, count(*) FROM customers GROUP BY region';
/** The example: four 100k-row tables, no join condition. */
const CROSS4 = 'SELECT a.id FROM big_a a, big_b b, big_c c, big_d d';
/** The same shape on relations both engines have: four 100k-row series. */
const CROSS4_SERIES =
  'SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b, generate_series(1, 100000) c, generate_series(1, 100000) d';
const PLAN_DETAIL = ['max_plan_cost', 'max_plan_rows', 'plan_cost', 'plan_rows'];

let db: TestDatabase;
const boxes: Sandbox[] = [];
const gates: InProcessGate[] = [];

async function gateOn(config: Record<string, unknown>, data?: Record<string, unknown>): Promise<InProcessGate> {
  const sb = makeSandbox({ ...config, ...(data ? { policy: { data: 'policy-data.json' } } : {}) });
  boxes.push(sb);
  if (data) fs.writeFileSync(path.join(sb.dir, 'policy-data.json'), JSON.stringify(data));
  const g = await inProcessGate(sb.configPath);
  gates.push(g);
  return g;
}

/** The shipped data with queries listed as cheap. */
function withCheap(fingerprints: string[]): Record<string, unknown> {
  const data = structuredClone(SHIPPED);
  data.bulwark.database.cheap_queries = fingerprints;
  return data;
}

function recordOf(g: InProcessGate, o: GateOutcome): Record<string, any> {
  const rec = readAudit(g.app.deps.config.audit.path).find((r) => r.request_id === o.requestId);
  if (!rec) throw new Error(`no audit record for ${o.requestId}`);
  return rec;
}

const sorted = (rows: unknown, key: string) => [...((rows as Record<string, unknown>[]) ?? [])].sort((x, y) => String(x[key]).localeCompare(String(y[key])));

t.before(async () => {
  db = await createTestDatabase();
  const admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined });
  const reader = decodeURIComponent(new URL(db.readerUrl).username);
  for (const name of ['big_a', 'big_b', 'big_c', 'big_d']) {
    await admin.unsafe(`CREATE TABLE ${name} AS SELECT g AS id, g % 10 AS grp, md5(g::text) AS v FROM generate_series(1, 100000) g`);
    await admin.unsafe(`ALTER TABLE ${name} ADD PRIMARY KEY (id)`);
    await admin.unsafe(`GRANT SELECT ON ${name} TO "${reader}"`);
  }
  await admin.unsafe('ANALYZE');
  await admin.end();
});
t.teardown(async () => {
  for (const g of gates) await g.close();
  await db?.drop();
  for (const b of boxes) b.cleanup();
});

const pg: {
  analyst?: InProcessGate;
  developer?: InProcessGate;
  crossFingerprint?: string;
  readmeFingerprint?: string;
  refusedPlan?: Record<string, unknown>;
  series?: GateOutcome;
} = {};

t.test('PostgreSQL: a four-way cross join of 100k-row tables is refused with the estimate, in the answer and the record', async (t) => {
  pg.analyst = await gateOn({ database: { url: db.readerUrl }, principals: { stdio: ANALYST } });
  const o = await pg.analyst.call('query_database', { sql: CROSS4 });
  t.equal(o.status, 'denied', 'refused, not 1,000 truncated rows');
  t.equal(o.denial?.code, 'sql_rejected');
  t.same(o.denial?.reasons, ['sql.cost_exceeded']);
  t.match(o.denial?.message, /estimated cost [\d.e+]+ > 100000000, estimated rows 100000000000000000000 > 1000000000/, o.denial?.message ?? '');
  const detail = o.denial?.detail as Record<string, number>;
  t.same(Object.keys(detail).sort(), PLAN_DETAIL, 'the detail is the estimate and the limits');
  // The planner says 10^20 rows (the message above); beyond 2^53 the detail, which the record
  // keeps in canonical JSON, gives 2^53 − 1: "at least this much".
  t.equal(detail.plan_rows, Number.MAX_SAFE_INTEGER, 'the estimated rows, as the record can hold them');
  t.equal(detail.plan_cost, Number.MAX_SAFE_INTEGER, 'the estimated cost, likewise');
  t.equal(detail.max_plan_cost, LIMITS.analyst!.max_plan_cost);
  t.equal(detail.max_plan_rows, LIMITS.analyst!.max_plan_rows);
  const rec = recordOf(pg.analyst, o);
  t.same(rec.masked, [], 'the record keeps its facts (an unrecordable estimate would have cost them)');
  t.equal(rec.outcome.code, 'sql_rejected');
  t.same(rec.outcome.reasons, ['sql.cost_exceeded']);
  t.same(rec.facts.sql.plan, { ...detail, refused: true }, 'the record keeps the estimate and the limits');
  t.equal(rec.decision.obligations.max_plan_cost, 100_000_000, "the analyst's default limits came from the policy");
  t.equal(rec.decision.obligations.max_plan_rows, 1_000_000_000);
  pg.crossFingerprint = rec.facts.sql.fingerprint as string;
  pg.refusedPlan = rec.facts.sql.plan as Record<string, unknown>;

  // count(*) returns one row but would count 1e20: refused on cost alone.
  const count = await pg.analyst.call('query_database', { sql: 'SELECT count(*) FROM big_a, big_b, big_c, big_d' });
  t.same(count.denial?.reasons, ['sql.cost_exceeded']);
  t.equal((count.denial?.detail as Record<string, number>).plan_rows, 1, 'one estimated row');
  t.match(count.denial?.message, /estimated cost [\d.e+]+ > 100000000\)/, 'the cost, not the rows, is over');
  // Two of them is already 10^10 rows.
  const two = await pg.analyst.call('query_database', { sql: 'SELECT * FROM big_a a, big_b b' });
  t.same(two.denial?.reasons, ['sql.cost_exceeded'], 'a two-way cross join of 100k-row tables too');
  const series = await pg.analyst.call('query_database', { sql: CROSS4_SERIES });
  t.same(series.denial?.reasons, ['sql.cost_exceeded'], 'and of four 100k-row series');
  t.equal((series.denial?.detail as Record<string, number>).plan_rows, 1);
  pg.series = series;

  // The developer's default limits are wider, still far below the cross join.
  pg.developer = await gateOn({ database: { url: db.readerUrl } });
  const dev = await pg.developer.call('query_database', { sql: CROSS4 });
  t.same(dev.denial?.reasons, ['sql.cost_exceeded']);
  t.match(dev.denial?.detail, { max_plan_cost: LIMITS.developer!.max_plan_cost, max_plan_rows: LIMITS.developer!.max_plan_rows });
});

t.test('PostgreSQL: reporting, point, join and aggregate queries run under the default limits with exact results', async (t) => {
  const analyst = pg.analyst!;
  const readme = await analyst.call('query_database', { sql: README_QUERY });
  t.equal(readme.status, 'ok', JSON.stringify(readme.denial));
  t.same(sorted(readme.result?.structured.rows, 'region'), [
    { region: 'east', count: '5' },
    { region: 'north', count: '5' },
    { region: 'south', count: '5' },
    { region: 'west', count: '5' },
  ]);
  const rr = recordOf(analyst, readme);
  pg.readmeFingerprint = rr.facts.sql.fingerprint as string;
  t.match(rr.facts.sql.plan, { plan_rows: Number, plan_cost: Number, ms: Number, max_plan_cost: 100_000_000, max_plan_rows: 1_000_000_000 }, 'the gate ran');
  t.notOk('refused' in rr.facts.sql.plan);

  const point = await analyst.call('query_database', { sql: 'SELECT id, v FROM big_a WHERE id = $1', params: [4242] });
  t.same(point.result?.structured.rows, [{ id: 4242, v: crypto.createHash('md5').update('4242').digest('hex') }]);
  t.equal(recordOf(analyst, point).facts.sql.plan.plan_rows, 1, 'a point query: one estimated row');

  // A join of two 100k-row tables, grouped: 10 groups of 10,000.
  const join = await analyst.call('query_database', {
    sql: 'SELECT a.grp, count(*)::int AS n, sum(b.id)::int AS s FROM big_a a JOIN big_b b ON b.id = a.id GROUP BY a.grp ORDER BY a.grp',
  });
  t.equal(join.status, 'ok', JSON.stringify(join.denial));
  const expected = Array.from({ length: 10 }, (_, grp) => {
    let s = 0;
    for (let id = grp === 0 ? 10 : grp; id <= 100_000; id += 10) s += id;
    return { grp, n: 10_000, s };
  });
  t.same(join.result?.structured.rows, expected);
  const jp = recordOf(analyst, join).facts.sql.plan as { plan_cost: number };
  t.ok(jp.plan_cost < 100_000_000 / 100, `a join of two 100k-row tables estimates ${jp.plan_cost}, far below the limit`);

  const three = await analyst.call('query_database', {
    sql: 'SELECT count(*)::int AS n, max(c.v) AS m FROM big_a a JOIN big_b b ON b.id = a.id JOIN big_c c ON c.id = b.id WHERE a.id <= $1',
    params: [5000],
  });
  let max = '';
  for (let id = 1; id <= 5000; id++) {
    const v = crypto.createHash('md5').update(String(id)).digest('hex');
    if (v > max) max = v;
  }
  t.same(three.result?.structured.rows, [{ n: 5000, m: max }]);

  const running = await analyst.call('query_database', { sql: 'SELECT id, sum(id) OVER (ORDER BY id)::int AS running FROM big_d WHERE id <= 5 ORDER BY id' });
  t.same(running.result?.structured.rows, [
    { id: 1, running: 1 },
    { id: 2, running: 3 },
    { id: 3, running: 6 },
    { id: 4, running: 10 },
    { id: 5, running: 15 },
  ]);

  // Reading a whole 100k-row table is allowed (the estimate is its size); the row cap truncates.
  const peek = await analyst.call('query_database', { sql: 'SELECT * FROM big_a' });
  t.equal(peek.status, 'ok', JSON.stringify(peek.denial));
  t.equal(peek.result?.structured.truncated, true);
  t.equal((peek.result?.structured.rows as unknown[]).length, 1000);
});

t.test('PostgreSQL: a query listed in cheap_queries skips the EXPLAIN (no limits, no estimate in the record)', async (t) => {
  t.match(pg.crossFingerprint, /^sqlt1:[0-9a-f]{64}$/, 'the cross join was fingerprinted (from its refused record)');
  const cheap = await gateOn({ database: { url: db.readerUrl }, principals: { stdio: ANALYST } }, withCheap([pg.crossFingerprint!]));
  // The operator said this one is fine: it runs, and the cursor stops at the row cap (what the
  // issue saw before the gate existed, now only by the policy's choice).
  const o = await cheap.call('query_database', { sql: CROSS4 });
  t.equal(o.status, 'ok', JSON.stringify(o.denial));
  t.equal((o.result?.structured.rows as unknown[]).length, 1000);
  t.equal(o.result?.structured.truncated, true);
  const rec = recordOf(cheap, o);
  t.equal(rec.facts.sql.fingerprint, pg.crossFingerprint);
  t.notOk('max_plan_cost' in rec.decision.obligations, 'no limits from the policy');
  t.notOk('max_plan_rows' in rec.decision.obligations);
  t.notOk('plan' in rec.facts.sql, 'no estimate recorded: no EXPLAIN was sent');
  // The listing is per fingerprint: another query in the same gate is still explained.
  const other = await cheap.call('query_database', { sql: 'SELECT count(*) FROM big_a, big_b, big_c, big_d' });
  t.same(other.denial?.reasons, ['sql.cost_exceeded']);
  t.ok(recordOf(cheap, other).facts.sql.plan, 'estimated and recorded');
});

t.test('embedded PGlite: the same refusals, the same facts, the same exact answers', async (t) => {
  t.ok(pg.readmeFingerprint, 'the README query was fingerprinted on PostgreSQL');
  // One embedded database (it boots in seconds): the README query listed as cheap, so one
  // gate shows both the skip and the gate.
  const emb = await gateOn({ database: { statement_timeout_ms: 5000 }, principals: { stdio: ANALYST } }, withCheap([pg.readmeFingerprint!]));
  // PGlite boots on the first call; on a loaded machine that can take longer than the analyst's
  // 10 s deadline, so the first calls only wait for it (the assertions start once it answers).
  let booted: GateOutcome | undefined;
  for (let i = 0; i < 6 && booted?.status !== 'ok'; i++) booted = await emb.call('list_tables', {});
  t.equal(booted?.status, 'ok', `the embedded database is up: ${JSON.stringify(booted?.denial)}`);

  const series = await emb.call('query_database', { sql: CROSS4_SERIES });
  t.equal(series.denial?.code, 'sql_rejected', JSON.stringify(series.denial));
  t.same(series.denial?.reasons, ['sql.cost_exceeded']);
  t.same(Object.keys(series.denial?.detail ?? {}).sort(), PLAN_DETAIL, "the detail reads as the real server's: no worker metrics");
  t.match(series.denial?.detail, { plan_rows: 1, max_plan_cost: 100_000_000, max_plan_rows: 1_000_000_000 });
  t.equal((series.denial?.detail as Record<string, number>).plan_cost, Number.MAX_SAFE_INTEGER, 'the estimate, beyond 2^53');
  t.same(recordOf(emb, series).facts.sql.plan, { ...(series.denial?.detail ?? {}), refused: true }, 'and in the record');
  t.same(
    { code: series.denial?.code, reasons: series.denial?.reasons, detail: series.denial?.detail },
    { code: pg.series?.denial?.code, reasons: pg.series?.denial?.reasons, detail: pg.series?.denial?.detail },
    'the same refusal as on PostgreSQL, detail for detail',
  );
  t.match(series.denial?.message, /estimated cost [\d.e+]+ > 100000000\)/);

  // The demo's four largest tables, no join condition: 50 × 400 × 1,161 × 300 rows.
  const cross = await emb.call('query_database', { sql: 'SELECT * FROM customers, orders, order_items, events' });
  t.same(cross.denial?.reasons, ['sql.cost_exceeded'], JSON.stringify(cross.denial));
  const crossRows = (cross.denial?.detail as Record<string, number> | undefined)?.plan_rows ?? 0;
  t.ok(crossRows > 1e9, `estimated rows ${crossRows}`);
  t.match(cross.denial?.message, /estimated rows [\d.e+]+ > 1000000000/);
  const rec = recordOf(emb, cross);
  t.same(rec.outcome.reasons, ['sql.cost_exceeded']);
  t.same(rec.facts.sql.plan, { ...(cross.denial?.detail ?? {}), refused: true }, 'the record keeps the estimate');
  t.same(Object.keys(rec.facts.sql.plan).sort(), Object.keys(pg.refusedPlan ?? {}).sort(), "the same facts as PostgreSQL's refusal");

  // Legitimate queries, exact answers, each explained first.
  const point = await emb.call('query_database', { sql: 'SELECT name FROM products WHERE id = $1', params: [3] });
  t.same(point.result?.structured.rows, [{ name: 'product 3' }]);
  const pp = recordOf(emb, point).facts.sql.plan;
  t.match(pp, { plan_rows: 1, plan_cost: Number, ms: Number, max_plan_cost: 100_000_000, max_plan_rows: 1_000_000_000 }, 'explained, estimate recorded');
  t.same(Object.keys(pp).sort(), ['max_plan_cost', 'max_plan_rows', 'ms', 'plan_cost', 'plan_rows'], 'the keys PostgreSQL records');

  const regions = ['north', 'south', 'east', 'west'];
  const byRegion = new Map<string, number>();
  for (let g = 1; g <= 400; g++) {
    const region = regions[(1 + (g % 50)) % 4]!;
    byRegion.set(region, (byRegion.get(region) ?? 0) + 1);
  }
  const join = await emb.call('query_database', {
    sql: 'SELECT c.region, count(*)::int AS n FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.region ORDER BY c.region',
  });
  t.equal(join.status, 'ok', JSON.stringify(join.denial));
  t.same(
    join.result?.structured.rows,
    [...byRegion].sort(([a], [b]) => a.localeCompare(b)).map(([region, n]) => ({ region, n })),
  );
  t.ok(recordOf(emb, join).facts.sql.plan, 'explained');
  const four = await emb.call('query_database', {
    sql: 'SELECT p.category, count(DISTINCT o.id)::int AS orders FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id JOIN customers c ON c.id = o.customer_id GROUP BY p.category ORDER BY p.category',
  });
  t.equal(four.status, 'ok', JSON.stringify(four.denial));
  t.same(
    (four.result?.structured.rows as { category: string }[]).map((r) => r.category),
    ['books', 'games', 'tools'],
  );

  // The README's query is listed as cheap in this gate: it runs without an EXPLAIN.
  const readme = await emb.call('query_database', { sql: README_QUERY });
  t.equal(readme.status, 'ok', JSON.stringify(readme.denial));
  t.same(sorted(readme.result?.structured.rows, 'region'), [
    { region: 'east', count: 13 },
    { region: 'north', count: 12 },
    { region: 'south', count: 13 },
    { region: 'west', count: 12 },
  ]);
  const rr = recordOf(emb, readme);
  t.equal(rr.facts.sql.fingerprint, pg.readmeFingerprint, 'the same fingerprint on both engines');
  t.notOk('max_plan_cost' in rr.decision.obligations, 'no limits for a query marked cheap');
  t.notOk('plan' in rr.facts.sql, 'and no EXPLAIN');
});
