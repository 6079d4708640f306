/**
 * 2025-11-25 server-to-client requests over real stdio: the real SDK v1 client launches Bulwark
 * (with a test tool that asks, helpers/asking-tool.ts) and answers its elicitation, sampling and
 * roots requests; the call's result carries what the client answered, through the real gate.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  type ClientCapabilities,
  type ElicitRequest,
  type ElicitResult,
} from '@modelcontextprotocol/sdk/types.js';
import { ROOT, makeSandbox, readAudit } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { ASKING_TOOL } from './helpers/asking-tool.js';
import { requestIdOf } from './helpers/bearer.js';

t.setTimeout(120_000);

const CHILD = path.join(ROOT, 'dist', 'test', 'helpers', 'asking-child.js');
const sb = makeSandbox();
t.teardown(() => sb.cleanup());

interface Structured {
  readonly era: string | null;
  readonly capabilities: Record<string, unknown> | null;
  readonly can_ask: boolean;
  readonly asked: boolean;
  readonly answer?: Record<string, unknown>;
  readonly error?: string;
}

/** One server per test, closed when the test ends (the audit log admits one writer at a time). */
async function launch(t: Test, capabilities: ClientCapabilities, onElicit?: (req: ElicitRequest) => Promise<ElicitResult>): Promise<Client> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CHILD, sb.configPath], env: cleanChildEnv(), stderr: 'pipe' });
  const client = new Client({ name: 'elicitation-test', version: '1.0.0' }, { capabilities });
  if (onElicit) client.setRequestHandler(ElicitRequestSchema, onElicit);
  await client.connect(transport);
  t.teardown(() => client.close());
  return client;
}

async function ask(t: Test, client: Client, args: Record<string, unknown> = {}): Promise<Structured & { requestId: string }> {
  const r = await client.callTool({ name: ASKING_TOOL, arguments: args });
  t.notOk(r.isError, `the call ran: ${JSON.stringify(r.structuredContent)}`);
  return { ...(r.structuredContent as unknown as Structured), requestId: requestIdOf(r) };
}

t.test('a form elicitation reaches the client and its answer reaches the call', async (t) => {
  const seen: ElicitRequest[] = [];
  const client = await launch(t, { elicitation: { form: {} } }, async (req) => {
    seen.push(req);
    return { action: 'accept', content: { approve: true } };
  });
  const s = await ask(t, client, { message: 'Run it?' });
  t.equal(s.era, '2025-11-25');
  t.same(s.capabilities, { elicitation: { form: true, url: false } }, 'the capabilities the client declared in initialize');
  t.equal(s.asked, true);
  t.same(s.answer, { action: 'accept', content: { approve: true } });
  t.equal(seen.length, 1);
  t.equal(seen[0]?.params.message, 'Run it?');
  t.equal((seen[0]?.params as { mode?: string }).mode, 'form');
  await client.close();
  const rec = readAudit(sb.auditPath).filter((r) => r.request_id === s.requestId);
  t.equal(rec.length, 1, 'the call that asked left one record');
  t.equal(rec[0]?.outcome?.status, 'ok');
});

t.test('decline comes back as the client said it', async (t) => {
  const client = await launch(t, { elicitation: {} }, async () => ({ action: 'decline' }));
  const s = await ask(t, client);
  t.same(s.capabilities, { elicitation: { form: true, url: false } }, 'an empty elicitation capability means form (2025-11-25)');
  t.same(s.answer, { action: 'decline' });
});

t.test('a client that does not answer in time: the ask times out and the call still ends', async (t) => {
  let asked = 0;
  const client = await launch(t, { elicitation: { form: {} } }, () => {
    asked += 1;
    return new Promise<ElicitResult>(() => undefined);
  });
  const started = Date.now();
  const s = await ask(t, client, { timeout_ms: 300 });
  t.equal(asked, 1);
  t.match(s.error, /timed out/i);
  t.ok(Date.now() - started < 10_000, 'answered well before the gate deadline');
});

t.test('a client that declared nothing cannot be asked', async (t) => {
  const client = await launch(t, {});
  const s = await ask(t, client);
  t.equal(s.can_ask, false);
  t.equal(s.asked, false);
  t.same(s.capabilities, {});
});

t.test('sampling and roots reach a client that declared them; undeclared ones are refused before sending', async (t) => {
  const sampled: unknown[] = [];
  const transport = new StdioClientTransport({ command: process.execPath, args: [CHILD, sb.configPath], env: cleanChildEnv(), stderr: 'pipe' });
  const client = new Client({ name: 'elicitation-test', version: '1.0.0' }, { capabilities: { sampling: {}, roots: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    sampled.push(req.params);
    return { role: 'assistant', content: { type: 'text', text: 'yes' }, model: 'test-model' };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///tmp/project', name: 'project' }] }));
  await client.connect(transport);
  t.teardown(() => client.close());
  const sampling = await ask(t, client, { ask: 'sampling', message: 'Say yes' });
  t.same(sampling.answer, { role: 'assistant', content: { type: 'text', text: 'yes' }, model: 'test-model' });
  t.equal(sampled.length, 1);
  const roots = await ask(t, client, { ask: 'roots' });
  t.same(roots.answer, { roots: [{ uri: 'file:///tmp/project', name: 'project' }] });
  const elicit = await ask(t, client);
  t.match(elicit.error, /did not declare the capability for elicitation\/create/);
});
