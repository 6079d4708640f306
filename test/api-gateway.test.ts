/**
 * call_api and api_stats behaviour through the real gate (policy wasm, audit log) against real HTTP
 * servers on loopback: bodies and content types, the principal-scoped cache, response caps,
 * timeouts and cancellation, retries (idempotent methods only), the circuit breaker, rate limits
 * with exact counts, policy path rules, and secrets that an upstream echoes back.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { stringify } from 'yaml';
import t, { type Test } from 'tap';
import { BIN, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { loadConfig, ConfigError } from '../src/config/loader.js';
import { createLogger } from '../src/observability/logger.js';
import { ApiRuntime } from '../src/tools/api/runtime.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { startUpstream, writePolicyData, type TestUpstream } from './helpers/upstreams.js';
import type { GateOutcome } from '../src/core/call.js';

const SECRET_TOKEN = 'sk-live-5e1f0c2a9b7d4e3f8a6c';

interface World {
  readonly sb: Sandbox;
  readonly gate: InProcessGate;
  readonly up: TestUpstream;
  readonly runtime: ApiRuntime;
  /** As the stdio principal ("alice"). */
  call(args: Record<string, unknown>, opts?: { signal?: AbortSignal }): Promise<GateOutcome>;
  /** As the loopback HTTP principal ("bob"). */
  callAsBob(args: Record<string, unknown>): Promise<GateOutcome>;
  stats(api?: string): Promise<Record<string, any>>;
}

async function world(
  t: Test,
  apis: (up: TestUpstream) => Record<string, Record<string, unknown>>,
  opts: { policy?: Record<string, unknown>; config?: Record<string, unknown> } = {},
): Promise<World> {
  const up = await startUpstream();
  const configured = apis(up);
  const sb = makeSandbox({
    apis: configured,
    policy: { data: 'policy-data.json' },
    principals: { stdio: { id: 'alice', roles: ['developer'], tier: 'local' }, loopback: { id: 'bob', roles: ['developer'], tier: 'local' } },
    ...(opts.config ?? {}),
  });
  writePolicyData(sb.dir, Object.keys(configured), undefined, opts.policy);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(async () => {
    await gate.close();
    await up.close();
    sb.cleanup();
  });
  return {
    sb,
    gate,
    up,
    runtime: gate.app.deps.toolEnv.api as ApiRuntime,
    call: (args, o = {}) => gate.call('call_api', args, o.signal ? { signal: o.signal } : {}),
    callAsBob: (args) => gate.call('call_api', args, { transport: 'http', clientIp: '127.0.0.1' }),
    stats: async (api) => {
      const o = await gate.call('api_stats', api ? { api } : {});
      return o.result?.structured as Record<string, any>;
    },
  };
}

const base = (up: TestUpstream, extra: Record<string, unknown> = {}) => ({ base_url: `${up.origin}/v1/`, internal: true, retries: 0, ...extra });

