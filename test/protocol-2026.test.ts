/**
 * MCP 2026-07-28 beside 2025-11-25 on one HTTP endpoint (issue 14, item 1). The real 2026 client
 * (@modelcontextprotocol/client 2.4.0) and the 2025 SDK client against one `bulwark serve --http`;
 * raw requests for every rung of the validation ladder, each checked for its status, its JSON-RPC
 * code and, where it named a tool call, the outcome record the refusal left.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttpTransport } from '@modelcontextprotocol/client';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { httpClient, startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { JSON_HEADERS, request } from './helpers/http.js';
import { createKey } from '../src/auth/api-keys.js';

const V = '2026-07-28';
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': V,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const STEPS = (n: number, ms: number) =>
  `for (let i = 1; i <= ${n}; i++) { progress(i, ${n}); const t0 = Date.now(); while (Date.now() - t0 < ${ms}) {} } return "done"`;

const sb = makeSandbox({ javascript: { timeout_ms: 10000 }, execution: { timeout_ms: 15000 } });
let server: HttpServerProcess;
t.before(async () => {
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server.stop();
  sb.cleanup();
});

interface Sent {
  readonly method: string | undefined;
  readonly headers: Headers;
}

/** The 2026 client, pinned (or auto-negotiating), with every request it sent noted. */
async function modernClient(mode: 'auto' | { pin: string } = { pin: V }): Promise<{ client: ModernClient; sent: Sent[]; types: string[] }> {
  const sent: Sent[] = [];
  const types: string[] = [];
  const transport = new ModernHttpTransport(new URL(server.url), {
    fetch: async (input, init) => {
      const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as { method?: string }) : {};
      sent.push({ method: body.method, headers: new Headers(init?.headers) });
      const res = await fetch(input, init);
      types.push(res.headers.get('content-type') ?? '');
      return res;
    },
  });
  const client = new ModernClient({ name: 'bulwark-test-2026', version: '1.0.0' }, { versionNegotiation: { mode, probe: { timeoutMs: 60000 } } });
  await client.connect(transport);
  return { client, sent, types };
}

/** A raw POST on the 2026 wire: the standard headers the spec requires, overridable per cell. */
function post(body: unknown, headers: Record<string, string | undefined> = {}) {
  const h: Record<string, string> = { ...JSON_HEADERS };
  for (const [k, v] of Object.entries(headers)) if (v === undefined) delete h[k];
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) h[k] = v;
  return request(server.url, { headers: h, body: JSON.stringify(body) });
}
const modernHeaders = (method: string, name?: string): Record<string, string> => ({
  'mcp-protocol-version': V,
  'mcp-method': method,
  ...(name === undefined ? {} : { 'mcp-name': name }),
});
const call = (id: number, name: string, args: unknown, meta: Record<string, unknown> = ENVELOPE) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args, _meta: meta },
});
const recordOf = (requestId: unknown) => readAudit(sb.auditPath).find((r) => r.request_id === requestId);
const b64 = (s: string) => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;

t.test('the 2026 client (pinned) lists and calls through the gate, with no initialize', async (t) => {
  const { client, sent } = await modernClient();
  t.teardown(() => client.close());
  t.equal(client.getProtocolEra(), 'modern');
  t.equal(client.getNegotiatedProtocolVersion(), V);
  const { tools } = await client.listTools();
  t.ok(tools.some((x) => x.name === 'read_file'));
  const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  t.notOk(r.isError);
  t.match(r.content, [{ type: 'text', text: 'hello, world\n' }]);
  const rec = recordOf((r._meta as Record<string, unknown>)['bulwark/request_id']);
  t.match(rec, { tool: 'read_file', transport: 'http', outcome: { status: 'ok' } }, 'the call left its outcome record');
  t.notOk(
    sent.some((s) => s.method === 'initialize'),
    'never initialized',
  );
  const callSent = sent.find((s) => s.method === 'tools/call');
  t.equal(callSent?.headers.get('mcp-method'), 'tools/call', 'the client sent the standard headers');
  t.equal(callSent?.headers.get('mcp-name'), 'read_file');
  t.equal(callSent?.headers.get('mcp-protocol-version'), V);
});

