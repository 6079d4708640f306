// Gate overhead per call, tool I/O excluded: the whole gate minus the execute stage, in-process,
// for each audit durability mode (the audit append is part of the gate and dominates under fsync).
// `node scripts/bench/gate.mjs --against /tmp/old` (a folder holding another build's dist/) runs
// that build and this one alternately in one process, so load swings hit both alike.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { dist, summarise, workspace } from './lib.mjs';

async function loadBuild(distDir) {
  const imp = (p) => import(pathToFileURL(path.join(distDir, p)).href);
  const { loadConfig } = await imp('src/config/loader.js');
  const { createApp } = await imp('src/app.js');
  const { createLogger } = await imp('src/observability/logger.js');
  const { runGate } = await imp('src/gate/run.js');
  return { loadConfig, createApp, createLogger, runGate };
}

async function measure(build, durability, calls) {
  const ws = workspace(durability);
  const app = await build.createApp(build.loadConfig({ file: ws.config }), build.createLogger('error'));
  const call = () =>
    build.runGate(
      {
        tool: 'read_file',
        args: { path: ws.file },
        context: { transport: 'stdio', requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal },
      },
      app.deps,
    );
  for (let i = 0; i < 500; i++) await call();
  const overhead = [];
  const withoutRecord = [];
  const execute = [];
  const record = [];
  for (let i = 0; i < calls; i++) {
    const o = await call();
    if (o.status !== 'ok') throw new Error(`bench call failed: ${JSON.stringify(o.denial)}`);
    const ex = o.stageMs.execute ?? 0;
    overhead.push(o.durationMs - ex);
    withoutRecord.push(o.durationMs - ex - (o.stageMs.record ?? 0));
    execute.push(ex);
    record.push(o.stageMs.record ?? 0);
  }
  await app.close();
  ws.cleanup();
  return {
    durability,
    gate_overhead_ms: summarise(overhead),
    gate_overhead_without_audit_ms: summarise(withoutRecord),
    audit_append_ms: summarise(record),
    tool_execute_ms: summarise(execute),
  };
}

let current;
export async function benchGate({ durability, calls = 5000 }) {
  current ??= await loadBuild(dist(''));
  return measure(current, durability, calls);
}

/** This build against another, alternating rounds; p50s of the gate without the audit append. */
export async function benchGateAgainst(against, { rounds = 4, calls = 3000 } = {}) {
  const otherDist = fs.existsSync(path.join(against, 'dist')) ? path.join(against, 'dist') : against;
  const builds = { this: await loadBuild(dist('')), against: await loadBuild(otherDist) };
  const out = { against, rounds: [] };
  for (let r = 0; r < rounds; r++) {
    const row = {};
    for (const name of r % 2 ? ['against', 'this'] : ['this', 'against']) {
      const m = await measure(builds[name], 'async', calls);
      row[name] = { overhead_without_audit_p50_ms: m.gate_overhead_without_audit_ms.p50, overhead_without_audit_p99_ms: m.gate_overhead_without_audit_ms.p99 };
    }
    out.rounds.push(row);
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--against');
  const result = i > 0 ? await benchGateAgainst(process.argv[i + 1]) : [await benchGate({ durability: 'async', calls: 3000 })];
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
