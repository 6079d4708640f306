import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { ConnectionInfo } from '../../server/mcp-server.js';
import { dispatchModern, type ModernApp } from '../../server/modern-dispatch.js';
import { isPlainObject } from '../../server/modern-wire.js';
import { classify } from './modern-ladder.js';
import { recordLadderRefusal } from './protocol-refusal.js';

export interface StdioEras {
  /**
   * Take the message if it is the modern wire's (or refused by the ladder): true when it was
   * handled here and must not reach the 2025-11-25 Server.
   */
  intercept(message: JSONRPCMessage): boolean;
}

const keyOf = (id: RequestId): string => `${typeof id}:${String(id)}`;

/**
 * The era of each stdio message, chosen per message as on HTTP: a request carrying the 2026-07-28
 * envelope claim is served here without any initialize (there are no headers on stdio, so the
 * ladder's header rungs do not apply); everything else goes on to the SDK Server as before.
 * Answers and progress go out through `send`, the transport's own, so stdout stays protocol only.
 */
export function stdioEras(app: ModernApp, send: (message: JSONRPCMessage) => Promise<void>): StdioEras {
  const conn: ConnectionInfo = { transport: 'stdio' };
  const inflight = new Map<string, AbortController>();

  const out = (message: JSONRPCMessage): void => {
    void send(message).catch((err: Error) => app.deps.logger.warn('could not write a stdio answer', { error: err.message }));
  };

  return {
    intercept(message) {
      if ('method' in message && message.method === 'notifications/cancelled' && !('id' in message)) {
        // Whichever era the notification speaks, it may cancel one of ours or one of the Server's:
        // both see it (an id neither has is ignored by both).
        const id = isPlainObject(message.params) ? message.params.requestId : undefined;
        if (typeof id === 'string' || typeof id === 'number') inflight.get(keyOf(id))?.abort();
        return false;
      }
      const startedAt = performance.now();
      const verdict = classify([message], false, undefined);
      if (verdict.kind === 'legacy') return false;
      if (verdict.kind === 'reject') {
        void recordLadderRefusal(app.deps, conn, [message], undefined, verdict, startedAt).then((requestId) => {
          const error = requestId === undefined ? verdict.error : { ...verdict.error, data: { ...(verdict.error.data ?? {}), request_id: requestId } };
          if (verdict.id !== null) out({ jsonrpc: '2.0', id: verdict.id, error });
        });
        return true;
      }
      if (!verdict.request || !('method' in message) || !('id' in message) || message.id === undefined) return true;
      const id = message.id;
      const cancel = new AbortController();
      inflight.set(keyOf(id), cancel);
      const params = isPlainObject(message.params) ? message.params : undefined;
      void dispatchModern(
        app,
        conn,
        { id, method: message.method, params },
        {
          signal: cancel.signal,
          sendNotification: async (n) => {
            if (!cancel.signal.aborted) await send({ jsonrpc: '2.0', ...n });
          },
        },
      ).then((answer) => {
        inflight.delete(keyOf(id));
        // A cancelled request is not answered (as the SDK does); its record is the gate's.
        if (!cancel.signal.aborted) out(answer.message);
      });
      return true;
    },
  };
}