t.test('the 2026 client in auto mode negotiates the modern era by server/discover', async (t) => {
  const { client, sent } = await modernClient('auto');
  t.teardown(() => client.close());
  t.equal(client.getProtocolEra(), 'modern');
  t.equal(sent[0]?.method, 'server/discover');
  const r = await client.callTool({ name: 'list_directory', arguments: { path: '.' } });
  t.notOk(r.isError);
});

t.test('a denial is a tool result on the 2026 wire too, and recorded', async (t) => {
  const { client } = await modernClient();
  t.teardown(() => client.close());
  const r = await client.callTool({ name: 'read_file', arguments: { path: '../outside/secret.txt' } });
  t.equal(r.isError, true);
  const err = (r.structuredContent as { error: { code: string; request_id: string } }).error;
  t.equal(err.code, 'path_rejected');
  t.match(recordOf(err.request_id), { outcome: { status: 'denied', code: 'path_rejected' } });
});

t.test('progress on a 2026 call arrives as events before the result (the 2025 SSE answer)', async (t) => {
  const { client, types } = await modernClient();
  t.teardown(() => client.close());
  const seen: number[] = [];
  types.length = 0;
  const r = await client.callTool({ name: 'run_javascript', arguments: { code: STEPS(5, 120) } }, { onprogress: (p) => seen.push(p.progress), timeout: 30000 });
  t.equal((r.structuredContent as { result: string }).result, 'done');
  t.match(types, ['text/event-stream']);
  t.ok(seen.length >= 2, `${seen.length} progress notifications`);
  t.equal(seen.at(-1), 5, 'the final update arrived');
});

t.test('the 2025-11-25 SDK client still works on the same endpoint', async (t) => {
  const client = await httpClient(server.url);
  t.teardown(() => client.close());
  t.equal(client.getServerVersion()?.name, 'bulwark');
  const { tools } = await client.listTools();
  t.ok(tools.some((x) => x.name === 'read_file'));
  const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  t.notOk(r.isError);
  t.notOk('resultType' in r, 'a 2025 answer has no 2026 fields');
});

t.test('shapes: server/discover, tools/list, tools/call', async (t) => {
  const d = await post({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: ENVELOPE } }, modernHeaders('server/discover'));
  t.equal(d.status, 200);
  const discover = JSON.parse(d.body).result;
  t.same(discover.supportedVersions, [V]);
  t.equal(discover.resultType, 'complete');
  t.match(discover.capabilities, { tools: {} });
  t.equal(typeof discover.instructions, 'string');
  t.same(discover._meta['io.modelcontextprotocol/serverInfo'].name, 'bulwark');

  const l = await post({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: { _meta: ENVELOPE } }, modernHeaders('tools/list'));
  const list = JSON.parse(l.body).result;
  t.equal(list.resultType, 'complete');
  t.equal(list.cacheScope, 'private', 'the list is filtered per principal');
  t.ok(Number.isInteger(list.ttlMs) && list.ttlMs >= 0);
  t.ok(list.tools.length > 0);

  const c = await post(call(3, 'read_file', { path: 'hello.txt' }), modernHeaders('tools/call', 'read_file'));
  t.equal(c.status, 200);
  const result = JSON.parse(c.body).result;
  t.equal(result.resultType, 'complete');
  t.equal(result.content[0].text, 'hello, world\n');
  t.equal(result._meta['io.modelcontextprotocol/serverInfo'].name, 'bulwark');

  // An unknown tool is the spec's in-band JSON-RPC error (still decided and recorded by the gate).
  const u = await post(call(4, 'no_such_tool', {}), modernHeaders('tools/call', 'no_such_tool'));
  t.equal(u.status, 200);
  t.equal(JSON.parse(u.body).error.code, -32602);

  // A modern notification is accepted.
  const n = await post(
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9, _meta: ENVELOPE } },
    modernHeaders('notifications/cancelled'),
  );
  t.equal(n.status, 202);
});

