/**
 * run_javascript's wrapper against a script that replaces the intrinsics it uses: the result is
 * serialised with the JSON.stringify captured before the script ran, console output is formatted
 * with captured functions, and stack traces name the script's frames `<script>` with its own line
 * numbers. Through the real gate, worker process and isolate.
 */
import t from 'tap';
import { makeSandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';

let gate: InProcessGate;
const sb = makeSandbox({
  javascript: { memory_mb: 32, timeout_ms: 700, max_output_bytes: 16384 },
  execution: { timeout_ms: 10000, javascript_pool: { size: 1, max_queue: 16, heap_mb: 192 } },
});
t.before(async () => {
  gate = await inProcessGate(sb.configPath);
});
t.teardown(async () => {
  await gate.close();
  sb.cleanup();
});

const run = (code: string, extra: Record<string, unknown> = {}) => gate.call('run_javascript', { code, ...extra });

t.test('replaced intrinsics neither break nor forge the result', async (t) => {
  const cases: [string, unknown][] = [
    ['JSON.stringify = () => "FORGED"; return 1;', 1],
    ['JSON.stringify = () => "{\\"forged\\":true}"; return { real: 1 };', { real: 1 }],
    ['JSON.stringify = () => undefined; return [1, 2];', [1, 2]],
    ['JSON.stringify = () => { throw new Error("no") }; return "ok";', 'ok'],
    ['JSON.parse = () => ({ forged: true }); return input;', { k: 1 }],
    ['Promise.prototype.then = function () { return "X" }; return { a: 2 };', { a: 2 }],
    ['Reflect.apply = () => "FORGED"; return 4;', 4],
    ['String = () => "FORGED"; Number = () => 0; return "s";', 's'],
    ['Object.defineProperty = () => { throw 1 }; Object.freeze = (x) => x; return 5;', 5],
    ['Array.prototype.map = () => ["FORGED"]; Array.prototype.join = () => "FORGED"; console.log("a", 1); return [6];', [6]],
    ['delete globalThis.JSON; return { gone: typeof JSON };', { gone: 'undefined' }],
    // Closing the function early puts code at the script's top level: it still runs after the capture.
    ['}); JSON.stringify = () => "FORGED"; (async function () { return 7', 7],
  ];
  for (const [code, expected] of cases) {
    const o = await run(code, { input: { k: 1 } });
    t.equal(o.status, 'ok', `${code.slice(0, 60)}: ok (${o.denial?.reasons.join(',') ?? ''})`);
    t.same(o.result?.structured.result, expected, `${code.slice(0, 60)}: the real result`);
  }
  // A script can make its own promise unreadable (await must read .constructor): it breaks its own
  // result, and that ends in tool_error, never in a value the wrapper did not serialise.
  const broken = await run('Object.defineProperty(Promise.prototype, "constructor", { get() { throw new Error("species") } }); return 3;');
  t.equal(broken.denial?.code, 'tool_error');
  t.same(broken.denial?.reasons, ['js.exception']);
  // The script's own toJSON is part of its value, not the wrapper: honoured as before.
  const own = await run('return { toJSON() { return "mine" } }');
  t.same(own.result?.structured.result, 'mine');
});

t.test('console keeps working when Array and JSON methods are replaced', async (t) => {
  const o = await run(
    'Array.prototype.map = () => ["FORGED"]; Array.prototype.join = () => "FORGED"; Object.defineProperty(Array, Symbol.species, { get() { throw new Error("species") } }); JSON.stringify = () => "FORGED"; console.log("a", 1, { b: 2 }); console.error("e"); return null',
  );
  t.equal(o.status, 'ok');
  t.equal(o.result?.structured.logs, 'a 1 {"b":2}\ne\n', 'logs formatted with the captured intrinsics');
  const prog = await run('Number = () => NaN; progress(1, 2); return "p"');
  t.equal(o.status, 'ok');
  t.same(prog.result?.structured.result, 'p');
});

t.test('stack traces name the script <script> with its own line numbers', async (t) => {
  const o = await run('const a = 1;\nconst f = () => new Error("here");\nreturn f().stack');
  t.equal(o.status, 'ok');
  const stack = String(o.result?.structured.result);
  t.match(stack, /^Error: here\n\s+at f \(<script>:2:17\)/, `user frame named <script>, line 2 (${JSON.stringify(stack)})`);
  t.notMatch(stack, /script\.js|node:|\/work\/|\/dist\/|isolated-vm|file:/, 'no host file or wrapper file name');
  const syntax = await run('const x = 1;\nreturn x +;');
  t.equal(syntax.denial?.code, 'tool_error');
  t.same(syntax.denial?.reasons, ['js.syntax_error']);
  t.match(syntax.denial?.message ?? '', /<script>:2:/, `a syntax error names the script line: ${syntax.denial?.message}`);
  t.notMatch(syntax.denial?.message ?? '', /script\.js|\/work\//);
  const thrown = await run('null.x');
  t.equal(thrown.denial?.code, 'tool_error');
  t.same(thrown.denial?.reasons, ['js.exception']);
  t.notMatch(thrown.denial?.message ?? '', /script\.js|\/work\/|node:/);
});

t.test('limits still hold with the new wrapper', async (t) => {
  const loop = await run('for (;;) {}');
  t.equal(loop.denial?.code, 'timeout');
  const topLoop = await run('}); for (;;) {} (async function () {');
  t.equal(topLoop.denial?.code, 'timeout', 'a loop at the top level is bounded by the same CPU budget');
  const strict = await run('undeclared = 1; return 1');
  t.equal(strict.denial?.code, 'tool_error', 'the body is strict mode');
  t.match(strict.denial?.message ?? '', /undeclared is not defined/);
  const wasm = await run('return typeof WebAssembly');
  t.same(wasm.result?.structured.result, 'undefined');
});
