import { spawn } from 'node:child_process';
import t from 'tap';
import { BIN, makeSandbox, readAudit } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer } from './helpers/clients.js';
import { JSON_HEADERS, request } from './helpers/http.js';
import { MAX_ARGS_DEPTH } from '../src/gate/validate.js';

/**
 * Any argument document the JSON parser accepts is either valid or invalid_input with a reason.
 * Deep documents are built as text: JSON.parse takes them, while JSON.stringify (and anything
 * else recursive) would overflow the stack on them in this process too.
 */
function nested(levels: number, kind: 'object' | 'array'): string {
  return kind === 'object' ? `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}` : `${'['.repeat(levels)}1${']'.repeat(levels)}`;
}

/** run_javascript's `input` takes any JSON value: the arguments object is level 1, input's value level 2. */
function jsArgsText(inputLevels: number, kind: 'object' | 'array' = 'object'): string {
  return `{"code":"let d = 0; for (let v = input; v !== null && typeof v === 'object'; v = Array.isArray(v) ? v[0] : v.a) d++; return d;","input":${nested(inputLevels, kind)}}`;
}

const SURROGATE_CASES: [label: string, tool: string, args: unknown][] = [
  ['lone high surrogate in a value', 'read_file', { path: 'hello\uD800.txt' }],
  ['lone low surrogate in a value', 'read_file', { path: '\uDC00hello.txt' }],
  ['high surrogate at the end of a value', 'query_database', { sql: 'SELECT 1 -- \uD83D' }],
  ['lone surrogate in a key', 'run_javascript', { code: 'return 1', input: { ['k\uD800']: 1 } }],
  ['lone surrogate deep in an array', 'run_javascript', { code: 'return 1', input: [[['ok', ['\uDBFF']]]] }],
  ['lone surrogate in an unknown top-level key', 'read_file', { path: 'hello.txt', ['\uDC00']: true }],
];

