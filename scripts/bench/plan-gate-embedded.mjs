// The cost gate on the embedded PGlite: the same query through EmbeddedExecutor without plan
// limits and with them (EXPLAIN (FORMAT JSON) in the worker first, sandbox/db/plan-gate.ts),
// interleaved in one run on one worker. The real server's figures are `sql.cost_gate`.
import { pathToFileURL } from 'node:url';
import { dist, gateOverhead } from './lib.mjs';

const { EmbeddedDatabasePool } = await import(dist('src/execution/embedded-database-pool.js'));
const { EmbeddedExecutor } = await import(dist('src/tools/database/embedded-executor.js'));
const { createLogger } = await import(dist('src/observability/logger.js'));

const QUERIES = [
  ['point', 'SELECT name, price FROM products WHERE id = $1', (i) => [1 + (i % 30)]],
  [
    'join_aggregate',
    'SELECT c.region, count(*) AS n, sum(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = $1 GROUP BY c.region ORDER BY revenue DESC',
    () => ['paid'],
  ],
];

export async function benchPlanGateEmbedded({ quick = false } = {}) {
  const pool = new EmbeddedDatabasePool(createLogger('error'));
  const ex = new EmbeddedExecutor(pool, 'public');
  const caps = { maxRows: 1000, maxBytes: 1 << 20, timeoutMs: 30_000, lockTimeoutMs: 500 };
  // The analyst's shipped limits (policies/data.json).
  const planCaps = { ...caps, plan: { maxCost: 1e8, maxRows: 1e9 } };
  const out = {};
  try {
    const t0 = performance.now();
    await ex.query('SELECT 1', [], caps);
    out.first_start_ms = Math.round(performance.now() - t0);
    for (const [name, text, params] of QUERIES) {
      const { explain_ms, ...rest } = await gateOverhead(ex, text, params, caps, planCaps, quick ? 200 : 2000);
      out[name] = { ...rest, explain_in_worker_ms: explain_ms };
    }
  } finally {
    await ex.close();
  }
  return { budget_overhead_p50_ms: 1, within_budget: QUERIES.every(([name]) => out[name].overhead_p50_ms <= 1), ...out };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${JSON.stringify(await benchPlanGateEmbedded({ quick: process.env.BENCH_QUICK === '1' }), null, 2)}\n`);
}
