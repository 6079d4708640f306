import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CreateMessageResultSchema,
  ElicitResultSchema,
  ErrorCode,
  ListRootsResultSchema,
  McpError,
  ServerRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { ClientCapabilities, ClientChannel, ClientInputRequest } from '../core/call.js';

/** How a call asks its client (ClientChannel.ask). */
export type Ask = NonNullable<ClientChannel['ask']>;

/** A 2025-11-25 client's answer, as the ask's caller receives it. */
export type ClientAnswer = Record<string, unknown>;

/**
 * What a 2025-11-25 client declared in `initialize`, in our vocabulary. §client/elicitation: an
 * empty `elicitation: {}` means form mode (the revision before modes existed declared it that way).
 * Anything that is not an object declares nothing: the declaration is untrusted input.
 */
export function declaredCapabilities(raw: unknown): ClientCapabilities {
  if (!isObject(raw)) return {};
  const elicitation = isObject(raw.elicitation) ? raw.elicitation : undefined;
  const empty = elicitation !== undefined && Object.keys(elicitation).length === 0;
  return {
    ...(elicitation ? { elicitation: { form: empty || isObject(elicitation.form), url: isObject(elicitation.url) } } : {}),
    ...(isObject(raw.sampling) ? { sampling: true } : {}),
    ...(isObject(raw.roots) ? { roots: true } : {}),
  };
}

/** Whether the client declared what this request needs (a server MUST NOT send what it did not). */
export function declares(caps: ClientCapabilities, request: ClientInputRequest): boolean {
  switch (request.method) {
    case 'elicitation/create':
      return request.params.mode === 'url' ? caps.elicitation?.url === true : caps.elicitation?.form === true;
    case 'sampling/createMessage':
      return caps.sampling === true;
    case 'roots/list':
      return caps.roots === true;
  }
}

/** True when the client can be asked anything at all. */
export function canBeAsked(caps: ClientCapabilities): boolean {
  return caps.elicitation?.form === true || caps.elicitation?.url === true || caps.sampling === true || caps.roots === true;
}

/**
 * The request as it goes on the wire, checked against the SDK's schema for server-to-client
 * requests and against what the client declared. Throws McpError(InvalidParams) otherwise, so a
 * malformed ask fails here and never reaches the client.
 */
export function wireRequest(caps: ClientCapabilities, request: ClientInputRequest): ReturnType<typeof ServerRequestSchema.parse> {
  if (!declares(caps, request)) throw new McpError(ErrorCode.InvalidRequest, `The client did not declare the capability for ${request.method}`);
  const parsed = ServerRequestSchema.safeParse({ method: request.method, params: request.params });
  if (!parsed.success) throw new McpError(ErrorCode.InvalidParams, `Malformed ${request.method} request: ${parsed.error.message}`);
  return parsed.data;
}

/**
 * The client's result for `method`, checked against the SDK's schema for it. Throws McpError when
 * the client answered something else: an answer that does not fit is no answer.
 */
export function checkedAnswer(method: ClientInputRequest['method'], result: unknown): ClientAnswer {
  const parsed = resultSchemaOf(method).safeParse(result);
  if (!parsed.success) throw new McpError(ErrorCode.InvalidParams, `The client's ${method} result is malformed`);
  return { ...parsed.data };
}

function resultSchemaOf(method: ClientInputRequest['method']): typeof ElicitResultSchema | typeof CreateMessageResultSchema | typeof ListRootsResultSchema {
  switch (method) {
    case 'elicitation/create':
      return ElicitResultSchema;
    case 'sampling/createMessage':
      return CreateMessageResultSchema;
    case 'roots/list':
      return ListRootsResultSchema;
  }
}

/**
 * Asks over the Server's own connection (stdio: one client per process, so the request travels on
 * the same pipe as the call). The SDK sends `notifications/cancelled` when `signal` aborts and
 * rejects with McpError(RequestTimeout) after `timeoutMs`.
 */
export function serverAsk(server: Server, caps: ClientCapabilities): Ask {
  return async (request, { signal, timeoutMs }) => {
    const wire = wireRequest(caps, request);
    const result = await server.request(wire, resultSchemaOf(request.method), { signal, timeout: timeoutMs });
    return checkedAnswer(request.method, result);
  };
}

/** The channel of a 2025-11-25 client: its declared capabilities, and `ask` where one can travel. */
export function channelOf(caps: ClientCapabilities, ask: Ask | undefined): ClientChannel {
  return { era: '2025-11-25', capabilities: caps, ask: ask && canBeAsked(caps) ? ask : undefined };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
