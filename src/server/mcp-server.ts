import crypto from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { z } from 'zod';
import { ListToolsRequestSchema, type CallToolResult, type ServerNotification, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { PACKAGE_VERSION } from '../config/package-paths.js';
import type { GateDeps } from '../gate/deps.js';
import type { CallContext, ClientChannel, Principal, TransportKind } from '../core/call.js';
import { dryRun, runGate } from '../gate/run.js';
import { visibleToolsInput } from '../policy/input.js';
import { channelOf, declaredCapabilities, serverAsk } from './client-channel.js';
import type { ExtraMethods, MethodContext } from './extra-methods.js';
import { collapseTypeUnions } from './input-schema.js';
import { withDenialBranch } from './output-schema.js';
import { throttledProgress, type ProgressChannel } from './progress.js';
import { clientLog } from './client-log.js';
import { denialToJsonRpcError, JsonRpcError, outcomeToResult } from './surface.js';

export const SERVER_NAME = 'bulwark';

export interface ConnectionInfo {
  readonly transport: TransportKind;
  readonly clientIp?: string | undefined;
  /**
   * HTTP with `auth.http: api_key`: the principal the transport verified from the bearer of the
   * one request this server answers. Bound to every call context the server makes; nothing in a
   * message can set or change it.
   */
  readonly principal?: Principal | undefined;
  /**
   * How the calls this server answers can reach their client, when the transport knows (HTTP: the
   * session's declared capabilities and the call's event stream). Absent over stdio, the Server's
   * own connection carries the asks; absent elsewhere, calls cannot ask.
   */
  readonly client?: ClientChannel | undefined;
}

/**
 * One validator for every Server: the SDK builds a new Ajv (about 0.4-1 ms of CPU here) per Server
 * unless given one, and HTTP builds a Server per request. Ours never validates anything with it
 * (it serves elicitation and client-side output checks); it holds no per-request state.
 */
const jsonSchemaValidator = new AjvJsonSchemaValidator();

/** Tool listings are data: computed once at boot from the registry. */
export function buildToolCatalogue(deps: GateDeps): Tool[] {
  return [...deps.tools.values()].map((t) => ({
    name: t.name,
    title: t.annotations.title,
    description: t.description,
    inputSchema: collapseTypeUnions(zodToJsonSchema(t.input, { target: 'jsonSchema7', $refStrategy: 'none' })) as Tool['inputSchema'],
    outputSchema: withDenialBranch(t.outputSchema) as Tool['outputSchema'],
    annotations: { ...t.annotations },
  }));
}

/**
 * The low-level SDK Server with our own handlers: the high-level McpServer would validate input
 * before authentication and rate limiting, and would turn every thrown error into a tool result.
 */
export function createMcpServer(deps: GateDeps, conn: ConnectionInfo, catalogue: readonly Tool[], extraMethods?: ExtraMethods): Server {
  const server = new Server(
    { name: SERVER_NAME, version: PACKAGE_VERSION },
    {
      capabilities: { ...extraMethods?.capabilities, tools: { listChanged: false } },
      instructions: 'Bulwark gates every tool call: denials come back as tool results with isError and structuredContent.error.code.',
      jsonSchemaValidator,
    },
  );
  const names = catalogue.map((t) => t.name);

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: await visibleTools(deps, conn, catalogue, names) }));

  // Registered on Protocol, past Server's own tools/call wrapper: that wrapper rejects malformed
  // params before our code runs, so the call would leave no audit record. Here every tools/call
  // reaches the gate, whose validate stage refuses it with a typed denial and records it.
  // stdio: one client per process, so the Server's connection is the client's and can carry asks;
  // what it may be asked is what it declared in initialize (read per call: initialize comes first).
  const callConn = (): ConnectionInfo => (conn.client || conn.transport !== 'stdio' ? conn : { ...conn, client: stdioChannel(server) });
  Protocol.prototype.setRequestHandler.call(server, LenientCallToolRequest, async (request: z.infer<typeof LenientCallToolRequest>, extra: RequestExtra) =>
    callTool(deps, callConn(), request.params, extra.signal, extra.sendNotification),
  );

  for (const [method, handler] of extraMethods?.handlers ?? []) {
    // Past Server's own schema checks, as tools/call: the handler takes the request through the gate.
    const schema = z.object({ method: z.literal(method), params: z.unknown() }).passthrough();
    Protocol.prototype.setRequestHandler.call(server, schema, async (request: z.infer<typeof schema>, extra: RequestExtra) => {
      const c = callConn();
      const ctx: MethodContext = {
        era: '2025-11-25',
        transport: c.transport,
        clientIp: c.clientIp,
        principal: c.principal,
        signal: extra.signal,
        client: c.client,
        // Over HTTP this Server answers with JSON, where notifications have no stream to travel on.
        sendNotification: c.transport === 'stdio' ? extra.sendNotification : undefined,
      };
      const params = request.params !== null && typeof request.params === 'object' && !Array.isArray(request.params) ? request.params : {};
      return handler(params as Record<string, unknown>, ctx);
    });
  }

  return server;
}

