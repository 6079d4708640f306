import type http from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { progressTokenOf, type ConnectionInfo, type SendNotification } from '../../server/mcp-server.js';
import { dispatchModern, type ModernApp } from '../../server/modern-dispatch.js';
import { isPlainObject } from '../../server/modern-wire.js';
import type { LadderRejection, StandardHeaders } from '../era/modern-ladder.js';
import { recordLadderRefusal } from '../era/protocol-refusal.js';
import { sendJson } from './respond.js';
import { SseAnswer } from './sse-answer.js';

/** The standard headers as the ladder reads them (Node joins a repeated custom header with ", "). */
export function standardHeadersOf(req: http.IncomingMessage): StandardHeaders {
  const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(', ') : v);
  return { protocolVersion: one(req.headers['mcp-protocol-version']), method: one(req.headers['mcp-method']), name: one(req.headers['mcp-name']) };
}

/**
 * A request the ladder refused: recorded first when it names a tool call (it never reaches the
 * gate, so this is its one outcome record), then answered with the ladder's status and error.
 */
export async function answerLadderRefusal(
  app: Pick<ModernApp, 'deps'>,
  res: http.ServerResponse,
  messages: readonly JSONRPCMessage[],
  headers: StandardHeaders,
  rejection: LadderRejection,
  conn: ConnectionInfo,
  startedAt: number,
): Promise<void> {
  const requestId = await recordLadderRefusal(app.deps, conn, messages, headers, rejection, startedAt);
  const error = requestId === undefined ? rejection.error : { ...rejection.error, data: { ...(rejection.error.data ?? {}), request_id: requestId } };
  sendJson(res, rejection.status, { jsonrpc: '2.0', id: rejection.id, error });
}

/**
 * One 2026-07-28 message. A notification is accepted (202: on this stateless wire a cancellation
 * is the client closing its request). A request is dispatched; a tools/call that asks for progress
 * from a client that accepts an event stream is answered as one once it reports progress, exactly
 * as on 2025-11-25 (the notifications, then the result, whose record was written first).
 */
export async function answerModern(
  app: ModernApp,
  res: http.ServerResponse,
  message: JSONRPCMessage,
  conn: ConnectionInfo,
  acceptsEventStream: boolean,
): Promise<void> {
  if (!('method' in message) || !('id' in message) || message.id === undefined) {
    res.writeHead(202);
    res.end();
    return;
  }
  const cancel = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) cancel.abort();
  });
  const params = isPlainObject(message.params) ? message.params : undefined;
  const stream = acceptsEventStream && message.method === 'tools/call' && progressTokenOf(params) !== undefined ? new SseAnswer(res) : undefined;
  const sendNotification: SendNotification | undefined =
    stream &&
    (async (n) => {
      if (!cancel.signal.aborted) stream.send({ jsonrpc: '2.0', ...n });
    });
  const answer = await dispatchModern(app, conn, { id: message.id, method: message.method, params }, { signal: cancel.signal, sendNotification });
  if (cancel.signal.aborted) return;
  if (stream?.opened) stream.end(answer.message);
  else sendJson(res, answer.status, answer.message);
}
