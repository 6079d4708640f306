/**
 * Issue 17, the pieces on their own: attempts that count from when they begin, the refusal budget's
 * aggregation and bounds, and the argon2 gate's bound (real argon2, in-process and isolated).
 */
import t from 'tap';
import argon2 from 'argon2';
import { Lockout } from '../src/auth/lockout.js';
import { OVERFLOW_ADDRESS, RefusalBudget } from '../src/auth/refusal-budget.js';
import { Argon2Gate } from '../src/execution/argon2-verifier.js';
import { AuthRuntime } from '../src/auth/runtime.js';
import type { RefusalAggregate } from '../src/auth/refusal-budget.js';
import { loadConfig } from '../src/config/loader.js';
import { createLogger } from '../src/observability/logger.js';
import { makeSandbox } from './helpers/fixtures.js';
import path from 'node:path';

t.test('Lockout: running attempts count towards the threshold; a success ends them without a failure', async (t) => {
  let clock = 1_000_000;
  const l = new Lockout({ threshold: 3, baseMs: 10_000, maxMs: 60_000, forgetMs: 60_000 }, () => clock);
  l.begin('s');
  l.begin('s');
  t.equal(l.retryAfterS('s'), 0, 'two running of three');
  l.begin('s');
  t.equal(l.retryAfterS('s'), 1, 'three running: the next waits (before any has failed)');
  l.end('s', false);
  t.equal(l.retryAfterS('s'), 0, 'one ended well: room again');
  l.end('s', true);
  l.end('s', true);
  t.equal(l.failures('s'), 2);
  l.begin('s');
  l.end('s', true);
  t.ok(l.retryAfterS('s') >= 10, 'three failures: locked for base_s');
  clock += 60_001 + 10_000;
  t.equal(l.retryAfterS('s'), 0, 'forgotten after forget_s');
  l.failure('p', true);
  t.ok(l.retryAfterS('p') > 0, 'a strict failure locks at once');
});

t.test('RefusalBudget: per-address records, then one aggregate per interval; a continuing flood stays aggregated', async (t) => {
  let clock = 0;
  const b = new RefusalBudget({ perAddress: 3, intervalMs: 1000, maxAddresses: 2 }, () => clock);
  const own = Array.from({ length: 10 }, () => b.admit('a', 'auth.missing'));
  t.same(own, [true, true, true, false, false, false, false, false, false, false]);
  t.notOk(b.admit('a', 'auth.locked_out', false), 'a 429 is never recorded singly');
  t.same(b.due(), [], 'nothing before the interval ends');
  clock = 1000;
  const [agg, ...rest] = b.due();
  t.same(rest, []);
  t.same(agg, { address: 'a', count: 8, first: 0, last: 0, reasons: { 'auth.missing': 7, 'auth.locked_out': 1 } });
  t.notOk(b.admit('a', 'auth.missing'), 'the flood goes on: still aggregated in the next interval');
  clock = 2000;
  t.equal(b.due()[0]?.count, 1);
  clock = 3000;
  t.same(b.due(), [], 'a quiet interval');
  t.ok(b.admit('a', 'auth.missing'), 'then it starts afresh');
  // Bounded: a third address shares the overflow aggregate and is never recorded singly.
  t.ok(b.admit('b', 'auth.missing'));
  t.notOk(b.admit('c', 'auth.missing'));
  t.notOk(b.admit('d', 'auth.unknown_key'));
  const drained = b.drain();
  t.same(drained.find((x) => x.address === OVERFLOW_ADDRESS)?.reasons, { 'auth.missing': 1, 'auth.unknown_key': 1 });
});

for (const isolate of [false, true]) {
  t.test(`Argon2Gate (isolate ${isolate}): one at a time, a bounded queue, the rest refused at once`, async (t) => {
    const secret = 'S'.repeat(43);
    const hash = await argon2.hash(secret, { type: argon2.argon2id });
    const gate = new Argon2Gate(1, 2, isolate);
    t.teardown(() => gate.close());
    const runs = Array.from({ length: 6 }, (_, i) => gate.verify(hash, i === 0 ? secret : `${secret}x`));
    t.same(
      runs.map((r) => r !== undefined),
      [true, true, true, false, false, false],
      'one running, two queued, three refused',
    );
    t.equal(gate.refused, 3);
    t.same(await Promise.all(runs.slice(0, 3)), [true, false, false]);
    t.equal(gate.busy, 0, 'all slots returned');
    t.equal(await gate.verify(hash, secret), true, 'and it serves again');
  });
}

t.test('AuthRuntime.close writes the aggregates still open (shutdown loses no count)', async (t) => {
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json', refusals: { per_address: 2, interval_s: 3600 } } });
  t.teardown(sb.cleanup);
  const auth = new AuthRuntime(loadConfig({ file: sb.configPath }).config, path.dirname(sb.configPath), createLogger('error'));
  const written: RefusalAggregate[] = [];
  auth.onAggregates(async (aggs) => {
    written.push(...aggs);
  });
  let own = 0;
  for (let i = 0; i < 12; i++) {
    const r = await auth.authenticate(undefined, '198.51.100.9');
    if (!r.ok && auth.refusals.admit('198.51.100.9', r.reason, r.status !== 429)) own += 1;
  }
  t.equal(own, 2);
  t.same(written, [], 'the interval (an hour) has not ended');
  await auth.close();
  t.match(written, [{ address: '198.51.100.9', count: 10, reasons: { 'auth.missing': 10 } }]);
});
