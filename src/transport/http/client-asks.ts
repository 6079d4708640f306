import type http from 'node:http';
import { isInitializeRequest, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { ClientChannel, Principal } from '../../core/call.js';
import { Sealer } from '../../core/seal.js';
import type { GateDeps } from '../../gate/deps.js';
import { canBeAsked, channelOf, declaredCapabilities } from '../../server/client-channel.js';
import { PendingAsks, type PendingAsksLimits } from './pending-asks.js';
import { issueSession, openSession, type HttpSession } from './session-token.js';
import type { SseAnswer } from './sse-answer.js';

export const SESSION_HEADER = 'mcp-session-id';

/** What a request presented: no session id, a session we issued to this principal, or an unknown one (404). */
export type PresentedSession = { readonly kind: 'none' } | { readonly kind: 'session'; readonly session: HttpSession } | { readonly kind: 'unknown' };

export interface ClientAsksOptions {
  readonly sealer: Sealer;
  /** How long a session id stays valid after initialize. */
  readonly sessionTtlMs: number;
  readonly limits: PendingAsksLimits;
}

/**
 * 2025-11-25 server-to-client requests over stateless Streamable HTTP. initialize from a client
 * that declared something it can be asked (elicitation, sampling, roots) gets an `Mcp-Session-Id`
 * that is a sealed token (session-token.ts); its later requests present it, so each knows what the
 * client declared. A tools/call of such a session is answered as an SSE stream that can carry an
 * ask; the client POSTs its response, which `route` hands to the waiting ask. Clients that declare
 * nothing get no session id and stay fully stateless.
 */
export class HttpClientAsks {
  private readonly pending: PendingAsks;

  constructor(private readonly options: ClientAsksOptions) {
    this.pending = new PendingAsks(options.limits);
  }

  /** Asks waiting in this process. */
  get waiting(): number {
    return this.pending.size;
  }

  /** The session a request presents (§transports/session-management: an unknown one is answered 404). */
  presented(req: http.IncomingMessage, principal: Principal | undefined): PresentedSession {
    const raw = req.headers[SESSION_HEADER];
    if (raw === undefined) return { kind: 'none' };
    if (typeof raw !== 'string') return { kind: 'unknown' };
    const session = openSession(this.options.sealer, raw, principal, this.options.sessionTtlMs);
    return session ? { kind: 'session', session } : { kind: 'unknown' };
  }

  /**
   * The headers of the answer to a successful initialize: a session id when the client declared
   * something it can be asked, none otherwise (nothing would use it).
   */
  sessionHeaders(messages: readonly JSONRPCMessage[], answers: readonly JSONRPCMessage[], principal: Principal | undefined): Record<string, string> {
    const init = messages.length === 1 && messages[0] && 'method' in messages[0] && messages[0].method === 'initialize' ? messages[0] : undefined;
    const answer = answers.length === 1 ? answers[0] : undefined;
    if (!init || !isInitializeRequest(init) || !answer || !('result' in answer)) return {};
    const capabilities = declaredCapabilities(init.params.capabilities);
    if (!canBeAsked(capabilities)) return {};
    const version = typeof answer.result.protocolVersion === 'string' ? answer.result.protocolVersion : init.params.protocolVersion;
    return { [SESSION_HEADER]: issueSession(this.options.sealer, principal, capabilities, version).token };
  }

  /**
   * A body of JSON-RPC responses from a session: each must answer one of this session's waiting
   * asks. 'accepted' when all did; 'unknown' when any did not (late, never asked, or asked of
   * another principal or session); undefined when the body is not responses only.
   */
  route(messages: readonly JSONRPCMessage[], session: HttpSession): 'accepted' | 'unknown' | undefined {
    if (messages.length === 0 || !messages.every((m) => !('method' in m) && ('result' in m || 'error' in m))) return undefined;
    let all = true;
    for (const m of messages) if (!this.pending.answer(ownerOf(session), m)) all = false;
    return all ? 'accepted' : 'unknown';
  }

  /**
   * The channel of one call of `session`: its declared capabilities, and an ask that travels on
   * the call's event stream when there is one. `gone` aborts when the stream's client went away:
   * the ask ends then, whatever signal its caller passed.
   */
  channel(session: HttpSession, stream: SseAnswer | undefined, gone?: AbortSignal): ClientChannel {
    const caps = session.capabilities;
    const ask: ClientChannel['ask'] =
      stream &&
      ((request, opts) =>
        this.pending.ask(ownerOf(session), caps, request, (message) => stream.send(message), {
          timeoutMs: opts.timeoutMs,
          signal: gone ? AbortSignal.any([opts.signal, gone]) : opts.signal,
        }));
    return channelOf(caps, ask);
  }
}

function ownerOf(session: HttpSession): string {
  return `${session.principal}\n${session.sid}`;
}

const perApp = new WeakMap<GateDeps, HttpClientAsks>();

/**
 * Asks waiting in one process, all clients together, and for one session: each holds an open SSE
 * answer and a gate call, so the bound is the server's, not the clients'.
 */
export const MAX_PENDING_ASKS = 1024;
export const MAX_PENDING_ASKS_PER_SESSION = 16;

/**
 * One registry per served app (its deps), built on first use: asks wait in the process that sent
 * them. Session ids are sealed with the requestState key (protocol.request_state_key_file, under
 * their own purpose), so replicas that share it read each other's; without one, a random key.
 */
export function clientAsksFor(deps: GateDeps): HttpClientAsks {
  let asks = perApp.get(deps);
  if (!asks) {
    asks = new HttpClientAsks({
      sealer: deps.requestState?.sealer ?? Sealer.random(),
      sessionTtlMs: deps.config.server.http.session_ttl_ms,
      limits: { max: MAX_PENDING_ASKS, perOwner: MAX_PENDING_ASKS_PER_SESSION },
    });
    perApp.set(deps, asks);
  }
  return asks;
}
