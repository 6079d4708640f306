// Issue 3's numbers: warm run_javascript through the gate, isolate start cost, the worker round
// trip of each pool, and read_file throughput with 16 concurrent callers with the executor inline
// (before) and in the permission-confined worker pool (after), in the same run.
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { dist, summarise, workspace } from './lib.mjs';

const { loadConfig } = await import(dist('src/config/loader.js'));
const { createApp } = await import(dist('src/app.js'));
const { createLogger } = await import(dist('src/observability/logger.js'));
const { runGate } = await import(dist('src/gate/run.js'));
const { filesystemHandlers } = await import(dist('sandbox/fs/worker.js'));
const require = createRequire(import.meta.url);

function ctx() {
  return { transport: 'stdio', requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal };
}

/** Runs the filesystem ops in this process: what execution looked like before the pools. */
function inlinePool() {
  return {
    run: async (op, payload) => {
      const t0 = performance.now();
      const value = await filesystemHandlers[op](payload, { progress: () => undefined });
      return { value, metrics: { cpu_ms: 0, heap_bytes: 0, duration_ms: performance.now() - t0, worker_pid: process.pid } };
    },
  };
}

async function throughput(app, file, concurrency, total) {
  let next = 0;
  const t0 = performance.now();
  const workers = Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++;
      const o = await runGate({ tool: 'read_file', args: { path: file }, context: ctx() }, app.deps);
      if (o.status !== 'ok') throw new Error(JSON.stringify(o.denial));
    }
  });
  await Promise.all(workers);
  return Math.round(total / ((performance.now() - t0) / 1000));
}

export async function benchSandbox({ quick = false } = {}) {
  const n = quick ? 300 : 3000;
  const ws = workspace('batch');
  const app = await createApp(loadConfig({ file: ws.config }), createLogger('error'));
  const out = {};

  // Warm run_javascript, end to end through the gate.
  const js = [];
  for (let i = 0; i < 50; i++) await runGate({ tool: 'run_javascript', args: { code: 'return 1 + 1' }, context: ctx() }, app.deps);
  for (let i = 0; i < n / 3; i++) {
    const o = await runGate({ tool: 'run_javascript', args: { code: 'return 1 + 1' }, context: ctx() }, app.deps);
    if (o.status !== 'ok') throw new Error(JSON.stringify(o.denial));
    js.push(o.durationMs);
  }
  out.run_javascript_warm_ms = summarise(js);

  // Isolate start cost, measured in this process.
  const ivm = require('isolated-vm');
  const iso = [];
  for (let i = 0; i < (quick ? 20 : 100); i++) {
    const t0 = performance.now();
    const isolate = new ivm.Isolate({ memoryLimit: 64 });
    const c = isolate.createContextSync();
    iso.push(performance.now() - t0);
    c.release();
    isolate.dispose();
  }
  out.isolate_start_ms = summarise(iso);

  // Round trip of each pool: an empty task there and back.
  out.worker_round_trip_ms = {};
  for (const [name, pool] of [
    ['filesystem', app.deps.toolEnv.pools.filesystem],
    ['javascript', app.deps.toolEnv.pools.javascript],
  ]) {
    const rt = [];
    for (let i = 0; i < 200; i++) await pool.run('ping', null, { timeoutMs: 5000 });
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await pool.run('ping', null, { timeoutMs: 5000 });
      rt.push(performance.now() - t0);
    }
    out.worker_round_trip_ms[name] = summarise(rt);
  }

  // read_file, 16 concurrent callers: inline executor vs worker pool, alternating rounds.
  const pooled = app.deps.toolEnv.pools;
  const inline = { ...pooled, filesystem: inlinePool() };
  const rounds = quick ? 1 : 3;
  const tp = { inline: [], worker_pool: [] };
  for (let r = 0; r < rounds; r++) {
    app.deps.toolEnv.pools = inline;
    tp.inline.push(await throughput(app, ws.file, 16, n));
    app.deps.toolEnv.pools = pooled;
    tp.worker_pool.push(await throughput(app, ws.file, 16, n));
  }
  const best = (xs) => Math.max(...xs);
  out.read_file_16_concurrent_calls_per_s = { inline_before: best(tp.inline), worker_pool_after: best(tp.worker_pool), rounds: tp, durability: 'batch' };
  await app.close();
  ws.cleanup();
  return out;
}