t.test('bodies: JSON parsed, text, binary as base64, HEAD, POST with a JSON body, canonical query', async (t) => {
  const w = await world(t, (up) => ({ svc: base(up, { methods: ['GET', 'HEAD', 'POST'] }) }));
  const json = await w.call({ api: 'svc', path: '/json' });
  t.equal(json.status, 'ok');
  t.match(json.result?.structured, { status: 200, body_encoding: 'json', body: { ok: true, items: [1, 2, 3] }, from_cache: false, attempts: 1 });
  t.match(json.result?.text, /^GET svc \/json → 200\n\{"ok":true/);

  const text = await w.call({ api: 'svc', path: '/text' });
  t.match(text.result?.structured, { body_encoding: 'text', body: 'plain text answer' });
  const bin = await w.call({ api: 'svc', path: '/binary' });
  t.match(bin.result?.structured, { body_encoding: 'base64', body: Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]).toString('base64') });
  const head = await w.call({ api: 'svc', method: 'HEAD', path: '/json' });
  t.match(head.result?.structured, { status: 200, body_encoding: 'none', body: null });
  const notJson = await w.call({ api: 'svc', path: '/not-json' });
  t.match(notJson.result?.structured, { body_encoding: 'text', body: '{not json' }, 'a body that says JSON and is not comes back as text');
  const deep = await w.call({ api: 'svc', path: '/deep-json' });
  t.match(deep.result?.structured, { body_encoding: 'text' }, 'JSON nested deeper than 64 levels is not parsed');

  const post = await w.call({ api: 'svc', method: 'POST', path: '/echo', body: { hello: 'world' }, query: { z: 'last', a: ['1', 2], q: 'a b&c=d' } });
  const echoed = post.result?.structured.body as Record<string, any>;
  t.equal(echoed.method, 'POST');
  t.equal(echoed.url, '/v1/echo?a=1&a=2&q=a%20b%26c%3Dd&z=last', 'query encoded canonically (sorted keys, RFC 3986)');
  t.equal(echoed.body, '{"hello":"world"}');
  t.equal(echoed.headers['content-type'], 'application/json');
  t.equal(echoed.headers['accept-encoding'], 'identity', 'compression is refused (it would defeat the streaming cap)');
  t.equal(echoed.headers.host, `127.0.0.1:${w.up.port}`);
  t.equal(w.up.count('/v1/echo'), 1, 'POST sent once');

  const rec = readAudit(w.sb.auditPath).find((r) => r.request_id === post.requestId);
  t.match(rec?.args, { api: 'svc', method: 'POST', path: '/echo', body_bytes: 17 }, 'the audit keeps the body size and hash, not the body');
  t.equal(rec?.facts?.url?.upstream, 'svc');
  t.equal(rec?.facts?.url?.path, '/echo');
});

t.test('cache: GETs served from cache within the TTL, scoped to the principal', async (t) => {
  const w = await world(t, (up) => ({ svc: base(up, { cache_ttl_s: 60 }), short: base(up, { cache_ttl_s: 1 }), nocache: base(up) }));
  const a1 = await w.call({ api: 'svc', path: '/whoami', query: { x: '1' } });
  const a2 = await w.call({ api: 'svc', path: '/whoami', query: { x: '1' } });
  t.equal(a1.result?.structured.from_cache, false);
  t.equal(a2.result?.structured.from_cache, true, 'the second identical GET is served from cache');
  t.same(a2.result?.structured.body, a1.result?.structured.body, 'same body');
  t.type(a2.result?.structured.cached_at, 'string');

  const b1 = await w.callAsBob({ api: 'svc', path: '/whoami', query: { x: '1' } });
  t.equal(b1.status, 'ok');
  t.equal(b1.result?.structured.from_cache, false, "another principal never gets the first one's cached response");
  t.not((b1.result?.structured.body as { n: number }).n, (a1.result?.structured.body as { n: number }).n, 'bob got his own upstream answer');
  const b2 = await w.callAsBob({ api: 'svc', path: '/whoami', query: { x: '1' } });
  t.equal(b2.result?.structured.from_cache, true, "bob's own entry serves bob");
  t.same(b2.result?.structured.body, b1.result?.structured.body);
  t.equal(w.up.count('/v1/whoami'), 2, 'two upstream requests for four calls');

  const other = await w.call({ api: 'svc', path: '/whoami', query: { x: '2' } });
  t.equal(other.result?.structured.from_cache, false, 'the query is part of the key');

  t.equal((await w.call({ api: 'svc', path: '/no-store' })).result?.structured.from_cache, false);
  t.equal((await w.call({ api: 'svc', path: '/no-store' })).result?.structured.from_cache, false, 'Cache-Control: no-store is honoured');
  t.equal((await w.call({ api: 'nocache', path: '/counter' })).result?.structured.from_cache, false);
  t.equal((await w.call({ api: 'nocache', path: '/counter' })).result?.structured.from_cache, false, 'cache_ttl_s 0 (the default) caches nothing');

  await w.call({ api: 'short', path: '/counter' });
  t.equal((await w.call({ api: 'short', path: '/counter' })).result?.structured.from_cache, true);
  await new Promise((r) => setTimeout(r, 1100));
  t.equal((await w.call({ api: 'short', path: '/counter' })).result?.structured.from_cache, false, 'the entry expires after its TTL');

  const s = await w.stats('svc');
  t.match(s.upstreams.svc, { cache_hits: 2, cache_misses: 5, cache_hit_rate: 0.2857 });
  t.match(s.cache, { store: 'memory' });
  t.ok(s.cache.bytes > 0 && s.cache.bytes <= s.cache.max_bytes, 'the cache is bounded in bytes');
});

