import { spawn } from 'node:child_process';
import t from 'tap';
import { BIN, makeSandbox, readAudit } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { stdioClient } from './helpers/clients.js';
import { cleanChildEnv } from './helpers/child-env.js';

t.test('wrong types, missing fields, unknown fields, oversized arguments: invalid_input, audited', async (t) => {
  const sb = makeSandbox({ limits: { max_args_bytes: 2048, tiers: { local: { capacity: 1000, refill_per_s: 1000 } }, default_tier: 'local' } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const cases: [string, unknown, string][] = [
    ['read_file', { path: 42 }, 'input.schema'],
    ['read_file', {}, 'input.schema'],
    ['read_file', { path: 'hello.txt', extra: true }, 'input.schema'],
    ['read_file', { path: 'hello.txt', encoding: 'rot13' }, 'input.schema'],
    ['read_file', { path: 'hello.txt', offset: -1 }, 'input.schema'],
    ['read_file', { path: 'hello.txt', offset: 1.5 }, 'input.schema'],
    ['list_directory', { path: '.', depth: 1e9 }, 'input.schema'],
    ['search_files', { path: '.', query: '' }, 'input.schema'],
    ['read_file', [1, 2, 3], 'input.not_object'],
    ['read_file', 'hello.txt', 'input.not_object'],
    ['read_file', null, 'input.not_object'],
    ['read_file', { path: 'x'.repeat(5000) }, 'input.too_large'],
    ['no_such_tool', {}, 'tool.unknown'],
  ];
  for (const [tool, args, reason] of cases) {
    const o = await gate.call(tool, args);
    t.equal(o.denial?.code, 'invalid_input', `${tool} ${JSON.stringify(args).slice(0, 60)}`);
    t.ok(o.denial?.reasons.includes(reason), `reason ${reason} in ${o.denial?.reasons}`);
    t.equal(o.status, 'denied');
  }
  await gate.close();
  const recs = readAudit(sb.auditPath);
  t.equal(recs.length, cases.length, 'every refused call left an audit record');
  for (const r of recs) {
    t.equal(r.outcome.code, 'invalid_input');
    t.equal(r.args, null, 'unvalidated arguments are not stored, only hashed');
    t.match(r.args_sha256, /^[0-9a-f]{64}$/);
  }
});

t.test('a lone surrogate is refused at validation; arguments that cannot be hashed reproducibly are recorded without them', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const o = await gate.call('read_file', { path: 'hello\uD800.txt' });
  t.equal(o.denial?.code, 'invalid_input');
  t.same(o.denial?.reasons, ['input.lone_surrogate']);
  t.ok(o.auditSeq, 'still recorded');
  // Valid for the schema, yet beyond what canonical JSON represents exactly (integers past 2^53).
  const big = await gate.call('read_file', { path: 'missing.txt', offset: 2 ** 60 });
  t.equal(big.denial?.code, 'path_rejected');
  t.ok(big.auditSeq, 'still recorded');
  await gate.close();
  const recs = readAudit(sb.auditPath);
  const lone = recs.find((r) => r.request_id === o.requestId)!;
  t.equal(lone.args, null, 'unvalidated arguments are kept as a hash only');
  t.match(lone.args_sha256, /^[0-9a-f]{64}$/);
  const rec = recs.find((r) => r.request_id === big.requestId)!;
  t.equal(rec.args, null);
  t.equal(rec.args_unrepresentable, 'unsafe_integer');
});

t.test('malformed JSON-RPC over stdio does not kill the server', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', sb.configPath], { stdio: ['pipe', 'pipe', 'pipe'], env: cleanChildEnv() });
  t.teardown(() => child.kill());
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const send = (s: string) => child.stdin.write(`${s}\n`);
  send('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}');
  send('{this is not json');
  send('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":"not-an-object"}');
  send('[1,2,3]');
  send('{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":5,"arguments":{}}}');
  send('{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_file","arguments":"hello.txt"}}');
  send('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"hello.txt"}}}');
  const deadline = Date.now() + 15_000;
  while (!/"id":3/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  type Frame = {
    id?: number | null;
    error?: { code: number };
    result?: { isError?: boolean; structuredContent?: { content?: string; error?: { code: string } } };
  };
  const lines = out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Frame);
  const byId = new Map(lines.map((l) => [l.id, l]));
  const nullIds = lines.filter((l) => l.id === null).map((l) => l.error?.code);
  t.same(nullIds, [-32700, -32600], 'unparsable line → parse error, non-object → invalid request (id null)');
  t.equal(byId.get(2)?.error?.code, -32600, 'params that are not an object → invalid request');
  t.equal(byId.get(4)?.error?.code, -32602, 'a non-string tool name is an unknown tool (invalid params)');
  t.equal(byId.get(5)?.result?.structuredContent?.error?.code, 'invalid_input', 'non-object arguments reach the gate and are refused');
  t.equal(byId.get(3)?.result?.structuredContent?.content, 'hello, world\n', 'server kept serving after garbage');
  for (const l of out.split('\n').filter(Boolean)) t.doesNotThrow(() => JSON.parse(l), 'stdout carries only JSON-RPC frames');
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  const recs = readAudit(sb.auditPath);
  t.equal(recs.length, 3, 'the three tools/call requests are audited (bad name, bad arguments, good)');
  t.same(
    recs.map((r) => r.outcome.code),
    ['invalid_input', 'invalid_input', null],
  );
});

t.test('stdout stays clean: logs go to stderr even at debug level', async (t) => {
  const sb = makeSandbox({ observability: { log_level: 'debug' } });
  t.teardown(sb.cleanup);
  const { client, stderr, close } = await stdioClient(['--config', sb.configPath]);
  t.teardown(close);
  await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  await client.callTool({ name: 'read_file', arguments: { path: '/etc/passwd' } });
  const logLines = stderr().split('\n').filter(Boolean);
  t.ok(logLines.length > 0, 'something was logged');
  for (const l of logLines) t.doesNotThrow(() => JSON.parse(l), `JSON log line: ${l.slice(0, 80)}`);
});
