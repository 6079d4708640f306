/**
 * The 2026-07-28 methods, for a request the ladder (transport/era/modern-ladder.ts) classified
 * modern. Stateless: no initialize, the client's capabilities arrive with each request. Tool calls
 * go through the gate exactly as 2025-11-25 ones do (the same runGate, the same record); only the
 * shape of the answer differs (`resultType`, `input_required`, cache hints on lists).
 */
import crypto from 'node:crypto';
import { ErrorCode, type JSONRPCMessage, type RequestId, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { PACKAGE_VERSION } from '../config/package-paths.js';
import type { CallContext, ClientCapabilities, ClientChannel, ClientInputRequest, GateOutcome } from '../core/call.js';
import type { GateDeps } from '../gate/deps.js';
import { runGate } from '../gate/run.js';
import type { ExtraMethods, MethodContext } from './extra-methods.js';
import { progressTokenOf, SERVER_NAME, visibleTools, type ConnectionInfo, type SendNotification } from './mcp-server.js';
import {
  CLIENT_CAPABILITIES_META_KEY,
  clientCapabilitiesOf,
  isPlainObject,
  metaOf,
  METHOD_NOT_FOUND,
  MISSING_CLIENT_CAPABILITY,
  MODERN_VERSION,
  SERVER_INFO_META_KEY,
  SUPPORTED_MODERN_VERSIONS,
} from './modern-wire.js';
import { throttledProgress } from './progress.js';
import { clientLog } from './client-log.js';
import { denialToJsonRpcError, JsonRpcError, outcomeToResult } from './surface.js';

/** What serving the modern methods needs of the app. */
export interface ModernApp {
  readonly deps: GateDeps;
  readonly catalogue: readonly Tool[];
  readonly extraMethods?: ExtraMethods | undefined;
}

export interface ModernRequest {
  readonly id: RequestId;
  readonly method: string;
  readonly params?: Readonly<Record<string, unknown>> | undefined;
}

/** The answer, and the HTTP status it travels with (404 for a method this revision does not have). */
export interface ModernAnswer {
  readonly status: 200 | 400 | 404;
  readonly message: JSONRPCMessage;
}

export interface ModernOptions {
  /** Aborted when the client cancels or goes away. */
  readonly signal: AbortSignal;
  /** Present where notifications reach the client (stdio, an SSE answer). */
  readonly sendNotification?: SendNotification | undefined;
}

/** Same text as initialize's: the client learns how denials come back. */
const INSTRUCTIONS = 'Bulwark gates every tool call: denials come back as tool results with isError and structuredContent.error.code.';

/**
 * How long a client may reuse a tools/list answer. The list is filtered per principal by the
 * policy (hence `cacheScope: private`) and changes only when the policy is reloaded; a stale
 * entry costs at most a denial, since every call is decided again.
 */
export const TOOLS_LIST_TTL_MS = 60_000;

/** Methods whose modern results carry cache hints (ttlMs, cacheScope), when a handler gave none. */
const CACHEABLE = new Set(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list', 'resources/read', 'server/discover']);

const serverInfo = { name: SERVER_NAME, version: PACKAGE_VERSION };

/** Whether this revision has the method here: server/discover, tools/*, and the profile's extras. */
export function servesModern(app: ModernApp, method: string): boolean {
  return method === 'server/discover' || method === 'tools/list' || method === 'tools/call' || (app.extraMethods?.handlers.has(method) ?? false);
}

/** One modern request to its answer. Never throws: every failure is a JSON-RPC error. */
export async function dispatchModern(app: ModernApp, conn: ConnectionInfo, req: ModernRequest, opts: ModernOptions): Promise<ModernAnswer> {
  if (!servesModern(app, req.method))
    return { status: 404, message: { jsonrpc: '2.0', id: req.id, error: { code: METHOD_NOT_FOUND, message: 'Method not found' } } };
  const params = req.params ?? {};
  try {
    let result: Record<string, unknown>;
    if (req.method === 'server/discover') result = discover(app);
    else if (req.method === 'tools/list')
      result = { tools: await visibleTools(app.deps, conn, app.catalogue), ttlMs: TOOLS_LIST_TTL_MS, cacheScope: 'private' };
    else if (req.method === 'tools/call') result = await toolCall(app.deps, conn, params, opts);
    else result = await extraMethod(app, conn, req.method, params, opts);
    return { status: 200, message: { jsonrpc: '2.0', id: req.id, result: stamped(req.method, result) } };
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown; data?: unknown };
    const known = err instanceof JsonRpcError || err instanceof ModernError || (typeof e.code === 'number' && Number.isSafeInteger(e.code));
    if (!known) app.deps.logger.error('a 2026-07-28 request failed', { method: req.method, error: (err as Error).message });
    const code = known ? (e.code as number) : ErrorCode.InternalError;
    const message = known && typeof e.message === 'string' ? e.message : 'Internal error';
    // Handler errors travel in-band, except those the spec gives a status: a missing capability,
    // and a method a handler says this revision does not have (the profile's removed methods).
    return {
      status: code === MISSING_CLIENT_CAPABILITY ? 400 : code === METHOD_NOT_FOUND ? 404 : 200,
      message: { jsonrpc: '2.0', id: req.id, error: { code, message, ...(e.data !== undefined ? { data: e.data } : {}) } },
    };
  }
}

/** `resultType`, the server's identity in `_meta` (spec: on every response), cache hints on lists. */
function stamped(method: string, result: Record<string, unknown>): Record<string, unknown> {
  const meta = isPlainObject(result._meta) ? result._meta : {};
  return {
    ...result,
    resultType: typeof result.resultType === 'string' ? result.resultType : 'complete',
    ...(CACHEABLE.has(method) ? { ttlMs: typeof result.ttlMs === 'number' ? result.ttlMs : 0, cacheScope: result.cacheScope ?? 'private' } : {}),
    _meta: { ...meta, [SERVER_INFO_META_KEY]: serverInfo },
  };
}

/**
 * The capabilities as this revision can honour them: list-changed and resource-subscribe
 * notifications travel on a `subscriptions/listen` stream in 2026-07-28, which this server does
 * not serve, so those bits are not advertised here (2025-11-25's initialize keeps them).
 */
function modernCapabilities(caps: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(caps)) {
    if (!isPlainObject(value)) {
      out[name] = value;
      continue;
    }
    const { listChanged: _listChanged, subscribe: _subscribe, ...rest } = value;
    out[name] = rest;
  }
  return out;
}

