// Gate overhead per call, tool I/O excluded: the whole gate minus the execute stage, in-process,
// for each audit durability mode (the audit append is part of the gate and dominates under fsync).
import crypto from 'node:crypto';
import { dist, summarise, workspace } from './lib.mjs';

const { loadConfig } = await import(dist('src/config/loader.js'));
const { createApp } = await import(dist('src/app.js'));
const { createLogger } = await import(dist('src/observability/logger.js'));
const { runGate } = await import(dist('src/gate/run.js'));

export async function benchGate({ durability, calls = 5000 }) {
  const ws = workspace(durability);
  const app = await createApp(loadConfig({ file: ws.config }), createLogger('error'));
  const call = () => runGate({ tool: 'read_file', args: { path: ws.file }, context: { transport: 'stdio', requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal } }, app.deps);
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