function stdioChannel(server: Server): ClientChannel {
  const caps = declaredCapabilities(server.getClientCapabilities());
  return channelOf(caps, serverAsk(server, caps));
}

/**
 * The tools this connection's principal may see (the policy's visible_tools), in both eras.
 * Listing fails closed too: an unauthenticated caller or a failing policy sees nothing.
 */
export async function visibleTools(deps: GateDeps, conn: ConnectionInfo, catalogue: readonly Tool[], names = catalogue.map((t) => t.name)): Promise<Tool[]> {
  const ctx = contextFor(conn, new AbortController().signal);
  const who = await dryRun({ tool: '', args: {}, context: ctx }, deps, { until: 'authenticate' });
  if (!who.principal) return [];
  try {
    const visible = new Set(deps.policy.visibleTools(visibleToolsInput(who.principal, names)));
    return catalogue.filter((t) => visible.has(t.name));
  } catch (err) {
    deps.logger.error('visible_tools evaluation failed', { error: (err as Error).message });
    return [];
  }
}

/**
 * tools/call, however it arrives: the SDK Server's handler above, or the HTTP transport's direct
 * path for a lone tools/call (which answers without building a Server). Every call goes through
 * the gate and is recorded; an unknown tool throws the JSON-RPC error the spec asks for.
 * `sendNotification` is absent where notifications cannot reach the client (a JSON answer).
 */
export async function callTool(
  deps: GateDeps,
  conn: ConnectionInfo,
  rawParams: unknown,
  signal: AbortSignal,
  sendNotification?: SendNotification,
): Promise<CallToolResult> {
  const params = (rawParams !== null && typeof rawParams === 'object' && !Array.isArray(rawParams) ? rawParams : {}) as Record<string, unknown>;
  const token = progressTokenOf(params);
  const progress = token === undefined || !sendNotification ? undefined : progressChannel(sendNotification, token);
  const ctx = { ...contextFor(conn, signal, progress?.report), log: sendNotification && clientLog(sendNotification) };
  const name = typeof params.name === 'string' ? params.name : JSON.stringify(params.name ?? null);
  let outcome: Awaited<ReturnType<typeof runGate>>;
  let flushed: boolean;
  try {
    outcome = await runGate({ tool: name, args: params.arguments, context: ctx }, deps);
  } finally {
    // The held-back update goes out before the answer; a cancelled call's has nobody to go to.
    flushed = progress?.finish(!signal.aborted) ?? false;
  }
  // The SDK's client handles a notification a microtask after a response it read in the same chunk,
  // by when it has dropped the token (typescript-sdk#2580): over stdio, a turn of the event loop
  // lets the final update leave in a write of its own. Only calls that flushed one pay for it.
  if (flushed) await new Promise((resolve) => setImmediate(resolve));
  const protocolError = outcome.denial && denialToJsonRpcError(outcome.denial);
  if (protocolError) throw new JsonRpcError(protocolError.code, protocolError.message);
  return outcomeToResult(outcome);
}

/** The request's `_meta.progressToken` (2025-11-25 §utilities/progress): a string or a number. */
export function progressTokenOf(params: unknown): string | number | undefined {
  if (params === null || typeof params !== 'object') return undefined;
  const meta = (params as { _meta?: unknown })._meta;
  if (meta === null || typeof meta !== 'object') return undefined;
  const token = (meta as { progressToken?: unknown }).progressToken;
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}

function contextFor(conn: ConnectionInfo, signal: AbortSignal, progress?: CallContext['progress']): CallContext {
  return {
    transport: conn.transport,
    clientIp: conn.clientIp,
    requestId: crypto.randomUUID(),
    receivedAt: new Date(),
    signal,
    progress,
    verifiedPrincipal: conn.principal,
    client: conn.client,
  };
}

type RequestExtra = Parameters<Parameters<Server['setRequestHandler']>[1]>[1];
/** How a call's notifications reach its client: the request's SDK stream, or the HTTP answer's event stream. */
export type SendNotification = (notification: ServerNotification) => Promise<void>;

const LenientCallToolRequest = z.object({ method: z.literal('tools/call'), params: z.unknown() }).passthrough();

function progressChannel(send: SendNotification, token: string | number): ProgressChannel {
  return throttledProgress((params) => {
    void send({ method: 'notifications/progress', params }).catch(() => undefined);
  }, token);
}
