import t, { type Test } from 'tap';
import { makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

// PGlite boots in seconds, twice here (the runaway query kills its worker): allow for a loaded machine.
t.setTimeout(240_000);

type Gate = Awaited<ReturnType<typeof inProcessGate>>;

/**
 * Wait until the embedded database has booted: the first call pays for the boot, which a loaded
 * machine stretches past the call's 10 s deadline. Every call that fails meanwhile must fail typed
 * (answered at its deadline, or unavailable while the worker starts), never hang or crash.
 */
async function booted(t: Test, gate: Gate): Promise<void> {
  const until = performance.now() + 120_000;
  for (;;) {
    const o = await gate.call('list_tables', {});
    if (o.status === 'ok') return;
    t.ok(['timeout', 'unavailable'].includes(o.denial?.code ?? ''), `while booting: ${JSON.stringify(o.denial)}`);
    if (performance.now() > until) return;
  }
}

// With no database URL the tools run on the embedded PGlite: same analysis, same policy, same
// wrapper; a runaway query is stopped by killing its worker.
t.test('the embedded database answers query_database with zero setup', async (t) => {
  const sb = makeSandbox({ database: { statement_timeout_ms: 3000 } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  await booted(t, gate);
  const o = await gate.call('query_database', { sql: 'SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region' });
  t.equal(o.status, 'ok', JSON.stringify(o.denial));
  t.same(o.result?.structured.rows, [
    { region: 'east', n: 13 },
    { region: 'north', n: 12 },
    { region: 'south', n: 13 },
    { region: 'west', n: 12 },
  ]);
  const p = await gate.call('query_database', { sql: 'SELECT name FROM products WHERE id = $1', params: [3] });
  t.same(p.result?.structured.rows, [{ name: 'product 3' }]);
  const attack = await gate.call('query_database', { sql: 'SELECT 1; DROP TABLE customers' });
  t.equal(attack.denial?.code, 'sql_rejected');
  const fn = await gate.call('query_database', { sql: "SELECT * FROM pg_read_file('/etc/passwd')" });
  t.equal(fn.denial?.code, 'sql_rejected');
  // The planner sees this one coming: the shipped plan limits refuse it before it runs.
  const bomb = await gate.call('query_database', { sql: 'SELECT count(*) FROM generate_series(1, 100000000000) g' });
  t.equal(bomb.denial?.code, 'sql_rejected', 'an estimated runaway is refused by the cost gate');
  t.same(bomb.denial?.reasons, ['sql.cost_exceeded']);
  // A scalar subquery hides the bound from the planner (estimated cost ≈ 12): it passes the
  // cost gate, runs, and is stopped by killing its worker.
  const hidden = await gate.call('query_database', { sql: 'SELECT count(*) FROM generate_series(1, (SELECT 100000000000)) g' });
  t.equal(hidden.denial?.code, 'timeout', 'the runaway query is stopped by killing its worker');
  await booted(t, gate);
  const after = await gate.call('query_database', { sql: 'SELECT count(*) AS n FROM orders' });
  t.same(after.result?.structured.rows, [{ n: 400 }], 'a fresh worker answers next');
  const tables = await gate.call('list_tables', {});
  t.ok((tables.result?.structured.tables as { name: string }[]).some((x) => x.name === 'orders'));
});
