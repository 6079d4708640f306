/**
 * The conformance profile's non-tool methods (resources/*, prompts/*, completion/complete,
 * logging/setLevel) for both eras, registered through the extension point app.extraMethods. Each
 * request goes through the gate as its method's pseudo-tool (tools/conformance/methods.ts): the
 * same authenticate, rate-limit, validate, analyse, decide and record as a tool call, so the
 * official suite exercises Bulwark's protocol layer and leaves an audit record per request.
 */
import crypto from 'node:crypto';
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import type { CallContext } from '../core/call.js';
import type { Denial } from '../core/denial.js';
import type { GateDeps } from '../gate/deps.js';
import { runGate } from '../gate/run.js';
import { conformanceMethodTools, PROMPT_NOT_FOUND_REASON, REMOVED_IN_2026, RESOURCE_NOT_FOUND_REASON } from '../tools/conformance/methods.js';
import type { ExtraMethods, MethodContext, MethodHandler } from './extra-methods.js';
import { JsonRpcError } from './surface.js';

/** A JSON-RPC error with `data` (the SDK's Protocol and the 2026-07-28 dispatcher both send it on). */
export class JsonRpcErrorWithData extends JsonRpcError {
  constructor(
    code: number,
    message: string,
    readonly data: Readonly<Record<string, unknown>>,
  ) {
    super(code, message);
  }
}

/** What the profile adds to initialize / server/discover. */
export const CONFORMANCE_CAPABILITIES = {
  resources: { subscribe: true, listChanged: false },
  prompts: { listChanged: false },
  completions: {},
  logging: {},
} as const;

/** Envelope keys of a request's params that are not the method's arguments (2026-07-28 carries them there). */
const ENVELOPE_KEYS = new Set(['_meta', 'inputResponses', 'requestState']);

function argumentsOf(params: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).filter(([k]) => !ENVELOPE_KEYS.has(k)));
}

/**
 * A refused method request as a JSON-RPC error (a method has no tool-result envelope to carry a
 * denial in): unknown resource or prompt and invalid arguments are -32602 (SEP-2164 wants the URI
 * in `data`); anything else the gate refused is -32603 with the denial in `data`, so the client
 * sees the same code and reasons the audit record keeps.
 */
function methodError(denial: Denial, requestId: string): JsonRpcErrorWithData {
  if (denial.reasons.includes(RESOURCE_NOT_FOUND_REASON))
    return new JsonRpcErrorWithData(ErrorCode.InvalidParams, 'Resource not found', { uri: denial.detail?.uri });
  if (denial.reasons.includes(PROMPT_NOT_FOUND_REASON)) return new JsonRpcErrorWithData(ErrorCode.InvalidParams, denial.message, { request_id: requestId });
  const data = { code: denial.code, reasons: [...denial.reasons], request_id: requestId };
  const message = `${denial.code}: ${denial.message}`;
  return new JsonRpcErrorWithData(denial.code === 'invalid_input' ? ErrorCode.InvalidParams : ErrorCode.InternalError, message, data);
}

function handlerFor(deps: GateDeps, method: string, tool: string): MethodHandler {
  return async (params, ctx: MethodContext) => {
    // 2026-07-28 removed these (sessions are gone): the method does not exist in that revision.
    if (ctx.era === '2026-07-28' && REMOVED_IN_2026.has(method)) throw new JsonRpcError(ErrorCode.MethodNotFound, 'Method not found');
    const context: CallContext = {
      transport: ctx.transport,
      clientIp: ctx.clientIp,
      requestId: crypto.randomUUID(),
      receivedAt: new Date(),
      signal: ctx.signal,
      verifiedPrincipal: ctx.principal,
      client: ctx.client,
    };
    const outcome = await runGate({ tool, args: argumentsOf(params), context }, deps);
    if (outcome.inputRequired) {
      const { inputRequests, requestState } = outcome.inputRequired;
      return { resultType: 'input_required', inputRequests: { ...inputRequests }, requestState };
    }
    if (outcome.result && !outcome.denial) {
      const result = outcome.result.structured;
      // An empty result stays `{}` (subscribe, unsubscribe, setLevel: the suite checks it is empty); the record has the id.
      return Object.keys(result).length === 0 ? {} : { ...result, _meta: { 'bulwark/request_id': outcome.requestId } };
    }
    if (!outcome.denial) throw new Error('gate outcome without result or denial');
    throw methodError(outcome.denial, outcome.requestId);
  };
}

/** The profile's extra methods, each handler bound to its gated pseudo-tool. */
export function conformanceExtraMethods(deps: GateDeps): ExtraMethods {
  const handlers = new Map<string, MethodHandler>();
  for (const [method, tool] of conformanceMethodTools) handlers.set(method, handlerFor(deps, method, tool.name));
  return { handlers, capabilities: CONFORMANCE_CAPABILITIES };
}
