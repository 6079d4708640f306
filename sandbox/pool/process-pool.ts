import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { DenialError, deny } from '../../src/errors/denial.js';
import type { ChildMessage, TaskMessage, TaskMetrics } from './protocol.js';

export interface PoolOptions {
  readonly name: string;
  /** Absolute path of the compiled child entry point. */
  readonly entry: string;
  /** Node flags for the child: heap cap, permission model. */
  readonly execArgv: readonly string[];
  readonly size: number;
  /** Calls allowed to wait for a worker; past this they are refused `unavailable` at once. */
  readonly maxQueue: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Called with each line a child writes on stderr (children never get a stdout). */
  readonly onChildLog?: (line: string) => void;
}

export interface RunOptions {
  /** Wall-time cap: past it the worker is killed and replaced, and the call gets `timeout`. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((progress: number, total?: number, message?: string) => void) | undefined;
}

export interface RunResult<T> {
  readonly value: T;
  readonly metrics: TaskMetrics & { readonly duration_ms: number; readonly worker_pid: number };
}

interface Task {
  readonly id: number;
  readonly op: string;
  readonly payload: unknown;
  readonly opts: RunOptions;
  readonly started: number;
  readonly resolve: (r: RunResult<unknown>) => void;
  readonly reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  onAbort?: () => void;
}

interface Worker {
  readonly child: ChildProcess;
  ready: boolean;
  task?: Task | undefined;
  stderrTail: string;
  /** Set when we killed it on purpose, so the exit handler knows the reason. */
  killedFor?: 'timeout' | 'cancelled' | 'close';
}

export interface PoolStats {
  readonly name: string;
  readonly size: number;
  readonly ready: number;
  readonly busy: number;
  readonly queued: number;
  readonly spawned: number;
  readonly killed: { timeout: number; cancelled: number; crashed: number };
}

const STDERR_TAIL = 8192;
// What V8 prints when a heap (the process's or an isolate's) runs out: the process then aborts.
const OOM = /heap out of memory|Fatal process out of memory|Allocation failed|Reached heap limit|is_heap_oom = 1|CALL_AND_RETRY_LAST|Isolate was disposed during execution due to memory limit/i;

/**
 * A pool of warm, disposable child processes. Tool code runs there, never on the server's event
 * loop: a worker that overruns its time is SIGKILLed and replaced, one that dies fails only its
 * own call, and a full queue answers `unavailable` instead of piling calls up.
 */
export class ProcessPool extends EventEmitter {
  private readonly workers = new Set<Worker>();
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed = false;
  private spawned = 0;
  /** Workers that died before saying ready, in a row: past a few the pool stops respawning. */
  private startFailures = 0;
  private brokenReason: string | undefined;
  private readonly killed = { timeout: 0, cancelled: 0, crashed: 0 };

  constructor(private readonly opts: PoolOptions) {
    super();
  }

  /** Spawn the warm workers and wait until each has said it is ready. */
  async start(): Promise<void> {
    const readies: Promise<void>[] = [];
    for (let i = 0; i < this.opts.size; i++) readies.push(this.spawn());
    await Promise.all(readies);
  }