/** A ladder refusal of a tools/call: its status and code, and the record it left (`reasons`). */
async function refusedCall(t: Test, reply: Awaited<ReturnType<typeof post>>, status: number, code: number, reason: string, tool = 'read_file') {
  t.equal(reply.status, status, `HTTP ${status}`);
  const body = JSON.parse(reply.body);
  t.equal(body.error.code, code, `JSON-RPC ${code}`);
  const rec = recordOf(body.error.data?.request_id);
  t.match(rec, { tool, outcome: { status: 'denied', code: 'invalid_input', reasons: [reason] }, masked: ['args'] }, 'the refusal was recorded');
  return body;
}

t.test('ladder: Mcp-Method and Mcp-Name must be present and agree with the body (400, -32020)', async (t) => {
  const before = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file' && r.outcome.status === 'ok').length;
  const noMethod = await post(call(10, 'read_file', { path: 'hello.txt' }), { 'mcp-protocol-version': V, 'mcp-name': 'read_file' });
  const b1 = await refusedCall(t, noMethod, 400, -32020, 'protocol.header_mismatch');
  t.match(b1.error.data.mismatch, { header: '(missing)' });
  t.equal(b1.id, 10, 'the error names the request');

  const wrongMethod = await post(call(11, 'read_file', { path: 'hello.txt' }), modernHeaders('tools/list', 'read_file'));
  const b2 = await refusedCall(t, wrongMethod, 400, -32020, 'protocol.header_mismatch');
  t.match(b2.error.data.mismatch, { header: 'tools/list' });

  const noName = await post(call(12, 'read_file', { path: 'hello.txt' }), modernHeaders('tools/call'));
  await refusedCall(t, noName, 400, -32020, 'protocol.header_mismatch');

  // The header names a file reader (what a proxy would route and rate on) while the body runs code:
  // refused, and recorded under the tool the body named.
  const wrongName = await post(call(13, 'run_javascript', { code: 'return 1' }), modernHeaders('tools/call', 'read_file'));
  const b4 = await refusedCall(t, wrongName, 400, -32020, 'protocol.header_mismatch', 'run_javascript');
  t.match(b4.error.data.mismatch, { header: 'read_file' });

  const badSentinel = await post(call(14, 'read_file', { path: 'hello.txt' }), modernHeaders('tools/call', '=?base64?!!!not-base64?='));
  await refusedCall(t, badSentinel, 400, -32020, 'protocol.header_mismatch');
  // Base64 of a name that differs from the body's.
  const sentinelMismatch = await post(call(15, 'read_file', { path: 'hello.txt' }), modernHeaders('tools/call', b64('run_javascript')));
  await refusedCall(t, sentinelMismatch, 400, -32020, 'protocol.header_mismatch');

  const after = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file' && r.outcome.status === 'ok').length;
  t.equal(after, before, 'nothing refused ran');
});

t.test('ladder: a Base64-sentinel Mcp-Name that decodes to the body name is served', async (t) => {
  const ok = await post(call(16, 'read_file', { path: 'hello.txt' }), modernHeaders('tools/call', b64('read_file')));
  t.equal(ok.status, 200);
  t.equal(JSON.parse(ok.body).result.resultType, 'complete');
  // Optional whitespace around a header value is not part of it (RFC 9110).
  const ows = await post(call(17, 'read_file', { path: 'hello.txt' }), { ...modernHeaders('tools/call'), 'mcp-name': ' read_file\t' });
  t.equal(ows.status, 200);
});

t.test('ladder: MCP-Protocol-Version must be present and equal the envelope; never a downgrade', async (t) => {
  const missing = await post(call(20, 'read_file', { path: 'hello.txt' }), { 'mcp-method': 'tools/call', 'mcp-name': 'read_file' });
  await refusedCall(t, missing, 400, -32020, 'protocol.header_mismatch');
  // The header names the 2025 revision while the body claims 2026: refused, not served as 2025.
  const older = await post(call(21, 'read_file', { path: 'hello.txt' }), { ...modernHeaders('tools/call', 'read_file'), 'mcp-protocol-version': '2025-11-25' });
  const b = await refusedCall(t, older, 400, -32020, 'protocol.header_mismatch');
  t.match(b.error.data.mismatch, { header: '2025-11-25' });
});

