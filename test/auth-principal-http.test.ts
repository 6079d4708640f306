/**
 * Over HTTP with `auth.http: api_key`, the principal of a call is the one the transport verified
 * from the bearer, and nothing else: not a member of the body (params, `_meta`, extra members),
 * not another header, not a concurrent request of another principal. Both ways a tools/call reaches
 * the gate are covered: alone in a POST (the transport answers it directly) and in a batch
 * (through the request's own SDK Server).
 *
 * `bob` holds the `reader` role, which may not run JavaScript; `alice` holds `developer`, which may.
 */
import path from 'node:path';
import t from 'tap';
import { JSON_HEADERS, request, type Reply } from './helpers/http.js';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { createKey } from '../src/auth/api-keys.js';

t.setTimeout(120_000);

const sb = makeSandbox({
  auth: { http: 'api_key', keys_file: 'keys.json' },
  database: { embedded: false },
  execution: { javascript_pool: { size: 1, max_queue: 16, heap_mb: 512 } },
});
let server: HttpServerProcess;
let alice: string;
let bob: string;

const ALICE = { id: 'alice', roles: ['developer'], auth: 'api_key' };
const BOB = { id: 'bob', roles: ['reader'], auth: 'api_key' };
const FORGED = { id: 'alice', roles: ['admin'], auth: 'api_key', tier: 'local' };

/** Headers a proxy or a confused client might use to name a user: none of them may count. */
const FORGED_HEADERS = {
  'x-principal': 'alice',
  'x-forwarded-user': 'alice',
  'x-remote-user': 'alice',
  'x-auth-request-user': 'alice',
  'x-bulwark-principal': JSON.stringify(FORGED),
  'x-forwarded-for': '10.0.0.1',
  forwarded: 'for=10.0.0.1;by=alice',
};

const headers = (token?: string): Record<string, string> => ({
  ...JSON_HEADERS,
  'mcp-protocol-version': '2025-11-25',
  ...FORGED_HEADERS,
  ...(token ? { authorization: `Bearer ${token}` } : {}),
});

/** A tools/call of run_javascript whose params carry every principal-shaped member we could think of. */
function forgedCall(id: number): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name: 'run_javascript',
      arguments: { code: 'return 1' },
      principal: FORGED,
      authInfo: { token: 'x', clientId: 'alice', scopes: ['admin'], extra: { principal: FORGED } },
      _meta: { principal: FORGED, authInfo: { clientId: 'alice', extra: { principal: FORGED } }, 'bulwark/principal': FORGED },
    },
  };
}

function json(r: Reply): any {
  return JSON.parse(r.body);
}

/** The request id of a tool result, allowed or denied (it names the call's audit record). */
function requestIdOf(result: any): string | undefined {
  return result?.structuredContent?.error?.request_id ?? result?._meta?.['bulwark/request_id'];
}

/** The audit record of the call a tool result came from. */
function recordOf(result: any): Record<string, any> | undefined {
  const id = requestIdOf(result);
  return readAudit(sb.auditPath).find((r) => r.request_id === id);
}

t.before(async () => {
  const keysFile = path.join(sb.dir, 'keys.json');
  alice = (await createKey(keysFile, { principal: 'alice', roles: ['developer'], tier: 'local' })).token;
  bob = (await createKey(keysFile, { principal: 'bob', roles: ['reader'], tier: 'local' })).token;
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server.stop();
  sb.cleanup();
});

t.test('a lone tools/call: body members and headers do not change the principal', async (t) => {
  const r = await request(server.url, { headers: headers(bob), body: JSON.stringify(forgedCall(1)) });
  t.equal(r.status, 200);
  const result = json(r).result;
  t.equal(result.structuredContent.error.code, 'policy_denied', 'a reader may not run JavaScript, whatever the body says');
  t.same(recordOf(result)?.principal, BOB, 'audited as the bearer’s principal');
  // The developer's own key does run it: the refusal above was about bob, not about the call.
  const ok = await request(server.url, { headers: headers(alice), body: JSON.stringify(forgedCall(2)) });
  const okResult = json(ok).result;
  t.notOk(okResult.isError, JSON.stringify(okResult.content));
  t.same(recordOf(okResult)?.principal, ALICE);
});

t.test('extra top-level members are not a JSON-RPC request: refused before any tool runs', async (t) => {
  const before = readAudit(sb.auditPath).length;
  const r = await request(server.url, { headers: headers(bob), body: JSON.stringify({ ...forgedCall(3), principal: FORGED, auth: FORGED }) });
  t.equal(r.status, 400);
  t.equal(json(r).error.code, -32700);
  t.equal(readAudit(sb.auditPath).length, before, 'nothing was called');
});

