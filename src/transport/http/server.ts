import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, isInitializeRequest, JSONRPCMessageSchema, SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage, type JSONRPCRequest, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { App } from '../../app.js';
import { callTool, createMcpServer, type ConnectionInfo } from '../../server/mcp-server.js';
import { isLoopback } from '../../analysis/ip-ranges.js';
import crypto from 'node:crypto';
import type { AuthResult } from '../../auth/runtime.js';
import type { RefusalAggregate } from '../../auth/refusal-budget.js';
import { recordAggregatedRefusals, recordRefusedAuthentication } from '../../gate/record.js';
import { deny } from '../../core/denial.js';
import type { Principal } from '../../core/call.js';

export interface HttpServerHandle {
  readonly server: http.Server;
  readonly url: string;
  /** Stop accepting, let in-flight requests finish up to `deadlineMs`, then drop what is left. */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * Roles that may read /metrics (tool names, refusal reasons, pool state): `metrics` for a scraper's
 * key (it grants no tool), or `admin`. Any other principal gets 403.
 */
export const METRICS_ROLES: readonly string[] = ['metrics', 'admin'];

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

function jsonRpcError(res: http.ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });
}

/**
 * Read the body up to the cap; past it, answer 413 and stop reading. A request whose connection
 * goes first (the client left, or request_timeout_ms cut a body that trickled in) is 'aborted'.
 */
function readBody(req: http.IncomingMessage, cap: number): Promise<Buffer | 'too_large' | 'aborted'> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > cap) {
      resolve('too_large');
      return;
    }
    if (req.destroyed) {
      // Gone while the request was being authenticated.
      resolve('aborted');
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
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on('close', () => {
      if (done) return;
      done = true;
      resolve('aborted');
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') resolve('aborted');
      else reject(err);
    });
  });
}

/** JSON text must be UTF-8 (RFC 8259 §8.1): bytes that are not are refused, not silently replaced. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The SDK's cap on a JSON-RPC batch (`MAX_BATCH_SIZE` in its Streamable HTTP transport). */
const MAX_BATCH = 100;

/** Of a message the schema accepted (each of its shapes is strict): a request has both. */
function isRequest(m: JSONRPCMessage): m is JSONRPCRequest {
  return 'method' in m && 'id' in m;
}

/**
 * The SDK transport for one stateless POST answered with JSON: what the SDK's
 * StreamableHTTPServerTransport does without sessions and with `enableJsonResponse`, minus its
 * conversion to web Request/Response objects and back and its failing schema probes on every
 * message, which together cost more CPU than the gated call. Like its Server, it lives for one
 * HTTP request, so a response can only reach the request that asked for it.
 */
class JsonExchangeTransport implements Transport {
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: Transport['onmessage'];
  private readonly answers = new Map<RequestId, JSONRPCMessage | undefined>();
  private settle: ((answers: JSONRPCMessage[] | undefined) => void) | undefined;
  private closed = false;

  async start(): Promise<void> {}

