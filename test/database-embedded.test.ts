import t from 'tap';
import { makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

// PGlite boots in seconds, twice here (the runaway query kills its worker): allow for a loaded machine.
t.setTimeout(240_000);

// With no database URL the tools run on the embedded PGlite: same analysis, same policy, same
// wrapper; a runaway query is stopped by killing its worker.
t.test('the embedded database answers query_database with zero setup', async (t) => {
  const sb = makeSandbox({ database: { statement_timeout_ms: 3000 } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
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
  const bomb = await gate.call('query_database', { sql: 'SELECT count(*) FROM generate_series(1, 100000000000) g' });
  t.equal(bomb.denial?.code, 'timeout', 'the runaway query is stopped by killing its worker');
  const after = await gate.call('query_database', { sql: 'SELECT count(*) AS n FROM orders' });
  t.same(after.result?.structured.rows, [{ n: 400 }], 'a fresh worker answers next');
  const tables = await gate.call('list_tables', {});
  t.ok((tables.result?.structured.tables as { name: string }[]).some((x) => x.name === 'orders'));
});
