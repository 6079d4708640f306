/**
 * Human approval on 2025-11-25, end to end: the real `bulwark serve` binary with the shipped
 * approval rule (developer POST to call_api needs approval), the real SDK v1 client declaring form
 * elicitation, over real stdio and real Streamable HTTP. The gate asks through the transport's
 * channel; approve runs the POST upstream, decline does not, and a client that declared nothing
 * gets approval_required. The upstream counts what really reached it.
 */
import t, { type Test } from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ElicitRequestSchema, type ClientCapabilities, type ElicitRequest, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { BIN, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer } from './helpers/clients.js';
import { errorOf } from './helpers/bearer.js';
import { startUpstream, writePolicyData, type TestUpstream } from './helpers/upstreams.js';

t.setTimeout(180_000);

let up: TestUpstream;
let sb: Sandbox;

t.before(async () => {
  up = await startUpstream();
  sb = makeSandbox({
    apis: { svc: { base_url: `${up.origin}/v1/`, internal: true, retries: 0, methods: ['GET', 'POST'] } },
    policy: { data: 'policy-data.json' },
    principals: { stdio: { id: 'dev-stdio', roles: ['developer'], tier: 'local' }, loopback: { id: 'dev-http', roles: ['developer'], tier: 'local' } },
  });
  // The shipped rule, restated: the test helper turns approval off for the gateway's own tests.
  writePolicyData(sb.dir, ['svc'], ['GET', 'POST'], { approval: { developer: { methods: ['POST'], approvers: ['admin'], ttl_ms: 300_000 } } });
});
t.teardown(async () => {
  await up?.close();
  sb?.cleanup();
});

const POST = { api: 'svc', method: 'POST', path: '/echo', body: { order: 42 } };

/** stdio: a server per client (closing the client ends it); HTTP: one server at `url` for the test. */
async function connect(
  t: Test,
  url: string | undefined,
  capabilities: ClientCapabilities,
  answer?: (req: ElicitRequest) => ElicitResult,
): Promise<{ client: Client; asked: ElicitRequest[] }> {
  const transport: Transport = url
    ? new StreamableHTTPClientTransport(new URL(url))
    : new StdioClientTransport({ command: process.execPath, args: [BIN, 'serve', '--config', sb.configPath], env: cleanChildEnv(), stderr: 'pipe' });
  const asked: ElicitRequest[] = [];
  const client = new Client({ name: 'approval-e2e', version: '1.0.0' }, { capabilities });
  if (answer)
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req);
      return answer(req);
    });
  await client.connect(transport);
  t.teardown(() => client.close());
  return { client, asked };
}

for (const kind of ['stdio', 'http'] as const) {
  t.test(`${kind}: approved, the POST runs once; declined, it does not; no capability, approval_required`, async (t) => {
    const before = up.count('/v1/echo');
    let url: string | undefined;
    if (kind === 'http') {
      const server = await startHttpServer(['--config', sb.configPath]);
      t.teardown(() => server.stop());
      url = server.url;
    }
    const { client, asked } = await connect(t, url, { elicitation: { form: {} } }, () => ({ action: 'accept', content: { approve: true, approver: 'Sam' } }));
    const ok = await client.callTool({ name: 'call_api', arguments: POST });
    t.equal(errorOf(ok), undefined, `approved call ran: ${JSON.stringify(ok.structuredContent)}`);
    t.equal(asked.length, 1, 'the human was asked once');
    t.match(asked[0]?.params.message, /^Approve call_api for dev-(stdio|http)\?/);
    t.equal(up.count('/v1/echo') - before, 1, 'the POST reached the upstream once');
    await client.close();

    const no = await connect(t, url, { elicitation: { form: {} } }, () => ({ action: 'decline' }));
    const declined = await no.client.callTool({ name: 'call_api', arguments: POST });
    t.equal(errorOf(declined)?.code, 'approval_declined');
    t.equal(up.count('/v1/echo') - before, 1, 'a declined POST never reached the upstream');
    await no.client.close();

    const mute = await connect(t, url, {});
    const refused = await mute.client.callTool({ name: 'call_api', arguments: POST });
    t.equal(errorOf(refused)?.code, 'approval_required');
    t.equal(up.count('/v1/echo') - before, 1);
    await mute.client.close();

    const granted = readAudit(sb.auditPath).filter((r) => r.tool === 'call_api' && r.approval?.status === 'granted' && r.transport === kind);
    t.ok(granted.length >= 1, 'the grant is in the audit chain');
    t.match(granted.at(-1)?.approval, { via: 'elicitation', by: 'Sam' });
  });
}
