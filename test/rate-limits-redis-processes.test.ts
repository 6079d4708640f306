/**
 * Issue 7: "Rate limits with a shared Redis across two server processes."
 *
 * Two `bulwark serve --http` processes with `auth.http: api_key`, one API key store file, and
 * `limits.store: redis` on the real Redis of the test run (REDIS_URL, started by
 * scripts/run-tests.mjs), under a prefix of their own. Calls alternate between the processes:
 * the total allowed across both is the bucket's capacity, then both answer rate_limited with
 * retry_after_s. The same for a per-tool bucket (limits.per_tool), which leaves the principal's
 * other tools alone. Without REDIS_URL this file FAILS: a shared limit that was never exercised
 * is not a tested limit.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { request } from './helpers/http.js';
import { bearerClient, errorOf, parseMetrics, samples, type ToolError } from './helpers/bearer.js';
import { createKey } from '../src/auth/api-keys.js';

t.setTimeout(120_000);

const REDIS_URL = process.env.REDIS_URL;

if (!REDIS_URL) {
  t.fail(
    'REDIS_URL is not set: run the suite with `node scripts/run-tests.mjs` (or start scripts/services.sh and export its env), which starts a throwaway Redis',
  );
} else {
  const url = REDIS_URL;
  const prefix = `bulwark-test-rl-${process.pid}-${crypto.randomBytes(4).toString('hex')}:`;
  // Capacities, refilling one token per 1000 s: nothing refills while the test runs.
  const PRINCIPAL_CAPACITY = 4;
  const TOOL_CAPACITY = 3;
  const limits = {
    store: 'redis',
    redis_url: '${REDIS_URL}',
    redis_prefix: prefix,
    tiers: {
      local: { capacity: 100000, refill_per_s: 100000 },
      tiny: { capacity: PRINCIPAL_CAPACITY, refill_per_s: 0.001 },
      tight: { capacity: TOOL_CAPACITY, refill_per_s: 0.001 },
    },
    default_tier: 'local',
    per_tool: { run_javascript: 'tight' },
  };
  const sbA = makeSandbox({ limits, auth: { http: 'api_key', keys_file: 'keys.json' } });
  const keysFile = path.join(sbA.dir, 'keys.json');
  // Replica B reads replica A's key store: one store file, two processes.
  const sbB = makeSandbox({ limits, auth: { http: 'api_key', keys_file: keysFile } });

  let a: HttpServerProcess;
  let b: HttpServerProcess;
  let botToken = '';
  let coderToken = '';
  const clients: Client[] = [];

  t.before(async () => {
    botToken = (await createKey(keysFile, { principal: 'bot', roles: ['developer'], tier: 'tiny' })).token;
    coderToken = (await createKey(keysFile, { principal: 'coder', roles: ['developer', 'metrics'], tier: 'local' })).token;
    [a, b] = await Promise.all([startHttpServer(['--config', sbA.configPath]), startHttpServer(['--config', sbB.configPath])]);
  });
  t.teardown(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await Promise.allSettled([a?.stop(), b?.stop()]);
    sbA.cleanup();
    sbB.cleanup();
    const redis = new Redis(url, { maxRetriesPerRequest: 1 });
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  async function connect(server: HttpServerProcess, token: string): Promise<Client> {
    const c = await bearerClient(server.url, token);
    clients.push(c);
    return c;
  }

  interface Seen {
    readonly replica: 'A' | 'B';
    readonly error: ToolError | undefined;
  }
  async function alternate(pair: [Client, Client], n: number, name: string, args: Record<string, unknown>): Promise<Seen[]> {
    const seen: Seen[] = [];
    for (let i = 0; i < n; i++) {
      const replica = i % 2 === 0 ? 'A' : 'B';
      const r = await pair[i % 2]!.callTool({ name, arguments: args });
      seen.push({ replica, error: errorOf(r) });
    }
    return seen;
  }
  const summary = (seen: Seen[]): string => JSON.stringify(seen.map((s) => `${s.replica}:${s.error ? `${s.error.code}/${s.error.reasons.join('+')}` : 'ok'}`));

  /** One token per 1000 s: retry_after_s is about a token's wait, less what refilled meanwhile. */
  function checkRefusal(t: Test, s: Seen, reason: string): void {
    t.equal(s.error?.code, 'rate_limited', `${s.replica}: rate_limited`);
    t.same(s.error?.reasons, [reason], `${s.replica}: ${reason}`);
    const retry = s.error?.retry_after_s;
    t.ok(typeof retry === 'number' && retry > 900 && retry <= 1000, `${s.replica}: retry_after_s ${retry}`);
  }

  t.test('the principal bucket is shared: its capacity in total across both processes, then refused by both', async (t) => {
    const pair: [Client, Client] = [await connect(a, botToken), await connect(b, botToken)];
    const seen = await alternate(pair, PRINCIPAL_CAPACITY + 2, 'file_info', { path: 'hello.txt' });
    t.equal(seen.filter((s) => !s.error).length, PRINCIPAL_CAPACITY, `exactly ${PRINCIPAL_CAPACITY} allowed across both: ${summary(seen)}`);
    t.ok(
      seen.slice(0, PRINCIPAL_CAPACITY).every((s) => !s.error),
      'the first ones, alternating, were allowed',
    );
    const refused = seen.slice(PRINCIPAL_CAPACITY);
    t.same(refused.map((s) => s.replica).sort(), ['A', 'B'], 'both processes refuse');
    for (const s of refused) checkRefusal(t, s, 'rate.principal');
    // Per process, each allowed only its share: neither had a bucket of its own.
    t.equal(seen.filter((s) => s.replica === 'A' && !s.error).length, PRINCIPAL_CAPACITY / 2);
    t.equal(seen.filter((s) => s.replica === 'B' && !s.error).length, PRINCIPAL_CAPACITY / 2);
    // A third connection, fresh on either process, is refused too: the state is in Redis.
    const late = await connect(b, botToken);
    t.equal(
      errorOf(await late.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } }))?.code,
      'rate_limited',
      'another tool, same principal: the same bucket',
    );
  });

  t.test("the per-tool bucket is shared too, and leaves the principal's other tools alone", async (t) => {
    const pair: [Client, Client] = [await connect(a, coderToken), await connect(b, coderToken)];
    const seen = await alternate(pair, TOOL_CAPACITY + 2, 'run_javascript', { code: 'return 6 * 7' });
    t.equal(seen.filter((s) => !s.error).length, TOOL_CAPACITY, `exactly ${TOOL_CAPACITY} run_javascript calls allowed across both: ${summary(seen)}`);
    t.ok(
      seen.slice(0, TOOL_CAPACITY).every((s) => !s.error),
      'the first ones, alternating, were allowed',
    );
    const refused = seen.slice(TOOL_CAPACITY);
    t.same(refused.map((s) => s.replica).sort(), ['A', 'B'], 'both processes refuse');
    for (const s of refused) checkRefusal(t, s, 'rate.principal_tool');
    for (const [i, c] of pair.entries()) {
      const r = await c.callTool({ name: 'file_info', arguments: { path: 'hello.txt' } });
      t.equal(errorOf(r), undefined, `${i ? 'B' : 'A'}: file_info still answers for the same principal`);
    }
    // bot's empty principal bucket still refuses it first, whatever the tool.
    const bot = await connect(a, botToken);
    t.equal(
      errorOf(await bot.callTool({ name: 'run_javascript', arguments: { code: 'return 1' } }))?.reasons[0],
      'rate.principal',
      "bot is refused by its own (empty) principal bucket, not by coder's tool bucket",
    );
  });

  t.test('each process recorded and counted its own refusals; the buckets live in Redis under the prefix', async (t) => {
    // bot: one refusal on each process, the late call on B, the last call on A; coder: one on each.
    const refusedIn = (file: string) => readAudit(file).filter((r) => r.outcome?.code === 'rate_limited').length;
    const inA = refusedIn(sbA.auditPath);
    const inB = refusedIn(sbB.auditPath);
    t.equal(inA + inB, 6, `six refusals in all (A ${inA}, B ${inB})`);
    t.equal(inA, 3);
    t.equal(inB, 3);
    for (const [name, server, expected] of [
      ['A', a, inA],
      ['B', b, inB],
    ] as const) {
      const m = await request(`${server.base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${coderToken}` } });
      t.equal(m.status, 200);
      const total = samples(parseMetrics(m.body), 'mcp_rate_limited_total').reduce((x, s) => x + s.value, 0);
      t.equal(total, expected, `${name}: mcp_rate_limited_total matches its audit log`);
    }
    const redis = new Redis(url, { maxRetriesPerRequest: 1 });
    t.teardown(() => redis.quit());
    const keys = (await redis.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)).sort();
    t.ok(
      keys.some((k) => k.includes('principal:api_key:bot')),
      `bot's bucket is in Redis: ${JSON.stringify(keys)}`,
    );
    t.ok(
      keys.some((k) => k.includes('principal:api_key:coder') && k.includes('run_javascript')),
      "coder's run_javascript bucket is in Redis",
    );
  });
}
