// The two protocol eras side by side (issue 14: "gate overhead stays within today's figures,
// measure both eras"): the same gated read_file of a 94-byte file, tools/list, and the era's
// opening request (2025-11-25 `initialize`, 2026-07-28 `server/discover`), over real HTTP and
// over real stdio, 2025-11-25 wire against 2026-07-28 wire in one run, round by round with the
// order alternating so load swings on this shared 2-core machine hit both eras alike.
//
// The clients are raw JSON-RPC (undici for HTTP, newline-delimited JSON on the child's pipes for
// stdio), the same for both eras, so what differs is only what the server does per era:
//   2025-11-25  HTTP: stateless POSTs with `MCP-Protocol-Version: 2025-11-25`.
//               stdio: `initialize` + `notifications/initialized`, then plain requests.
//   2026-07-28  HTTP: `MCP-Protocol-Version`/`Mcp-Method`/`Mcp-Name` headers and the `_meta`
//               envelope (protocolVersion, clientCapabilities, clientInfo) in every body.
//               stdio: `server/discover` first, then every request with the envelope.
// HTTP runs one `bulwark serve --http 127.0.0.1:0` (auth.http api_key, as deployed) that both
// eras share; stdio runs one `bulwark serve` child per era (the era is chosen per connection).
//
// Reported per transport and era:
//   call_ms          client-observed latency of one tools/call, one in flight
//   gate_ms          the gate's own time per call from its audit record: outcome.duration_ms (all
//                    stages before the record) minus outcome.metrics.duration_ms (the tool's run
//                    in its worker): comparable to gate.mjs's gate_overhead_without_audit
//   wire_ms          call_ms minus outcome.duration_ms: what the transport and protocol layer add
//   load             calls/s, latency and server CPU per call with CLIENTS requests in flight
//   tools_list_ms, open_ms   tools/list and initialize|server/discover, one in flight
// `node scripts/bench/protocol-eras.mjs` prints the JSON; BENCH_QUICK=1 shrinks it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Pool } from 'undici';
import { stringify } from 'yaml';
import { ROOT, dist, procCpuUs, startBulwark, summarise, treeCpuUs } from './lib.mjs';

const { createKey } = await import(dist('src/auth/api-keys.js'));

const ERAS = ['2025-11-25', '2026-07-28'];
const CLIENTS = 32;
const TOOL = 'read_file';
const CLIENT_INFO = { name: 'bench-eras', version: '1' };
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': CLIENT_INFO,
};

const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const loadavg = () => os.loadavg().map((x) => round(x));

/** A workspace with the 94-byte file and a config per server (batch durability: the shipped default). */
function workspace() {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bench-eras-')));
  const root = path.join(dir, 'data');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(root, 'small.txt'), 'x'.repeat(93) + '\n');
  const config = (name, extra = {}) => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(
      file,
      stringify({
        filesystem: { roots: [root] },
        audit: { path: path.join(dir, `audit-${name}.jsonl`), durability: 'batch' },
        limits: { tiers: { local: { capacity: 1e6, refill_per_s: 1e6 } }, default_tier: 'local' },
        // Only the filesystem pool serves these calls: no PGlite, one JavaScript worker.
        database: { embedded: false },
        execution: { javascript_pool: { size: 1, max_queue: 16, heap_mb: 512 } },
        observability: { log_level: 'info' },
        ...extra,
      }),
    );
    return { file, audit: path.join(dir, `audit-${name}.jsonl`) };
  };
  return { dir, root, file: path.join(root, 'small.txt'), config, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** One JSON-RPC request body for `era` (params without the envelope for 2025-11-25). */
function message(era, id, method, params = {}) {
  return { jsonrpc: '2.0', id, method, params: era === '2026-07-28' ? { ...params, _meta: ENVELOPE } : params };
}

function openParams(era) {
  return era === '2026-07-28' ? ['server/discover', {}] : ['initialize', { protocolVersion: era, capabilities: {}, clientInfo: CLIENT_INFO }];
}

const callParams = (file) => ({ name: TOOL, arguments: { path: file } });

/** What an answer must be, or the bench stops: a result, not an error or a denial. */
function checkAnswer(label, msg) {
  if (!msg || msg.error || !msg.result || msg.result.isError) throw new Error(`protocol-eras bench: ${label} failed: ${JSON.stringify(msg).slice(0, 400)}`);
  return msg.result;
}

// ------------------------------------------------------------------------------------ HTTP

function httpClient(server, token) {
  const pool = new Pool(server.url.origin, { connections: CLIENTS, pipelining: 1 });
  let id = 0;
  const send = async (era, method, params) => {
    const body = message(era, ++id, method, params);
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': era,
      ...(era === '2026-07-28' ? { 'mcp-method': method, ...(method === 'tools/call' ? { 'mcp-name': params.name } : {}) } : {}),
    };
    const r = await pool.request({ path: server.url.pathname, method: 'POST', headers, body: JSON.stringify(body) });
    const text = await r.body.text();
    if (r.statusCode !== 200) throw new Error(`protocol-eras bench: ${era} ${method} answered HTTP ${r.statusCode}: ${text.slice(0, 300)}`);
    return JSON.parse(text);
  };
  return { send, close: () => pool.close(), pid: server.pid };
}

