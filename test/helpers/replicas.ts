/**
 * Bulwark replicas as real processes on fixed loopback ports (a restarted replica comes back where
 * the balancer expects it), and a load generator of MCP SDK clients that records every call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { BIN } from './fixtures.js';
import { cleanChildEnv } from './child-env.js';
import { request } from './http.js';
import { errorOf, requestIdOf } from './bearer.js';

/**
 * A free loopback port below the kernel's ephemeral range (the 12,768 ports under its start, read
 * from /proc): servers on it are stopped and restarted on the same port, and a port from the
 * ephemeral range can meanwhile become the source port of an outgoing connection, so the restart
 * would find it taken. Where the range starts too low to leave room, the kernel's pick.
 */
export async function freePort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    /* not Linux: assume the usual range */
  }
  if (!(low >= 12768 + 1024)) return kernelPort();
  for (let tries = 0; tries < 50; tries++) {
    const port = low - 12768 + Math.floor(Math.random() * 12768);
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port below ${low} after 50 tries`);
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** ms from the signal to the exit. */
  readonly ms: number;
}

/** Servers this test process started and has not seen exit: killed when it exits, whatever failed. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class Replica {
  private child: ChildProcess | undefined;
  private err = '';
  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
  ) {}

  get configPath(): string {
    return path.join(this.dir, 'bulwark.yaml');
  }
  get auditPath(): string {
    return path.join(this.dir, 'audit', 'audit.jsonl');
  }
  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }
  stderr(): string {
    return this.err;
  }

  writeConfig(config: Record<string, unknown>): void {
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(this.configPath, stringify(config));
  }

  /** Spawn `bulwark serve --http 127.0.0.1:<port>`; resolves when it says it is listening. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const child = spawn(process.execPath, [BIN, 'serve', '--http', `127.0.0.1:${this.port}`, '--config', this.configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: cleanChildEnv(),
    });
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    let seen = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} did not start within 60 s: ${seen}`)), 60_000);
      child.stderr!.on('data', (c: Buffer) => {
        const s = c.toString();
        seen += s;
        this.err = (this.err + s).slice(-200_000);
        if (/Bulwark is listening on /.test(seen)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited ${code}: ${seen}`));
      });
    });
  }

  /** GET /ready until it answers 200. */
  async waitReady(ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      const r = await request(`${this.base}/ready`, { method: 'GET' }).catch(() => undefined);
      if (r?.status === 200) return;
      if (Date.now() > end) throw new Error(`${this.name} not ready after ${ms} ms: ${r?.status} ${r?.body}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Send `signal` to the PID we started and wait for it to exit. */
  async signal(signal: 'SIGTERM' | 'SIGKILL'): Promise<Exit> {
    const child = this.child;
    if (!child || !this.running) throw new Error(`${this.name} is not running`);
    const t0 = performance.now();
    const exited = new Promise<Exit>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig, ms: performance.now() - t0 })));
    process.kill(child.pid!, signal);
    return exited;
  }

  async stop(): Promise<void> {
    if (this.running) await this.signal('SIGTERM');
  }
}

/** One tool call as a client saw it. */
export interface CallSeen {
  readonly client: number;
  readonly started: number;
  readonly ended: number;
  /** The answer's request id (allowed or denied): the call was acknowledged. */
  readonly requestId?: string;
  /** The denial code, when the gate refused it. */
  readonly code?: string;
  /** The transport failed (no answer): what the client saw. */
  readonly failure?: string;
}

/** Call a tool once, recording what came back, and never throw. */
export async function callOnce(client: Client, clientNo: number, name: string, args: Record<string, unknown>): Promise<CallSeen> {
  const started = Date.now();
  try {
    const r = await client.callTool({ name, arguments: args });
    const denied = errorOf(r);
    return { client: clientNo, started, ended: Date.now(), requestId: requestIdOf(r), ...(denied ? { code: denied.code } : {}) };
  } catch (err) {
    // fetch's "fetch failed" says little; its cause (ECONNRESET, "other side closed", …) says what.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : '';
    return { client: clientNo, started, ended: Date.now(), failure: `${(err as Error).message}${why}`.slice(0, 400) };
  }
}

export interface Load {
  /** Stop issuing calls; resolves with every call once the ones in flight are answered. */
  stop(): Promise<CallSeen[]>;
  /** Calls finished so far. */
  readonly seen: readonly CallSeen[];
}

/** `clients.length` loops, each calling `name` back to back (with `pauseMs` between) until stopped. */
export function startLoad(clients: readonly Client[], name: string, args: Record<string, unknown>, pauseMs = 5): Load {
  const seen: CallSeen[] = [];
  let stopping = false;
  const loops = clients.map(async (c, i) => {
    while (!stopping) {
      seen.push(await callOnce(c, i, name, args));
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  return {
    seen,
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
      return seen;
    },
  };
}