  /** Deliver the messages; resolves with one response per distinct request id, or undefined if closed first. */
  exchange(messages: readonly JSONRPCMessage[]): Promise<JSONRPCMessage[] | undefined> {
    return new Promise((resolve) => {
      this.settle = resolve;
      for (const m of messages) if (isRequest(m)) this.answers.set(m.id, undefined);
      for (const m of messages) this.onmessage?.(m);
      if (this.closed) resolve(undefined);
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    // Notifications and server-to-client requests have no stream to travel on in a JSON
    // response: dropped, as the SDK drops them in this mode.
    if (!('id' in message) || !('result' in message || 'error' in message) || message.id === undefined) return;
    if (!this.answers.has(message.id) || this.answers.get(message.id) !== undefined) return;
    this.answers.set(message.id, message);
    const all = [...this.answers.values()];
    if (all.every((a) => a !== undefined)) this.settle?.(all as JSONRPCMessage[]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.settle?.(undefined);
    this.onclose?.();
  }
}

/** The JSON-RPC messages of a POST body, or the SDK's 400 answer for a body that is not one. */
function jsonRpcMessages(parsed: unknown): JSONRPCMessage[] | { status: 400; code: number; message: string } {
  if (Array.isArray(parsed) && parsed.length > MAX_BATCH) return { status: 400, code: -32600, message: `Invalid Request: Batch must not exceed ${MAX_BATCH} messages` };
  const messages: JSONRPCMessage[] = [];
  for (const raw of Array.isArray(parsed) ? parsed : [parsed]) {
    const m = JSONRPCMessageSchema.safeParse(raw);
    if (!m.success) return { status: 400, code: -32700, message: 'Parse error: Invalid JSON-RPC message' };
    messages.push(m.data);
  }
  // The method test first: the schema probe alone costs about as much as the rest of the call when it fails.
  if (messages.length > 1 && messages.some((m) => 'method' in m && m.method === 'initialize' && isInitializeRequest(m))) {
    return { status: 400, code: -32600, message: 'Invalid Request: Only one initialization request is allowed' };
  }
  return messages;
}

/**
 * A body that is one tools/call and asks for nothing the SDK's Protocol treats specially (task
 * creation): the Protocol would hand it straight to `callTool`, so the transport does, without
 * building a Server whose dispatch probes each message against the response schemas first (a
 * failing schema probe costs about 0.1 ms here). Anything else goes through a per-request Server.
 */
function loneToolCall(messages: readonly JSONRPCMessage[]): JSONRPCRequest | undefined {
  const m = messages.length === 1 ? messages[0] : undefined;
  if (!m || !isRequest(m) || m.method !== 'tools/call') return undefined;
  if (m.params && 'task' in m.params) return undefined;
  return m;
}

/** Answer a lone tools/call as the SDK's Protocol would: the same result and error shapes. */
async function answerToolCall(app: App, res: http.ServerResponse, call: JSONRPCRequest, conn: ConnectionInfo): Promise<void> {
  // A client that goes away cancels its call (the gate stops the worker), as closing a Server does.
  const cancel = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) cancel.abort();
  });
  let answer: JSONRPCMessage;
  try {
    answer = { result: await callTool(app.deps, conn, call.params, cancel.signal), jsonrpc: '2.0', id: call.id } as JSONRPCMessage;
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown; data?: unknown };
    const code = typeof e.code === 'number' && Number.isSafeInteger(e.code) ? e.code : ErrorCode.InternalError;
    answer = { jsonrpc: '2.0', id: call.id, error: { code, message: typeof e.message === 'string' ? e.message : 'Internal error', ...(e.data !== undefined ? { data: e.data } : {}) } };
  }
  // Nobody is left to answer (the Protocol, too, drops the response of a cancelled request).
  if (cancel.signal.aborted) return;
  sendJson(res, 200, answer);
}

/** Often enough that a timeout fires within a quarter of its value (at most 0.5 s) of being due. */
export function checkingIntervalMs(headersTimeoutMs: number): number {
  return Math.max(50, Math.min(500, Math.floor(headersTimeoutMs / 4)));
}