function discover(app: ModernApp): Record<string, unknown> {
  return {
    supportedVersions: [...SUPPORTED_MODERN_VERSIONS],
    capabilities: modernCapabilities({ ...(app.extraMethods?.capabilities ?? {}), tools: {} }),
    instructions: INSTRUCTIONS,
    ttlMs: 0,
    cacheScope: 'private',
  };
}

/** What the transport knows of the client for this call: the envelope's capabilities, a retry's answers. */
export function modernClientChannel(params: Readonly<Record<string, unknown>>): ClientChannel {
  const meta = metaOf(params);
  return {
    era: MODERN_VERSION,
    capabilities: clientCapabilitiesOf(meta && CLIENT_CAPABILITIES_META_KEY in meta ? meta : undefined),
    ...(isPlainObject(params.inputResponses) ? { inputResponses: params.inputResponses } : {}),
    ...(typeof params.requestState === 'string' ? { requestState: params.requestState } : {}),
  };
}

/**
 * tools/call through the gate, as callTool does for 2025-11-25 (progress throttled, the held-back
 * update flushed before the answer), answered in this revision's shapes. An unknown tool is the
 * spec's JSON-RPC error; a call that needs the client's input is `input_required`.
 */
async function toolCall(
  deps: GateDeps,
  conn: ConnectionInfo,
  params: Readonly<Record<string, unknown>>,
  opts: ModernOptions,
): Promise<Record<string, unknown>> {
  const token = progressTokenOf(params);
  const send = opts.sendNotification;
  const progress =
    token === undefined || !send
      ? undefined
      : throttledProgress((p) => void send({ method: 'notifications/progress', params: p }).catch(() => undefined), token);
  const context: CallContext = {
    transport: conn.transport,
    clientIp: conn.clientIp,
    requestId: crypto.randomUUID(),
    receivedAt: new Date(),
    signal: opts.signal,
    progress: progress?.report,
    verifiedPrincipal: conn.principal,
    client: modernClientChannel(params),
    // Log notifications only to a request that asked for them (2026-07-28: `_meta` logLevel).
    log: send && logLevelOf(params) !== undefined ? clientLog(send, logLevelOf(params)) : undefined,
  };
  const name = typeof params.name === 'string' ? params.name : JSON.stringify(params.name ?? null);
  let outcome: GateOutcome;
  let flushed: boolean;
  try {
    outcome = await runGate({ tool: name, args: params.arguments, context }, deps);
  } finally {
    flushed = progress?.finish(!opts.signal.aborted) ?? false;
  }
  // As in callTool: the final update leaves in a write of its own, before the result.
  if (flushed) await new Promise((resolve) => setImmediate(resolve));
  if (outcome.inputRequired) {
    const { inputRequests, requestState } = outcome.inputRequired;
    const missing = missingCapability(inputRequests, context.client?.capabilities ?? {});
    if (missing) throw missing;
    return { resultType: 'input_required', inputRequests: { ...inputRequests }, requestState, _meta: { 'bulwark/request_id': outcome.requestId } };
  }
  const protocolError = outcome.denial && denialToJsonRpcError(outcome.denial);
  if (protocolError) throw new JsonRpcError(protocolError.code, protocolError.message);
  // A requestState that does not open or bind is a bad parameter of this retry (§mrtr): the
  // JSON-RPC error -32602, with the typed code, reasons and the record's request id in `data`.
  if (outcome.denial?.code === 'request_state_invalid') {
    throw new ModernError(ErrorCode.InvalidParams, outcome.denial.message, {
      code: outcome.denial.code,
      reasons: [...outcome.denial.reasons],
      request_id: outcome.requestId,
    });
  }
  // A call refused for a capability the client did not declare is the spec's own error on this wire.
  if (outcome.denial?.reasons.includes(CAPABILITY_MISSING_REASON)) {
    const required = outcome.denial.detail?.requiredCapabilities;
    throw new ModernError(MISSING_CLIENT_CAPABILITY, outcome.denial.message, {
      requiredCapabilities: isPlainObject(required) ? required : {},
      request_id: outcome.requestId,
    });
  }
  return { ...outcomeToResult(outcome) };
}

