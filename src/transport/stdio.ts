import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { ServedApp } from './served-app.js';
import { StdioGuard } from './stdio-guard.js';
import { createMcpServer } from '../server/mcp-server.js';
import { stdioEras } from './era/stdio-modern.js';

/** After a cancellation the gate stops the call promptly; this long is left for it to be recorded. */
const CANCELLED_GRACE_MS = 1000;

/**
 * Requests received and not yet answered. A client that writes its calls and closes stdin at once
 * (a script, a pipe) is owed every answer: EOF means "no more requests", not "drop the ones I sent".
 */
class Unanswered {
  private readonly open = new Map<string, number>();
  private readonly cancelled = new Set<string>();
  private waiters: (() => void)[] = [];

  private static key(id: RequestId): string {
    return `${typeof id}:${String(id)}`;
  }

  received(id: RequestId): void {
    const k = Unanswered.key(id);
    this.open.set(k, (this.open.get(k) ?? 0) + 1);
  }

  answered(id: RequestId): void {
    const k = Unanswered.key(id);
    const n = this.open.get(k);
    if (n === undefined) return;
    if (n > 1) this.open.set(k, n - 1);
    else {
      this.open.delete(k);
      this.cancelled.delete(k);
    }
    this.wake();
  }

  /** The SDK sends nothing for a cancelled request: only its recording is waited for, briefly. */
  cancel(id: RequestId): void {
    const k = Unanswered.key(id);
    if (!this.open.has(k)) return;
    this.cancelled.add(k);
    setTimeout(() => {
      if (!this.cancelled.delete(k)) return;
      this.open.delete(k);
      this.wake();
    }, CANCELLED_GRACE_MS).unref();
  }

  get size(): number {
    let n = 0;
    for (const c of this.open.values()) n += c;
    return n;
  }

  /** Resolves true when nothing is left unanswered, false if `withinMs` passed first. */
  settled(withinMs: number): Promise<boolean> {
    if (this.open.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, withinMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  private wake(): void {
    if (this.open.size > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function isRequest(m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId; method: string } {
  return 'method' in m && 'id' in m && m.id !== undefined;
}

function isResponse(m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId } {
  return 'id' in m && m.id !== undefined && ('result' in m || 'error' in m);
}

/** stdio: what Claude Desktop launches. stdout carries only protocol frames; logs go to stderr. */
export async function serveStdio(app: Pick<ServedApp, 'deps' | 'catalogue' | 'extraMethods'>): Promise<{ closed: Promise<void> }> {
  const { config, logger } = app.deps;
  const server = createMcpServer(app.deps, { transport: 'stdio' }, app.catalogue, app.extraMethods);
  const guard = new StdioGuard(process.stdout, config.server.http.max_body_bytes, (reason) => logger.warn('rejected a malformed stdio message', { reason }));
  process.stdin.pipe(guard);
  const transport = new StdioServerTransport(guard, process.stdout);
  const unanswered = new Unanswered();
  // Every call is answered by the gate within its deadline plus a small bound; past that, waiting
  // longer would only hide a bug, so the wait is bounded too.
  const drainMs = config.execution.timeout_ms + 5000;
  const closed = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
    guard.on('end', () => {
      const waiting = unanswered.size;
      if (waiting > 0) logger.info('stdin closed; answering the calls already received', { calls: waiting });
      void unanswered.settled(drainMs).then((all) => {
        if (!all) logger.error('stdin closed and some calls were still unanswered when the wait ended', { calls: unanswered.size, waited_ms: drainMs });
        resolve();
      });
    });
  });
  server.onerror = (err) => logger.warn('stdio transport error', { error: err.message });
  await server.connect(transport);
  // Watch the transport from outside the SDK: requests in, responses out.
  const eras = stdioEras(app, (m) => transport.send(m));
  const deliver = transport.onmessage;
  transport.onmessage = (message: JSONRPCMessage) => {
    if (isRequest(message)) unanswered.received(message.id);
    else if ('method' in message && message.method === 'notifications/cancelled') {
      const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof id === 'string' || typeof id === 'number') unanswered.cancel(id);
    }
    // Per message: a 2026-07-28 request (no initialize needed) is served beside the Server.
    if (eras.intercept(message)) return;
    deliver?.(message);
  };
  const send = transport.send.bind(transport);
  transport.send = (message: JSONRPCMessage) => {
    // The SDK hands the frame to stdout synchronously; a reader that went away must not hold the exit.
    const sent = send(message);
    if (isResponse(message)) unanswered.answered(message.id);
    return sent;
  };
  logger.info('serving MCP over stdio', { principal: config.principals.stdio.id });
  return { closed };
}
