import type http from 'node:http';
import { ErrorCode, type JSONRPCMessage, type JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import type { Principal } from '../../core/call.js';
import { callTool, createMcpServer, progressTokenOf, visibleTools, type ConnectionInfo, type SendNotification } from '../../server/mcp-server.js';
import type { ServedApp } from '../served-app.js';
import { parseJsonBody, readBody } from './body.js';
import { clientAsksFor, type HttpClientAsks } from './client-asks.js';
import { classify } from '../era/modern-ladder.js';
import { JsonExchangeTransport } from './json-exchange-transport.js';
import { isRequest, jsonRpcMessages, loneToolCall, loneToolsList } from './json-rpc-messages.js';
import { answerLadderRefusal, answerModern, standardHeadersOf } from './modern-exchange.js';
import { sendJson, sendJsonRpcError } from './respond.js';
import type { HttpSession } from './session-token.js';
import { SseAnswer } from './sse-answer.js';

export interface ExchangeRequest {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly peer: string;
  /** With auth.http: api_key, the bearer check; it answers a refusal itself. */
  readonly authenticate?: (() => Promise<Principal | undefined>) | undefined;
}

/**
 * One POST to the MCP path: the protocol checks, the bearer (before the body is read), the body
 * under its cap, then the JSON-RPC messages to the gate. Stateless: a lone tools/call goes
 * straight to `callTool`, a lone tools/list to `visibleTools` (what the Server's handler calls);
 * anything else to a Server and transport built for this request alone.
 */
export async function serveExchange(
  app: Pick<ServedApp, 'deps' | 'catalogue' | 'extraMethods'>,
  maxBodyBytes: number,
  { req, res, peer, authenticate }: ExchangeRequest,
): Promise<void> {
  if (req.method !== 'POST') {
    // Stateless server: no standalone SSE stream (GET) and no session to delete (DELETE).
    sendJsonRpcError(res, 405, -32000, 'Method not allowed: this server is stateless; POST JSON-RPC messages.', { allow: 'POST' });
    return;
  }
  const startedAt = performance.now();
  let principal: Principal | undefined;
  if (authenticate) {
    // Before the body is read: an unauthenticated client costs no parsing.
    principal = await authenticate();
    if (!principal) {
      req.resume();
      return;
    }
  }
  // 2025-11-25 sessions (client-asks.ts): an id this server did not issue to this principal, or
  // that expired, is an unknown session, answered 404 so the client initializes again.
  const asks = clientAsksFor(app.deps);
  const presented = asks.presented(req, principal);
  if (presented.kind === 'unknown') {
    req.resume();
    sendJsonRpcError(res, 404, -32001, 'Session not found');
    return;
  }
  const session = presented.kind === 'session' ? presented.session : undefined;
  const ctype = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (ctype !== 'application/json') {
    sendJsonRpcError(res, 415, -32600, 'Content-Type must be application/json.');
    return;
  }
  const body = await readBody(req, maxBodyBytes);
  if (body === 'aborted') return;
  if (body === 'too_large') {
    sendJsonRpcError(res, 413, -32600, `Request body exceeds ${maxBodyBytes} bytes.`);
    req.resume();
    return;
  }
  const parsed = parseJsonBody(body);
  if ('error' in parsed) {
    sendJsonRpcError(res, 400, -32700, parsed.error);
    return;
  }
  // Streamable HTTP (2025-11-25 §transports): the client must accept both a JSON answer and an SSE stream.
  const accept = req.headers.accept ?? '';
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
    sendJsonRpcError(res, 406, -32000, 'Not Acceptable: Client must accept both application/json and text/event-stream');
    return;
  }
  const messages = jsonRpcMessages(parsed.value);
  if (!Array.isArray(messages)) {
    sendJsonRpcError(res, messages.status, messages.code, messages.message);
    return;
  }
  // The era and the 2026-07-28 ladder (era/modern-ladder.ts, which also refuses a 2025-11-25 request
  // naming an unknown version): after admission and the bearer, before anything routes on these
  // headers. A refused request is refused, never served under the other revision.
  const headers = standardHeadersOf(req);
  const era = classify(messages, Array.isArray(parsed.value), headers);
  if (era.kind !== 'legacy') {
    const modernConn: ConnectionInfo = { transport: 'http', clientIp: peer, principal };
    if (era.kind === 'reject') await answerLadderRefusal(app, res, messages, headers, era, modernConn, startedAt);
    else await answerModern(app, res, messages[0] as JSONRPCMessage, modernConn, true);
    return;
  }
  // A session's responses to asks its calls sent (only ever to its own asks).
  const routed = session && asks.route(messages, session);
  if (routed === 'accepted') {
    res.writeHead(202);
    res.end();
    return;
  }
  if (routed === 'unknown') {
    sendJsonRpcError(res, 400, -32600, 'No request of this session is waiting for that response id.');
    return;
  }
  // This request's connection info: the principal verified above goes to the calls it makes.
  const conn: ConnectionInfo = { transport: 'http', clientIp: peer, principal };
  const direct = loneToolCall(messages);
  const listing = direct ? undefined : loneToolsList(messages);
  if (direct) await answerToolCall(app, res, direct, conn, accept.includes('text/event-stream'), session && { asks, session });
  else if (listing) await answerToolsList(app, res, listing, conn);
  else await exchangeWithServer(app, res, messages, session ? { ...conn, client: asks.channel(session, undefined) } : conn, asks);
}

