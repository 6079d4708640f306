// Gated calls over HTTP (DESIGN §8: 64 concurrent clients, >= 3,000 calls/s, p99 <= 25 ms). A real
// `bulwark serve --http 127.0.0.1:0` child per audit durability (fsync, batch), `auth.http: api_key`
// with a key from `createKey`, a generous `local` tier so rate limits never answer; 64 keep-alive
// clients each keep one stateless tools/call POST in flight. Servers are measured round by round,
// alternating the order, so drift in machine load hits all of them alike. Reports calls/s,
// latency, server CPU per call (the main process, and with its worker processes), the client's own
// CPU, what the audit log did meanwhile (appends per fdatasync, append latency, from /metrics) and
// the load average around the run: this machine has 2 cores and is shared.
//
// HTTP_LOAD_BASELINE=<dir of another built checkout> adds that tree's servers to the same rounds
// (before/after in one run). HTTP_LOAD_TOOL=read_file|file_info (default file_info).
// HTTP_LOAD_CPU_PROF=<dir> starts the servers with `node --cpu-prof --cpu-prof-dir=<dir>`.
// HTTP_LOAD_SECONDS=<s> overrides the length of one round; HTTP_LOAD_DURABILITY=batch (or fsync)
// measures one durability only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { stringify } from 'yaml';
import { ROOT, dist, procCpuUs, startBulwark, summarise, treeCpuUs, workspace } from './lib.mjs';

const { createKey } = await import(dist('src/auth/api-keys.js'));

export const HTTP_LOAD_BUDGETS = { calls_per_s: 3000, p99_ms: 25 };
const CLIENTS = 64;
const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };

const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const loadavg = () => os.loadavg().map((x) => round(x));

function writeConfig(ws, name, durability) {
  const file = path.join(ws.dir, `http-load-${name}.yaml`);
  fs.writeFileSync(
    file,
    stringify({
      filesystem: { roots: [ws.root] },
      audit: { path: path.join(ws.dir, `audit-${name}.jsonl`), durability },
      limits: { tiers: { local: { capacity: 1e6, refill_per_s: 1e6 } }, default_tier: 'local' },
      auth: { http: 'api_key', keys_file: 'keys.json' },
      // Only the filesystem pool serves these calls: no PGlite, one JavaScript worker.
      database: { embedded: false },
      execution: { javascript_pool: { size: 1, max_queue: 16, heap_mb: 512 } },
      // The shipped default level: what a deployment pays per request.
      observability: { log_level: 'info' },
    }),
  );
  return file;
}

function startServer(root, config, label) {
  const prof = process.env.HTTP_LOAD_CPU_PROF;
  const execArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`, `--cpu-prof-name=${label}.cpuprofile`] : [];
  return startBulwark({ root, config, label: `http-load bench: ${label}`, execArgv, timeoutMs: 25_000 });
}

/** CLIENTS workers, each with one request in flight, for `ms`: latency per call and CPU on both sides. */
async function load(pool, server, { ms, headers, body, check }) {
  const lat = [];
  let errors = 0;
  let firstError;
  const cpu0 = procCpuUs(server.pid);
  const tree0 = treeCpuUs(server.pid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + ms;
  const worker = async () => {
    while (performance.now() < end) {
      const s = performance.now();
      const r = await pool.request({ path: server.url.pathname, method: 'POST', headers, body });
      const text = await r.body.text();
      lat.push(performance.now() - s);
      if (r.statusCode !== 200 || !check(text)) {
        errors += 1;
        firstError ??= `${r.statusCode} ${text.slice(0, 300)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  const elapsedMs = performance.now() - t0;
  const client = process.cpuUsage(client0);
  if (errors) throw new Error(`http-load bench: ${errors} unexpected answers, first: ${firstError}`);
  return { lat, elapsedMs, cpuUs: procCpuUs(server.pid) - cpu0, treeCpuUs: treeCpuUs(server.pid) - tree0, clientCpuUs: client.user + client.system };
}

/** Sums of some /metrics series (labels summed over), to see what the audit log did during the rounds. */
async function metricsSnapshot(pool, headers) {
  const r = await pool.request({ path: '/metrics', method: 'GET', headers: { authorization: headers.authorization } });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`http-load bench: /metrics answered ${r.statusCode}`);
  const want = [
    'mcp_audit_fsync_duration_seconds_sum',
    'mcp_audit_fsync_duration_seconds_count',
    'mcp_audit_append_duration_seconds_sum',
    'mcp_audit_append_duration_seconds_count',
    'mcp_request_duration_seconds_sum',
    'mcp_request_duration_seconds_count',
  ];
  const out = Object.fromEntries(want.map((k) => [k, 0]));
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] in out) out[m[1]] += Number(m[2]);
  }
  return out;
}

