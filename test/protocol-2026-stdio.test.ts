/**
 * MCP 2026-07-28 over stdio beside 2025-11-25 (issue 14, item 1): the era is chosen per message,
 * a 2026 request needs no initialize, and stdout carries nothing but protocol frames. The real
 * 2026 client (@modelcontextprotocol/client 2.4.0) and raw lines written to a real `bulwark serve`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import t, { type Test } from 'tap';
import { Client as ModernClient } from '@modelcontextprotocol/client';
import { StdioClientTransport as ModernStdioTransport } from '@modelcontextprotocol/client/stdio';
import { BIN, makeSandbox, readAudit } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { stdioClient } from './helpers/clients.js';

const V = '2026-07-28';
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': V,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

const sb = makeSandbox({ javascript: { timeout_ms: 10000 }, execution: { timeout_ms: 15000 } });
t.teardown(() => sb.cleanup());

const recordOf = (requestId: unknown) => readAudit(sb.auditPath).find((r) => r.request_id === requestId);

interface Frame {
  readonly jsonrpc?: string;
  readonly id?: number | string | null;
  readonly method?: string;
  readonly params?: Record<string, any>;
  readonly result?: Record<string, any>;
  readonly error?: { code: number; message: string; data?: Record<string, any> };
}

/** `bulwark serve` on stdio with raw lines in and every stdout line parsed (a non-JSON line fails the test). */
function rawServer(t: Test): {
  child: ChildProcessWithoutNullStreams;
  frames: Frame[];
  send(m: unknown): void;
  answer(id: number, ms?: number): Promise<Frame>;
} {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', sb.configPath], { stdio: ['pipe', 'pipe', 'pipe'], env: cleanChildEnv() });
  const frames: Frame[] = [];
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      const f = JSON.parse(line) as Frame;
      if (f.jsonrpc !== '2.0') throw new Error(`not a JSON-RPC frame on stdout: ${line.slice(0, 200)}`);
      frames.push(f);
    }
  });
  child.stderr.resume();
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  return {
    child,
    frames,
    send: (m) => child.stdin.write(`${JSON.stringify(m)}\n`),
    async answer(id, ms = 20000) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const f = frames.find((x) => x.id === id && (x.result !== undefined || x.error !== undefined));
        if (f) return f;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no answer to ${id}; frames: ${JSON.stringify(frames).slice(0, 500)}`);
    },
  };
}

t.test('the 2026 client over stdio: discover, list and call through the gate', async (t) => {
  const transport = new ModernStdioTransport({
    command: process.execPath,
    args: [BIN, 'serve', '--config', sb.configPath],
    env: cleanChildEnv(),
    stderr: 'pipe',
  });
  const client = new ModernClient({ name: 'bulwark-test-2026', version: '1.0.0' }, { versionNegotiation: { mode: { pin: V }, probe: { timeoutMs: 60000 } } });
  await client.connect(transport);
  t.teardown(() => client.close());
  t.equal(client.getProtocolEra(), 'modern');
  const { tools } = await client.listTools();
  t.ok(tools.some((x) => x.name === 'read_file'));
  const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  t.notOk(r.isError);
  t.match(r.content, [{ type: 'text', text: 'hello, world\n' }]);
  t.match(recordOf((r._meta as Record<string, unknown>)['bulwark/request_id']), { tool: 'read_file', transport: 'stdio', outcome: { status: 'ok' } });
  // Progress reaches a 2026 client on stdio as it does a 2025 one, the final update included.
  const seen: number[] = [];
  const code = 'for (let i = 1; i <= 4; i++) { progress(i, 4); const t0 = Date.now(); while (Date.now() - t0 < 120) {} } return "done"';
  const p = await client.callTool({ name: 'run_javascript', arguments: { code } }, { onprogress: (x) => seen.push(x.progress), timeout: 30000 });
  t.equal((p.structuredContent as { result: string }).result, 'done');
  t.equal(seen.at(-1), 4, `progress: ${seen.join(',')}`);
});

t.test('the 2026 client in auto mode over stdio', async (t) => {
  const transport = new ModernStdioTransport({
    command: process.execPath,
    args: [BIN, 'serve', '--config', sb.configPath],
    env: cleanChildEnv(),
    stderr: 'pipe',
  });
  const client = new ModernClient({ name: 'bulwark-test-2026', version: '1.0.0' }, { versionNegotiation: { mode: 'auto', probe: { timeoutMs: 60000 } } });
  await client.connect(transport);
  t.teardown(() => client.close());
  t.equal(client.getProtocolEra(), 'modern');
  const r = await client.callTool({ name: 'list_directory', arguments: { path: '.' } });
  t.notOk(r.isError);
});

t.test('the 2025-11-25 SDK client over stdio is unchanged', async (t) => {
  const { client, close } = await stdioClient(['--config', sb.configPath]);
  t.teardown(close);
  const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  t.notOk(r.isError);
  t.notOk('resultType' in r);
});

t.test('raw stdio: per-message era, the ladder without headers, protocol-only stdout', async (t) => {
  const s = rawServer(t);
  // A 2026 request first, with no initialize at all.
  s.send({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: ENVELOPE } });
  const d = await s.answer(1);
  t.same(d.result?.supportedVersions, [V]);
  t.equal(d.result?.resultType, 'complete');
  s.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' }, _meta: ENVELOPE } });
  const c = await s.answer(2);
  t.equal(c.result?.resultType, 'complete');
  t.equal(c.result?.content[0].text, 'hello, world\n');
  // Then a 2025 client on the same pipe: initialize and a call, answered in 2025 shapes.
  s.send({
    jsonrpc: '2.0',
    id: 3,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });
  t.equal((await s.answer(3)).result?.protocolVersion, '2025-11-25');
  s.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  s.send({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' } } });
  const legacy = await s.answer(4);
  t.notOk(legacy.result && 'resultType' in legacy.result, 'the 2025 answer has no resultType');
  // An unsupported revision: -32022, and the named call recorded as refused.
  s.send({
    jsonrpc: '2.0',
    id: 5,
    method: 'tools/call',
    params: { name: 'read_file', arguments: { path: 'hello.txt' }, _meta: { ...ENVELOPE, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } },
  });
  const u = await s.answer(5);
  t.equal(u.error?.code, -32022);
  t.same(u.error?.data?.supported, [V]);
  t.match(recordOf(u.error?.data?.request_id), {
    transport: 'stdio',
    principal: { auth: 'stdio' },
    outcome: { code: 'invalid_input', reasons: ['protocol.unsupported_version'] },
  });
  // A broken envelope: -32602.
  s.send({ jsonrpc: '2.0', id: 6, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': V } } });
  t.equal((await s.answer(6)).error?.code, -32602);
  // Removed and unknown methods under 2026: -32601.
  s.send({ jsonrpc: '2.0', id: 7, method: 'ping', params: { _meta: ENVELOPE } });
  t.equal((await s.answer(7)).error?.code, -32601);
  // A 2026 tools/call with a progress token gets its notifications on stdout, then the result.
  const code = 'for (let i = 1; i <= 3; i++) { progress(i, 3); const t0 = Date.now(); while (Date.now() - t0 < 150) {} } return "ok"';
  s.send({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'run_javascript', arguments: { code }, _meta: { ...ENVELOPE, progressToken: 'p8' } } });
  const r8 = await s.answer(8);
  t.equal(r8.result?.structuredContent.result, 'ok');
  const progress = s.frames.filter((f) => f.method === 'notifications/progress' && f.params?.progressToken === 'p8');
  t.ok(progress.length >= 1, `${progress.length} progress notifications`);
  t.equal(progress.at(-1)?.params?.progress, 3, 'the final update arrived');
  t.ok(s.frames.indexOf(progress.at(-1) as Frame) < s.frames.indexOf(r8), 'before the result');
});

t.test('raw stdio: a cancelled 2026 call is stopped, not answered, and recorded once', async (t) => {
  const s = rawServer(t);
  const spin = 'while (true) {}';
  // Ready first (a loaded machine can take seconds to start the server and its workers).
  s.send({ jsonrpc: '2.0', id: 0, method: 'server/discover', params: { _meta: ENVELOPE } });
  await s.answer(0, 60000);
  const before = readAudit(sb.auditPath).length;
  s.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'run_javascript', arguments: { code: spin }, _meta: ENVELOPE } });
  await new Promise((r) => setTimeout(r, 1000));
  s.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: 'test', _meta: ENVELOPE } });
  const started = Date.now();
  let rec: Record<string, any> | undefined;
  while (Date.now() - started < 30000 && !rec) {
    rec = readAudit(sb.auditPath)
      .slice(before)
      .find((r) => r.tool === 'run_javascript' && r.args?.code_bytes === spin.length);
    await new Promise((r) => setTimeout(r, 50));
  }
  t.match(rec?.outcome, { status: 'cancelled' }, 'recorded as cancelled');
  t.ok((rec?.outcome.duration_ms as number) < 9000, `stopped when cancelled (${rec?.outcome.duration_ms} ms), before the 10 s cap`);
  t.equal(
    readAudit(sb.auditPath)
      .slice(before)
      .filter((r) => r.tool === 'run_javascript').length,
    1,
    'one outcome record',
  );
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(
    s.frames.some((f) => f.id === 1),
    'no answer to a cancelled request',
  );
});