t.test('caps: the body streams and is abandoned past max_response_bytes', async (t) => {
  const w = await world(t, (up) => ({ svc: base(up, { max_response_bytes: 64 * 1024 }) }));
  const ok = await w.call({ api: 'svc', path: '/big', query: { n: 60 * 1024 } });
  t.equal(ok.status, 'ok');
  t.equal(ok.result?.structured.bytes, 60 * 1024);
  const big = await w.call({ api: 'svc', path: '/big', query: { n: 50 * 1024 * 1024 } });
  t.equal(big.status, 'error');
  t.equal(big.denial?.code, 'resource_exceeded');
  t.same(big.denial?.reasons, ['api.response_too_large']);
  t.equal(big.denial?.detail?.max_bytes, 64 * 1024);
  const declared = await w.call({ api: 'svc', path: '/big', query: { n: 10 * 1024 * 1024, declare: 1 } });
  t.equal(declared.denial?.code, 'resource_exceeded', 'a declared Content-Length over the cap is refused before reading');
  t.ok(big.durationMs < 5000, 'the 50 MB stream was cut, not read to the end');
});

t.test('timeouts and cancellation abort the request', async (t) => {
  const w = await world(t, (up) => ({ slow: base(up, { timeout_ms: 200, retries: 2, retry_backoff_ms: 10 }), once: base(up, { timeout_ms: 5000 }) }));
  const slow = await w.call({ api: 'slow', path: '/slow', query: { ms: 2000 } });
  t.equal(slow.status, 'error');
  t.equal(slow.denial?.code, 'timeout');
  t.same(slow.denial?.reasons, ['api.timeout']);
  t.equal(w.up.count('/v1/slow'), 3, 'a GET that timed out was tried 1 + retries times');

  let closedEarly = false;
  w.up.route('/v1/hang', async (_req, res) => {
    res.on('close', () => {
      if (!res.writableEnded) closedEarly = true;
    });
    await new Promise((r) => setTimeout(r, 3000));
    if (!res.destroyed) res.end('late');
  });
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 150);
  const started = performance.now();
  const cancelled = await w.call({ api: 'once', path: '/hang' }, { signal: ac.signal });
  t.equal(cancelled.status, 'cancelled');
  t.equal(cancelled.denial?.code, 'cancelled');
  t.ok(performance.now() - started < 2000, 'the call ended when the client cancelled');
  await new Promise((r) => setTimeout(r, 100));
  t.ok(closedEarly, 'the upstream saw the request aborted');
});

t.test('retries: idempotent methods only, with backoff; never POST', async (t) => {
  const w = await world(t, (up) => ({ svc: base(up, { retries: 2, retry_backoff_ms: 5, methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] }) }), {
    policy: { methods: { developer: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] } },
  });
  for (const method of ['GET', 'HEAD', 'PUT', 'DELETE']) {
    const body = method === 'PUT' || method === 'DELETE' ? { body: 'x' } : {};
    const o = await w.call({ api: 'svc', method, path: '/flaky', query: { key: method, fail: 2 }, ...body });
    t.equal(o.result?.structured.status, 200, `${method}: succeeded on the third attempt`);
    t.equal(o.result?.structured.attempts, 3, `${method}: 3 attempts`);
  }
  for (const method of ['POST', 'PATCH']) {
    const o = await w.call({ api: 'svc', method, path: '/flaky', query: { key: method, fail: 2 }, body: { a: 1 } });
    t.equal(o.result?.structured.status, 503, `${method}: the 503 is the answer`);
    t.equal(o.result?.structured.attempts, 1, `${method}: never retried`);
    t.equal(w.up.seen.filter((s) => s.url.includes(`key=${method}`)).length, 1, `${method}: the upstream saw it once`);
  }
  const gone = await world(t, () => ({ dead: { base_url: 'http://127.0.0.1:9/v1/', internal: true, retries: 2, retry_backoff_ms: 5 } }));
  const refused = await gone.call({ api: 'dead', path: '/x' });
  t.equal(refused.denial?.code, 'tool_error');
  t.same(refused.denial?.reasons, ['api.connect_failed']);
  t.match((await gone.stats('dead')).upstreams.dead, { upstream_requests: 3, retries: 2 });
});

