import http from 'node:http';
import net from 'node:net';

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** The loopback source address, so tests of per-address behaviour do not share one client. */
  readonly from?: string;
}

/** A raw HTTP request: the tests that check what the transport answers to malformed traffic. */
export function request(url: string, opts: RequestOptions = {}): Promise<Reply> {
  return send(url, opts, opts.from ? { localAddress: opts.from } : {});
}

function send(url: string, opts: RequestOptions, connection: http.RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'POST', headers: opts.headers ?? {}, ...connection }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/**
 * Many requests that reach the server together: every connection is opened first, then every
 * request is written in one turn. A burst sent with plain `request` trickles in as connections
 * are made, and on a loaded machine the server may finish work for the first ones before the
 * last ones arrive, which is not the burst a test of admission limits means to send.
 */
export async function simultaneous(url: string, list: readonly RequestOptions[]): Promise<Reply[]> {
  const u = new URL(url);
  const opened: net.Socket[] = [];
  const connected = await Promise.allSettled(
    list.map(
      (opts) =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host: u.hostname, port: Number(u.port), ...(opts.from ? { localAddress: opts.from } : {}) });
          opened.push(s);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  const failed = connected.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) {
    for (const s of opened) s.destroy();
    throw failed.reason;
  }
  const sockets = connected.map((c) => (c as PromiseFulfilledResult<net.Socket>).value);
  const replies = list.map((opts, i) => send(url, opts, { createConnection: () => sockets[i] as net.Socket }));
  try {
    return await Promise.all(replies);
  } finally {
    for (const s of sockets) s.destroy();
  }
}

export const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
export const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