function auditDuring(before, after) {
  const d = (k) => after[k] - before[k];
  const fsyncs = d('mcp_audit_fsync_duration_seconds_count');
  const appends = d('mcp_audit_append_duration_seconds_count');
  return {
    appends,
    fsyncs,
    records_per_fsync: fsyncs ? round(appends / fsyncs, 1) : null,
    fsync_ms_mean: fsyncs ? round((d('mcp_audit_fsync_duration_seconds_sum') / fsyncs) * 1000, 3) : null,
    append_ms_mean: appends ? round((d('mcp_audit_append_duration_seconds_sum') / appends) * 1000, 3) : null,
    gate_ms_mean: d('mcp_request_duration_seconds_count')
      ? round((d('mcp_request_duration_seconds_sum') / d('mcp_request_duration_seconds_count')) * 1000, 3)
      : null,
  };
}

function merge(parts) {
  const lat = parts.flatMap((p) => p.lat);
  const sum = (k) => parts.reduce((a, p) => a + p[k], 0);
  const n = lat.length;
  return {
    calls: n,
    calls_per_s: Math.round(n / (sum('elapsedMs') / 1000)),
    calls_per_s_by_round: parts.map((p) => Math.round(p.lat.length / (p.elapsedMs / 1000))),
    latency_ms: summarise(lat),
    server_cpu_us_per_call: { main_process: round(sum('cpuUs') / n, 1), with_workers: round(sum('treeCpuUs') / n, 1) },
    client_cpu_us_per_call: round(sum('clientCpuUs') / n, 1),
  };
}

export async function benchHttpLoad({ quick = false } = {}) {
  const started = performance.now();
  const loadavg_before = loadavg();
  const tool = process.env.HTTP_LOAD_TOOL === 'read_file' ? 'read_file' : 'file_info';
  const baseline = process.env.HTTP_LOAD_BASELINE ? path.resolve(process.env.HTTP_LOAD_BASELINE) : undefined;
  const trees = { current: ROOT, ...(baseline ? { baseline } : {}) };
  // The workspace's own config is not used: each server gets one from writeConfig.
  const ws = workspace('fsync');
  const keysFile = path.join(ws.dir, 'keys.json');
  const token = (await createKey(keysFile, { principal: 'bench-http', roles: ['developer', 'metrics'], tier: 'local' })).token;
  const durabilities = process.env.HTTP_LOAD_DURABILITY ? process.env.HTTP_LOAD_DURABILITY.split(',') : ['fsync', 'batch'];

  const targets = [];
  for (const [tree, root] of Object.entries(trees))
    for (const durability of durabilities) targets.push({ key: baseline ? `${tree}/${durability}` : durability, tree, durability, root });
  const starts = await Promise.allSettled(
    targets.map((t) => startServer(t.root, writeConfig(ws, `${t.tree}-${t.durability}`, t.durability), `${t.tree}-${t.durability}`)),
  );
  const pools = [];
  const stopAll = async () => {
    await Promise.all(pools.map((p) => p.close()));
    await Promise.all(starts.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    ws.cleanup();
  };
  try {
    const failed = starts.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    targets.forEach((t, i) => {
      t.server = starts[i].value;
      t.pool = new Pool(t.server.url.origin, { connections: CLIENTS, pipelining: 1 });
      pools.push(t.pool);
    });
    const headers = { ...HEADERS, authorization: `Bearer ${token}` };
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: { path: ws.file } } });
    const check = (text) => text.includes('"result"') && !text.includes('"isError":true');
    const ms = Number(process.env.HTTP_LOAD_SECONDS) * 1000 || (quick ? 1500 : 4000);
    const rounds = quick ? 2 : 4;
    // Warm-up: the first call pays argon2 for the key, then JIT and worker warm-up.
    for (const t of targets) await load(t.pool, t.server, { ms: quick ? 300 : 1500, headers, body, check });
    const parts = Object.fromEntries(targets.map((t) => [t.key, []]));
    const metrics0 = await Promise.all(targets.map((t) => metricsSnapshot(t.pool, headers)));
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [...targets].reverse() : targets;
      for (const t of order) parts[t.key].push(await load(t.pool, t.server, { ms, headers, body, check }));
    }
    const metrics1 = await Promise.all(targets.map((t) => metricsSnapshot(t.pool, headers)));
    const results = {};
    const met = {};
    for (const [i, t] of targets.entries()) {
      const m = { ...merge(parts[t.key]), server_metrics: auditDuring(metrics0[i], metrics1[i]) };
      results[t.key] = m;
      if (t.tree === 'current')
        met[t.durability] = { calls_per_s: m.calls_per_s >= HTTP_LOAD_BUDGETS.calls_per_s, p99_ms: m.latency_ms.p99 <= HTTP_LOAD_BUDGETS.p99_ms };
    }
    return {
      budgets: HTTP_LOAD_BUDGETS,
      met,
      clients: CLIENTS,
      rounds,
      seconds_per_round: ms / 1000,
      tool: `${tool} on a 94-byte file (auth.http api_key, stateless tools/call POST, keep-alive, log_level info)`,
      ...(baseline ? { baseline_tree: baseline } : {}),
      results,
      note: 'client and server share the 2 cores: calls/s is bounded by both; server CPU per call is the cost to compare',
      loadavg_before,
      loadavg_after: loadavg(),
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    await stopAll();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await benchHttpLoad({ quick: process.env.BENCH_QUICK === '1' });
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