export function defaultAllowedHosts(host: string, port: number): string[] {
  const hosts = new Set([`${host}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);
  if (host.includes(':')) hosts.add(`[${host}]:${port}`);
  return [...hosts];
}

/**
 * Streamable HTTP, stateless: every POST gets a fresh Server and transport, so no response can
 * reach another client and any replica can answer any request. Host and Origin are checked here
 * (DNS-rebinding defence, on by default), bodies are capped. With `auth.http: loopback-only`
 * only loopback peers are served; with `api_key` every /mcp and /metrics request needs a bearer
 * (checked before the body is read) and any peer may connect.
 */
export async function serveHttp(app: App): Promise<HttpServerHandle> {
  const cfg = app.deps.config.server.http;
  const logger = app.deps.logger;
  const auth = app.deps.auth;
  const bearerRequired = app.deps.config.auth.http === 'api_key';
  if (bearerRequired && !auth) throw new Error('auth.http is api_key but no authenticator was built');
  let allowedHosts = new Set(cfg.allowed_hosts);
  const allowedOrigins = new Set(cfg.allowed_origins.map((o) => new URL(o).origin));
  let inflight = 0;
  let draining = false;
  let drained: (() => void) | undefined;

  const resourceOf = (req: http.IncomingMessage): string => app.deps.config.auth.resource ?? `http://${req.headers.host ?? 'localhost'}${cfg.path}`;
  const metadataUrlOf = (req: http.IncomingMessage): string => {
    const r = new URL(resourceOf(req));
    // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
    return `${r.origin}/.well-known/oauth-protected-resource${r.pathname === '/' ? '' : r.pathname}`;
  };

  /**
   * Bearer check for a protected endpoint; answers 401/429/503 itself and returns undefined on
   * refusal. `roles`: the principal must also hold one of them (403 otherwise).
   */
  const requireBearer = async (req: http.IncomingMessage, res: http.ServerResponse, peer: string, requestId: string, roles?: readonly string[]): Promise<Principal | undefined> => {
    const started = performance.now();
    const r: AuthResult = await auth!.authenticate(req.headers.authorization, peer);
    app.deps.prom?.authOutcomes.inc({ outcome: r.ok ? 'ok' : r.status === 429 ? 'locked' : 'refused', reason: r.ok ? r.principal.auth : r.reason });
    if (r.ok) {
      logger.debug('authenticated', { request_id: requestId, client_ip: peer, principal: r.principal.id, auth: r.principal.auth, key_id: r.keyId ?? null });
      if (roles !== undefined && !roles.some((x) => r.principal.roles.includes(x))) {
        sendJson(res, 403, { error: 'forbidden', reason: 'auth.role_required', message: `This endpoint requires one of the roles ${roles.join(', ')}.` });
        return undefined;
      }
      return r.principal;
    }
    // Past the address's budget a refusal is counted into one record per address and interval
    // instead of a record (an fsync) each; lockout 429s are always counted, never recorded singly.
    const ownRecord = auth!.refusals.admit(peer, r.reason, r.status !== 429);
    if (ownRecord) logger.warn('authentication refused', { request_id: requestId, client_ip: peer, reason: r.reason, key_id: r.keyId ?? null, status: r.status });
    if (r.status === 503) {
      // The key store has not been readable for auth.max_stale_s, or argon2 is saturated: fail closed, and say so.
      if (ownRecord) await auditRefusal(requestId, peer, r.reason, r.keyId, performance.now() - started, 'unavailable');
      const message = r.reason === 'auth.busy' ? 'Too many key verifications are running; retry shortly.' : 'The API key store cannot be read; keys are refused until it can.';
      sendJson(res, 503, { error: 'unavailable', reason: r.reason, message }, { 'retry-after': String(r.retryAfterS ?? 1) });
      return undefined;
    }
    if (r.status === 429) {
      app.deps.prom?.rateLimited.inc({ scope: 'auth_lockout' });
      sendJson(res, 429, { error: 'too_many_requests', reason: r.reason, retry_after_s: r.retryAfterS }, { 'retry-after': String(r.retryAfterS ?? 1) });
      return undefined;
    }
    if (ownRecord) await auditRefusal(requestId, peer, r.reason, r.keyId, performance.now() - started);
    const challenge = `Bearer resource_metadata="${metadataUrlOf(req)}"${req.headers.authorization ? ', error="invalid_token"' : ''}`;
    sendJson(res, 401, { error: 'unauthorized', reason: r.reason, message: 'A valid bearer token (API key or access token) is required.' }, { 'www-authenticate': challenge });
    return undefined;
  };

  const auditRefusal = async (requestId: string, peer: string, reason: string, keyId: string | undefined, durationMs: number, code: 'unauthenticated' | 'unavailable' = 'unauthenticated'): Promise<void> => {
    try {
      await recordRefusedAuthentication({ requestId, clientIp: peer, reason, keyId, durationMs, code }, app.deps);
    } catch (err) {
      logger.error('could not audit a refused authentication', { request_id: requestId, error: (err as Error).message });
    }
  };

  /** One record per address and interval for the refusals past its budget (count, first/last time, reasons). */
  const auditAggregates = async (aggs: RefusalAggregate[]): Promise<void> => {
    for (const a of aggs) {
      try {
        await recordAggregatedRefusals({ requestId: crypto.randomUUID(), ...a }, app.deps);
      } catch (err) {
        logger.error('could not audit aggregated refusals', { client_ip: a.address, count: a.count, error: (err as Error).message });
      }
    }
  };
  if (bearerRequired) auth!.onAggregates(auditAggregates);

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
    if (!bearerRequired && !isLoopback(peer)) {
      sendJson(res, 403, { error: 'forbidden', reason: 'not_loopback', message: 'Only loopback clients are served unless auth.http is api_key.' });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const requestId = crypto.randomUUID();
    if (url.pathname.startsWith('/.well-known/oauth-protected-resource') && req.method === 'GET') {
      const oauth = app.deps.config.auth.oauth;
      sendJson(res, 200, {
        resource: resourceOf(req),
        authorization_servers: oauth ? [oauth.issuer] : [],
        bearer_methods_supported: ['header'],
        ...(oauth?.scopes_supported ? { scopes_supported: [...oauth.scopes_supported] } : {}),
        resource_name: 'Bulwark MCP server',
      });
      return;
    }
    if (url.pathname === '/metrics' && req.method === 'GET') {
      if (!app.deps.prom) {
        sendJson(res, 404, { error: 'not_found' });
        return;
      }
      if (bearerRequired && !(await requireBearer(req, res, peer, requestId, METRICS_ROLES))) return;
      const text = await app.deps.prom.registry.metrics();
      res.writeHead(200, { 'content-type': app.deps.prom.registry.contentType, 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    if (url.pathname === '/health' && req.method === 'GET') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (url.pathname === '/ready' && req.method === 'GET') {
      const { ready, checks } = await app.readiness();
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
    let principal: Principal | undefined;
    if (bearerRequired) {
      // Before the body is read: an unauthenticated client costs no parsing.
      principal = await requireBearer(req, res, peer, requestId);
      if (!principal) {
        req.resume();
        return;
      }
    }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (ctype !== 'application/json') {
      jsonRpcError(res, 415, -32600, 'Content-Type must be application/json.');
      return;
    }
    const body = await readBody(req, cfg.max_body_bytes);
    if (body === 'aborted') return;
    if (body === 'too_large') {
      jsonRpcError(res, 413, -32600, `Request body exceeds ${cfg.max_body_bytes} bytes.`);
      req.resume();
      return;
    }
    let text: string;
    try {
      text = utf8.decode(body);
    } catch {
      jsonRpcError(res, 400, -32700, 'Parse error: the body is not valid UTF-8.');
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      jsonRpcError(res, 400, -32700, 'Parse error: the body is not valid JSON.');
      return;
    }
    // Streamable HTTP (2025-11-25 §transports): the client must accept both a JSON answer and an SSE stream.
    const accept = req.headers.accept ?? '';
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      jsonRpcError(res, 406, -32000, 'Not Acceptable: Client must accept both application/json and text/event-stream');
      return;
    }
    const messages = jsonRpcMessages(parsed);
    if (!Array.isArray(messages)) {
      jsonRpcError(res, messages.status, messages.code, messages.message);
      return;
    }
    // This request's connection info: the principal verified above goes to the calls it makes.
    const conn: ConnectionInfo = { transport: 'http', clientIp: peer, principal };
    const direct = loneToolCall(messages);
    if (direct) {
      await answerToolCall(app, res, direct, conn);
      return;
    }
    // A Server and a transport for this request alone.
    const server = createMcpServer(app.deps, conn, app.catalogue);
    const transport = new JsonExchangeTransport();
    // A client that goes away cancels its calls: closing aborts the handlers' signals. (After a
    // complete answer nothing is left to abort, and the Server is simply dropped.)
    res.on('close', () => {
      if (!res.writableFinished) void server.close();
    });
    await server.connect(transport);
    if (!messages.some(isRequest)) {
      // Only notifications or responses: nothing to answer.
      void transport.exchange(messages);
      res.writeHead(202);
      res.end();
      return;
    }
    const answers = await transport.exchange(messages);
    if (!answers) return;
    sendJson(res, 200, answers.length === 1 ? answers[0] : answers);
  };

  // Connections past max_connections are still read (so the client gets an answer rather than a
  // reset) but every request on them is answered 503 and the connection closed. Past twice the
  // cap the kernel's connection is closed unread: a flood must not cost a parser each.
  let connections = 0;
  let saturated = false;
  const overCap = new WeakSet<Socket>();

  const server = http.createServer({
    headersTimeout: cfg.headers_timeout_ms,
    requestTimeout: cfg.request_timeout_ms,
    // Node checks both timeouts on this interval (30 s by default), so they fired up to 30 s late.
    connectionsCheckingInterval: checkingIntervalMs(cfg.headers_timeout_ms),
    keepAliveTimeout: 5_000,
  }, (req, res) => {
    if (overCap.has(req.socket)) {
      req.resume();
      sendJson(res, 503, { error: 'unavailable', reason: 'http.too_many_connections', message: `The server has ${cfg.max_connections} connections open; retry shortly.` }, { connection: 'close', 'retry-after': '1' });
      return;
    }
    if (draining) {
      sendJson(res, 503, { error: 'unavailable', reason: 'shutting_down' }, { connection: 'close', 'retry-after': '1' });
      return;
    }
    inflight += 1;
    res.on('close', () => {
      inflight -= 1;
      if (inflight === 0) drained?.();
    });
    handle(req, res).catch((err: Error) => {
      logger.error('http handler failed', { error: err.message });
      if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal error');
      else res.destroy();
    });
  });
  server.maxConnections = cfg.max_connections * 2;
  server.on('connection', (socket: Socket) => {
    connections += 1;
    app.deps.prom?.activeConnections.inc();
    if (connections > cfg.max_connections) {
      overCap.add(socket);
      if (!saturated) {
        saturated = true;
        logger.warn('connection cap reached; answering 503 to connections past it', { max_connections: cfg.max_connections });
      }
    }
    socket.once('close', () => {
      connections -= 1;
      app.deps.prom?.activeConnections.dec();
      if (saturated && connections <= cfg.max_connections / 2) {
        saturated = false;
        logger.info('connections back under the cap', { connections, max_connections: cfg.max_connections });
      }
    });
  });

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
    close: async (deadlineMs = 0) => {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inflight > 0 && deadlineMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadlineMs);
          drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (inflight > 0) logger.warn('shutdown deadline passed; dropping in-flight requests', { inflight });
      }
      server.closeAllConnections();
      await closed;
    },
  };
}
