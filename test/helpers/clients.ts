import { spawn, type ChildProcess } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BIN } from './fixtures.js';
import { cleanChildEnv } from './child-env.js';

export async function stdioClient(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ client: Client; stderr: () => string; close: () => Promise<void> }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, 'serve', ...args], env: cleanChildEnv(env), stderr: 'pipe' });
  let err = '';
  transport.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, stderr: () => err, close: () => client.close() };
}

export interface HttpServerProcess {
  readonly url: string;
  readonly base: string;
  readonly child: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

/** Servers this test process started and has not seen exit: killed when it exits, whatever failed. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Start `bulwark serve --http 127.0.0.1:0` and read the URL it prints. */
export async function startHttpServer(args: string[]): Promise<HttpServerProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--http', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanChildEnv() });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 20_000);
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /Bulwark is listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${err}`));
    });
  });
  return {
    url,
    base: url.replace(/\/mcp$/, ''),
    child,
    stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export async function httpClient(url: string): Promise<Client> {
  const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}