/**
 * Answer a lone tools/call as the SDK's Protocol would: the same result and error shapes. A call
 * that asks for progress (`_meta.progressToken`) from a client that accepts an event stream is
 * answered as one once it reports progress: the notifications, then the result. The gate has
 * recorded the outcome before `callTool` returns, so the result never precedes its record.
 */
async function answerToolCall(
  app: Pick<ServedApp, 'deps'>,
  res: http.ServerResponse,
  call: JSONRPCRequest,
  conn: ConnectionInfo,
  acceptsEventStream: boolean,
  /** A 2025-11-25 session's call: answered as an event stream, which can carry its asks. */
  asking?: { readonly asks: HttpClientAsks; readonly session: HttpSession },
): Promise<void> {
  // A client that goes away cancels its call (the gate stops the worker), as closing a Server does.
  const cancel = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) cancel.abort();
  });
  const stream = acceptsEventStream && (progressTokenOf(call.params) !== undefined || asking) ? new SseAnswer(res) : undefined;
  const callConn = asking ? { ...conn, client: asking.asks.channel(asking.session, stream, cancel.signal) } : conn;
  const notify: SendNotification | undefined =
    stream &&
    (async (n) => {
      if (!cancel.signal.aborted) stream.send({ jsonrpc: '2.0', ...n });
    });
  let answer: JSONRPCMessage;
  try {
    answer = { result: await callTool(app.deps, callConn, call.params, cancel.signal, notify), jsonrpc: '2.0', id: call.id };
  } catch (err) {
    answer = errorAnswer(call.id, err);
  }
  // Nobody is left to answer (the Protocol, too, drops the response of a cancelled request).
  if (cancel.signal.aborted) return;
  if (stream?.opened) stream.end(answer);
  else sendJson(res, 200, answer);
}

/** A lone tools/list, answered as the Server's handler would (visibleTools) and its Protocol (an error keeps the id). */
async function answerToolsList(
  app: Pick<ServedApp, 'deps' | 'catalogue'>,
  res: http.ServerResponse,
  list: JSONRPCRequest,
  conn: ConnectionInfo,
): Promise<void> {
  let answer: JSONRPCMessage;
  try {
    answer = { jsonrpc: '2.0', id: list.id, result: { tools: await visibleTools(app.deps, conn, app.catalogue) } };
  } catch (err) {
    answer = errorAnswer(list.id, err);
  }
  sendJson(res, 200, answer);
}

/** A handler's error as the SDK's Protocol answers it: its JSON-RPC code if it has one, else an internal error. */
function errorAnswer(id: JSONRPCRequest['id'], err: unknown): JSONRPCMessage {
  const e = err as { code?: unknown; message?: unknown; data?: unknown };
  const code = typeof e.code === 'number' && Number.isSafeInteger(e.code) ? e.code : ErrorCode.InternalError;
  return {
    jsonrpc: '2.0',
    id,
    error: { code, message: typeof e.message === 'string' ? e.message : 'Internal error', ...(e.data !== undefined ? { data: e.data } : {}) },
  };
}

/** Everything but a lone tools/call or tools/list: a Server and a transport for this request alone. */
async function exchangeWithServer(
  app: Pick<ServedApp, 'deps' | 'catalogue' | 'extraMethods'>,
  res: http.ServerResponse,
  messages: JSONRPCMessage[],
  conn: ConnectionInfo,
  asks: HttpClientAsks,
): Promise<void> {
  const server = createMcpServer(app.deps, conn, app.catalogue, app.extraMethods);
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
  sendJson(res, 200, answers.length === 1 ? answers[0] : answers, asks.sessionHeaders(messages, answers, conn.principal));
}
