/**
 * The conformance profile's `test_elicitation` fixture, asked by the real `bulwark serve
 * --profile conformance` binary, answered by the real SDK v1 client, over real stdio and real
 * Streamable HTTP (2025-11-25: the ask travels on the call's own stream; on HTTP the client's
 * response comes back as a POST carrying the session id).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ElicitRequestSchema, type ElicitRequest, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { BIN } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';

t.setTimeout(120_000);

/** The profile runs on the embedded defaults only: each server gets its own working directory. */
function workdir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-elicit-conf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function httpServer(t: Test): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'serve', '--http', '127.0.0.1:0', '--profile', 'conformance'], {
    cwd: workdir(t),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanChildEnv(),
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  let err = '';
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /Bulwark is listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
}

async function callFixture(t: Test, transport: Transport, answer: (req: ElicitRequest) => ElicitResult): Promise<{ text: string; asked: ElicitRequest[] }> {
  const asked: ElicitRequest[] = [];
  const client = new Client({ name: 'elicitation-conformance-test', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } });
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    asked.push(req);
    return answer(req);
  });
  await client.connect(transport);
  t.teardown(() => client.close());
  const r = await client.callTool({ name: 'test_elicitation', arguments: { message: 'Who are you?' } });
  t.notOk(r.isError, JSON.stringify(r));
  const content = r.content as { type: string; text?: string }[];
  return { text: content.map((c) => c.text ?? '').join(''), asked };
}

const accept = (): ElicitResult => ({ action: 'accept', content: { username: 'ada', email: 'ada@example.org' } });

for (const kind of ['stdio', 'http'] as const) {
  t.test(`test_elicitation over ${kind}: the fixture asks, the client answers, the call goes on`, async (t) => {
    const transport: Transport =
      kind === 'stdio'
        ? new StdioClientTransport({
            command: process.execPath,
            args: [BIN, 'serve', '--profile', 'conformance'],
            cwd: workdir(t),
            env: cleanChildEnv(),
            stderr: 'pipe',
          })
        : new StreamableHTTPClientTransport(new URL(await httpServer(t)));
    const { text, asked } = await callFixture(t, transport, accept);
    t.equal(asked.length, 1);
    t.equal(asked[0]?.params.message, 'Who are you?');
    t.same(Object.keys((asked[0]?.params as { requestedSchema?: { properties?: object } }).requestedSchema?.properties ?? {}).sort(), ['email', 'username']);
    t.equal(text, 'User response: <action: accept, content: {"username":"ada","email":"ada@example.org"}>');
  });

  t.test(`test_elicitation over ${kind}: decline`, async (t) => {
    const transport: Transport =
      kind === 'stdio'
        ? new StdioClientTransport({
            command: process.execPath,
            args: [BIN, 'serve', '--profile', 'conformance'],
            cwd: workdir(t),
            env: cleanChildEnv(),
            stderr: 'pipe',
          })
        : new StreamableHTTPClientTransport(new URL(await httpServer(t)));
    const { text } = await callFixture(t, transport, () => ({ action: 'decline' }));
    t.equal(text, 'User response: <action: decline, content: {}>');
  });
}

for (const kind of ['stdio', 'http'] as const) {
  t.test(`2025-11-25 over ${kind}: the profile's extra methods are served and declared in initialize`, async (t) => {
    const transport: Transport =
      kind === 'stdio'
        ? new StdioClientTransport({
            command: process.execPath,
            args: [BIN, 'serve', '--profile', 'conformance'],
            cwd: workdir(t),
            env: cleanChildEnv(),
            stderr: 'pipe',
          })
        : new StreamableHTTPClientTransport(new URL(await httpServer(t)));
    const client = new Client({ name: 'extra-methods-test', version: '1.0.0' });
    await client.connect(transport);
    t.teardown(() => client.close());
    const caps = client.getServerCapabilities();
    t.match(caps, { tools: {}, resources: {}, prompts: {}, completions: {}, logging: {} });
    const resources = await client.listResources();
    t.ok(resources.resources.length > 0, 'resources/list answered through the gate');
    const prompts = await client.listPrompts();
    t.ok(prompts.prompts.length > 0, 'prompts/list answered');
    await client.setLoggingLevel('info');
  });
}
