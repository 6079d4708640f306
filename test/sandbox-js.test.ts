import t from 'tap';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';

let gate: InProcessGate;
const sb = makeSandbox({
  javascript: { memory_mb: 32, timeout_ms: 700, max_output_bytes: 16384 },
  execution: { timeout_ms: 10000, javascript_pool: { size: 2, max_queue: 16, heap_mb: 192 } },
});
t.before(async () => {
  gate = await inProcessGate(sb.configPath);
});
t.teardown(async () => {
  await gate.close();
  sb.cleanup();
});

const run = (code: string, extra: Record<string, unknown> = {}) => gate.call('run_javascript', { code, ...extra });

t.test('legitimate scripts give correct results', async (t) => {
  const cases: [string, unknown, unknown][] = [
    ['return 6 * 7', undefined, 42],
    [
      'return input.rows.filter((r) => r.amount > 100).map((r) => r.id)',
      {
        rows: [
          { id: 1, amount: 120 },
          { id: 2, amount: 75 },
          { id: 3, amount: 310 },
        ],
      },
      [1, 3],
    ],
    ['return input.split(" ").reverse().join(" ").toUpperCase()', 'hello sandboxed world', 'WORLD SANDBOXED HELLO'],
    ['const xs = await Promise.all([1, 2, 3].map(async (x) => x * x)); return xs.reduce((a, b) => a + b, 0)', undefined, 14],
    ['const m = new Map([["a", 1]]); m.set("b", 2); return Object.fromEntries(m)', undefined, { a: 1, b: 2 }],
    ['return JSON.parse(JSON.stringify({ d: new Date(0) }))', undefined, { d: '1970-01-01T00:00:00.000Z' }],
    ['return undefined', undefined, null],
  ];
  for (const [code, input, expected] of cases) {
    const o = await run(code, input === undefined ? {} : { input });
    t.equal(o.status, 'ok', code);
    t.same(o.result?.structured.result, expected, code);
  }
  const logged = await run('console.log("a", 1, { b: 2 }); console.error("e"); return "x"');
  t.equal(logged.result?.structured.logs, 'a 1 {"b":2}\ne\n');
  const m = logged.result?.metrics;
  t.ok(m && m.duration_ms > 0 && m.cpu_ms >= 0 && m.heap_bytes > 0 && m.output_bytes > 0, `metrics reported: ${JSON.stringify(m)}`);
});

const ATTACKS: [string, string, string, string][] = [
  ['infinite loop', 'for (;;) {}', 'timeout', 'js.cpu_time'],
  ['infinite loop in a promise callback', 'await Promise.resolve().then(() => { for (;;) {} })', 'timeout', 'js.cpu_time'],
  ['infinite loop after an await', 'await null; while (true) {}', 'timeout', 'js.cpu_time'],
  ['microtask flood', 'const spin = async () => { for (;;) await null }; await spin()', 'timeout', 'js.cpu_time'],
  [
    'microtask flood that allocates',
    'const keep = []; const f = () => Promise.resolve().then(() => { keep.push(new Array(4096).fill(1)); return f(); }); await f()',
    'resource_exceeded',
    'js.memory',
  ],
  ['array bomb', 'const a = []; for (;;) a.push(new Array(1e5).fill(1))', 'resource_exceeded', 'js.memory'],
  ['string doubling', 'let s = "x"; for (;;) s += s', 'resource_exceeded', 'js.memory'],
  ['typed array bomb', 'const a = []; for (;;) a.push(new Uint8Array(1e7))', 'resource_exceeded', 'js.memory'],
  ['deep recursion', 'const f = (n) => f(n + 1) + 1; return f(0)', 'resource_exceeded', 'js.stack'],
  ['huge output', 'for (;;) console.log("x".repeat(1000))', 'resource_exceeded', 'js.output_cap'],
  ['huge result', 'return "y".repeat(100000)', 'resource_exceeded', 'js.output_cap'],
  ['Atomics.wait blocking', 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); return 1', 'timeout', 'js.cpu_time'],
];

for (const [label, code, want, reason] of ATTACKS) {
  t.test(`cap: ${label} → ${want}`, async (t) => {
    const o = await run(code);
    t.equal(o.denial?.code, want, JSON.stringify(o.denial));
    t.ok(o.denial?.reasons.includes(reason), `reason ${reason} in ${o.denial?.reasons}`);
    t.equal(o.result, undefined);
  });
}

t.test('memory bombs that take the whole worker process down cost only that process', async (t) => {
  for (const code of [
    'const m = new Map(); for (let i = 0; ; i++) m.set(i, { i, s: "v" + i })',
    'const o = {}; for (let i = 0; ; i++) o["k" + i] = [i, i, i]',
  ]) {
    const o = await run(code, { timeout_ms: 5000 });
    t.ok(o.denial && ['resource_exceeded', 'timeout'].includes(o.denial.code), `${code.slice(0, 30)} → ${JSON.stringify(o.denial)}`);
    t.notOk(o.denial?.reasons.includes('worker.crashed') && o.denial.code !== 'resource_exceeded', 'a heap crash is reported as resource_exceeded');
    const after = await run('return 1 + 1');
    t.same(after.result?.structured.result, 2, 'the pool still answers');
  }
});