t.test('ladder: an unsupported version is 400, -32022, naming what is supported', async (t) => {
  const meta = { ...ENVELOPE, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' };
  const r = await post(call(30, 'read_file', { path: 'hello.txt' }, meta), {
    ...modernHeaders('tools/call', 'read_file'),
    'mcp-protocol-version': '2099-01-01',
  });
  const b = await refusedCall(t, r, 400, -32022, 'protocol.unsupported_version');
  t.same(b.error.data.supported, [V]);
  t.equal(b.error.data.requested, '2099-01-01');
  // A claim of the older revision inside the envelope is not a way back to 2025 either.
  const old = { ...ENVELOPE, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' };
  const r2 = await post(call(31, 'read_file', { path: 'hello.txt' }, old), {
    ...modernHeaders('tools/call', 'read_file'),
    'mcp-protocol-version': '2025-11-25',
  });
  await refusedCall(t, r2, 400, -32022, 'protocol.unsupported_version');
  // Not a tool call: refused the same way, and nothing to record.
  const list = await post(
    { jsonrpc: '2.0', id: 32, method: 'tools/list', params: { _meta: meta } },
    { 'mcp-protocol-version': '2099-01-01', 'mcp-method': 'tools/list' },
  );
  t.equal(list.status, 400);
  t.equal(JSON.parse(list.body).error.code, -32022);
  t.equal(JSON.parse(list.body).error.data.request_id, undefined);
});

t.test('ladder: a modern header without the envelope, or a broken envelope, is 400, -32602', async (t) => {
  const noEnvelope = await post(
    { jsonrpc: '2.0', id: 40, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' } } },
    modernHeaders('tools/call', 'read_file'),
  );
  await refusedCall(t, noEnvelope, 400, -32602, 'protocol.missing_envelope');
  const noCaps = await post(
    call(41, 'read_file', { path: 'hello.txt' }, { 'io.modelcontextprotocol/protocolVersion': V }),
    modernHeaders('tools/call', 'read_file'),
  );
  const b = await refusedCall(t, noCaps, 400, -32602, 'protocol.invalid_envelope');
  t.match(b.error.data.envelope, { key: 'io.modelcontextprotocol/clientCapabilities', problem: 'missing' });
  // A 2026 request may leave out clientInfo (a SHOULD).
  const { 'io.modelcontextprotocol/clientInfo': _info, ...withoutInfo } = ENVELOPE;
  const ok = await post(call(42, 'read_file', { path: 'hello.txt' }, withoutInfo), modernHeaders('tools/call', 'read_file'));
  t.equal(ok.status, 200);
});

t.test('ladder: unknown and removed methods are 404, -32601; batches cannot carry 2026 requests', async (t) => {
  for (const method of ['ping', 'initialize', 'logging/setLevel', 'nope/nothing']) {
    const r = await post({ jsonrpc: '2.0', id: 50, method, params: { _meta: ENVELOPE } }, modernHeaders(method));
    t.equal(r.status, 404, `${method}: 404`);
    t.match(JSON.parse(r.body), { id: 50, error: { code: -32601 } });
  }
  const batch = await post([call(51, 'read_file', { path: 'hello.txt' })], modernHeaders('tools/call', 'read_file'));
  t.equal(batch.status, 400);
  t.equal(JSON.parse(batch.body).error.code, -32600);
  const rec = recordOf(JSON.parse(batch.body).error.data?.request_id);
  t.match(rec, { outcome: { code: 'invalid_input', reasons: ['protocol.modern_batch'] } }, 'the batch call was recorded');
});

t.test('2025-11-25: an unknown version header is still refused, and a named tool call recorded', async (t) => {
  const r = await request(server.url, {
    headers: { ...JSON_HEADERS, 'mcp-protocol-version': '1999-01-01' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 60, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' } } }),
  });
  await refusedCall(t, r, 400, -32600, 'protocol.unsupported_version');
  t.match(r.body, /Unsupported MCP-Protocol-Version/);
  // An initialize sent with a 2026 header is a header/body disagreement, not a 2025 handshake.
  const init = await request(server.url, {
    headers: { ...JSON_HEADERS, 'mcp-protocol-version': V },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 61,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'r', version: '1' } },
    }),
  });
  t.equal(init.status, 400);
  t.equal(JSON.parse(init.body).error.code, -32020);
});