t.test('circuit breaker: opens after N failed calls, half-open probe after the cool-down, recovers', async (t) => {
  // A cool-down long enough that a loaded machine still reads `open` before it ends.
  const w = await world(t, (up) => ({ fragile: base(up, { breaker: { failures: 3, cooldown_ms: 1500 } }) }));
  for (let i = 0; i < 3; i++) {
    const o = await w.call({ api: 'fragile', path: '/status', query: { code: 500 } });
    t.equal(o.result?.structured.status, 500, `failure ${i + 1} is answered`);
  }
  const open = await w.call({ api: 'fragile', path: '/json' });
  t.equal(open.status, 'error');
  t.equal(open.denial?.code, 'unavailable');
  t.same(open.denial?.reasons, ['api.circuit_open']);
  t.ok((open.denial?.detail?.retry_after_s as number) >= 1, 'retry_after_s says when to come back');
  t.equal(w.up.count('/v1/json'), 0, 'an open breaker sends nothing');
  t.match((await w.stats('fragile')).upstreams.fragile.breaker, { state: 'open', consecutive_failures: 3, opened: 1 });

  await new Promise((r) => setTimeout(r, 1600));
  t.match((await w.stats('fragile')).upstreams.fragile.breaker, { state: 'half_open' });
  const failedProbe = await w.call({ api: 'fragile', path: '/status', query: { code: 503 } });
  t.equal(failedProbe.result?.structured.status, 503, 'the half-open probe went through');
  t.equal((await w.call({ api: 'fragile', path: '/json' })).denial?.code, 'unavailable', 'a failed probe opens the breaker again');
  t.match((await w.stats('fragile')).upstreams.fragile.breaker, { state: 'open', opened: 2 });

  await new Promise((r) => setTimeout(r, 1600));
  const probe = await w.call({ api: 'fragile', path: '/json' });
  t.equal(probe.result?.structured.status, 200, 'a successful probe');
  t.match((await w.stats('fragile')).upstreams.fragile.breaker, { state: 'closed', consecutive_failures: 0 });
  t.equal((await w.call({ api: 'fragile', path: '/json' })).status, 'ok', 'closed again: calls flow');
  t.match((await w.stats('fragile')).upstreams.fragile, { breaker_rejected: 2, errors: 4 });
});

