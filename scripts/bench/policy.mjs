// opa-wasm evaluation of the shipped policy on a realistic input (< 4 KiB), and memory over many
// evaluations (wasm linear memory and process RSS before/after).
import path from 'node:path';
import { ROOT, dist, summarise } from './lib.mjs';

const { WasmPolicyEngine, readPolicyData } = await import(dist('src/policy/engine.js'));

export async function benchPolicy({ samples = 20000, soak = 1_000_000 }) {
  const engine = await WasmPolicyEngine.load(path.join(ROOT, 'policies', 'policy.wasm'), readPolicyData(path.join(ROOT, 'policies', 'data.json')), 64 * 1024);
  const input = {
    principal: { id: 'analyst-7', roles: ['analyst'], auth: 'api_key', tier: 'standard' },
    tool: 'read_file',
    args: { path: 'reports/2026/q3/summary.csv', encoding: 'auto', offset: 0 },
    facts: { path: { canonical: '/srv/data/reports/2026/q3/summary.csv', root: '/srv/data', kind: 'file', size: 48213, nlink: 1, extension: '.csv' } },
    context: { transport: 'http', client_ip: '127.0.0.1', time: '2026-11-25T12:00:00.000Z', request_id: '6f1c1a52-58a4-4b55-9a8e-5d0c1f0b7a11' },
  };
  const inputBytes = Buffer.byteLength(JSON.stringify(input));
  for (let i = 0; i < 2000; i++) engine.decide(input);
  const lat = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const d = engine.decide(input);
    lat.push(performance.now() - t0);
    if (!d.allow) throw new Error('benchmark input should be allowed');
  }
  const mem = () => engine.policy?.mem?.buffer?.byteLength ?? null;
  globalThis.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const wasmBefore = mem();
  const t0 = performance.now();
  for (let i = 0; i < soak; i++) engine.decide(input);
  const soakMs = performance.now() - t0;
  globalThis.gc?.();
  return {
    input_bytes: inputBytes,
    decide_us: summarise(lat, 'us'),
    soak: {
      evaluations: soak,
      seconds: Math.round(soakMs) / 1000,
      wasm_memory_bytes_before: wasmBefore,
      wasm_memory_bytes_after: mem(),
      rss_growth_mb: Math.round(((process.memoryUsage().rss - rssBefore) / 1048576) * 10) / 10,
    },
  };
}
