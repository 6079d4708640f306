/**
 * Human approval end to end with real clients against `bulwark serve --http` and a real upstream:
 * the shipped policy's rule (developer call_api POST/PATCH needs approval) on a loopback-only
 * server whose callers are the `developer` principal.
 *
 * - 2026-07-28: @modelcontextprotocol/client 2.4.0, whose driver answers `input_required` through
 *   its registered `elicitation/create` handler and retries with the sealed requestState. Tampered
 *   state and changed arguments are produced the way a hostile client would: by rewriting the
 *   retry the real client sends (its fetch).
 * - 2025-11-25: the SDK v1 client over Streamable HTTP with an elicitation handler (the server asks
 *   inline on the call's SSE answer), and without the capability.
 *
 * Every elicitation handler notes how many requests the upstream had seen when the human was
 * asked: it must be none.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Client as ModernClient, StreamableHTTPClientTransport as ModernHttpTransport } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { BIN, makeSandbox, readAudit, ROOT } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { requestIdOf } from './helpers/bearer.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { argsDigest } from '../src/audit/record.js';

t.setTimeout(180_000);

const V = '2026-07-28';
/** The approval window of this server: short, so that an expired approval can be shown. */
const TTL_MS = 4000;

let up: TestUpstream;
let server: HttpServerProcess;
const sb = makeSandbox({ policy: { data: 'policy-data.json' }, execution: { timeout_ms: 15_000 } });

t.before(async () => {
  up = await startUpstream();
  const config = fs.readFileSync(sb.configPath, 'utf8');
  fs.writeFileSync(
    sb.configPath,
    `${config}apis:\n  svc:\n    base_url: ${up.origin}/v1/\n    internal: true\n    retries: 0\n    methods: [GET, POST, PATCH]\n`,
  );
  const data = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: Record<string, any> };
  data.bulwark.api.upstreams.developer = ['svc'];
  data.bulwark.api.approval.developer.ttl_ms = TTL_MS;
  fs.writeFileSync(path.join(sb.dir, 'policy-data.json'), JSON.stringify(data));
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server?.stop();
  await up?.close();
  sb.cleanup();
});

const records = (requestId: string) => readAudit(sb.auditPath).filter((r) => r.request_id === requestId);
const outcomeOf = (requestId: string) => records(requestId).find((r) => r.event === undefined);
/** Outcome records of call_api in order, from `since` on. */
const callRecords = (since: number) => readAudit(sb.auditPath).filter((r) => r.seq > since && r.tool === 'call_api');
const lastSeq = () => readAudit(sb.auditPath).reduce((m, r) => Math.max(m, r.seq as number), 0);

/**
 * 2026-07-28: a requestState that does not open or bind is the JSON-RPC error -32602 (what the
 * conformance suite's tampered-state scenario requires); its `data` carries the typed code, the
 * reasons and the request id of the record. Undefined when the call did not fail that way.
 */
async function refusedParams(call: Promise<unknown>): Promise<Record<string, any> | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    const e = err as { code?: unknown; data?: unknown };
    return e.code === -32602 && e.data !== null && typeof e.data === 'object' ? (e.data as Record<string, any>) : undefined;
  }
}

interface Asked {
  readonly message: string;
  readonly upstreamAtAsk: number;
}

type Rewrite = (body: Record<string, any>) => Record<string, any>;

/** The real 2026 client, pinned to 2026-07-28, declaring form elicitation; `rewrite` edits each retry it sends. */
async function modern(t: Test, answer: () => ElicitResult | Promise<ElicitResult>, rewrite?: Rewrite): Promise<{ client: ModernClient; asked: Asked[] }> {
  const asked: Asked[] = [];
  const transport = new ModernHttpTransport(new URL(server.url), {
    fetch: async (input, init) => {
      if (rewrite && typeof init?.body === 'string') {
        const body = JSON.parse(init.body) as Record<string, any>;
        if (body.params?.requestState !== undefined) return fetch(input, { ...init, body: JSON.stringify(rewrite(body)) });
      }
      return fetch(input, init);
    },
  });
  const client = new ModernClient(
    { name: 'approval-e2e-2026', version: '1.0.0' },
    { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: V } } },
  );
  client.setRequestHandler('elicitation/create', async (req) => {
    asked.push({ message: String((req.params as { message?: unknown }).message), upstreamAtAsk: up.count() });
    return answer();
  });
  await client.connect(transport);
  t.teardown(() => client.close());
  t.equal(client.getProtocolEra(), 'modern');
  return { client, asked };
}

/** The SDK v1 client (2025-11-25) over Streamable HTTP, with or without an elicitation handler. */
async function legacy(t: Test, answer?: () => ElicitResult): Promise<{ client: Client; asked: Asked[] }> {
  const asked: Asked[] = [];
  const client = new Client({ name: 'approval-e2e-2025', version: '1.0.0' }, { capabilities: answer ? { elicitation: { form: {} } } : {} });
  if (answer) {
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push({ message: String(req.params.message), upstreamAtAsk: up.count() });
      return answer();
    });
  }
  await client.connect(new StreamableHTTPClientTransport(new URL(server.url)));
  t.teardown(() => client.close());
  return { client, asked };
}