t.test('api keys: the bearer is checked before the ladder, its principal goes with every 2026 call and refusal', async (t) => {
  const keyed = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json' }, database: { embedded: false } });
  const keysFile = path.join(keyed.dir, 'keys.json');
  const alice = (await createKey(keysFile, { principal: 'alice', roles: ['developer'], tier: 'local' })).token;
  const bob = (await createKey(keysFile, { principal: 'bob', roles: ['reader'], tier: 'local' })).token;
  const s = await startHttpServer(['--config', keyed.configPath]);
  t.teardown(async () => {
    await s.stop();
    keyed.cleanup();
  });
  const send = (body: unknown, headers: Record<string, string>) => request(s.url, { headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) });
  const recordIn = (id: unknown) => readAudit(keyed.auditPath).find((r) => r.request_id === id);

  // No bearer: 401, whatever the wire; nothing is served under either revision.
  const anon = await send(call(1, 'read_file', { path: 'hello.txt' }), modernHeaders('tools/call', 'read_file'));
  t.equal(anon.status, 401);
  t.notOk(readAudit(keyed.auditPath).some((r) => r.tool === 'read_file'));
  // A bad bearer with a broken 2026 request: still 401 (authentication first), never a ladder answer.
  const anonBroken = await send(call(2, 'read_file', { path: 'hello.txt' }), { ...modernHeaders('tools/call', 'other'), authorization: 'Bearer nope' });
  t.equal(anonBroken.status, 401);

  // bob (reader) may not run JavaScript on the 2026 wire either; the record names bob.
  const denied = await send(call(3, 'run_javascript', { code: 'return 1' }), {
    ...modernHeaders('tools/call', 'run_javascript'),
    authorization: `Bearer ${bob}`,
  });
  t.equal(denied.status, 200);
  const dr = JSON.parse(denied.body).result;
  t.equal(dr.resultType, 'complete');
  t.equal(dr.structuredContent.error.code, 'policy_denied');
  t.match(recordIn(dr.structuredContent.error.request_id), { principal: { id: 'bob' }, outcome: { status: 'denied', code: 'policy_denied' } });

  // A ladder refusal carries the verified principal into its record.
  const mism = await send(call(4, 'run_javascript', { code: 'return 1' }), { ...modernHeaders('tools/call', 'read_file'), authorization: `Bearer ${alice}` });
  t.equal(mism.status, 400);
  const me = JSON.parse(mism.body).error;
  t.equal(me.code, -32020);
  t.match(recordIn(me.data.request_id), {
    principal: { id: 'alice', auth: 'api_key' },
    tool: 'run_javascript',
    outcome: { code: 'invalid_input', reasons: ['protocol.header_mismatch'] },
  });

  // The 2026 client with alice's key runs what alice may run.
  const transport = new ModernHttpTransport(new URL(s.url), { requestInit: { headers: { Authorization: `Bearer ${alice}` } } });
  const client = new ModernClient({ name: 'bulwark-test-2026', version: '1.0.0' }, { versionNegotiation: { mode: { pin: V }, probe: { timeoutMs: 60000 } } });
  await client.connect(transport);
  t.teardown(() => client.close());
  const r = await client.callTool({ name: 'run_javascript', arguments: { code: 'return 6 * 7' } });
  t.notOk(r.isError, JSON.stringify(r.content));
  t.match(recordIn((r._meta as Record<string, unknown>)['bulwark/request_id']), { principal: { id: 'alice' }, outcome: { status: 'ok' } });
});