t.test('rate limits: exact counts per principal per upstream, shared quota, seed tiers', async (t) => {
  const w = await world(
    t,
    (up) => ({
      limited: base(up, { rate: { capacity: 3, refill_per_s: 0.01 } }),
      quota: base(up, { rate_total: { capacity: 2, refill_per_s: 0.01 } }),
      burst: base(up, { rate: 'burst' }),
    }),
    {
      config: {
        limits: { default_tier: 'local', tiers: { local: { capacity: 100000, refill_per_s: 100000 }, burst: { capacity: 10, refill_per_s: 10 / 60 } } },
      },
    },
  );
  // Buckets refill continuously from their first take, so a retry_after_s is the full interval
  // less the whole seconds since then: measured here, not assumed to be zero.
  const since = (t0: number): number => (performance.now() - t0) / 1000;
  const limitedFrom = performance.now();
  for (let i = 1; i <= 3; i++) t.equal((await w.call({ api: 'limited', path: '/json' })).status, 'ok', `alice call ${i} allowed`);
  const limited = await w.call({ api: 'limited', path: '/json' });
  const limitedAfter = since(limitedFrom);
  t.equal(limited.status, 'denied');
  t.equal(limited.denial?.code, 'rate_limited');
  t.same(limited.denial?.reasons, ['rate.upstream_principal']);
  const wait = limited.denial?.detail?.retry_after_s as number;
  t.ok(wait <= 100 && wait >= Math.ceil(100 - limitedAfter), `retry_after_s: one token at 0.01/s (${wait} s, ${limitedAfter.toFixed(2)} s in)`);
  t.equal((await w.callAsBob({ api: 'limited', path: '/json' })).status, 'ok', 'bob has his own bucket');
  t.equal(w.up.count('/v1/json'), 4, 'the refused call never reached the upstream');

  t.equal((await w.call({ api: 'quota', path: '/json' })).status, 'ok');
  t.equal((await w.callAsBob({ api: 'quota', path: '/json' })).status, 'ok');
  const shared = await w.call({ api: 'quota', path: '/json' });
  t.equal(shared.denial?.code, 'rate_limited');
  t.same(shared.denial?.reasons, ['rate.upstream_total'], 'the upstream-wide quota is shared by every principal');

  let allowed = 0;
  let first: GateOutcome | undefined;
  let firstAfter = 0;
  const burstFrom = performance.now();
  for (let i = 0; i < 12; i++) {
    const o = await w.call({ api: 'burst', path: '/json' });
    if (o.status === 'ok') allowed += 1;
    else if (first === undefined) {
      first = o;
      firstAfter = since(burstFrom);
    }
  }
  t.equal(allowed, 10, 'the burst tier allows exactly 10');
  const next = first?.denial?.detail?.retry_after_s as number;
  t.ok(next <= 6 && next >= Math.ceil(6 - firstAfter), `then one token every 6 s (${next} s, ${firstAfter.toFixed(2)} s in)`);
  t.match((await w.stats()).upstreams, { limited: { rate_limited: 1 }, quota: { rate_limited: 1 }, burst: { rate_limited: 2 } });
});

t.test('policy: per-role path allow-lists and denied paths reach the upstream decision', async (t) => {
  const w = await world(t, (up) => ({ svc: base(up) }), {
    policy: { paths: { developer: { svc: ['/json', '/public/'] } }, denied_paths: { svc: ['/public/admin'] } },
  });
  t.equal((await w.call({ api: 'svc', path: '/json' })).status, 'ok');
  const off = await w.call({ api: 'svc', path: '/echo' });
  t.equal(off.denial?.code, 'policy_denied');
  t.same(off.denial?.reasons, ['url.path_not_allowed']);
  const denied = await w.call({ api: 'svc', path: '/public/Admin/x' });
  t.equal(denied.denial?.code, 'policy_denied');
  t.same(denied.denial?.reasons, ['url.path_denied'], 'denied paths match case-insensitively');
  const encoded = await w.call({ api: 'svc', path: '/public/%41dmin/x' });
  t.same(encoded.denial?.reasons, ['url.path_denied'], 'percent-encoding does not sneak past a denied prefix');
  t.equal(w.up.count('/v1/echo') + w.up.count('/v1/public'), 0, 'nothing the policy refused was sent');
});