const POST = { api: 'svc', method: 'POST', path: '/echo', body: { amount: 10, to: 'acct-7' } };
/** The denial a tool result carries (structuredContent.error), or undefined when the call ran. */
function errorOf(r: unknown): { code: string; reasons: string[]; request_id: string } | undefined {
  const x = r as { isError?: unknown; structuredContent?: { error?: { code: string; reasons: string[]; request_id: string } } };
  return x.isError ? x.structuredContent?.error : undefined;
}

t.test('2026-07-28: approve through the real client: nothing upstream before, one POST after, the records', async (t) => {
  const before = up.count();
  const seq = lastSeq();
  const { client, asked } = await modern(t, () => ({ action: 'accept', content: { approve: true, approver: 'Dana Ops' } }));
  const r = await client.callTool({ name: 'call_api', arguments: POST });
  t.notOk(r.isError, JSON.stringify(r.structuredContent));
  t.equal(asked.length, 1, 'the human was asked once');
  t.equal(asked[0]?.upstreamAtAsk, before, 'nothing had reached the upstream when the human was asked');
  t.match(asked[0]?.message, /^Approve call_api for loopback\? POST \/echo on svc is not idempotent/);
  t.equal(up.count() - before, 1, 'one POST after the approval');
  t.equal(JSON.parse(up.seen.at(-1)?.body ?? '{}').amount, 10);
  const recs = callRecords(seq);
  t.same(
    recs.map((x) => [x.event ?? 'outcome', x.outcome?.status ?? null]),
    [
      ['outcome', 'input_required'],
      ['intent', null],
      ['outcome', 'ok'],
    ],
    'the asking call, then the retry: intent, outcome',
  );
  const [asking, , done] = recs;
  t.match(asking?.approval, { status: 'requested', via: 'input_required', approvers: ['admin'], ttl_ms: TTL_MS });
  t.match(done?.approval, { status: 'granted', by: 'Dana Ops', requested_in: asking?.request_id, args_sha256: argsDigest(POST).sha256 });
  t.equal(done?.principal?.id, 'loopback');
});

t.test('2026-07-28: decline, and a client that does not declare elicitation', async (t) => {
  const before = up.count();
  const { client, asked } = await modern(t, () => ({ action: 'decline' }));
  const r = await client.callTool({ name: 'call_api', arguments: POST });
  t.match(errorOf(r), { code: 'approval_declined', reasons: ['approval.declined'] });
  t.equal(asked.length, 1);
  t.match(outcomeOf(errorOf(r)?.request_id as string)?.approval, { status: 'declined', action: 'decline' });

  const plain = new ModernClient({ name: 'approval-e2e-2026-plain', version: '1.0.0' }, { versionNegotiation: { mode: { pin: V } } });
  await plain.connect(new ModernHttpTransport(new URL(server.url)));
  t.teardown(() => plain.close());
  const n = await plain.callTool({ name: 'call_api', arguments: POST });
  t.match(errorOf(n), { code: 'approval_required', reasons: ['approval.unsupported'] }, 'no capability: a clear denial, never a silent run');
  t.equal(up.count(), before, 'neither reached the upstream');
});

t.test('2026-07-28: a retry with a tampered state or changed arguments is refused and audited', async (t) => {
  const before = up.count();
  const flip = (s: string) => {
    const raw = Buffer.from(s, 'base64url');
    raw[raw.length - 3] = (raw[raw.length - 3] as number) ^ 0x10;
    return raw.toString('base64url');
  };
  const tamper = await modern(
    t,
    () => ({ action: 'accept', content: { approve: true } }),
    (b) => ({ ...b, params: { ...b.params, requestState: flip(b.params.requestState as string) } }),
  );
  const r1 = await refusedParams(tamper.client.callTool({ name: 'call_api', arguments: POST }));
  t.match(r1, { code: 'request_state_invalid', reasons: ['request_state.tampered'] }, 'a JSON-RPC -32602 naming the typed code');
  t.match(outcomeOf(r1?.request_id as string)?.outcome, { status: 'denied', code: 'request_state_invalid', reasons: ['request_state.tampered'] });

  // The human approved 10; the retry asks for 10000 (the body is rewritten, the state kept).
  const changed = await modern(
    t,
    () => ({ action: 'accept', content: { approve: true } }),
    (b) => ({ ...b, params: { ...b.params, arguments: { ...b.params.arguments, body: { amount: 10000, to: 'acct-7' } } } }),
  );
  const r2 = await refusedParams(changed.client.callTool({ name: 'call_api', arguments: POST }));
  t.match(r2, { code: 'request_state_invalid', reasons: ['request_state.args_mismatch'] }, 'a changed argument needs a new approval');
  const rec2 = outcomeOf(r2?.request_id as string);
  t.match(rec2?.approval, { status: 'invalid', args_sha256: argsDigest({ ...POST, body: { amount: 10000, to: 'acct-7' } }).sha256 });
  t.equal(up.count(), before, 'the upstream got nothing');
});

