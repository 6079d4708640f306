import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { isRequest } from './json-rpc-messages.js';

/**
 * The SDK transport for one stateless POST answered with JSON: what the SDK's
 * StreamableHTTPServerTransport does without sessions and with `enableJsonResponse`, minus its
 * conversion to web Request/Response objects and back and its failing schema probes on every
 * message, which together cost more CPU than the gated call. Like its Server, it lives for one
 * HTTP request, so a response can only reach the request that asked for it.
 */
export class JsonExchangeTransport implements Transport {
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  onmessage?: Transport['onmessage'];
  private readonly answers = new Map<RequestId, JSONRPCMessage | undefined>();
  private settle: ((answers: JSONRPCMessage[] | undefined) => void) | undefined;
  private closed = false;

  async start(): Promise<void> {}

  /** Deliver the messages; resolves with one response per distinct request id, or undefined if closed first. */
  exchange(messages: readonly JSONRPCMessage[]): Promise<JSONRPCMessage[] | undefined> {
    return new Promise((resolve) => {
      this.settle = resolve;
      for (const m of messages) if (isRequest(m)) this.answers.set(m.id, undefined);
      for (const m of messages) this.onmessage?.(m);
      if (this.closed) resolve(undefined);
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    // Notifications and server-to-client requests have no stream to travel on in a JSON
    // response: dropped, as the SDK drops them in this mode.
    if (!('id' in message) || !('result' in message || 'error' in message) || message.id === undefined) return;
    if (!this.answers.has(message.id) || this.answers.get(message.id) !== undefined) return;
    this.answers.set(message.id, message);
    const all = [...this.answers.values()];
    if (all.every((a): a is JSONRPCMessage => a !== undefined)) this.settle?.(all);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.settle?.(undefined);
    this.onclose?.();
  }
}
