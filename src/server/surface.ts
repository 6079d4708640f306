/**
 * A Denial on each surface a client sees: an MCP tool result, a JSON-RPC error, an HTTP answer.
 * Every surface carries a registry code (core/codes.ts) and the stage's reason, so a client,
 * a dashboard and the audit record name a refusal the same way whichever way it travelled.
 */
import { ErrorCode, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { GateOutcome } from '../core/call.js';
import type { DenialCode } from '../core/codes.js';
import type { Denial } from '../core/denial.js';
import { UNKNOWN_TOOL_REASON } from '../gate/validate.js';

export function outcomeToResult(outcome: GateOutcome): CallToolResult {
  if (outcome.result && !outcome.denial) {
    return {
      content: outcome.result.content
        ? (outcome.result.content.map((c) => ({ ...c })) as CallToolResult['content'])
        : [{ type: 'text', text: outcome.result.text }],
      structuredContent: { ...outcome.result.structured },
      _meta: { 'bulwark/request_id': outcome.requestId, ...(outcome.result.metrics ? { 'bulwark/metrics': { ...outcome.result.metrics } } : {}) },
    };
  }
  const d = outcome.denial;
  if (!d) throw new Error('gate outcome without result or denial');
  return denialToToolResult(d, outcome.requestId);
}

/** A refused call as a tool result: the model reads `content`, programs read `structuredContent.error`. */
export function denialToToolResult(d: Denial, requestId: string): CallToolResult {
  return {
    isError: true,
    content: [{ type: 'text', text: `${d.code}: ${d.message}${d.reasons.length ? ` (${d.reasons.join(', ')})` : ''}` }],
    structuredContent: { error: { code: d.code, message: d.message, reasons: [...d.reasons], request_id: requestId, ...(d.detail ?? {}) } },
  };
}

/**
 * A JSON-RPC error a handler throws; the SDK's Protocol answers with its `code` and `message`.
 * Not the SDK's McpError: that one's message already reads "MCP error <code>: …", and clients add
 * the same prefix when they turn the answer back into an error, so users saw it twice.
 */
export class JsonRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'JsonRpcError';
  }
}

/**
 * The denials the MCP spec makes protocol errors rather than tool results: only an unknown tool
 * (still audited by the gate like any other refusal). Undefined for every other denial.
 */
export function denialToJsonRpcError(d: Denial): { readonly code: number; readonly message: string } | undefined {
  return d.reasons.includes(UNKNOWN_TOOL_REASON) ? { code: ErrorCode.InvalidParams, message: d.message } : undefined;
}

/**
 * The codes an HTTP request is refused with before any call enters the gate (a call's own denial
 * travels as a tool result inside a 200). The status follows the code, so the table is total.
 */
const HTTP_STATUS = {
  unauthenticated: 401,
  rate_limited: 429,
  policy_denied: 403,
  invalid_input: 400,
  unavailable: 503,
} as const satisfies Partial<Record<DenialCode, number>>;

export type HttpRefusalCode = keyof typeof HTTP_STATUS;

/** A Denial the HTTP transport answers itself: one reason, always. */
export interface HttpRefusal<C extends HttpRefusalCode = HttpRefusalCode> extends Denial {
  readonly code: C;
  readonly reasons: readonly [string];
}

export function httpRefusal<C extends HttpRefusalCode>(code: C, reason: string, message: string, detail?: Readonly<Record<string, unknown>>): HttpRefusal<C> {
  return detail === undefined ? { code, message, reasons: [reason] } : { code, message, reasons: [reason], detail };
}

/**
 * Reasons whose status is not their code's: a path that names nothing is 404; a peer refused for
 * not being on loopback is 403, since 401 would promise that a credential could help (and owes a
 * WWW-Authenticate challenge, RFC 9110 §15.5.2).
 */
const STATUS_BY_REASON: Readonly<Record<string, number>> = { 'http.not_found': 404, not_loopback: 403 };

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: HttpRefusalCode; readonly reason: string; readonly message: string } & Readonly<Record<string, unknown>>;
}

/**
 * The HTTP answer for a refusal: `error` is the registry code, `reason` the finer one, and a
 * `retry_after_s` in the detail is also sent as Retry-After. `headers` adds what only the
 * transport knows (a WWW-Authenticate challenge, Connection: close).
 */
export function denialToHttp(d: HttpRefusal, headers: Readonly<Record<string, string>> = {}): HttpAnswer {
  const retry = d.detail?.retry_after_s;
  return {
    status: STATUS_BY_REASON[d.reasons[0]] ?? HTTP_STATUS[d.code],
    headers: { ...(typeof retry === 'number' ? { 'retry-after': String(retry) } : {}), ...headers },
    body: { error: d.code, reason: d.reasons[0], message: d.message, ...(d.detail ?? {}) },
  };
}
