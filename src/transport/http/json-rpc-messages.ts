import {
  isInitializeRequest,
  JSONRPCMessageSchema,
  ListToolsRequestSchema,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from '@modelcontextprotocol/sdk/types.js';

/** The SDK's cap on a JSON-RPC batch (`MAX_BATCH_SIZE` in its Streamable HTTP transport). */
const MAX_BATCH = 100;

/** Of a message the schema accepted (each of its shapes is strict): a request has both. */
export function isRequest(m: JSONRPCMessage): m is JSONRPCRequest {
  return 'method' in m && 'id' in m;
}

/** The JSON-RPC messages of a POST body, or the SDK's 400 answer for a body that is not one. */
export function jsonRpcMessages(parsed: unknown): JSONRPCMessage[] | { status: 400; code: number; message: string } {
  if (Array.isArray(parsed) && parsed.length > MAX_BATCH)
    return { status: 400, code: -32600, message: `Invalid Request: Batch must not exceed ${MAX_BATCH} messages` };
  const messages: JSONRPCMessage[] = [];
  for (const raw of Array.isArray(parsed) ? parsed : [parsed]) {
    const m = JSONRPCMessageSchema.safeParse(raw);
    if (!m.success) return { status: 400, code: -32700, message: 'Parse error: Invalid JSON-RPC message' };
    messages.push(m.data);
  }
  // The method test first: the schema probe alone costs about as much as the rest of the call when it fails.
  if (messages.length > 1 && messages.some((m) => 'method' in m && m.method === 'initialize' && isInitializeRequest(m))) {
    return { status: 400, code: -32600, message: 'Invalid Request: Only one initialization request is allowed' };
  }
  return messages;
}

/**
 * A body that is one tools/call and asks for nothing the SDK's Protocol treats specially (task
 * creation): the Protocol would hand it straight to `callTool`, so the transport does, without
 * building a Server whose dispatch probes each message against the response schemas first (a
 * failing schema probe costs about 0.1 ms here). Anything else goes through a per-request Server.
 */
export function loneToolCall(messages: readonly JSONRPCMessage[]): JSONRPCRequest | undefined {
  return loneRequest(messages, 'tools/call');
}

/**
 * A body that is one well-formed tools/list: its answer is the catalogue filtered by the policy for
 * the principal, which needs no Server (building one costs ~4 ms here, the listing 0.1). A
 * malformed one goes through the Server, which answers the SDK's error for it.
 */
export function loneToolsList(messages: readonly JSONRPCMessage[]): JSONRPCRequest | undefined {
  const m = loneRequest(messages, 'tools/list');
  return m && ListToolsRequestSchema.safeParse({ method: m.method, ...(m.params === undefined ? {} : { params: m.params }) }).success ? m : undefined;
}

/** The body's one request when it has this method and asks for no task (task creation is the Protocol's to refuse). */
function loneRequest(messages: readonly JSONRPCMessage[], method: string): JSONRPCRequest | undefined {
  const m = messages.length === 1 ? messages[0] : undefined;
  if (!m || !isRequest(m) || m.method !== method) return undefined;
  if (m.params && 'task' in m.params) return undefined;
  return m;
}
