import { DenialError } from '../../src/core/denial.js';
import type { ChildMessage, TaskMessage } from './protocol.js';
import { progressThrottle } from './progress-throttle.js';

export interface TaskContext {
  /** Report progress to the parent: throttled here, the last update always sent before the result. */
  progress(progress: number, total?: number, message?: string): void;
}

export type Handler = (payload: any, ctx: TaskContext) => unknown | Promise<unknown>;

function send(msg: ChildMessage): void {
  process.send?.(msg);
}

/**
 * The child's side of the pool: one task at a time, every outcome answered. A DenialError crosses
 * the boundary as a denial; anything else as an error the parent turns into `tool_error`.
 */
export function serveTasks(handlers: Readonly<Record<string, Handler>>, opts: { onIdle?: () => void } = {}): void {
  if (!process.send) throw new Error('this module must run as a forked child');
  process.on('message', async (raw: TaskMessage) => {
    if (!raw || raw.type !== 'task') return;
    const cpu0 = process.cpuUsage();
    const metrics = () => {
      const c = process.cpuUsage(cpu0);
      return { cpu_ms: (c.user + c.system) / 1000, heap_bytes: process.memoryUsage().heapUsed };
    };
    // `ping` measures the round trip itself (benchmarks, health checks).
    const handler = raw.op === 'ping' ? () => 'pong' : handlers[raw.op];
    try {
      if (!handler) throw new Error(`unknown op ${raw.op}`);
      const progress = progressThrottle((m: ChildMessage) => send(m));
      // The held update goes out before the result or the error, whichever the task ends with.
      const value = await Promise.resolve()
        .then(() =>
          handler(raw.payload, {
            progress: (n, total, message) =>
              progress.report({ type: 'progress', id: raw.id, progress: n, ...(total === undefined ? {} : { total }), ...(message ? { message } : {}) }),
          }),
        )
        .finally(() => progress.flush());
      send({ type: 'result', id: raw.id, ok: true, value, metrics: metrics() });
    } catch (err) {
      if (err instanceof DenialError) send({ type: 'result', id: raw.id, ok: false, denial: err.denial, metrics: metrics() });
      else
        send({
          type: 'result',
          id: raw.id,
          ok: false,
          error: {
            message: (err as Error)?.message ?? String(err),
            ...((err as NodeJS.ErrnoException)?.code ? { code: String((err as NodeJS.ErrnoException).code) } : {}),
          },
          metrics: metrics(),
        });
    }
    opts.onIdle?.();
  });
  // The parent going away ends us: never outlive the server.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', pid: process.pid });
}
