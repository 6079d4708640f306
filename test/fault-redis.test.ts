/**
 * Issue 11: "Redis killed and restarted". Each test runs its OWN redis-server (a free loopback
 * port, a random password, no persistence), started here and killed by its PID: never the shared
 * Redis of the test run, which other test files use concurrently.
 *
 * - The stores in-process: with Redis killed -9, a rate take is refused (RateStoreUnavailable) at
 *   once, the API cache is skipped (a miss, a dropped write; never an error), and the readiness
 *   check says false; with Redis frozen (SIGSTOP) the same within the command timeout; all of it
 *   comes back by itself once Redis answers again.
 * - A real server with limits.store: redis under several clients: calls during the outage are
 *   answered `unavailable` (rate.store_unavailable) within 1.5 s, never internal_error, never a
 *   hang; they succeed again within seconds of Redis returning, without a restart; every answered
 *   call has one outcome record.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { loadConfig } from '../src/config/loader.js';
import { createLogger } from '../src/observability/logger.js';
import { ApiRuntime } from '../src/tools/api/runtime.js';
import { RateStoreUnavailable } from '../src/limits/rate-store.js';
import { cacheKey } from '../src/tools/api/cache.js';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { verifyCli } from './helpers/faults.js';
import { httpClient, startHttpServer } from './helpers/clients.js';
import { freePort } from './helpers/replicas.js';

t.setTimeout(180_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function redisBinary(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/sbin', '/usr/local/bin']) {
    const p = path.join(dir, 'redis-server');
    if (dir && fs.existsSync(p)) return p;
  }
  return undefined;
}

/** A redis-server of this test's own, on a fixed port and password so it can come back at the same address. */
class OwnRedis {
  private proc: ChildProcess | undefined;
  readonly password = crypto.randomBytes(12).toString('hex');
  constructor(
    readonly bin: string,
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://:${this.password}@127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const proc = spawn(
      this.bin,
      [
        '--bind',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--save',
        '',
        '--appendonly',
        'no',
        '--requirepass',
        this.password,
        '--protected-mode',
        'yes',
        '--dir',
        this.dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      proc.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (/Ready to accept connections/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited ${code}: ${out}`));
      });
    });
  }

  /** kill -9 by PID, and wait until it is gone. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    process.kill(proc.pid as number, 'SIGKILL');
    await gone;
  }

  signal(sig: 'SIGSTOP' | 'SIGCONT'): void {
    if (this.proc?.pid) process.kill(this.proc.pid, sig);
  }
}

const BIN = redisBinary();

async function ownRedis(t: Test): Promise<OwnRedis> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-redis-'));
  const r = new OwnRedis(BIN as string, await freePort(), dir);
  t.teardown(async () => {
    r.signal('SIGCONT');
    await r.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await r.start();
  return r;
}

async function timed<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const t0 = performance.now();
  try {
    return { value: await p, ms: performance.now() - t0 };
  } catch (error) {
    return { error, ms: performance.now() - t0 };
  }
}

async function within(ms: number, cond: () => Promise<boolean>, step = 50): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (await cond()) return Math.round(performance.now() - t0);
    await sleep(step);
  }
  return -1;
}

if (!BIN) {
  t.fail('redis-server not found: run bash scripts/toolchain.sh (a Redis fault test that cannot start Redis must not pass)');
} else {
  t.test('the Redis stores in-process: refused or skipped at once when Redis is gone or frozen, back by themselves', async (t) => {
    const redis = await ownRedis(t);
    const sb = makeSandbox({
      limits: {
        tiers: { local: { capacity: 100000, refill_per_s: 100000 } },
        default_tier: 'local',
        store: 'redis',
        redis_url: redis.url,
        redis_prefix: 'fault-test:',
        api_cache: { store: 'redis' },
      },
    });
    t.teardown(sb.cleanup);
    const { config } = loadConfig({ file: sb.configPath });
    const rt = ApiRuntime.create(config, createLogger('error'));
    t.teardown(() => rt.close());
    const tier = { capacity: 1000, refill_per_s: 1000 };
    const key = cacheKey({ upstream: 'svc', method: 'GET', path: '/x', query: '', principal: 'alice' });
    const entry = { status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from('hello'), storedAt: Date.now(), redacted: 0 };

    // Up: takes issued while the first connect is under way wait for it (bounded, one shared wait).
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const first = await Promise.all(Array.from({ length: 50 }, () => rt.rate.take('k', tier)));
    await sleep(50);
    process.off('warning', onWarning);
    t.ok(
      first.every((r) => r.ok),
      '50 takes at connect time all answered',
    );
    t.same(
      warnings.filter((w) => /listener/i.test(w)),
      [],
      'no listener per waiting call',
    );
    t.equal(await rt.redisHealthy(), true);
    t.equal(rt.redisRequired, true);

    // Killed: refused at once, cache skipped, readiness false.
    await redis.kill();
    const take = await timed(rt.rate.take('k', tier));
    t.ok(take.error instanceof RateStoreUnavailable, `take refused: ${String(take.error)}`);
    t.ok(take.ms < 1500, `refused in ${Math.round(take.ms)} ms`);
    const miss = await timed(rt.cache.get(`${key}-other`));
    t.equal(miss.value, undefined, 'a cache read without Redis is a miss');
    t.ok(miss.ms < 1500, `cache miss in ${Math.round(miss.ms)} ms`);
    const write = await timed(rt.cache.set(`${key}-w`, entry, 60_000));
    t.equal(write.error, undefined, 'a cache write without Redis is dropped, not thrown');
    t.ok(write.ms < 1500);
    const health = await timed(rt.redisHealthy());
    t.equal(health.value, false, 'redisHealthy() is false');
    t.ok(health.ms < 1500, `readiness answered in ${Math.round(health.ms)} ms`);
    // Many takes during the outage: each refused promptly, none queued for later.
    const burst = await Promise.all(Array.from({ length: 50 }, () => timed(rt.rate.take('k', tier))));
    t.ok(
      burst.every((b) => b.error instanceof RateStoreUnavailable),
      '50 concurrent takes all refused',
    );
    const burstMax = Math.max(...burst.map((b) => b.ms));
    t.ok(burstMax < 1500, `slowest refusal ${Math.round(burstMax)} ms`);

    // Back: the connection returns on its own (ioredis back-off capped at 2 s).
    await redis.start();
    const back = await within(
      8000,
      async () =>
        await rt.rate.take('k', tier).then(
          (r) => r.ok,
          () => false,
        ),
    );
    t.comment(
      JSON.stringify({ scenario: 'redis killed (in-process)', take_refused_ms: Math.round(take.ms), burst_max_ms: Math.round(burstMax), recovered_ms: back }),
    );
    t.ok(back >= 0 && back < 5000, `takes succeed again ${back} ms after Redis is back`);
    t.equal(await rt.redisHealthy(), true, 'readiness true again');
    await rt.cache.set(key, entry, 60_000);
    t.equal((await rt.cache.get(key))?.body.toString(), 'hello', 'the cache is in use again');

    // Frozen (SIGSTOP): the connection stays open but nothing answers: the command timeout bounds it.
    redis.signal('SIGSTOP');
    const frozen = await timed(rt.rate.take('k', tier));
    const frozenHealth = await timed(rt.redisHealthy());
    const frozenMiss = await timed(rt.cache.get(`${key}-frozen`));
    redis.signal('SIGCONT');
    t.ok(frozen.error instanceof RateStoreUnavailable, 'a take on a frozen Redis is refused');
    t.ok(frozen.ms >= 900 && frozen.ms < 1900, `after the command timeout of 1 s (${Math.round(frozen.ms)} ms)`);
    t.equal(frozenHealth.value, false);
    t.ok(frozenHealth.ms < 2500, `health check answered in ${Math.round(frozenHealth.ms)} ms`);
    t.equal(frozenMiss.value, undefined);
    t.ok(frozenMiss.ms < 2500, `cache miss answered in ${Math.round(frozenMiss.ms)} ms`);
    const thawed = await within(
      5000,
      async () =>
        await rt.rate.take('k', tier).then(
          (r) => r.ok,
          () => false,
        ),
    );
    t.comment(
      JSON.stringify({
        scenario: 'redis frozen (in-process)',
        take_refused_ms: Math.round(frozen.ms),
        readiness_ms: Math.round(frozenHealth.ms),
        recovered_ms: thawed,
      }),
    );
    t.ok(thawed >= 0 && thawed < 3000, `back ${thawed} ms after SIGCONT`);
  });

  t.test('Redis killed and restarted under a real server with limits.store: redis', async (t) => {
    const redis = await ownRedis(t);
    const sb = makeSandbox({
      limits: {
        tiers: { local: { capacity: 100000, refill_per_s: 100000 } },
        default_tier: 'local',
        store: 'redis',
        redis_url: redis.url,
        redis_prefix: 'fault-srv:',
      },
      javascript: { timeout_ms: 2000 },
      execution: { timeout_ms: 5000 },
    });
    t.teardown(sb.cleanup);
    const server = await startHttpServer(['--config', sb.configPath]);
    t.teardown(() => server.stop());
    const clients = await Promise.all([0, 1, 2, 3].map(() => httpClient(server.url)));
    t.teardown(() => Promise.allSettled(clients.map((c) => c.close())));

    type Phase = 'before' | 'outage' | 'after';
    interface Seen {
      phase: Phase;
      code: string;
      reasons: string[];
      ms: number;
      at: number;
    }
    const seen: Seen[] = [];
    let phase: Phase = 'before';
    let driving = true;
    const call = async (c: Client, i: number): Promise<void> => {
      const t0 = performance.now();
      const p = phase;
      let code = 'ok';
      let reasons: string[] = [];
      try {
        const r =
          i % 2
            ? await c.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } }, undefined, { timeout: 30_000 })
            : await c.callTool({ name: 'run_javascript', arguments: { code: 'return 6 * 7' } }, undefined, { timeout: 30_000 });
        if (r.isError) {
          const e = (r.structuredContent as { error?: { code: string; reasons: string[] } }).error;
          code = e?.code ?? 'unknown';
          reasons = e?.reasons ?? [];
        }
      } catch (err) {
        code = `client_error:${(err as Error).message.slice(0, 60)}`;
      }
      seen.push({ phase: p, code, reasons, ms: performance.now() - t0, at: performance.now() });
    };
    const drivers = clients.map(async (c, i) => {
      for (let n = 0; driving && n < 2000; n++) {
        await call(c, i);
        await sleep(10);
      }
    });

    await sleep(1500);
    phase = 'outage';
    await redis.kill();
    const killedAt = performance.now();
    await sleep(3000);
    await redis.start();
    phase = 'after';
    const backAt = performance.now();
    await sleep(4000);
    driving = false;
    await Promise.all(drivers);

    t.ok(server.child.exitCode === null && server.child.signalCode === null, 'the server is alive');
    const tally = (xs: Seen[]) => ({
      calls: xs.length,
      ok: xs.filter((x) => x.code === 'ok').length,
      unavailable: xs.filter((x) => x.code === 'unavailable').length,
      timeouts: xs.filter((x) => x.code === 'timeout').length,
      tool_error: xs.filter((x) => x.code === 'tool_error').length,
      other: xs
        .filter((x) => !['ok', 'unavailable', 'timeout', 'tool_error'].includes(x.code))
        .map((x) => x.code)
        .slice(0, 5),
      max_answer_ms: Math.round(Math.max(0, ...xs.map((x) => x.ms))),
    });
    const by = (p: Phase) => seen.filter((x) => x.phase === p);
    // Calls that began before the kill and ended after it belong to the outage as far as answers go.
    const before = by('before').filter((x) => x.at < killedAt);
    const outage = [...by('before').filter((x) => x.at >= killedAt), ...by('outage')];
    const after = by('after');
    const firstOk = after.find((x) => x.code === 'ok');
    const recoveredMs = firstOk ? Math.round(firstOk.at - backAt) : -1;
    const settled = after.filter((x) => x.at - backAt > (recoveredMs >= 0 ? recoveredMs : 0) + 500);
    t.comment(JSON.stringify({ scenario: 'redis killed and restarted: before', ...tally(before) }));
    t.comment(JSON.stringify({ scenario: 'redis killed and restarted: outage (3 s)', ...tally(outage) }));
    t.comment(JSON.stringify({ scenario: 'redis killed and restarted: after', recovered_ms: recoveredMs, ...tally(after) }));

    t.ok(before.length > 10 && before.every((x) => x.code === 'ok'), `all ${before.length} calls before the kill ok`);
    t.ok(outage.length > 20, `${outage.length} calls during the outage`);
    t.same(
      outage.filter((x) => x.code !== 'unavailable' && x.code !== 'ok').map((x) => `${x.code}/${x.reasons.join(',')}`),
      [],
      'during the outage: unavailable (or ok for calls past the gate), nothing else',
    );
    t.ok(
      outage.filter((x) => x.code === 'unavailable').every((x) => x.reasons.includes('rate.store_unavailable')),
      'refused by the rate-limit store, typed',
    );
    t.ok(outage.filter((x) => x.code === 'unavailable').length >= outage.length - 8, 'all but the calls in flight at the kill refused');
    t.ok(
      outage.every((x) => x.ms < 1500),
      `every outage call answered within 1.5 s (max ${Math.round(Math.max(...outage.map((x) => x.ms)))} ms)`,
    );
    t.ok(recoveredMs >= 0 && recoveredMs < 5000, `calls succeed again ${recoveredMs} ms after Redis is back`);
    t.ok(settled.length > 10 && settled.every((x) => x.code === 'ok'), `all ${settled.length} calls after recovery ok`);
    t.same(
      after.filter((x) => x.code !== 'ok' && x.code !== 'unavailable').map((x) => x.code),
      [],
      'nothing but ok/unavailable after the restart',
    );

    await Promise.allSettled(clients.map((c) => c.close()));
    await server.stop();
    t.ok(
      /rate store unavailable/.test(server.stderr()) && /rate store available again/.test(server.stderr()),
      'the outage was logged when it began and when it ended',
    );
    t.ok((server.stderr().match(/rate store unavailable/g) ?? []).length === 1, 'once');
    const recs = readAudit(sb.auditPath).filter((r) => (r.tool === 'run_javascript' || r.tool === 'read_file') && r.outcome);
    t.comment(JSON.stringify({ scenario: 'redis killed and restarted: records', calls: seen.length, records: recs.length }));
    t.equal(recs.length, seen.length, 'one outcome record per answered call');
    const v = verifyCli(sb.auditPath);
    t.equal(v.status, 0, `audit verify passes after the outage: ${v.out.slice(0, 300)}`);
  });
}
