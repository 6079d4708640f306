import crypto from 'node:crypto';
import { ErrorCode, McpError, type JSONRPCMessage, type JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import type { ClientCapabilities, ClientInputRequest } from '../../core/call.js';
import { checkedAnswer, wireRequest, type ClientAnswer } from '../../server/client-channel.js';

interface Pending {
  readonly owner: string;
  readonly method: ClientInputRequest['method'];
  settle(answer: { ok: true; result: unknown } | { ok: false; error: Error }): void;
}

export interface PendingAsksLimits {
  /** Asks waiting in this process, all clients together. */
  readonly max: number;
  /** Asks waiting for one owner (one session). */
  readonly perOwner: number;
}

/**
 * Server-to-client requests sent on a call's SSE answer and waiting for the client to POST its
 * response (2025-11-25 §transports: responses arrive as new POSTs, not on the stream). Kept in
 * this process: the response must reach the process that asked (sticky routing on Mcp-Session-Id).
 * Ids are 128 random bits, and an answer counts only from the owner (principal and session) that
 * was asked: a client that learns another's id still cannot answer for it.
 */
export class PendingAsks {
  private readonly pending = new Map<string, Pending>();
  private readonly perOwner = new Map<string, number>();

  constructor(private readonly limits: PendingAsksLimits) {}

  get size(): number {
    return this.pending.size;
  }

  /**
   * Send `request` with `send` and wait for the owner's answer. Rejects with McpError on a client
   * error or a malformed answer, McpError(RequestTimeout) after `timeoutMs`, the signal's reason
   * when it aborts, and at once when the registry is full.
   */
  ask(
    owner: string,
    caps: ClientCapabilities,
    request: ClientInputRequest,
    send: (message: JSONRPCRequest) => void,
    opts: { readonly signal: AbortSignal; readonly timeoutMs: number },
  ): Promise<ClientAnswer> {
    let wire: ReturnType<typeof wireRequest>;
    try {
      wire = wireRequest(caps, request);
    } catch (err) {
      // A promise that rejects, never a throw: callers may not be inside a try.
      return Promise.reject(err as Error);
    }
    if (opts.signal.aborted) return Promise.reject(opts.signal.reason as Error);
    const mine = this.perOwner.get(owner) ?? 0;
    if (this.pending.size >= this.limits.max || mine >= this.limits.perOwner) {
      return Promise.reject(new McpError(ErrorCode.InternalError, 'Too many requests to the client are waiting for an answer'));
    }
    const id = `bulwark-ask-${crypto.randomBytes(16).toString('base64url')}`;
    return new Promise<ClientAnswer>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        opts.signal.removeEventListener('abort', onAbort);
        this.pending.delete(id);
        const n = (this.perOwner.get(owner) ?? 1) - 1;
        if (n > 0) this.perOwner.set(owner, n);
        else this.perOwner.delete(owner);
      };
      const onAbort = (): void => {
        done();
        reject(opts.signal.reason as Error);
      };
      const timer = setTimeout(() => {
        done();
        reject(new McpError(ErrorCode.RequestTimeout, 'Request timed out', { timeout: opts.timeoutMs }));
      }, opts.timeoutMs);
      opts.signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        owner,
        method: request.method,
        settle: (answer) => {
          done();
          if (!answer.ok) reject(answer.error);
          else {
            try {
              resolve(checkedAnswer(request.method, answer.result));
            } catch (err) {
              reject(err as Error);
            }
          }
        },
      });
      this.perOwner.set(owner, mine + 1);
      try {
        send({ jsonrpc: '2.0', id, ...wire });
      } catch (err) {
        done();
        reject(err as Error);
      }
    });
  }

  /**
   * A JSON-RPC response POSTed by `owner`: true when it answered one of that owner's waiting asks.
   * An unknown id, or one asked of another owner, changes nothing (that ask keeps waiting).
   */
  answer(owner: string, message: JSONRPCMessage): boolean {
    if (!('id' in message) || typeof message.id !== 'string') return false;
    const p = this.pending.get(message.id);
    if (!p || !crypto.timingSafeEqual(digest(p.owner), digest(owner))) return false;
    if ('result' in message) p.settle({ ok: true, result: message.result });
    else if ('error' in message) p.settle({ ok: false, error: new McpError(message.error.code, message.error.message, message.error.data) });
    else return false;
    return true;
  }
}

function digest(s: string): Buffer {
  return crypto.createHash('sha256').update(s).digest();
}
