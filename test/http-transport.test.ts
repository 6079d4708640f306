import t from 'tap';
import { INIT, JSON_HEADERS, request } from './helpers/http.js';
import { makeSandbox } from './helpers/fixtures.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { isDenialCode } from '../src/core/codes.js';

let server: HttpServerProcess;
const sb = makeSandbox({ server: { http: { max_body_bytes: 4096, allowed_origins: ['http://trusted.example'] } } });
t.before(async () => {
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server.stop();
  sb.cleanup();
});

t.test('health and readiness', async (t) => {
  const h = await request(`${server.base}/health`, { method: 'GET' });
  t.equal(h.status, 200);
  t.same(JSON.parse(h.body), { status: 'ok' });
  const r = await request(`${server.base}/ready`, { method: 'GET' });
  t.equal(r.status, 200);
  t.same(JSON.parse(r.body).checks, { policy: true, audit: true, filesystem_pool: true, javascript_pool: true, database: true });
});

t.test('DNS-rebinding defence: unlisted Host and Origin get 403', async (t) => {
  const badHost = await request(server.url, { headers: { ...JSON_HEADERS, host: 'evil.example:80' }, body: INIT });
  t.equal(badHost.status, 403);
  t.match(badHost.body, /host_not_allowed/);
  t.match(JSON.parse(badHost.body), { error: 'policy_denied', reason: 'host_not_allowed', message: String });
  const badOrigin = await request(server.url, { headers: { ...JSON_HEADERS, origin: 'http://evil.example' }, body: INIT });
  t.equal(badOrigin.status, 403);
  t.match(badOrigin.body, /origin_not_allowed/);
  t.match(JSON.parse(badOrigin.body), { error: 'policy_denied', reason: 'origin_not_allowed', message: String });
  for (const r of [badHost, badOrigin]) t.ok(isDenialCode(JSON.parse(r.body).error), 'the error is a registry code');
  const goodOrigin = await request(server.url, { headers: { ...JSON_HEADERS, origin: 'http://trusted.example' }, body: INIT });
  t.equal(goodOrigin.status, 200);
  const noOrigin = await request(server.url, { headers: JSON_HEADERS, body: INIT });
  t.equal(noOrigin.status, 200, 'a request without Origin (not a browser) is served');
});

t.test('bodies over the cap are refused with 413', async (t) => {
  const big = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'x'.repeat(10_000) } } });
  const r = await request(server.url, { headers: JSON_HEADERS, body: big });
  t.equal(r.status, 413);
  // Without a Content-Length (chunked) the cap still holds.
  const chunked = await request(server.url, { headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' }, body: big });
  t.equal(chunked.status, 413);
});

t.test('malformed JSON-RPC and protocol errors', async (t) => {
  const notJson = await request(server.url, { headers: JSON_HEADERS, body: '{"jsonrpc": "2.0", "id": 1, "method": ' });
  t.equal(notJson.status, 400);
  t.equal(JSON.parse(notJson.body).error.code, -32700);
  const wrongType = await request(server.url, { headers: { ...JSON_HEADERS, 'content-type': 'text/plain' }, body: INIT });
  t.equal(wrongType.status, 415);
  const badVersion = await request(server.url, { headers: { ...JSON_HEADERS, 'mcp-protocol-version': '1999-01-01' }, body: INIT });
  t.equal(badVersion.status, 400);
  t.match(badVersion.body, /Unsupported MCP-Protocol-Version/);
  const get = await request(server.url, { method: 'GET', headers: { accept: 'text/event-stream' } });
  t.equal(get.status, 405);
  const notFound = await request(`${server.base}/other`, { method: 'GET' });
  t.equal(notFound.status, 404);
  t.match(JSON.parse(notFound.body), { error: 'invalid_input', reason: 'http.not_found', message: String });
  t.ok(isDenialCode(JSON.parse(notFound.body).error), 'the 404 names a registry code');
  const postElsewhere = await request(`${server.base}/health`, { headers: JSON_HEADERS, body: INIT });
  t.equal(postElsewhere.status, 404, 'only GET reaches the ops endpoints');
  t.match(JSON.parse(postElsewhere.body), { error: 'invalid_input', reason: 'http.not_found' });
  const garbage = await request(server.url, { headers: { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25' }, body: JSON.stringify({ hello: 'world' }) });
  t.ok(garbage.status >= 400 && garbage.status < 500, `not a JSON-RPC message → ${garbage.status}`);
  // The server is still healthy after all of that.
  t.equal((await request(`${server.base}/health`, { method: 'GET' })).status, 200);
});

t.test('a stateless tools/call without a session works and wrong argument types are typed denials', async (t) => {
  const headers = { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25' };
  const ok = await request(server.url, {
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' } } }),
  });
  t.equal(ok.status, 200);
  t.equal(JSON.parse(ok.body).result.structuredContent.content, 'hello, world\n');
  const wrong = await request(server.url, {
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'read_file', arguments: { path: 42 } } }),
  });
  const res = JSON.parse(wrong.body).result;
  t.equal(res.isError, true);
  t.equal(res.structuredContent.error.code, 'invalid_input');
  const unknown = await request(server.url, {
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'rm_rf', arguments: {} } }),
  });
  t.equal(JSON.parse(unknown.body).error.code, -32602, 'unknown tool is a JSON-RPC invalid-params error');
});