t.test('in process: depth limit and lone surrogates are invalid_input with a reason, each recorded once', async (t) => {
  const sb = makeSandbox({ execution: { javascript_pool: { size: 1, max_queue: 16, heap_mb: 256 } } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const ids: string[] = [];

  // The limit itself: MAX_ARGS_DEPTH levels run, one more is refused.
  const atLimit = await gate.call('run_javascript', JSON.parse(jsArgsText(MAX_ARGS_DEPTH - 1)));
  ids.push(atLimit.requestId);
  t.equal(atLimit.status, 'ok', `${MAX_ARGS_DEPTH} levels are accepted (${JSON.stringify(atLimit.denial ?? null)})`);
  t.equal(atLimit.result?.structured.result, MAX_ARGS_DEPTH - 1, 'and the isolate saw every level of input');
  const deep: [string, string, string][] = [
    [`${MAX_ARGS_DEPTH + 1} levels`, 'run_javascript', jsArgsText(MAX_ARGS_DEPTH)],
    ['5,000 levels of objects', 'run_javascript', jsArgsText(5000)],
    ['100,000 levels of arrays', 'run_javascript', jsArgsText(100_000, 'array')],
    ['100,000 levels of objects under read_file', 'read_file', `{"path":"hello.txt","x":${nested(100_000, 'object')}}`],
  ];
  for (const [label, tool, text] of deep) {
    const o = await gate.call(tool, JSON.parse(text));
    ids.push(o.requestId);
    t.equal(o.denial?.code, 'invalid_input', `${label}: invalid_input (${o.denial?.code}: ${o.denial?.message.slice(0, 100)})`);
    t.same(o.denial?.reasons, ['input.too_deep'], `${label}: reason input.too_deep`);
    t.equal(o.status, 'denied');
  }
  for (const [label, tool, args] of SURROGATE_CASES) {
    const o = await gate.call(tool, args);
    ids.push(o.requestId);
    t.equal(o.denial?.code, 'invalid_input', `${label}: invalid_input (${o.denial?.code}: ${o.denial?.message})`);
    t.same(o.denial?.reasons, ['input.lone_surrogate'], `${label}: reason input.lone_surrogate`);
    t.notOk(/\p{Cs}/u.test(o.denial?.message ?? ''), 'the message itself is well-formed');
  }
  // Surrogate pairs are characters, not lone surrogates.
  const pair = await gate.call('run_javascript', { code: 'return input', input: { '😀': '€ 😀 \uD83D\uDE00' } });
  ids.push(pair.requestId);
  t.equal(pair.status, 'ok', `well-formed astral characters pass (${JSON.stringify(pair.denial ?? null)})`);
  await gate.close();

  const recs = readAudit(sb.auditPath);
  for (const id of ids) t.equal(recs.filter((r) => r.request_id === id).length, 1, `exactly one record for ${id}`);
  const refused = recs.filter((r) => r.outcome?.code === 'invalid_input');
  t.equal(refused.length, deep.length + SURROGATE_CASES.length, 'every refused call recorded as invalid_input');
  const shapes = refused.map(
    (r) =>
      `${(r.outcome.reasons ?? []).join(',')} args=${r.args === null ? 'null' : typeof r.args} sha=${String(r.args_sha256).slice(0, 12)} unrepresentable=${r.args_unrepresentable ?? '-'}`,
  );
  t.comment(`records of refused arguments:\n# ${shapes.join('\n# ')}`);
  for (const r of refused) t.equal(r.args, null, 'refused arguments are not stored');
});

interface Frame {
  id?: number | null;
  error?: { code: number };
  result?: { isError?: boolean; structuredContent?: Record<string, any> };
}

t.test('over stdio: deep and lone-surrogate arguments are answered invalid_input and the server keeps serving', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', sb.configPath], { stdio: ['pipe', 'pipe', 'pipe'], env: cleanChildEnv() });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const frames = (): Frame[] =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Frame);
  const line = (id: number, name: string, argsText: string) =>
    `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${name}","arguments":${argsText}}}\n`;
  child.stdin.write(
    '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}\n',
  );
  const cases: [number, string, string, string][] = [
    [1, 'read_file', `{"path":"hello.txt","x":${nested(5000, 'object')}}`, 'input.too_deep'],
    [2, 'read_file', `{"path":"hello.txt","x":${nested(100_000, 'array')}}`, 'input.too_deep'],
    [3, 'read_file', '{"path":"hello\\ud800.txt"}', 'input.lone_surrogate'],
    [4, 'read_file', '{"path":"hello.txt","\\udc00":1}', 'input.lone_surrogate'],
  ];
  for (const [id, name, args] of cases) child.stdin.write(line(id, name, args));
  child.stdin.write(line(9, 'read_file', '{"path":"hello.txt"}'));
  const until = Date.now() + 20_000;
  while (Date.now() < until && !frames().some((f) => f.id === 9 && f.result)) await new Promise((r) => setTimeout(r, 50));
  const byId = new Map(frames().map((f) => [f.id, f]));
  for (const [id, , , reason] of cases) {
    const sc = byId.get(id)?.result?.structuredContent;
    t.equal(sc?.error?.code, 'invalid_input', `call ${id}: invalid_input (${JSON.stringify(byId.get(id) ?? null).slice(0, 200)})`);
    t.same(sc?.error?.reasons, [reason], `call ${id}: ${reason}`);
  }
  t.equal(byId.get(9)?.result?.structuredContent?.content, 'hello, world\n', 'a good call after them is served');
  child.stdin.end();
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 0, 'clean exit');
  t.notMatch(err, /RangeError|Maximum call stack/, 'no stack overflow anywhere');
  const recs = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file');
  t.equal(recs.length, cases.length + 1, 'one record per call');
  t.same(
    recs.map((r) => r.outcome.reasons?.[0] ?? null),
    [...cases.map((c) => c[3]), null],
  );
});

t.test('over HTTP: deep and lone-surrogate arguments are answered invalid_input', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const server = await startHttpServer(['--config', sb.configPath]);
  t.teardown(() => server.stop());
  const body = (id: number, argsText: string) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"read_file","arguments":${argsText}}}`;
  const cases: [number, string, string][] = [
    [1, `{"path":"hello.txt","x":${nested(5000, 'object')}}`, 'input.too_deep'],
    [2, `{"path":"hello.txt","x":${nested(100_000, 'array')}}`, 'input.too_deep'],
    [3, '{"path":"hello\\ud800.txt"}', 'input.lone_surrogate'],
    [4, '{"\\ud800\\ud800":"x","path":"hello.txt"}', 'input.lone_surrogate'],
  ];
  for (const [id, args, reason] of cases) {
    const r = await request(server.url, { headers: JSON_HEADERS, body: body(id, args) });
    t.equal(r.status, 200, `call ${id}: answered`);
    const sc = (JSON.parse(r.body) as { result?: { structuredContent?: { error?: { code: string; reasons: string[] } } } }).result?.structuredContent;
    t.equal(sc?.error?.code, 'invalid_input', `call ${id}: invalid_input (${r.body.slice(0, 200)})`);
    t.same(sc?.error?.reasons, [reason], `call ${id}: ${reason}`);
  }
  const ok = await request(server.url, { headers: JSON_HEADERS, body: body(9, '{"path":"hello.txt"}') });
  t.equal(JSON.parse(ok.body).result.structuredContent.content, 'hello, world\n', 'still serving');
  await server.stop();
  t.notMatch(server.stderr(), /RangeError|Maximum call stack/, 'no stack overflow anywhere');
  const recs = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file');
  t.equal(recs.length, cases.length + 1, 'one record per call');
});
