/**
 * 2025-11-25 server-to-client requests over real Streamable HTTP (stateless server): the real SDK
 * v1 client initializes with a declared capability, gets a sealed Mcp-Session-Id, and its call
 * that asks is answered as an SSE stream carrying `elicitation/create`; the client POSTs its
 * response, which resolves the ask. Bearer keys (auth.http: api_key) give two principals, so the
 * tests can show that one cannot answer, or use the session of, the other.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema, type ClientCapabilities, type ElicitRequest, type ElicitResult, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import { createKey } from '../src/auth/api-keys.js';
import { createApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/loader.js';
import { createLogger } from '../src/observability/logger.js';
import { clientAsksFor } from '../src/transport/http/client-asks.js';
import { serveHttp, type HttpServerHandle } from '../src/transport/http/server.js';
import type { ServedApp } from '../src/transport/served-app.js';
import { ASKING_TOOL, withAskingTool } from './helpers/asking-tool.js';
import { requestIdOf } from './helpers/bearer.js';
import { unwrapSpawnHook } from './helpers/child-env.js';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { INIT, request } from './helpers/http.js';

t.setTimeout(120_000);
unwrapSpawnHook();

const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json' }, server: { http: { host: '127.0.0.1', port: 0 } } });
let app: App;
let served: ServedApp;
let http: HttpServerHandle;
let alice: string;
let bob: string;

t.before(async () => {
  alice = (await createKey(path.join(sb.dir, 'keys.json'), { principal: 'alice', roles: ['developer'], tier: 'local' })).token;
  bob = (await createKey(path.join(sb.dir, 'keys.json'), { principal: 'bob', roles: ['developer'], tier: 'local' })).token;
  app = await createApp(loadConfig({ file: sb.configPath }), createLogger('error'));
  served = withAskingTool(app);
  http = await serveHttp(served);
});
t.teardown(async () => {
  await http?.close();
  await app?.close();
  sb.cleanup();
});

interface Structured {
  readonly era: string | null;
  readonly capabilities: Record<string, unknown> | null;
  readonly can_ask: boolean;
  readonly asked: boolean;
  readonly answer?: Record<string, unknown>;
  readonly error?: string;
}

type Handler = (req: ElicitRequest, id: RequestId) => Promise<ElicitResult>;

async function connect(
  t: Test,
  token: string,
  capabilities: ClientCapabilities,
  onElicit?: Handler,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'elicitation-http-test', version: '1.0.0' }, { capabilities });
  if (onElicit) client.setRequestHandler(ElicitRequestSchema, (req, extra) => onElicit(req, extra.requestId));
  await client.connect(transport);
  t.teardown(() => client.close());
  return { client, transport };
}

async function ask(t: Test, client: Client, args: Record<string, unknown> = {}): Promise<Structured & { requestId: string }> {
  const r = await client.callTool({ name: ASKING_TOOL, arguments: args });
  t.notOk(r.isError, `the call ran: ${JSON.stringify(r.structuredContent)}`);
  return { ...(r.structuredContent as unknown as Structured), requestId: requestIdOf(r) };
}

function headers(token: string, session?: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
    'mcp-protocol-version': '2025-11-25',
    ...(session ? { 'mcp-session-id': session } : {}),
  };
}

const callBody = (id: number, args: Record<string, unknown> = {}): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: ASKING_TOOL, arguments: args } });

t.test('a client that declared elicitation gets a session id and its call asks over the SSE answer', async (t) => {
  const seen: ElicitRequest[] = [];
  const { client, transport } = await connect(t, alice, { elicitation: { form: {} } }, async (req) => {
    seen.push(req);
    return { action: 'accept', content: { approve: true } };
  });
  t.type(transport.sessionId, 'string', 'initialize answered with Mcp-Session-Id');
  t.match(transport.sessionId, /^[A-Za-z0-9_-]+$/, 'visible ASCII only');
  const s = await ask(t, client, { message: 'Ship it?' });
  t.equal(s.era, '2025-11-25');
  t.same(s.capabilities, { elicitation: { form: true, url: false } });
  t.same(s.answer, { action: 'accept', content: { approve: true } });
  t.equal(seen.length, 1);
  t.equal(seen[0]?.params.message, 'Ship it?');
  t.equal(clientAsksFor(served.deps).waiting, 0, 'nothing left waiting');
  const rec = readAudit(sb.auditPath).filter((r) => r.request_id === s.requestId);
  t.equal(rec.length, 1, 'one record for the call that asked');
  t.equal(rec[0]?.principal?.id, 'alice');
});

t.test('decline reaches the call as the client said it', async (t) => {
  const { client } = await connect(t, alice, { elicitation: {} }, async () => ({ action: 'decline' }));
  const s = await ask(t, client);
  t.same(s.answer, { action: 'decline' });
});

t.test('an ask the client does not answer times out; its late answer is refused', async (t) => {
  let askId: RequestId | undefined;
  const { client, transport } = await connect(t, alice, { elicitation: { form: {} } }, (_req, id) => {
    askId = id;
    return new Promise<ElicitResult>(() => undefined);
  });
  const s = await ask(t, client, { timeout_ms: 300 });
  t.match(s.error, /timed out/i);
  t.equal(clientAsksFor(served.deps).waiting, 0, 'the timed-out ask is gone from the registry');
  t.type(askId, 'string', 'the client was asked');
  const late = await request(http.url, {
    headers: headers(alice, transport.sessionId),
    body: JSON.stringify({ jsonrpc: '2.0', id: askId, result: { action: 'accept', content: { approve: true } } }),
  });
  t.equal(late.status, 400, 'nothing waits for it any more');
});

t.test('a client that declared nothing stays stateless: no session id, no asks', async (t) => {
  const { client, transport } = await connect(t, alice, {});
  t.equal(transport.sessionId, undefined);
  const s = await ask(t, client);
  t.equal(s.can_ask, false);
  t.equal(s.era, null, 'no channel without a session');
});

t.test("another principal's response POST cannot resolve someone else's ask", async (t) => {
  const { client: bobClient, transport: bobTransport } = await connect(t, bob, { elicitation: { form: {} } });
  t.ok(bobClient);
  const bobSession = bobTransport.sessionId as string;
  let aliceSession = '';
  const replies: { who: string; status: number; body: string }[] = [];
  const forged = (id: RequestId): string => JSON.stringify({ jsonrpc: '2.0', id, result: { action: 'accept', content: { approve: true } } });
  const { client, transport } = await connect(t, alice, { elicitation: { form: {} } }, async (_req, id) => {
    // While alice's ask waits, bob (who learnt its id) answers it: with his own session, and with alice's.
    const own = await request(http.url, { headers: headers(bob, bobSession), body: forged(id) });
    replies.push({ who: 'bob, own session', status: own.status, body: own.body });
    const stolen = await request(http.url, { headers: headers(bob, aliceSession), body: forged(id) });
    replies.push({ who: "bob, alice's session", status: stolen.status, body: stolen.body });
    // Alice again, but from another session of hers: not the session that was asked.
    const other = await request(http.url, {
      headers: headers(alice),
      body: JSON.stringify({ ...JSON.parse(INIT), params: { ...JSON.parse(INIT).params, capabilities: { elicitation: {} } } }),
    });
    const otherSession = other.headers['mcp-session-id'] as string;
    const sideways = await request(http.url, { headers: headers(alice, otherSession), body: forged(id) });
    replies.push({ who: 'alice, another session', status: sideways.status, body: sideways.body });
    return { action: 'decline' };
  });
  aliceSession = transport.sessionId as string;
  const s = await ask(t, client);
  t.same(s.answer, { action: 'decline' }, "alice's own answer decided, not the forged accepts");
  t.same(
    replies.map((r) => [r.who, r.status]),
    [
      ['bob, own session', 400],
      ["bob, alice's session", 404],
      ['alice, another session', 400],
    ],
  );
  t.match(replies[1]?.body, /Session not found/);
});

t.test('a tampered, foreign or garbage session id is an unknown session (404)', async (t) => {
  const { transport } = await connect(t, alice, { elicitation: { form: {} } });
  const session = transport.sessionId as string;
  const flipped = session.slice(0, 20) + (session[20] === 'A' ? 'B' : 'A') + session.slice(21);
  for (const [label, id, token] of [
    ['one character changed', flipped, alice],
    ['garbage', 'not-a-session', alice],
    ["alice's session under bob's key", session, bob],
  ] as const) {
    const r = await request(http.url, { headers: headers(token, id), body: callBody(1) });
    t.equal(r.status, 404, label);
    t.match(r.body, /Session not found/, label);
  }
  const ok = await request(http.url, { headers: headers(alice, session), body: callBody(2, { ask: 'roots' }) });
  t.equal(ok.status, 200, 'the untouched id still works');
  t.match(ok.body, /did not declare the capability for roots\/list/, 'roots were not declared: refused before anything is sent');
});

t.test('a client that goes away while asked: the ask is aborted and forgotten', async (t) => {
  const init = await request(http.url, {
    headers: headers(alice),
    body: JSON.stringify({ ...JSON.parse(INIT), params: { ...JSON.parse(INIT).params, capabilities: { elicitation: {} } } }),
  });
  const session = init.headers['mcp-session-id'] as string;
  t.type(session, 'string');
  const { default: nodeHttp } = await import('node:http');
  const asked = await new Promise<string>((resolve, reject) => {
    const req = nodeHttp.request(http.url, { method: 'POST', headers: headers(alice, session) }, (res) => {
      t.equal(res.headers['content-type'], 'text/event-stream');
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString();
        if (text.includes('elicitation/create')) {
          req.destroy();
          resolve(text);
        }
      });
    });
    req.on('error', (err) => (err.message.includes('socket hang up') ? undefined : reject(err)));
    // detached: the tool's own signal never aborts, so only the transport can end the ask.
    req.end(callBody(7, { timeout_ms: 30_000, detached: true }));
  });
  t.match(asked, /"id":"bulwark-ask-[A-Za-z0-9_-]{22}"/, 'an unguessable ask id');
  const deadline = Date.now() + 10_000;
  while (clientAsksFor(served.deps).waiting > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal(clientAsksFor(served.deps).waiting, 0);
});

t.test('GET and DELETE with a session: 405 (no standalone stream; ids expire on their own)', async (t) => {
  const { client, transport } = await connect(t, alice, { elicitation: { form: {} } });
  const session = transport.sessionId as string;
  t.equal((await request(http.url, { method: 'GET', headers: { ...headers(alice, session), accept: 'text/event-stream' } })).status, 405);
  await transport.terminateSession();
  t.equal(transport.sessionId, undefined, 'the SDK client takes 405 as "cannot terminate" and forgets the id');
  t.ok(client);
});