  private spawn(): Promise<void> {
    const child = fork(this.opts.entry, [], {
      execArgv: [...this.opts.execArgv],
      env: this.opts.env ?? { NODE_ENV: process.env.NODE_ENV ?? 'production', PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.spawned++;
    const w: Worker = { child, ready: false, stderrTail: '' };
    this.workers.add(w);
    let partial = '';
    child.stderr?.on('data', (c: Buffer) => {
      const s = c.toString();
      w.stderrTail = (w.stderrTail + s).slice(-STDERR_TAIL);
      partial += s;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line && !/ExperimentalWarning|--trace-warnings/.test(line)) this.opts.onChildLog?.(line);
      }
    });
    return new Promise<void>((resolve, reject) => {
      child.on('message', (m: ChildMessage) => this.onMessage(w, m, resolve));
      child.on('exit', (code, signal) => {
        if (!w.ready) {
          reject(new Error(`${this.opts.name} worker exited before it was ready (${signal ?? `exit ${code}`}): ${w.stderrTail.split('\n').filter((l) => l && !/ExperimentalWarning|trace-warnings/.test(l)).slice(-6).join(' | ')}`));
        }
        this.onExit(w, code, signal);
      });
      child.on('error', () => undefined);
    });
  }

  private onMessage(w: Worker, m: ChildMessage, ready: () => void): void {
    if (m.type === 'ready') {
      w.ready = true;
      this.startFailures = 0;
      ready();
      this.dispatch();
      return;
    }
    const t = w.task;
    if (!t || m.id !== t.id) return;
    if (m.type === 'progress') {
      t.opts.onProgress?.(m.progress, m.total, m.message);
      return;
    }
    this.finish(w);
    const metrics = { ...m.metrics, duration_ms: performance.now() - t.started, worker_pid: w.child.pid ?? 0 };
    if (m.ok) t.resolve({ value: m.value, metrics });
    else if ('denial' in m) t.reject(new DenialError({ ...m.denial, detail: { ...(m.denial.detail ?? {}), ...metrics } }));
    else t.reject(new DenialError(deny('tool_error', `The ${this.opts.name} worker reported an error${m.error.code ? ` (${m.error.code})` : ''}.`, ['tool.failed'], { error: m.error.message.slice(0, 500) })));
    this.dispatch();
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(w);
    const t = w.task;
    w.task = undefined;
    if (t) {
      clearTimeout(t.timer);
      if (t.onAbort) t.opts.signal?.removeEventListener('abort', t.onAbort);
      if (w.killedFor === 'timeout') t.reject(new DenialError(deny('timeout', `The call exceeded its ${t.opts.timeoutMs} ms time cap and was stopped.`, ['exec.wall_time'])));
      else if (w.killedFor === 'cancelled') t.reject(new DenialError(deny('cancelled', 'The client cancelled the call; the worker was stopped.', ['call.cancelled'])));
      else if (w.killedFor === 'close') t.reject(new DenialError(deny('unavailable', 'The server is shutting down.', ['pool.closed'])));
      else if (OOM.test(w.stderrTail)) {
        this.killed.crashed++;
        t.reject(new DenialError(deny('resource_exceeded', 'The call exceeded the worker memory cap; the worker was replaced.', ['exec.memory'])));
      } else {
        this.killed.crashed++;
        t.reject(new DenialError(deny('tool_error', `The ${this.opts.name} worker died mid-call (${signal ?? `exit ${code}`}); it was replaced.`, ['worker.crashed'])));
      }
    }
    this.emit('exit', { pid: w.child.pid, code, signal, reason: w.killedFor ?? 'crashed' });
    if (!w.ready && ++this.startFailures >= 3) {
      // A worker that cannot even start will not start next time either: stop, and say so.
      this.brokenReason = w.stderrTail.slice(-500);
      for (const t of this.queue.splice(0)) t.reject(new DenialError(deny('unavailable', `The ${this.opts.name} workers cannot start.`, ['pool.broken'])));
      return;
    }
    if (!this.closed) void this.spawn().catch(() => undefined);
  }

  private finish(w: Worker): void {
    const t = w.task;
    if (!t) return;
    clearTimeout(t.timer);
    if (t.onAbort) t.opts.signal?.removeEventListener('abort', t.onAbort);
    w.task = undefined;
  }

  private kill(w: Worker, why: 'timeout' | 'cancelled' | 'close'): void {
    if (w.killedFor) return;
    w.killedFor = why;
    if (why !== 'close') this.killed[why]++;
    w.child.kill('SIGKILL');
  }

  private dispatch(): void {
    while (this.queue.length) {
      const w = [...this.workers].find((x) => x.ready && !x.task && !x.killedFor);
      if (!w) return;
      const t = this.queue.shift() as Task;
      if (t.opts.signal?.aborted) {
        t.reject(new DenialError(deny('cancelled', 'The client cancelled the call.', ['call.cancelled'])));
        continue;
      }
      w.task = t;
      t.timer = setTimeout(() => this.kill(w, 'timeout'), Math.max(1, t.opts.timeoutMs));
      if (t.opts.signal) {
        t.onAbort = () => this.kill(w, 'cancelled');
        t.opts.signal.addEventListener('abort', t.onAbort, { once: true });
      }
      const msg: TaskMessage = { type: 'task', id: t.id, op: t.op, payload: t.payload };
      w.child.send(msg);
    }
  }

  run<T>(op: string, payload: unknown, opts: RunOptions): Promise<RunResult<T>> {
    if (this.closed) return Promise.reject(new DenialError(deny('unavailable', 'The server is shutting down.', ['pool.closed'])));
    if (opts.signal?.aborted) return Promise.reject(new DenialError(deny('cancelled', 'The client cancelled the call.', ['call.cancelled'])));
    if (this.brokenReason !== undefined) return Promise.reject(new DenialError(deny('unavailable', `The ${this.opts.name} workers cannot start.`, ['pool.broken'])));
    const idle = [...this.workers].some((x) => x.ready && !x.task && !x.killedFor);
    if (!idle && this.queue.length >= this.opts.maxQueue) {
      return Promise.reject(new DenialError(deny('unavailable', `The ${this.opts.name} pool is saturated; retry shortly.`, ['pool.saturated'])));
    }
    return new Promise<RunResult<T>>((resolve, reject) => {
      const started = performance.now();
      const task: Task = { id: this.nextId++, op, payload, opts, started, resolve: resolve as (r: RunResult<unknown>) => void, reject };
      if (opts.signal) {
        // While queued, a cancellation just drops the task.
        opts.signal.addEventListener('abort', () => {
          const i = this.queue.indexOf(task);
          if (i >= 0) {
            this.queue.splice(i, 1);
            reject(new DenialError(deny('cancelled', 'The client cancelled the call.', ['call.cancelled'])));
          }
        }, { once: true });
      }
      this.queue.push(task);
      this.dispatch();
    });
  }

  stats(): PoolStats {
    const ws = [...this.workers];
    return {
      name: this.opts.name,
      size: this.opts.size,
      ready: ws.filter((w) => w.ready && !w.killedFor).length,
      busy: ws.filter((w) => w.task).length,
      queued: this.queue.length,
      spawned: this.spawned,
      killed: { ...this.killed },
    };
  }

  /** Pids of live workers (for tests that kill one on purpose). */
  pids(): number[] {
    return [...this.workers].map((w) => w.child.pid ?? 0).filter(Boolean);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new DenialError(deny('unavailable', 'The server is shutting down.', ['pool.closed'])));
    const exits = [...this.workers].map((w) => new Promise<void>((r) => {
      if (w.child.exitCode !== null || w.child.signalCode !== null) return r();
      w.child.once('exit', () => r());
      this.kill(w, 'close');
    }));
    await Promise.all(exits);
  }
}
