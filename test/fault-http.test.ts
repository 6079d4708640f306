import net from 'node:net';
import t from 'tap';
import { makeSandbox } from './helpers/fixtures.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { JSON_HEADERS, request } from './helpers/http.js';

/**
 * The HTTP server's own limits, tried with raw sockets over loopback: a client that sends its
 * headers or its body slowly is cut at the configured timeout (Node checks them on an interval, 30 s
 * by default, so they used to fire up to 30 s late), and connections past the cap are answered 503.
 */

interface Cut {
  /** ms from connect to the server closing the connection. */
  readonly ms: number;
  readonly reply: string;
}

/** Connect, then send `bytes` one at a time every `everyMs` until the server closes the connection. */
function trickle(port: number, head: string, bytes: string, everyMs: number, giveUpMs: number): Promise<Cut> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    let start = 0;
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`not cut within ${giveUpMs} ms`));
    }, giveUpMs);
    socket.on('connect', () => {
      start = performance.now();
      if (head) socket.write(head);
      timer = setInterval(() => {
        if (i < bytes.length && socket.writable) socket.write(bytes[i++] as string);
      }, everyMs);
    });
    socket.on('data', (c: Buffer) => (reply += c.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ ms: performance.now() - start, reply });
    });
  });
}

const HEADERS_MS = 1000;
const REQUEST_MS = 2000;
/** Node's own check runs on an interval; the configured value must hold to within this. */
const SLACK_MS = 1000;

t.test('slow headers and slow bodies are cut at the configured timeouts', async (t) => {
  const sb = makeSandbox({ server: { http: { headers_timeout_ms: HEADERS_MS, request_timeout_ms: REQUEST_MS } } });
  t.teardown(sb.cleanup);
  const server = await startHttpServer(['--config', sb.configPath]);
  t.teardown(() => server.stop());
  const port = Number(new URL(server.url).port);
  const host = `127.0.0.1:${port}`;

  // Slowloris: the request line and headers, one byte every 50 ms, never finished.
  const headers = `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nX-Padding: ${'p'.repeat(400)}\r\n`;
  const slowloris = await trickle(port, '', headers, 50, 15_000);
  t.ok(slowloris.ms >= HEADERS_MS - 50, `not cut early (${slowloris.ms.toFixed(0)} ms)`);
  t.ok(slowloris.ms <= HEADERS_MS + SLACK_MS, `headers trickled byte by byte: cut after ${slowloris.ms.toFixed(0)} ms (headers_timeout_ms ${HEADERS_MS})`);
  t.match(slowloris.reply, /^HTTP\/1\.1 408/, 'answered 408 Request Timeout');

  // A connection that sends nothing at all holds a slot no longer.
  const silent = await trickle(port, '', '', 50, 15_000);
  t.ok(silent.ms <= HEADERS_MS + SLACK_MS, `a silent connection is closed after ${silent.ms.toFixed(0)} ms`);

  // Headers complete, the body one byte every 100 ms (it would take 100 s).
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'read_file', arguments: { path: 'hello.txt', pad: 'x'.repeat(900) } },
  });
  const head = `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  const slowBody = await trickle(port, head, body, 100, 15_000);
  t.ok(slowBody.ms >= REQUEST_MS - 50, `not cut early (${slowBody.ms.toFixed(0)} ms)`);
  t.ok(slowBody.ms <= REQUEST_MS + SLACK_MS, `body trickled byte by byte: cut after ${slowBody.ms.toFixed(0)} ms (request_timeout_ms ${REQUEST_MS})`);
  t.match(slowBody.reply, /^HTTP\/1\.1 408/, 'answered 408 Request Timeout');

  // A request that arrives in time is not cut, however long the tool would take.
  const h = await request(`${server.base}/health`, { method: 'GET' });
  t.equal(h.status, 200, 'still serving');
  const ok = await request(server.url, {
    headers: JSON_HEADERS,
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' } } }),
  });
  t.equal(JSON.parse(ok.body).result.structuredContent.content, 'hello, world\n');
  t.comment(
    `http timeouts: slowloris cut at ${slowloris.ms.toFixed(0)} ms (configured ${HEADERS_MS}), silent at ${silent.ms.toFixed(0)} ms, slow body at ${slowBody.ms.toFixed(0)} ms (configured ${REQUEST_MS})`,
  );
});

/** A keep-alive connection that has been served once and stays open (an idle client). */
function holder(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('error', reject);
    socket.on('connect', () => socket.write(`GET /health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`));
    socket.on('data', (c: Buffer) => {
      got += c.toString();
      if (/\r\n\r\n[\s\S]*\}/.test(got)) {
        if (!/^HTTP\/1\.1 200/.test(got)) reject(new Error(`holder not served: ${got.slice(0, 80)}`));
        else resolve(socket);
      }
    });
  });
}

/** One request on a fresh connection; resolves with the raw reply, or '' if closed without one. */
function once(port: number, path = '/health', ms = 5000, close = false): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`));
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.on('end', () => socket.end());
  });
}

