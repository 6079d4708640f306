/**
 * What real clients (the Python SDK, the Inspector, the conformance suite) found against
 * 2025-11-25, each checked with the real SDK client over real HTTP or stdio (issue 14, item 6):
 * the server's own loopback Origin, the doubled "MCP error" prefix, run_javascript's `input`
 * schema, and the API tools without an upstream.
 */
import t from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { httpClient, startHttpServer, stdioClient, type HttpServerProcess } from './helpers/clients.js';
import { INIT, JSON_HEADERS, request } from './helpers/http.js';

const sb = makeSandbox();
let server: HttpServerProcess;
let port: number;
t.before(async () => {
  server = await startHttpServer(['--config', sb.configPath]);
  port = Number(new URL(server.url).port);
});
t.teardown(async () => {
  await server.stop();
  sb.cleanup();
});

/** An SDK client whose every request carries this Origin (as a browser page's would). */
async function clientWithOrigin(url: string, origin: string): Promise<Client> {
  const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { origin } } }));
  return client;
}

t.test('bound to loopback, the server’s own loopback origins are served', async (t) => {
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`]) {
    const client = await clientWithOrigin(server.url, origin);
    const { tools } = await client.listTools();
    t.ok(
      tools.some((x) => x.name === 'read_file'),
      `${origin}: the SDK client initialises and lists tools`,
    );
    const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
    t.notOk(r.isError, `${origin}: a call goes through`);
    await client.close();
  }
});

t.test('every other Origin, and a rebinding Host, stays 403', async (t) => {
  const attacks: [Record<string, string>, string][] = [
    [{ origin: `http://127.0.0.1:${port + 1}` }, 'origin_not_allowed'],
    [{ origin: `http://localhost:${port === 1 ? 2 : port - 1}` }, 'origin_not_allowed'],
    [{ origin: `http://evil.example:${port}` }, 'origin_not_allowed'],
    [{ origin: `http://localhost.evil.example:${port}` }, 'origin_not_allowed'],
    [{ origin: `http://127.0.0.1.nip.io:${port}` }, 'origin_not_allowed'],
    [{ origin: `https://127.0.0.1:${port}` }, 'origin_not_allowed'],
    [{ origin: `http://127.0.0.1:${port}/` }, 'origin_not_allowed'],
    [{ origin: `http://127.0.0.2:${port}` }, 'origin_not_allowed'],
    [{ origin: `http://0.0.0.0:${port}` }, 'origin_not_allowed'],
    [{ origin: 'null' }, 'origin_not_allowed'],
    [{ origin: '' }, 'origin_not_allowed'],
    // DNS rebinding: the attacker's name now resolves to 127.0.0.1; the browser sends its Host and Origin.
    [{ host: `evil.example:${port}`, origin: `http://evil.example:${port}` }, 'host_not_allowed'],
    [{ host: `evil.example:${port}`, origin: `http://127.0.0.1:${port}` }, 'host_not_allowed'],
    [{ host: `evil.example:${port}` }, 'host_not_allowed'],
  ];
  for (const [headers, reason] of attacks) {
    const r = await request(server.url, { headers: { ...JSON_HEADERS, ...headers }, body: INIT });
    t.equal(r.status, 403, JSON.stringify(headers));
    t.match(JSON.parse(r.body), { error: 'policy_denied', reason }, JSON.stringify(headers));
  }
  // And the real SDK client carrying a foreign Origin cannot even initialise.
  await t.rejects(clientWithOrigin(server.url, `http://127.0.0.1:${port + 1}`), /403|origin/i);
});

t.test('bound to all interfaces, loopback origins are not allowed by default', async (t) => {
  // Its own sandbox: one writer per audit log.
  const own = makeSandbox();
  const wide = await startHttpServer(['--config', own.configPath, '--http', '0.0.0.0:0']);
  t.teardown(async () => {
    await wide.stop();
    own.cleanup();
  });
  const p = Number(new URL(wide.url).port);
  const url = `http://127.0.0.1:${p}/mcp`;
  const r = await request(url, { headers: { ...JSON_HEADERS, origin: `http://127.0.0.1:${p}` }, body: INIT });
  t.equal(r.status, 403);
  t.match(JSON.parse(r.body), { reason: 'origin_not_allowed' });
  t.equal((await request(url, { headers: JSON_HEADERS, body: INIT })).status, 200, 'without an Origin it is served');
});