/** The request's `_meta["io.modelcontextprotocol/logLevel"]`, when it asked for log notifications. */
function logLevelOf(params: Readonly<Record<string, unknown>>): unknown {
  const meta = params._meta;
  return isPlainObject(meta) ? meta['io.modelcontextprotocol/logLevel'] : undefined;
}

/**
 * The denial reason of a call that needs a client capability the request did not declare (with
 * `detail.requiredCapabilities`): on 2026-07-28 it is answered -32021, HTTP 400; on 2025-11-25
 * it stays a tool result.
 */
export const CAPABILITY_MISSING_REASON = 'client.capability_missing';

/** An error that carries `data` (JsonRpcError has none). */
class ModernError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data: Readonly<Record<string, unknown>>,
  ) {
    super(message);
  }
}

/**
 * The spec's MissingRequiredClientCapability: a server must not ask for input the client did not
 * declare it can give (the gate should not have asked; this keeps the wire honest if it did).
 */
function missingCapability(inputRequests: Readonly<Record<string, ClientInputRequest>>, caps: ClientCapabilities): ModernError | undefined {
  for (const [key, r] of Object.entries(inputRequests)) {
    let required: Record<string, unknown> | undefined;
    if (r.method === 'elicitation/create') {
      const url = r.params.mode === 'url';
      if (!(url ? caps.elicitation?.url : caps.elicitation?.form)) required = { elicitation: url ? { url: {} } : { form: {} } };
    } else if (r.method === 'sampling/createMessage' && !caps.sampling) required = { sampling: {} };
    else if (r.method === 'roots/list' && !caps.roots) required = { roots: {} };
    if (required)
      return new ModernError(
        MISSING_CLIENT_CAPABILITY,
        `Cannot request input '${key}' (${r.method}): the request's client capabilities do not declare the required capability`,
        { requiredCapabilities: required },
      );
  }
  return undefined;
}

async function extraMethod(
  app: ModernApp,
  conn: ConnectionInfo,
  method: string,
  params: Readonly<Record<string, unknown>>,
  opts: ModernOptions,
): Promise<Record<string, unknown>> {
  const handler = app.extraMethods?.handlers.get(method);
  if (!handler) throw new JsonRpcError(METHOD_NOT_FOUND, 'Method not found');
  const ctx: MethodContext = {
    era: MODERN_VERSION,
    transport: conn.transport,
    clientIp: conn.clientIp,
    principal: conn.principal,
    signal: opts.signal,
    client: modernClientChannel(params),
    sendNotification: opts.sendNotification,
  };
  return handler(params, ctx);
}
