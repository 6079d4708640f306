// call_api end to end through the gate against a loopback upstream: a live GET (cache miss,
// pinned keep-alive pool) and a cached GET, interleaved with the same request sent directly with
// undici for reference; throughput with 32 concurrent callers; and the hot helpers of the URL
// analyser (path canonicalisation, IP classification) in microseconds.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Pool } from 'undici';
import { stringify } from 'yaml';
import { ROOT, dist, summarise, workspace } from './lib.mjs';

const { loadConfig } = await import(dist('src/config/loader.js'));
const { createApp } = await import(dist('src/app.js'));
const { createLogger } = await import(dist('src/observability/logger.js'));
const { runGate } = await import(dist('src/gate/run.js'));
const { canonicalPath } = await import(dist('src/analysis/url.js'));
const { classifyIp } = await import(dist('src/analysis/ip-ranges.js'));

function ctx() {
  return { transport: 'stdio', requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal };
}

async function startUpstream() {
  const body = JSON.stringify({ id: 42, name: 'bulwark', tags: ['a', 'b', 'c'], nested: { ok: true } });
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
  };
}

function microUs(fn, n) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    for (let j = 0; j < 100; j++) fn(j);
    samples.push((performance.now() - t0) / 100);
  }
  return summarise(samples, 'us');
}

export async function benchApi({ quick = false } = {}) {
  const up = await startUpstream();
  const ws = workspace('batch');
  const data = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8'));
  data.bulwark.api.upstreams.developer = ['live', 'cached'];
  fs.writeFileSync(path.join(ws.dir, 'policy-data.json'), JSON.stringify(data));
  const cfg = loadConfig({ file: ws.config }).config;
  fs.writeFileSync(
    ws.config,
    stringify({
      filesystem: { roots: cfg.filesystem.roots },
      audit: { path: cfg.audit.path, durability: 'batch' },
      limits: { tiers: { local: { capacity: 1e6, refill_per_s: 1e6 } }, default_tier: 'local' },
      observability: { log_level: 'error' },
      policy: { data: path.join(ws.dir, 'policy-data.json') },
      apis: {
        live: { base_url: `${up.origin}/v1/`, internal: true, retries: 0 },
        cached: { base_url: `${up.origin}/v1/`, internal: true, retries: 0, cache_ttl_s: 3600 },
      },
    }),
  );
  const app = await createApp(loadConfig({ file: ws.config }), createLogger('error'));
  const direct = new Pool(up.origin, { connections: 16 });
  const gate = (api, p = '/items/42') => runGate({ tool: 'call_api', args: { api, path: p, query: { q: 'x' } }, context: ctx() }, app.deps);
  const n = quick ? 300 : 3000;
  for (let i = 0; i < 200; i++) {
    await gate('live');
    await gate('cached');
    const r = await direct.request({ path: '/v1/items/42?q=x', method: 'GET' });
    await r.body.text();
  }
  const live = [];
  const liveOverhead = [];
  const cached = [];
  const raw = [];
  for (let i = 0; i < n; i++) {
    const o = await gate('live');
    if (o.status !== 'ok' || o.result.structured.from_cache) throw new Error(`bench call failed: ${JSON.stringify(o.denial)}`);
    live.push(o.durationMs);
    liveOverhead.push(o.durationMs - (o.stageMs.execute ?? 0));
    const c = await gate('cached');
    if (c.status !== 'ok' || !c.result.structured.from_cache) throw new Error('expected a cache hit');
    cached.push(c.durationMs);
    const t0 = performance.now();
    const r = await direct.request({ path: '/v1/items/42?q=x', method: 'GET' });
    JSON.parse(await r.body.text());
    raw.push(performance.now() - t0);
  }
  // Throughput: 32 concurrent callers on the live upstream (the figure).
  const total = quick ? 1000 : 10_000;
  let issued = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (issued < total) {
        issued += 1;
        const o = await gate('live');
        if (o.status !== 'ok') throw new Error(`bench call failed: ${JSON.stringify(o.denial)}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const paths = ['/repos/bulwark/issues', '/users/%7Ealice/caf%C3%A9', '/v1/items/42/', '/a/b/c/d/e/f/g/h'];
  const ips = ['140.82.112.3', '10.0.0.1', '2606:4700:4700::1111', '::ffff:127.0.0.1', '64:ff9b::a00:1', 'fe80::1'];
  const out = {
    call_api_live_ms: summarise(live),
    call_api_gate_overhead_ms: summarise(liveOverhead),
    call_api_cache_hit_ms: summarise(cached),
    undici_direct_ms: summarise(raw),
    live_vs_direct_p50_ratio: Math.round((summarise(live).p50 / summarise(raw).p50) * 100) / 100,
    concurrent_32: { calls: total, calls_per_s: Math.round(total / seconds) },
    canonical_path_us: microUs((j) => canonicalPath(paths[j % paths.length]), quick ? 200 : 2000),
    classify_ip_us: microUs((j) => classifyIp(ips[j % ips.length]), quick ? 200 : 2000),
  };
  await direct.close();
  await app.close();
  await up.close();
  ws.cleanup();
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${JSON.stringify(await benchApi({ quick: process.env.BENCH_QUICK === '1' }), null, 2)}\n`);
}