t.test('escape attempts find no Node API', async (t) => {
  const probes = [
    'return this.constructor.constructor("return typeof process")()',
    'return (function(){ return this })().constructor.constructor("return typeof require")()',
    'return [typeof process, typeof require, typeof module, typeof setTimeout, typeof setImmediate, typeof fetch, typeof WebAssembly, typeof globalThis.global]',
    'Error.prepareStackTrace = (e, s) => s.map((f) => typeof f.getThis === "function" ? String(f.getThis()) : "x"); return String(new Error().stack)',
    'try { return typeof (await import("node:fs")) } catch (e) { return "import refused: " + e.message }',
    'return Function("return typeof this.process")()',
    'return Object.getOwnPropertyNames(globalThis).filter((n) => /process|require|Buffer|__/.test(n))',
  ];
  for (const code of probes) {
    const o = await run(code);
    const text = JSON.stringify(o.result?.structured.result ?? o.denial);
    t.notMatch(text, /"object"|"function"|"require"|\/root|\/work|node:internal/, `${code.slice(0, 50)} → ${text.slice(0, 120)}`);
  }
  const wasm = await run('const m = new WebAssembly.Memory({ initial: 1, maximum: 65536 }); m.grow(60000); return m.buffer.byteLength');
  t.equal(wasm.denial?.code, 'tool_error', 'WebAssembly is not available to scripts');
  t.match(wasm.denial?.message ?? '', /WebAssembly is not defined/);
});

t.test('getters and proxies in the result run inside the isolate, never in the host', async (t) => {
  const o = await run(
    'let calls = 0; const p = new Proxy({}, { get: () => { calls++; return "trap" }, ownKeys: () => ["a"], getOwnPropertyDescriptor: () => ({ enumerable: true, configurable: true }) }); return { p, get g() { return "getter" }, calls }',
  );
  t.equal(o.status, 'ok');
  t.same(o.result?.structured.result, { p: { a: 'trap' }, g: 'getter', calls: 0 });
  const throwing = await run('return { get boom() { throw new Error("from getter") } }');
  t.equal(throwing.denial?.code, 'tool_error');
  t.match(throwing.denial?.message ?? '', /from getter/);
});

t.test('scripts that fail are typed denials', async (t) => {
  t.equal((await run('throw new Error("boom")')).denial?.code, 'tool_error');
  const syntax = await run('return (');
  t.equal(syntax.denial?.code, 'tool_error');
  t.ok(syntax.denial?.reasons.includes('js.syntax_error'));
  const big = await run('x'.repeat(70_000));
  t.equal(big.denial?.code, 'invalid_input');
  t.ok(big.denial?.reasons.includes('code.too_large'));
});

t.test('the caller can only tighten caps', async (t) => {
  const o = await run('return 1', { memory_mb: 4096, timeout_ms: 999999 });
  t.equal(o.result?.structured.memory_mb, 32, 'memory stays at the configured cap');
  t.equal(o.result?.structured.timeout_ms, 700, 'time stays at the configured cap');
  const tight = await run('for (;;) {}', { timeout_ms: 50 });
  t.equal(tight.denial?.code, 'timeout');
  t.ok(tight.durationMs < 700, `stopped at the requested 50 ms budget (${Math.round(tight.durationMs)} ms)`);
});

t.test('while a script burns its budget, other calls keep being answered', async (t) => {
  const started = performance.now();
  const slow = run('for (;;) {}');
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  const read = await gate.call('read_file', { path: 'hello.txt' });
  const readDone = performance.now();
  t.equal(read.status, 'ok');
  const loop = await slow;
  t.equal(loop.denial?.code, 'timeout');
  t.ok(
    readDone < started + loop.durationMs,
    `read_file answered after ${Math.round(readDone - t0)} ms, before the loop was stopped (${Math.round(loop.durationMs)} ms)`,
  );
});

t.test('caps and metrics reach the audit log; code is hashed, not stored', async (t) => {
  await run('return "audited"');
  await gate.close();
  const recs = readAudit(sb.auditPath).filter((r) => r.tool === 'run_javascript');
  t.ok(recs.length > 10);
  const ok = recs.find((r) => r.outcome.status === 'ok' && r.facts?.code);
  t.match(ok?.facts.code.sha256, /^[0-9a-f]{64}$/);
  t.equal(ok?.args.code, undefined, 'the code itself is not stored');
  t.ok(ok?.args.code_bytes > 0);
  for (const k of ['duration_ms', 'cpu_ms', 'heap_bytes', 'output_bytes']) t.equal(typeof ok?.outcome.metrics?.[k], 'number', `outcome.metrics.${k} recorded`);
  t.equal(ok?.outcome.caps?.memory_mb, 32, 'the caps in force are recorded');
  t.equal(typeof ok?.outcome.caps?.timeout_ms, 'number');
  t.ok(recs.some((r) => r.outcome.code === 'timeout'));
  t.ok(recs.some((r) => r.outcome.code === 'resource_exceeded'));
  gate = await inProcessGate(sb.configPath);
});