t.test('2026-07-28: an approval that arrives after its window is refused as expired', async (t) => {
  const before = up.count();
  const slow = await modern(t, async () => {
    await new Promise((r) => setTimeout(r, TTL_MS + 500));
    return { action: 'accept', content: { approve: true, approver: 'Late Larry' } };
  });
  const r = await refusedParams(slow.client.callTool({ name: 'call_api', arguments: POST }));
  t.match(r, { code: 'request_state_invalid', reasons: ['request_state.expired'] });
  t.match(outcomeOf(r?.request_id as string)?.approval, { status: 'expired', ttl_ms: TTL_MS });
  t.equal(up.count(), before, 'the upstream got nothing');
});

t.test('2025-11-25: the SDK v1 client is asked inline; approve runs, decline does not, no capability is refused', async (t) => {
  const before = up.count();
  const seq = lastSeq();
  const yes = await legacy(t, () => ({ action: 'accept', content: { approve: true, approver: 'Sam' } }));
  const r = await yes.client.callTool({ name: 'call_api', arguments: { ...POST, method: 'PATCH' } });
  t.notOk(r.isError, JSON.stringify(r.structuredContent));
  t.equal(yes.asked.length, 1);
  t.equal(yes.asked[0]?.upstreamAtAsk, before, 'nothing had reached the upstream when the human was asked');
  t.equal(up.count() - before, 1, 'one PATCH after the approval');
  t.equal(up.seen.at(-1)?.method, 'PATCH');
  const recs = callRecords(seq);
  t.same(
    recs.map((x) => x.event ?? 'outcome'),
    ['approval', 'intent', 'outcome'],
    'the approval request was recorded before the ask, then intent and outcome',
  );
  t.match(recs[2]?.approval, { status: 'granted', via: 'elicitation', by: 'Sam', request_seq: recs[0]?.seq });

  const no = await legacy(t, () => ({ action: 'decline' }));
  const d = await no.client.callTool({ name: 'call_api', arguments: POST });
  t.match(errorOf(d), { code: 'approval_declined', reasons: ['approval.declined'] });

  const none = await legacy(t);
  const n = await none.client.callTool({ name: 'call_api', arguments: POST });
  t.match(errorOf(n), { code: 'approval_required', reasons: ['approval.unsupported'] });
  t.equal(up.count() - before, 1, 'only the approved call reached the upstream');
  const get = await none.client.callTool({ name: 'call_api', arguments: { api: 'svc', path: '/json' } });
  t.notOk(get.isError, 'GET needs no approval');
});

t.test('2025-11-25 over stdio: the SDK v1 client is asked on the same pipe; approve runs, decline does not', async (t) => {
  const before = up.count();
  let answer: ElicitResult = { action: 'accept', content: { approve: true, approver: 'Stdio Sue' } };
  const asked: Asked[] = [];
  // Its own audit log: the HTTP server holds the first one's writer lock.
  const stdioAudit = path.join(sb.dir, 'audit-stdio', 'audit.jsonl');
  const stdioConfig = path.join(sb.dir, 'stdio.yaml');
  fs.writeFileSync(stdioConfig, fs.readFileSync(sb.configPath, 'utf8').replace(sb.auditPath, stdioAudit));
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'serve', '--config', stdioConfig],
    env: cleanChildEnv(),
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  t.teardown(() => {
    if (!t.passing()) t.comment(stderr.slice(-2000));
  });
  const client = new Client({ name: 'approval-e2e-stdio', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    asked.push({ message: req.params.message, upstreamAtAsk: up.count() });
    return answer;
  });
  await client.connect(transport);
  t.teardown(() => client.close());
  const r = await client.callTool({ name: 'call_api', arguments: POST });
  t.notOk(r.isError, JSON.stringify(r.structuredContent));
  t.equal(asked[0]?.upstreamAtAsk, before, 'asked before anything reached the upstream');
  t.equal(up.count() - before, 1);
  const rec = readAudit(stdioAudit).find((x) => x.request_id === requestIdOf(r) && x.event === undefined);
  t.match(rec, { transport: 'stdio', approval: { status: 'granted', via: 'elicitation', by: 'Stdio Sue' } });
  answer = { action: 'cancel' };
  const c = await client.callTool({ name: 'call_api', arguments: POST });
  t.match(errorOf(c), { code: 'approval_declined', reasons: ['approval.cancelled'] });
  t.equal(up.count() - before, 1, 'the cancelled one did not run');
});