async function until(pred: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

t.test('connections past max_connections get 503 with Retry-After; the server serves again after they go', async (t) => {
  const MAX = 4;
  const sb = makeSandbox({ server: { http: { max_connections: MAX, headers_timeout_ms: 5000, request_timeout_ms: 10_000 } } });
  t.teardown(sb.cleanup);
  const server: HttpServerProcess = await startHttpServer(['--config', sb.configPath]);
  t.teardown(() => server.stop());
  const port = Number(new URL(server.url).port);

  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < MAX; i++) held.push(await holder(port));

  const past = await Promise.all(Array.from({ length: 3 }, () => once(port)));
  for (const reply of past) {
    t.match(reply, /^HTTP\/1\.1 503/, 'past the cap: 503');
    t.match(reply, /\r\nretry-after: 1\r\n/i, 'with Retry-After');
    t.match(reply, /\r\nconnection: close\r\n/i, 'and the connection is closed');
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { error: string; reason: string };
    t.same({ error: body.error, reason: body.reason }, { error: 'unavailable', reason: 'http.too_many_connections' });
  }
  const mcp = await new Promise<string>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const payload = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' } } });
    let got = '';
    socket.on('connect', () =>
      socket.write(
        `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${payload.length}\r\n\r\n${payload}`,
      ),
    );
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  });
  t.match(mcp, /^HTTP\/1\.1 503/, 'a tools/call past the cap: 503, not queued');

  // Twice the cap: silent connections fill the room for 503s, the next one is closed unread.
  const silent: net.Socket[] = [];
  t.teardown(() => silent.forEach((s) => s.destroy()));
  for (let i = 0; i < MAX; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    silent.push(s);
    await new Promise((r) => s.once('connect', r));
  }
  await new Promise((r) => setTimeout(r, 100));
  const dropped = await once(port, '/health', 3000);
  t.equal(dropped, '', 'past twice the cap a connection is closed without an answer');
  silent.forEach((s) => s.destroy());

  for (const s of held) s.destroy();
  const back = await until(async () => {
    const r = await once(port, '/health', 5000, true);
    return /^HTTP\/1\.1 200/.test(r);
  }, 5000);
  t.ok(back, 'after the connections go, the server serves again');
  const ok = await request(server.url, {
    headers: JSON_HEADERS,
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'read_file', arguments: { path: 'hello.txt' } } }),
  });
  t.equal(JSON.parse(ok.body).result.structuredContent.content, 'hello, world\n', 'and runs tool calls');
  // It keeps serving a burst as large as the cap.
  const burst = await Promise.all(Array.from({ length: MAX }, () => request(`${server.base}/health`, { method: 'GET' })));
  t.same(
    burst.map((r) => r.status),
    Array(MAX).fill(200),
    `${MAX} concurrent requests are served`,
  );
  await server.stop();
  t.match(server.stderr(), /connection cap reached/, 'the cap was logged');
});