// ----------------------------------------------------------------------------------- stdio

/** `bulwark serve` on pipes; requests matched to answers by id. */
function stdioServer(config) {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'bulwark.js'), 'serve', '--config', config], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c) => {
    err = (err + c.toString()).slice(-8192);
  });
  const waiting = new Map();
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    const w = waiting.get(msg.id);
    if (w) {
      waiting.delete(msg.id);
      w.resolve(msg);
    }
  });
  child.once('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`protocol-eras bench: stdio server exited ${code}: ${err}`));
    waiting.clear();
  });
  let id = 0;
  const write = (m) => child.stdin.write(`${JSON.stringify(m)}\n`);
  return {
    pid: child.pid,
    notify: (m) => write(m),
    request: (m) =>
      new Promise((resolve, reject) => {
        waiting.set(m.id, { resolve, reject });
        write(m);
      }),
    nextId: () => ++id,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin.end();
        setTimeout(() => child.kill('SIGTERM'), 5000).unref();
      }),
  };
}

/** Opens the stdio connection in its era; then `send` works like the HTTP client's. */
async function stdioClient(era, config) {
  const s = stdioServer(config);
  const [method, params] = openParams(era);
  // The first answer comes once the server has started (workers, policy): generous.
  const first = await Promise.race([
    s.request(message(era, s.nextId(), method, params)),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`protocol-eras bench: stdio ${era} did not answer ${method}`)), 30_000).unref()),
  ]);
  checkAnswer(`stdio ${era} ${method}`, first);
  if (era !== '2026-07-28') s.notify({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return { send: (e, m, p) => s.request(message(e, s.nextId(), m, p)), close: s.stop, pid: s.pid };
}

// ------------------------------------------------------------------------------- measuring

/** `n` requests one after another; latencies, and the request ids of tools/call answers. */
async function sequential(client, era, method, params, n) {
  const lat = [];
  const ids = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const msg = await client.send(era, method, params);
    const dt = performance.now() - t0;
    const result = checkAnswer(`${era} ${method}`, msg);
    lat.push(dt);
    if (method === 'tools/call') ids.push([result._meta?.['bulwark/request_id'], dt]);
  }
  return { lat, ids };
}