t.test('without a bearer the same body is refused with 401 and reaches no tool', async (t) => {
  const r = await request(server.url, { headers: headers(), body: JSON.stringify(forgedCall(4)) });
  t.equal(r.status, 401);
  t.notOk(
    readAudit(sb.auditPath).some((x) => x.tool === 'run_javascript' && x.principal?.id !== 'alice' && x.principal?.id !== 'bob'),
    'no call under another principal',
  );
});

t.test('a batch (through the request’s SDK Server): the same principal, and tools/list follows it', async (t) => {
  const body = [forgedCall(5), { jsonrpc: '2.0', id: 6, method: 'tools/list', params: { _meta: { principal: FORGED } } }];
  const r = await request(server.url, { headers: headers(bob), body: JSON.stringify(body) });
  t.equal(r.status, 200);
  const answers = json(r) as any[];
  const call = answers.find((a) => a.id === 5).result;
  t.equal(call.structuredContent.error.code, 'policy_denied');
  t.same(recordOf(call)?.principal, BOB);
  const names = answers.find((a) => a.id === 6).result.tools.map((x: { name: string }) => x.name);
  t.ok(names.includes('read_file'));
  t.notOk(names.includes('run_javascript'), 'bob’s list, not the forged admin’s');
});

t.test('a lone tools/list (answered without a Server) is the list the Server gives, per principal', async (t) => {
  for (const [token, who] of [
    [bob, 'bob'],
    [alice, 'alice'],
  ] as const) {
    const lone = await request(server.url, {
      headers: headers(token),
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: { _meta: { principal: FORGED } } }),
    });
    const batch = await request(server.url, {
      headers: headers(token),
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 8, method: 'tools/list' },
        { jsonrpc: '2.0', id: 9, method: 'ping' },
      ]),
    });
    t.equal(lone.status, 200);
    const viaServer = (json(batch) as any[]).find((a) => a.id === 8);
    t.same(json(lone), { jsonrpc: '2.0', id: 7, result: viaServer.result }, `${who}: the same tools, schemas and annotations`);
    t.ok(viaServer.result.tools.length > 0);
  }
  const bobNames = (
    (json(await request(server.url, { headers: headers(bob), body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) })) as any).result.tools as {
      name: string;
    }[]
  ).map((x) => x.name);
  t.notOk(bobNames.includes('run_javascript'), 'the policy still filters it');
  const malformed = await request(server.url, {
    headers: headers(bob),
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: { cursor: 5 } }),
  });
  // (The SDK's Server answers -32603 there, its schema check throwing inside the handler lookup.)
  t.match(json(malformed), { id: 2, error: { code: -32603 } }, 'malformed params still go to the Server and get its answer');
  const task = await request(server.url, {
    headers: headers(bob),
    body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list', params: { task: {} } }),
  });
  t.match(json(task), { id: 4, error: { code: Number } }, 'a task request goes to the Server, which refuses it (no tasks capability)');
  const anonymous = await request(server.url, { headers: headers(), body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }) });
  t.equal(anonymous.status, 401, 'and no bearer, no list');
});

t.test('concurrent requests of two principals never see each other’s principal', async (t) => {
  const fileInfo = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'file_info', arguments: { path: 'hello.txt' } } });
  // 54 calls: within what the filesystem pool queues (2 workers, 64 waiting), so none is refused
  // `unavailable` (a refused call is audited with its principal too, and would be checked the same).
  const sent: { token: string; body: unknown }[] = [];
  for (let i = 0; i < 40; i++) {
    const token = i % 2 ? alice : bob;
    // Every third one as a batch of two, so both paths interleave.
    sent.push({ token, body: i % 3 === 0 ? [fileInfo(1000 + i), fileInfo(2000 + i)] : fileInfo(1000 + i) });
  }
  const replies = await Promise.all(sent.map((s) => request(server.url, { headers: headers(s.token), body: JSON.stringify(s.body) })));
  const audit = new Map(readAudit(sb.auditPath).map((r) => [r.request_id, r]));
  let checked = 0;
  replies.forEach((r, i) => {
    const expected = sent[i]!.token === alice ? ALICE : BOB;
    const body = json(r);
    for (const a of Array.isArray(body) ? body : [body]) {
      const rid = requestIdOf(a.result);
      t.ok(rid, `request ${i} was answered with a tool result`);
      t.same(audit.get(rid as string)?.principal, expected, `request ${i}`);
      checked += 1;
    }
  });
  t.equal(checked, 54);
});
