/**
 * HAProxy (Debian's package, scripts/toolchain.sh installs it) in front of Bulwark replicas: the
 * configuration the replica test runs, and the process. The configuration is the one the README's
 * replica topology section describes; `haproxyConfig` is its single source.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface Backend {
  readonly name: string;
  readonly port: number;
}

export interface HaproxyOptions {
  /** Where clients connect: 127.0.0.1:<port>. */
  readonly port: number;
  readonly servers: readonly Backend[];
  /** The runtime API socket (`show stat`). */
  readonly statsSocket: string;
  /** The Host header the health check sends: one the replicas' server.http.allowed_hosts admits. */
  readonly checkHost: string;
  /** Health check interval (ms): how fast a dead or draining replica leaves the rotation. */
  readonly checkInterMs?: number;
}

/**
 * One frontend, one backend, round robin per request (Bulwark's HTTP transport is stateless, so any
 * replica can answer any request; no stickiness).
 *
 * Retries: only when the request never reached a replica (`conn-failure`: a stopped or killed
 * replica refuses the connection) and on 503, which Bulwark answers only before a call enters the
 * gate (shutting_down while draining, the connection cap, auth.busy, a stale key store): replaying
 * those cannot run a tool twice. `empty-response` and `response-timeout` are NOT retried: the
 * replica may have run the call (and recorded it) before it died, and a replay would run it again.
 * `option redispatch 1` sends every retry to another replica. One connection per request
 * (`http-reuse never`, `option http-server-close`): a replica that closes its idle connections
 * while draining never races a request onto one.
 *
 * Health: GET /ready every `checkInterMs` (HTTP/1.1 with an admitted Host); one failure takes a
 * replica out (a draining replica answers 503, a dead one refuses), one success brings it back.
 */
export function haproxyConfig(o: HaproxyOptions): string {
  const inter = o.checkInterMs ?? 200;
  return [
    'global',
    '  maxconn 1024',
    `  stats socket ${o.statsSocket} mode 600 level admin`,
    '  log stderr format raw local0 info',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  timeout connect 1s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-request 10s',
    '  timeout queue 5s',
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure 503',
    '  option http-server-close',
    '  http-reuse never',
    '',
    'frontend bulwark',
    `  bind 127.0.0.1:${o.port}`,
    '  default_backend replicas',
    '',
    'backend replicas',
    '  balance roundrobin',
    // 2025-11-25 asks: a session's response POST reaches the replica whose call asked.
    '  stick-table type string len 512 size 100k expire 24h',
    '  stick on req.hdr(mcp-session-id)',
    '  option httpchk',
    `  http-check send meth GET uri /ready ver HTTP/1.1 hdr Host ${o.checkHost}`,
    '  http-check expect status 200',
    `  default-server check inter ${inter} fastinter ${inter} downinter ${inter} fall 1 rise 1`,
    ...o.servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port}`),
    '',
  ].join('\n');
}

/** haproxy on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH). */
export function haproxyBinary(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin']) {
    if (!dir) continue;
    const p = path.join(dir, 'haproxy');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

export interface ServerStat {
  readonly name: string;
  /** UP, DOWN, MAINT, … */
  readonly status: string;
  /** Sessions (here: requests, one connection each) sent to the server, health checks excluded. */
  readonly sessions: number;
  /** Connection errors, retries and redispatches HAProxy counted for the server. */
  readonly connErrors: number;
  readonly retries: number;
  readonly redispatches: number;
}

export interface HaproxyProcess {
  readonly url: string;
  readonly child: ChildProcess;
  log(): string;
  /** The backend servers as HAProxy sees them now (`show stat` on the runtime API). */
  stats(): Promise<ServerStat[]>;
  stop(): Promise<void>;
}

async function runtimeCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let out = '';
    s.on('connect', () => s.end(`${command}\n`));
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('error', reject);
    s.on('close', () => resolve(out));
  });
}

/** Start haproxy in the foreground with the given configuration; resolves once it accepts connections. */
export async function startHaproxy(dir: string, o: HaproxyOptions): Promise<HaproxyProcess> {
  const bin = haproxyBinary();
  if (!bin) throw new Error('haproxy not found (PATH, /usr/sbin): run `bash scripts/toolchain.sh` (apt-get install haproxy)');
  const cfgPath = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfgPath, haproxyConfig(o));
  const check = spawnSync(bin, ['-c', '-q', '-f', cfgPath], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy -c refused the configuration: ${check.stderr}${check.stdout}`);
  // -db: stay in the foreground (no daemon), so the PID we hold is haproxy's own.
  const child = spawn(bin, ['-db', '-f', cfgPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (c: Buffer) => {
    log += c.toString();
    if (log.length > 2_000_000) log = log.slice(-1_000_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${log}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(o.port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`haproxy did not listen on ${o.port}: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${o.port}/mcp`,
    child,
    log: () => log,
    stats: async () => {
      const csv = await runtimeCommand(o.statsSocket, 'show stat');
      const [header, ...rows] = csv.replace(/^# /, '').trim().split('\n');
      const cols = (header ?? '').split(',');
      const at = (row: string[], name: string): string => row[cols.indexOf(name)] ?? '';
      return rows
        .map((l) => l.split(','))
        .filter((r) => at(r, 'pxname') === 'replicas' && !['FRONTEND', 'BACKEND'].includes(at(r, 'svname')))
        .map((r) => ({
          name: at(r, 'svname'),
          status: at(r, 'status'),
          sessions: Number(at(r, 'stot')),
          connErrors: Number(at(r, 'econ')),
          retries: Number(at(r, 'wretr')),
          redispatches: Number(at(r, 'wredis')),
        }));
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