t.test('an unknown tool: one "MCP error -32602:" prefix, over HTTP and stdio, and audited', async (t) => {
  const http = await httpClient(server.url);
  const own = makeSandbox();
  const stdio = await stdioClient(['--config', own.configPath]);
  t.teardown(async () => {
    await http.close();
    await stdio.close();
    own.cleanup();
  });
  for (const [name, client] of [
    ['http', http],
    ['stdio', stdio.client],
  ] as const) {
    const err = await client.callTool({ name: 'no_such_tool', arguments: {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof McpError, `${name}: a JSON-RPC error`);
    const e = err as McpError;
    t.equal(e.code, -32602, name);
    t.match(e.message, /^MCP error -32602: /, name);
    t.equal(e.message.match(/MCP error/g)?.length, 1, `${name}: the prefix once: ${e.message}`);
  }
  // On the wire the message carries no prefix at all: the client adds it.
  const raw = await request(server.url, {
    headers: { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } }),
  });
  const body = JSON.parse(raw.body) as { error: { code: number; message: string } };
  t.equal(body.error.code, -32602);
  t.notMatch(body.error.message, /MCP error/);
  t.match(body.error.message, /no_such_tool|unknown/i);
  const recs = [...readAudit(sb.auditPath), ...readAudit(own.auditPath)].filter((r) => r.tool === 'no_such_tool');
  t.equal(recs.length, 3, 'each of the three calls left one record');
  for (const r of recs) t.match(r.outcome, { code: 'invalid_input', reasons: ['tool.unknown'] });
});

t.test('run_javascript lists `input` as any JSON value, and an array arrives as an array', async (t) => {
  const client = await httpClient(server.url);
  t.teardown(() => client.close());
  const tool = (await client.listTools()).tools.find((x) => x.name === 'run_javascript');
  const schema = tool?.inputSchema as { properties: Record<string, { type?: unknown; anyOf?: unknown }> } | undefined;
  const input = schema?.properties.input;
  t.same([...((input?.type as string[] | undefined) ?? [])].sort(), ['array', 'boolean', 'null', 'number', 'object', 'string'], 'a type for every JSON value');
  t.equal(input?.anyOf, undefined, 'one `type` list, not an anyOf a form cannot read');
  // The listed schema, as a schema-driven client checks it, admits every kind of JSON value.
  const validate = new AjvJsonSchemaValidator().getValidator(schema as Parameters<AjvJsonSchemaValidator['getValidator']>[0]);
  for (const v of [[1, 2, 3], { a: [1] }, 'text', 4.5, true, null]) t.ok(validate({ code: 'return 1', input: v }).valid, JSON.stringify(v));
  const code = 'return { isArray: Array.isArray(input), type: typeof input, sum: Array.isArray(input) ? input.reduce((a, b) => a + b, 0) : null }';
  const arr = await client.callTool({ name: 'run_javascript', arguments: { code, input: [1, 2, 3] } });
  t.same((arr.structuredContent as { result: unknown }).result, { isArray: true, type: 'object', sum: 6 });
  const str = await client.callTool({ name: 'run_javascript', arguments: { code, input: '[1,2,3]' } });
  t.same((str.structuredContent as { result: unknown }).result, { isArray: false, type: 'string', sum: null }, 'a string stays a string');
  const obj = await client.callTool({ name: 'run_javascript', arguments: { code: 'return input.k', input: { k: null } } });
  t.equal((obj.structuredContent as { result: unknown }).result, null);
});

t.test('without an upstream, call_api and api_stats are neither listed nor served', async (t) => {
  const client = await httpClient(server.url);
  t.teardown(() => client.close());
  const names = (await client.listTools()).tools.map((x) => x.name);
  t.notOk(names.includes('call_api'), 'call_api is not listed');
  t.notOk(names.includes('api_stats'), 'api_stats is not listed');
  for (const [name, args] of [
    ['call_api', { api: 'github', method: 'GET', path: '/' }],
    ['api_stats', {}],
  ] as const) {
    const err = await client.callTool({ name, arguments: args }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof McpError && err.code === -32602, `${name}: the unknown-tool answer`);
    const recs = readAudit(sb.auditPath).filter((r) => r.tool === name);
    t.equal(recs.length, 1, `${name}: audited once`);
    t.match(recs[0]?.outcome, { code: 'invalid_input', reasons: ['tool.unknown'] });
  }
});

t.test('with an upstream configured, both are listed', async (t) => {
  const withApi = makeSandbox({ apis: { example: { base_url: 'http://127.0.0.1:9/' } } });
  const { client, close } = await stdioClient(['--config', withApi.configPath]);
  t.teardown(async () => {
    await close();
    withApi.cleanup();
  });
  const names = (await client.listTools()).tools.map((x) => x.name);
  t.ok(names.includes('call_api') && names.includes('api_stats'), names.join(','));
});
