// Row filter rewrite latency (issue 13 item 3; budget with lineage and masks: +150 µs p50 on the
// simple query): applyRowFilters on an analysed text, i.e. parse, the rewrite walk, the verified
// deparse (cached by tree after the first sight of a shape) and the full re-analysis of the
// executed text. `first` is a new shape each sample (the deparser runs: libpg_query's wasm
// deparser costs milliseconds), `repeat` the same shape again (what a workload mostly sees).
//
// Standalone: `npx tsc -p . && node scripts/bench/row-filters.mjs` prints the JSON. BENCH_QUICK=1 shrinks it.
import { pathToFileURL } from 'node:url';
import { dist, summarise } from './lib.mjs';

const { analyseSql, initSqlAnalysis } = await import(dist('src/analysis/sql.js'));
const { applyRowFilters, loadRowFilterDeparser, parseRowFilters } = await import(dist('src/analysis/sql-row-filter.js'));

const FILTERS = [
  { table: 'public.orders', column: 'customer_id', op: '=', value: { principal: 'id' } },
  { table: 'public.orders', column: 'status', op: '<>', value: { const: 'refunded' } },
  { table: 'public.customers', column: 'region', op: 'in', value: { const: ['north', 'south'] } },
];
const PRINCIPAL = { id: '7', roles: ['customer'], auth: 'stdio', tier: 'local' };
const SHAPES = {
  simple: 'SELECT id, total FROM orders WHERE total > $1',
  join: 'SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > $1 ORDER BY o.id LIMIT 10',
};

export async function benchRowFilters({ quick = false } = {}) {
  await initSqlAnalysis();
  await loadRowFilterDeparser();
  const filters = parseRowFilters(FILTERS);
  const samples = quick ? 200 : 3000;
  const firstSamples = quick ? 10 : 60;
  const out = { filters: FILTERS.length };
  for (const [name, sql] of Object.entries(SHAPES)) {
    analyseSql(sql);
    for (let i = 0; i < 50; i++) applyRowFilters(sql, [1], filters, PRINCIPAL);
    const repeat = [];
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      applyRowFilters(sql, [1], filters, PRINCIPAL);
      repeat.push(performance.now() - t0);
    }
    // A new shape each time (a different constant LIMIT changes the tree), analysed first as the gate does.
    const first = [];
    for (let i = 0; i < firstSamples; i++) {
      const text = `${sql.replace(/ LIMIT 10$/, '')} LIMIT ${100_000 + i + Math.floor(Math.random() * 1e6)}`;
      analyseSql(text);
      const t0 = performance.now();
      applyRowFilters(text, [1], filters, PRINCIPAL);
      first.push(performance.now() - t0);
    }
    out[name] = { repeat: summarise(repeat, 'us'), first: summarise(first, 'ms') };
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${JSON.stringify(await benchRowFilters({ quick: process.env.BENCH_QUICK === '1' }), null, 2)}\n`);
}
