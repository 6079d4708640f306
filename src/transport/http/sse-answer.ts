import type http from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * The answer to one POST as a Server-Sent Events stream (Streamable HTTP, 2025-11-25
 * §transports: "the server MUST either return Content-Type: text/event-stream … or
 * application/json"): the request's notifications and its requests to the client (a call that
 * asks, client-asks.ts) as they happen, then its response, then the end of the stream. The stream opens with the first message, so an answer that turns out to
 * have nothing to say before its response can still go out as plain JSON.
 */
export class SseAnswer {
  private started = false;

  constructor(private readonly res: http.ServerResponse) {}

  /** True once the status line and headers went out: the answer can no longer be JSON. */
  get opened(): boolean {
    return this.started;
  }

  /** One message as one `message` event. No event ids: this stream cannot be resumed. */
  send(message: JSONRPCMessage): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        // Proxies that buffer responses (nginx) would hold every event back until the end.
        'x-accel-buffering': 'no',
      });
    }
    this.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
  }

  /** The response, and the stream ends: the request is answered. */
  end(response: JSONRPCMessage): void {
    this.send(response);
    this.res.end();
  }
}