/** CLIENTS requests in flight for `ms`: throughput, latency and the server's CPU per call. */
async function load(client, era, params, ms) {
  const lat = [];
  const cpu0 = procCpuUs(client.pid);
  const tree0 = treeCpuUs(client.pid);
  const t0 = performance.now();
  const end = t0 + ms;
  const worker = async () => {
    while (performance.now() < end) {
      const s = performance.now();
      checkAnswer(`${era} tools/call under load`, await client.send(era, 'tools/call', params));
      lat.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  return { lat, elapsedMs: performance.now() - t0, cpuUs: procCpuUs(client.pid) - cpu0, treeCpuUs: treeCpuUs(client.pid) - tree0 };
}

/** The gate's time per call from the audit log, for the request ids one era's calls got. */
function fromAudit(auditFile, ids) {
  const byId = new Map();
  for (const line of fs.readFileSync(auditFile, 'utf8').split('\n')) {
    if (!line) continue;
    const r = JSON.parse(line);
    if (r.outcome && r.request_id) byId.set(r.request_id, r.outcome);
  }
  const gate = [];
  const wire = [];
  for (const [id, clientMs] of ids) {
    const o = byId.get(id);
    if (!o) throw new Error(`protocol-eras bench: no outcome record for ${id}`);
    gate.push(o.duration_ms - (o.metrics?.duration_ms ?? 0));
    wire.push(clientMs - o.duration_ms);
  }
  return { gate, wire };
}

function report(parts, auditFile) {
  const all = (k) => parts.flatMap((p) => p[k]);
  const { gate, wire } = fromAudit(auditFile, all('ids'));
  const loads = parts.map((p) => p.load);
  const calls = loads.reduce((a, l) => a + l.lat.length, 0);
  const sum = (k) => loads.reduce((a, l) => a + l[k], 0);
  return {
    call_ms: summarise(all('call')),
    gate_ms: summarise(gate),
    wire_ms: summarise(wire),
    tools_list_ms: summarise(all('list')),
    open_ms: summarise(all('open')),
    load: {
      in_flight: CLIENTS,
      calls,
      calls_per_s: Math.round(calls / (sum('elapsedMs') / 1000)),
      calls_per_s_by_round: loads.map((l) => Math.round(l.lat.length / (l.elapsedMs / 1000))),
      latency_ms: summarise(loads.flatMap((l) => l.lat)),
      server_cpu_us_per_call: { main_process: round(sum('cpuUs') / calls, 1), with_workers: round(sum('treeCpuUs') / calls, 1) },
    },
  };
}

/** Both eras on one transport: warm-up, then `rounds` rounds alternating which era goes first. */
async function compare(clients, auditFiles, file, { rounds, calls, small, ms }) {
  const params = callParams(file);
  for (const era of ERAS) {
    await sequential(clients[era], era, 'tools/call', params, small);
    await load(clients[era], era, params, Math.min(ms, 1000));
  }
  const parts = Object.fromEntries(ERAS.map((e) => [e, []]));
  for (let r = 0; r < rounds; r++) {
    for (const era of r % 2 ? [...ERAS].reverse() : ERAS) {
      const c = clients[era];
      const call = await sequential(c, era, 'tools/call', params, calls);
      const list = await sequential(c, era, 'tools/list', {}, small);
      const [m, p] = openParams(era);
      const open = await sequential(c, era, m, p, small);
      parts[era].push({ call: call.lat, ids: call.ids, list: list.lat, open: open.lat, load: await load(c, era, params, ms) });
    }
  }
  const out = Object.fromEntries(ERAS.map((e) => [e, report(parts[e], auditFiles[e])]));
  const ratio = (k) => round(out['2026-07-28'][k].p50 / out['2025-11-25'][k].p50);
  out.ratio_2026_over_2025 = {
    call_p50: ratio('call_ms'),
    gate_p50: ratio('gate_ms'),
    tools_list_p50: ratio('tools_list_ms'),
    open_p50: ratio('open_ms'),
    calls_per_s: round(out['2026-07-28'].load.calls_per_s / out['2025-11-25'].load.calls_per_s),
    server_cpu_per_call: round(out['2026-07-28'].load.server_cpu_us_per_call.main_process / out['2025-11-25'].load.server_cpu_us_per_call.main_process),
  };
  return out;
}

export async function benchProtocolEras({ quick = false } = {}) {
  const started = performance.now();
  const loadavg_before = loadavg();
  const opts = quick ? { rounds: 2, calls: 200, small: 50, ms: 1000 } : { rounds: 4, calls: 1000, small: 200, ms: 3000 };
  const ws = workspace();
  const keysFile = path.join(ws.dir, 'keys.json');
  const token = (await createKey(keysFile, { principal: 'bench-eras', roles: ['developer'], tier: 'local' })).token;
  const opened = [];
  try {
    // HTTP: one server, both eras on its one endpoint, as deployed.
    const httpCfg = ws.config('http', { auth: { http: 'api_key', keys_file: 'keys.json' } });
    const server = await startBulwark({ config: httpCfg.file, label: 'protocol-eras bench: http', timeoutMs: 30_000 });
    opened.push({ close: server.stop });
    const http = httpClient(server, token);
    opened.push(http);
    const httpOut = await compare({ '2025-11-25': http, '2026-07-28': http }, { '2025-11-25': httpCfg.audit, '2026-07-28': httpCfg.audit }, ws.file, opts);

    // stdio: one connection (one server) per era.
    const cfg = Object.fromEntries(ERAS.map((e) => [e, ws.config(`stdio-${e}`)]));
    const stdio = {};
    for (const era of ERAS) {
      stdio[era] = await stdioClient(era, cfg[era].file);
      opened.push(stdio[era]);
    }
    const stdioOut = await compare(stdio, Object.fromEntries(ERAS.map((e) => [e, cfg[e].audit])), ws.file, opts);
    return {
      tool: `${TOOL} on a 94-byte file; audit durability batch; log_level info`,
      rounds: opts.rounds,
      sequential_calls_per_round: opts.calls,
      load_seconds_per_round: opts.ms / 1000,
      http: { auth: 'api_key', ...httpOut },
      stdio: stdioOut,
      note: 'one machine, 2 shared cores: compare the eras within this run (ratios), not against budgets from another run',
      loadavg_before,
      loadavg_after: loadavg(),
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    for (const o of opened.reverse()) await o.close();
    ws.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await benchProtocolEras({ quick: process.env.BENCH_QUICK === '1' });
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