t.test('secrets in configured headers are sent, but never returned, cached or audited', async (t) => {
  process.env.BULWARK_TEST_API_TOKEN = SECRET_TOKEN;
  t.teardown(() => {
    delete process.env.BULWARK_TEST_API_TOKEN;
  });
  const w = await world(t, (up) => ({
    svc: base(up, { headers: { Authorization: 'Bearer ${BULWARK_TEST_API_TOKEN}', 'X-Api-Key': '${BULWARK_TEST_API_TOKEN}' }, cache_ttl_s: 60 }),
  }));
  const o = await w.call({ api: 'svc', path: '/echo' });
  t.equal(o.status, 'ok');
  t.equal(w.up.seen.at(-1)?.headers.authorization, `Bearer ${SECRET_TOKEN}`, 'the upstream received the credential');
  const out = JSON.stringify(o.result);
  t.notOk(out.includes(SECRET_TOKEN), 'the echoed credential is not in the result');
  t.match(o.result?.structured.body, { headers: { authorization: '[REDACTED]', 'x-api-key': '[REDACTED]' } });
  t.ok((o.result?.structured.redacted as number) >= 2, 'the result says what was redacted');
  const cached = await w.call({ api: 'svc', path: '/echo' });
  t.equal(cached.result?.structured.from_cache, true);
  t.notOk(JSON.stringify(cached.result).includes(SECRET_TOKEN), 'nor in the cached copy');
  w.up.route('/v1/reflect', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', link: `<https://x/?t=${encodeURIComponent(SECRET_TOKEN)}>` });
    res.end(`token=${encodeURIComponent(req.headers['x-api-key'] as string)} json=${JSON.stringify(req.headers.authorization)}`);
  });
  const reflected = await w.call({ api: 'svc', path: '/reflect' });
  t.notOk(JSON.stringify(reflected.result).includes(SECRET_TOKEN), 'encoded reflections are redacted too (body and headers)');
  t.equal((await w.stats('svc')).upstreams.svc.secrets_redacted >= 4, true);
  t.notOk(fs.readFileSync(w.sb.auditPath, 'utf8').includes(SECRET_TOKEN), 'the audit log never holds the secret');
});

t.test('configuration errors name the key and stop the boot', async (t) => {
  const sb = makeSandbox();
  t.teardown(() => sb.cleanup());
  const file = `${sb.dir}/bad.yaml`;
  const problems = (extra: Record<string, unknown>): string[] => {
    fs.writeFileSync(file, stringify({ audit: { path: sb.auditPath }, ...extra }));
    try {
      const loaded = loadConfig({ file });
      const rt = ApiRuntime.create(loaded.config, createLogger('error'));
      void rt.close();
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems];
      throw err;
    }
  };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ apis: { x: { base_url: 'ftp://files.example/' } } }, /apis\.x\.base_url: only http and https/],
    [{ apis: { x: { base_url: 'http://user:pw@api.example/' } } }, /apis\.x\.base_url: credentials belong in headers/],
    [{ apis: { x: { base_url: 'http://api.example/?key=1' } } }, /apis\.x\.base_url: no query or fragment/],
    [{ apis: { x: { base_url: 'http://api.example/', headers: { Host: 'evil.example' } } } }, /apis\.x\.headers\.Host: Bulwark sets this header itself/],
    [{ apis: { x: { base_url: 'http://api.example/', headers: { 'X-Key': 'a\r\nInjected: 1' } } } }, /apis\.x\.headers\.X-Key/],
    [{ apis: { x: { base_url: 'http://api.example/', rate: 'nosuch' } } }, /apis\.x\.rate: no tier named "nosuch"/],
    [{ apis: { x: { base_url: 'http://api.example/', allowed_cidrs: ['10.0.0.0/33'] } } }, /apis\.x\.allowed_cidrs\[0\]/],
    [{ apis: { x: { base_url: 'http://api.example/', path_prefixes: ['/a/../b'] } } }, /apis\.x\.path_prefixes\[0\]/],
    [{ apis: { 'a/b': { base_url: 'http://api.example/' } } }, /apis\.a\/b: an upstream name/],
    [{ apis: { x: { base_url: 'http://api.example/', surprise: true } } }, /apis\.x: unknown key/],
    [{ limits: { store: 'redis' } }, /limits\.redis_url: required/],
  ];
  for (const [extra, re] of cases) {
    const p = problems(extra);
    t.ok(
      p.some((x) => re.test(x)),
      `${re}: ${JSON.stringify(p)}`,
    );
  }
  t.same(problems({ apis: { x: { base_url: 'https://api.example/v1' } } }), [], 'a good upstream loads');

  fs.writeFileSync(file, stringify({ audit: { path: sb.auditPath }, apis: { x: { base_url: 'gopher://h/' } } }));
  const r = spawnSync(process.execPath, [BIN, 'serve', '--config', file], { encoding: 'utf8', env: cleanChildEnv(), timeout: 20_000 });
  t.equal(r.status, 2, 'serve exits 2 on a bad upstream');
  t.match(r.stderr, /apis\.x\.base_url/);
});
