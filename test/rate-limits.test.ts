import t from 'tap';
import { makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { ConfigError, loadConfig } from '../src/config/loader.js';

t.test('per-tool buckets: exact counts, retry_after_s, other tools unaffected', async (t) => {
  const sb = makeSandbox({
    limits: {
      tiers: { local: { capacity: 1000, refill_per_s: 1000 }, tight: { capacity: 3, refill_per_s: 0.01 } },
      default_tier: 'local',
      per_tool: { run_javascript: 'tight' },
    },
  });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const codes: (string | undefined)[] = [];
  for (let i = 0; i < 5; i++) codes.push((await gate.call('run_javascript', { code: 'return 1' })).denial?.code);
  t.same(codes, [undefined, undefined, undefined, 'rate_limited', 'rate_limited']);
  const last = await gate.call('run_javascript', { code: 'return 1' });
  t.ok(last.denial?.reasons.includes('rate.principal_tool'));
  t.ok((last.denial?.detail?.retry_after_s as number) >= 90, `retry_after_s ${last.denial?.detail?.retry_after_s}`);
  t.equal((await gate.call('read_file', { path: 'hello.txt' })).status, 'ok', 'other tools still answer');
});

t.test('an unknown tier in limits.per_tool is a config error naming the key', async (t) => {
  const sb = makeSandbox({ limits: { per_tool: { read_file: 'no-such-tier' } } });
  t.teardown(sb.cleanup);
  t.throws(() => loadConfig({ file: sb.configPath }), ConfigError);
  try {
    loadConfig({ file: sb.configPath });
  } catch (err) {
    t.match((err as ConfigError).problems.join('\n'), 'limits.per_tool.read_file');
  }
});

t.test('with limits.store: redis, two gates share the principal limit', async (t) => {
  const url = process.env.REDIS_URL;
  t.ok(url, 'REDIS_URL is set: run the suite with `npm test`, which starts a real Redis');
  if (!url) return;
  const prefix = `bulwark-test-${process.pid}-${Date.now()}:`;
  const cfg = {
    limits: { store: 'redis', redis_url: url, redis_prefix: prefix, tiers: { local: { capacity: 4, refill_per_s: 0.001 } }, default_tier: 'local' },
  };
  const a = makeSandbox(cfg);
  const b = makeSandbox(cfg);
  t.teardown(() => {
    a.cleanup();
    b.cleanup();
  });
  const ga = await inProcessGate(a.configPath);
  const gb = await inProcessGate(b.configPath);
  t.teardown(async () => {
    await ga.close();
    await gb.close();
  });
  const outcomes: string[] = [];
  for (let i = 0; i < 6; i++) outcomes.push((await (i % 2 ? gb : ga).call('file_info', { path: 'hello.txt' })).status);
  t.same(outcomes, ['ok', 'ok', 'ok', 'ok', 'denied', 'denied'], 'four allowed across both replicas, then refused');
});
