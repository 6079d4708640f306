/**
 * Real HTTP servers on loopback for the API gateway tests: a programmable upstream that records
 * every request, and canaries that must never be reached (they count what arrives).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ROOT } from './fixtures.js';

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  /** The local address the connection arrived on (which pinned address was dialled). */
  readonly localAddress: string;
}

export type Route = (req: SeenRequest, res: http.ServerResponse) => void | Promise<void>;

export interface TestUpstream {
  readonly host: string;
  readonly port: number;
  /** http://host:port (IPv6 in brackets). */
  readonly origin: string;
  readonly seen: SeenRequest[];
  /** Requests whose path starts with `prefix` (all when omitted). */
  count(prefix?: string): number;
  route(path: string, fn: Route): void;
  close(): Promise<void>;
}

function json(res: http.ServerResponse, status: number, value: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** Routes every test upstream answers (under any base path: matched on the path's tail). */
function defaultRoutes(state: { counter: number; flaky: Map<string, number> }): Record<string, Route> {
  return {
    '/echo': (req, res) => json(res, 200, { method: req.method, url: req.url, headers: req.headers, body: req.body }),
    '/json': (_req, res) => json(res, 200, { ok: true, items: [1, 2, 3], name: 'bulwark' }),
    '/text': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('plain text answer');
    },
    '/binary': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]));
    },
    '/counter': (_req, res) => {
      state.counter += 1;
      json(res, 200, { n: state.counter });
    },
    '/no-store': (_req, res) => {
      state.counter += 1;
      json(res, 200, { n: state.counter }, { 'cache-control': 'no-store' });
    },
    // Streams `n` bytes in 16 KiB chunks without a content-length (the cap must cut the stream).
    '/big': async (req, res) => {
      const n = Number(new URL(req.url, 'http://x').searchParams.get('n') ?? '1048576');
      const declare = new URL(req.url, 'http://x').searchParams.get('declare') === '1';
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...(declare ? { 'content-length': n } : {}) });
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      let sent = 0;
      while (sent < n && !res.destroyed) {
        const part = chunk.subarray(0, Math.min(chunk.length, n - sent));
        sent += part.length;
        if (!res.write(part)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    },
    '/slow': async (req, res) => {
      const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? '1000');
      await new Promise((r) => setTimeout(r, ms));
      if (!res.destroyed) json(res, 200, { slept: ms });
    },
    // `/status?code=503`
    '/status': (req, res) => {
      const code = Number(new URL(req.url, 'http://x').searchParams.get('code') ?? '500');
      json(res, code, { status: code });
    },
    // Fails `fail` times per `key` with 503, then answers 200.
    '/flaky': (req, res) => {
      const u = new URL(req.url, 'http://x');
      const key = u.searchParams.get('key') ?? 'default';
      const fail = Number(u.searchParams.get('fail') ?? '1');
      const seen = (state.flaky.get(key) ?? 0) + 1;
      state.flaky.set(key, seen);
      if (seen <= fail) json(res, 503, { attempt: seen });
      else json(res, 200, { attempt: seen });
    },
    // `/redirect?to=<location>&code=302`
    '/redirect': (req, res) => {
      const u = new URL(req.url, 'http://x');
      res.writeHead(Number(u.searchParams.get('code') ?? '302'), { location: u.searchParams.get('to') ?? '/', 'content-length': 0 });
      res.end();
    },
    '/deep-json': (_req, res) => {
      const body = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    },
    '/not-json': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{not json');
    },
    '/whoami': (req, res) => json(res, 200, { private_for: req.headers['x-test-user'] ?? null, at: Date.now(), n: ++state.counter }),
  };
}

/** Start an upstream on `host` (default 127.0.0.1), port 0 unless given. */
export async function startUpstream(opts: { host?: string; port?: number } = {}): Promise<TestUpstream> {
  const host = opts.host ?? '127.0.0.1';
  const seen: SeenRequest[] = [];
  const state = { counter: 0, flaky: new Map<string, number>() };
  const routes: Record<string, Route> = defaultRoutes(state);
  const custom = new Map<string, Route>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        localAddress: req.socket.localAddress ?? '',
      };
      seen.push(r);
      const pathname = r.url.split('?')[0] as string;
      const exact = custom.get(pathname);
      const tail = Object.keys(routes).find((k) => pathname === k || pathname.endsWith(k));
      const fn = exact ?? (tail ? routes[tail] : undefined);
      if (!fn) return json(res, 404, { error: 'no route', path: pathname });
      Promise.resolve(fn(r, res)).catch(() => res.destroy());
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    host,
    port,
    origin,
    seen,
    count: (prefix) => (prefix ? seen.filter((s) => s.url.startsWith(prefix)).length : seen.length),
    route: (path, fn) => custom.set(path, fn),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Policy data for a test config: the shipped data, with the test upstreams granted to the developer role. */
export function writePolicyData(
  dir: string,
  upstreams: string[],
  methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
  extra: Record<string, unknown> = {},
): string {
  const data = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: { api: Record<string, unknown> } };
  data.bulwark.api.upstreams = { ...(data.bulwark.api.upstreams as object), developer: upstreams };
  data.bulwark.api.methods = { ...(data.bulwark.api.methods as object), developer: methods };
  // These worlds test the gateway's mechanics with no human at the client: the shipped approval
  // rule (developer POST/PATCH) is off unless a test passes `approval` in `extra`.
  delete data.bulwark.api.approval;
  Object.assign(data.bulwark.api, extra);
  const file = path.join(dir, 'policy-data.json');
  fs.writeFileSync(file, JSON.stringify(data));
  return file;
}
