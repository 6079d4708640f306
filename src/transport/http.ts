import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { App } from '../app.js';
import { createMcpServer } from '../server/mcp-server.js';
import { isLoopback } from './loopback.js';

export interface HttpServerHandle {
  readonly server: http.Server;
  readonly url: string;
  close(): Promise<void>;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

function jsonRpcError(res: http.ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });
}

/** Read the body up to the cap; past it, answer 413 and stop reading. */
function readBody(req: http.IncomingMessage, cap: number): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > cap) {
      resolve('too_large');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > cap) {
        done = true;
        resolve('too_large');
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', reject);
  });
}

export function defaultAllowedHosts(host: string, port: number): string[] {
  const hosts = new Set([`${host}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);
  if (host.includes(':')) hosts.add(`[${host}]:${port}`);
  return [...hosts];
}

/**
 * Streamable HTTP, stateless: every POST gets a fresh Server and transport, so no response can
 * reach another client and any replica can answer any request. Host and Origin are checked here
 * (DNS-rebinding defence, on by default), bodies are capped, and until API keys land only
 * loopback peers are served.
 */
export async function serveHttp(app: App): Promise<HttpServerHandle> {
  const cfg = app.deps.config.server.http;
  const logger = app.deps.logger;
  let allowedHosts = new Set(cfg.allowed_hosts);
  const allowedOrigins = new Set(cfg.allowed_origins.map((o) => new URL(o).origin));

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const host = req.headers.host ?? '';
    if (!allowedHosts.has(host.toLowerCase())) {
      sendJson(res, 403, { error: 'forbidden', reason: 'host_not_allowed', message: 'The Host header is not on the allow-list.' });
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin)) {
      sendJson(res, 403, { error: 'forbidden', reason: 'origin_not_allowed', message: 'The Origin is not on the allow-list.' });
      return;
    }
    const peer = req.socket.remoteAddress ?? '';
    if (!isLoopback(peer)) {
      sendJson(res, 403, { error: 'forbidden', reason: 'not_loopback', message: 'Only loopback clients are served until API keys are configured.' });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/health' && req.method === 'GET') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (url.pathname === '/ready' && req.method === 'GET') {
      const checks = { policy: app.deps.policy.ready, audit: app.deps.audit.writable };
      const ready = Object.values(checks).every(Boolean);
      sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks, policy_revision: app.deps.policy.revision });
      return;
    }
    if (url.pathname !== cfg.path) {
      sendJson(res, 404, { error: 'not_found' });
      return;
    }
    if (req.method !== 'POST') {
      // Stateless server: no standalone SSE stream (GET) and no session to delete (DELETE).
      sendJson(res, 405, { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed: this server is stateless; POST JSON-RPC messages.' }, id: null }, { allow: 'POST' });
      return;
    }
    const version = req.headers['mcp-protocol-version'];
    if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      jsonRpcError(res, 400, -32600, `Unsupported MCP-Protocol-Version: ${version.slice(0, 40)}`);
      return;
    }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (ctype !== 'application/json') {
      jsonRpcError(res, 415, -32600, 'Content-Type must be application/json.');
      return;
    }
    const body = await readBody(req, cfg.max_body_bytes);
    if (body === 'too_large') {
      jsonRpcError(res, 413, -32600, `Request body exceeds ${cfg.max_body_bytes} bytes.`);
      req.resume();
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      jsonRpcError(res, 400, -32700, 'Parse error: the body is not valid JSON.');
      return;
    }
    const server = createMcpServer(app.deps, { transport: 'http', clientIp: peer }, app.catalogue);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, parsed);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      logger.error('http handler failed', { error: err.message });
      if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal error');
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 120_000;
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  if (!cfg.allowed_hosts.length) allowedHosts = new Set(defaultAllowedHosts(cfg.host, port));
  const shownHost = cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host;
  const url = `http://${shownHost}:${port}${cfg.path}`;
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
