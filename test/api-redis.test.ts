/**
 * The Redis stores of the API gateway against a real Redis (REDIS_URL, started by
 * `node scripts/run-tests.mjs` with a password). Without REDIS_URL these tests FAIL: a shared
 * limit that was never exercised is not a tested limit.
 *
 * - The token-bucket script is atomic: concurrent takes never over-grant.
 * - Two `bulwark serve --http` processes share one limit: N calls allowed in total, then
 *   rate_limited with retry_after_s, whichever replica answers.
 * - The response cache is shared through Redis and still scoped to the principal.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Redis } from 'ioredis';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { httpClient, startHttpServer } from './helpers/clients.js';
import { startUpstream, writePolicyData } from './helpers/upstreams.js';
import { RedisTokenBuckets } from '../src/limits/redis-token-bucket.js';

const REDIS_URL = process.env.REDIS_URL;

if (!REDIS_URL) {
  t.fail('REDIS_URL is not set: run the suite with `node scripts/run-tests.mjs`, which starts a throwaway Redis');
} else {
  const url = REDIS_URL;
  const prefix = `bulwark-test-${crypto.randomBytes(4).toString('hex')}:`;

  t.test('the token-bucket script is atomic and refills on Redis time', async (t) => {
    const redis = new Redis(url, { maxRetriesPerRequest: 1 });
    t.teardown(() => redis.quit());
    // The store fails fast while a connection is still being made (300 ms); this test is about
    // atomicity, so it starts once connected, however slow a loaded machine is to connect.
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    const buckets = new RedisTokenBuckets(redis, prefix);
    const results = await Promise.all(Array.from({ length: 50 }, () => buckets.take('atomic', { capacity: 10, refill_per_s: 0.001 })));
    t.equal(results.filter((r) => r.ok).length, 10, '50 concurrent takes on a bucket of 10: exactly 10 granted');
    const refused = results.find((r) => !r.ok);
    t.equal(refused?.retryAfterS, 1000, 'retry_after_s: one token at 0.001/s');

    const fast = { capacity: 2, refill_per_s: 2 };
    t.ok((await buckets.take('refill', fast)).ok);
    t.ok((await buckets.take('refill', fast)).ok);
    t.notOk((await buckets.take('refill', fast)).ok, 'empty');
    await new Promise((r) => setTimeout(r, 600));
    t.ok((await buckets.take('refill', fast)).ok, 'refilled at 2 tokens/s');
    const ttl = await redis.pttl(`${prefix}rate:refill`);
    t.ok(ttl > 0 && ttl <= 2000, `idle buckets expire (pttl ${ttl} ms)`);

    // A flushed script cache (Redis restart, SCRIPT FLUSH) is recovered from transparently.
    await redis.script('FLUSH');
    t.ok((await buckets.take('after-flush', fast)).ok, 'EVALSHA falls back to EVAL');
  });

  t.test('two server processes share one rate limit and one cache through Redis', async (t) => {
    const up = await startUpstream();
    const apis = {
      svc: { base_url: `${up.origin}/v1/`, internal: true, retries: 0, rate: { capacity: 5, refill_per_s: 0.001 } },
      cached: { base_url: `${up.origin}/v1/`, internal: true, retries: 0, cache_ttl_s: 60 },
    };
    const limits = {
      tiers: { local: { capacity: 100000, refill_per_s: 100000 } },
      default_tier: 'local',
      store: 'redis',
      redis_url: '${REDIS_URL}',
      redis_prefix: prefix,
      api_cache: { store: 'redis' },
    };
    const sandboxes = [0, 1, 2].map(() => makeSandbox({ apis, limits, policy: { data: 'policy-data.json' }, observability: { log_level: 'info' } }));
    for (const sb of sandboxes) writePolicyData(sb.dir, Object.keys(apis));
    const [sbA, sbB, sbC] = sandboxes as [(typeof sandboxes)[0], (typeof sandboxes)[0], (typeof sandboxes)[0]];
    // The third, in-process gate is another principal ("carol", stdio) on the same Redis.
    const cfgC = fs.readFileSync(sbC.configPath, 'utf8');
    fs.writeFileSync(sbC.configPath, `${cfgC}principals:\n  stdio: { id: carol, roles: [developer], tier: local }\n`);
    const a = await startHttpServer(['--config', sbA.configPath]);
    const b = await startHttpServer(['--config', sbB.configPath]);
    const clientA = await httpClient(a.url);
    const clientB = await httpClient(b.url);
    const carol = await inProcessGate(sbC.configPath);
    t.teardown(async () => {
      await Promise.allSettled([clientA.close(), clientB.close(), carol.close()]);
      await Promise.allSettled([a.stop(), b.stop(), up.close()]);
      for (const sb of sandboxes) sb.cleanup();
      const redis = new Redis(url);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    });

    const outcomes: { replica: string; ok: boolean; code?: string; retry?: number; reasons?: string[] }[] = [];
    for (let i = 0; i < 8; i++) {
      const [name, client] = i % 2 === 0 ? (['A', clientA] as const) : (['B', clientB] as const);
      const r = await client.callTool({ name: 'call_api', arguments: { api: 'svc', path: '/json' } });
      const err = (r.structuredContent as { error?: { code: string; retry_after_s?: number; reasons: string[] } } | undefined)?.error;
      outcomes.push({ replica: name, ok: !r.isError, ...(err ? { code: err.code, retry: err.retry_after_s, reasons: err.reasons } : {}) });
    }
    t.equal(
      outcomes.filter((o) => o.ok).length,
      5,
      `exactly 5 of 8 calls allowed across both replicas: ${JSON.stringify(outcomes.map((o) => `${o.replica}:${o.ok ? 'ok' : o.code}`))}`,
    );
    t.ok(
      outcomes.slice(0, 5).every((o) => o.ok),
      'the first five, alternating replicas, were allowed',
    );
    // One token per 1000 s: the wait is 1000 s less whatever refilled between the calls, which a
    // loaded machine stretches to seconds; it must still be about a token's worth.
    t.ok(
      outcomes.slice(5).every((o) => o.code === 'rate_limited' && typeof o.retry === 'number' && o.retry > 900 && o.retry <= 1000),
      `then rate_limited with retry_after_s on both replicas: ${JSON.stringify(outcomes.slice(5).map((o) => o.retry))}`,
    );
    t.same(outcomes[5]?.reasons, ['rate.upstream_principal']);
    t.equal(up.count('/v1/json'), 5, 'the upstream saw exactly five requests');

    const first = await clientA.callTool({ name: 'call_api', arguments: { api: 'cached', path: '/counter' } });
    const second = await clientB.callTool({ name: 'call_api', arguments: { api: 'cached', path: '/counter' } });
    t.equal((first.structuredContent as { from_cache: boolean }).from_cache, false);
    t.equal((second.structuredContent as { from_cache: boolean }).from_cache, true, 'replica B answered from the entry replica A stored in Redis');
    t.same((second.structuredContent as { body: unknown }).body, (first.structuredContent as { body: unknown }).body);
    const other = await carol.call('call_api', { api: 'cached', path: '/counter' });
    t.equal(other.status, 'ok');
    t.equal(other.result?.structured.from_cache, false, 'another principal does not get that entry from Redis');
    t.equal(up.count('/v1/counter'), 2, 'two upstream requests for three calls');

    const rec = readAudit(sbB.auditPath).find((r) => r.outcome?.code === 'rate_limited');
    t.ok(rec, "the refusal is in replica B's audit log");
    const stderr = a.stderr() + b.stderr();
    const password = new URL(url).password;
    if (password) t.notOk(stderr.includes(password), 'the Redis password is never logged');
    t.notOk(path.basename(sbA.auditPath) === '', 'sandboxes are distinct');
  });

  t.test('a Redis that stops answering fails closed for rate limits', async (t) => {
    const up = await startUpstream();
    const sb = makeSandbox({
      apis: { svc: { base_url: `${up.origin}/v1/`, internal: true, retries: 0 } },
      // Nothing listens on port 9 (discard): every command fails.
      limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 } }, default_tier: 'local', store: 'redis', redis_url: 'redis://127.0.0.1:9' },
      policy: { data: 'policy-data.json' },
    });
    writePolicyData(sb.dir, ['svc']);
    const gate = await inProcessGate(sb.configPath);
    t.teardown(async () => {
      await gate.close();
      await up.close();
      sb.cleanup();
    });
    const o = await gate.call('call_api', { api: 'svc', path: '/json' });
    t.equal(o.denial?.code, 'unavailable');
    t.same(o.denial?.reasons, ['rate.store_unavailable']);
    t.equal(up.count(), 0, 'nothing was sent without a rate decision');
  });
}
