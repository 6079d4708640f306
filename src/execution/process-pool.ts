import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { DenialError, deny } from '../core/denial.js';
import type { ChildMessage, TaskMessage, TaskMetrics } from '../../sandbox/pool/protocol.js';

export interface BackoffOptions {
  /** Delay before the respawn that follows the first failed start. */
  readonly initialMs: number;
  /** The delay doubles per failure in a row up to this cap; the pool never stops trying. */
  readonly maxMs: number;
}

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
  readonly backoff?: Partial<BackoffOptions>;
  /** Failed starts in a row after which the pool is in a crash loop (unhealthy). */
  readonly crashLoopAfter?: number;
  /** A worker that stays up this long after saying ready proves that workers can start again. */
  readonly stableMs?: number;
  /** For tests: jitter source in [0, 1). */
  readonly random?: () => number;
}

export interface RunOptions {
  /**
   * Time cap counted from the moment `run` is called: queue wait included. A call still queued
   * at its cap is answered `timeout` without running; a running one has its worker killed.
   */
  readonly timeoutMs: number;
  /**
   * A tighter cap on the running part alone, counted from dispatch (still within `timeoutMs`):
   * for a worker that is slow to start (the embedded database boots in seconds), the wait may use
   * the call's whole deadline while the statement keeps its own cap.
   */
  readonly runMs?: number | undefined;
  /** Aborting it drops a queued call, or kills the worker running it. */
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((progress: number, total?: number, message?: string) => void) | undefined;
}

export interface RunResult<T> {
  readonly value: T;
  readonly metrics: TaskMetrics & { readonly duration_ms: number; readonly worker_pid: number; readonly queued_ms: number };
}

interface Task {
  readonly id: number;
  readonly op: string;
  readonly payload: unknown;
  readonly opts: RunOptions;
  /** performance.now() when `run` was called. */
  readonly enqueued: number;
  /** performance.now() past which the call is answered `timeout`. */
  readonly deadlineAt: number;
  readonly resolve: (r: RunResult<unknown>) => void;
  readonly reject: (e: Error) => void;
  dispatched?: number;
  worker?: Worker | undefined;
  timer?: NodeJS.Timeout | undefined;
  onAbort?: (() => void) | undefined;
  settled: boolean;
}

interface Worker {
  readonly child: ChildProcess;
  ready: boolean;
  /** Stayed up `stableMs` after ready, or finished a task: workers can start. */
  proven: boolean;
  stableTimer?: NodeJS.Timeout | undefined;
  task?: Task | undefined;
  stderrTail: string;
  /** Set when we killed it on purpose, so the exit handler knows the reason. */
  killedFor?: 'timeout' | 'cancelled' | 'close';
  gone: boolean;
  /** performance.now() at spawn: the exit event says how long it lived (a start's cost shows there). */
  readonly spawnedAt: number;
}

/** Why a worker was replaced (the label of mcp_pool_worker_restarts_total). */
export type RestartReason = 'start_failed' | 'crashed' | 'oom' | 'timeout' | 'cancelled' | 'exited';
const RESTART_REASONS: readonly RestartReason[] = ['start_failed', 'crashed', 'oom', 'timeout', 'cancelled', 'exited'];

export interface PoolHealth {
  readonly name: string;
  /** False while the pool is in a crash loop or closed. */
  readonly healthy: boolean;
  readonly state: 'ok' | 'crash_loop' | 'closed';
  /** Failed starts in a row (reset when a worker proves itself). */
  readonly failures: number;
  /** Workers that can take a call now. */
  readonly ready: number;
  /** In a crash loop: milliseconds until the next respawn attempt. */
  readonly retryInMs?: number;
  /** The last failure: how the worker ended and the tail of its stderr. */
  readonly lastFailure?: string;
}

export interface PoolStats {
  readonly name: string;
  readonly size: number;
  readonly ready: number;
  readonly busy: number;
  readonly queued: number;
  readonly spawned: number;
  readonly healthy: boolean;
  readonly killed: { timeout: number; cancelled: number; crashed: number };
  readonly restarts: Readonly<Record<RestartReason, number>>;
}

const STDERR_TAIL = 8192;
// What V8 prints when a heap (the process's or an isolate's) runs out: the process then aborts.
const OOM =
  /heap out of memory|Fatal process out of memory|Allocation failed|Reached heap limit|is_heap_oom = 1|CALL_AND_RETRY_LAST|Isolate was disposed during execution due to memory limit/i;
const NOISE = /ExperimentalWarning|--trace-warnings/;

/** Delay before respawn number `failures` (1-based) in a row: doubling, capped, with jitter in [50 %, 100 %]. */
export function backoffDelay(failures: number, b: BackoffOptions, random: () => number = Math.random): number {
  if (failures <= 0) return 0;
  const full = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(failures - 1, 30));
  // Jitter spreads the respawns of several slots (and several replicas) that failed together.
  return Math.round(full * (0.5 + 0.5 * random()));
}

/**
 * A pool of warm, disposable child processes. Tool code runs there, never on the server's event
 * loop: a worker that overruns its time is SIGKILLed and replaced, one that dies fails only its
 * own call, and a full queue answers `unavailable` instead of piling calls up.
 *
 * Workers that die before they are ready (or soon after, while idle) are respawned with a doubling,
 * capped back-off. Past `crashLoopAfter` such failures in a row the pool is in a crash loop:
 * `healthy` is false, `crash_loop` is emitted, and while no worker can take a call, calls are
 * answered `unavailable` at once. The pool keeps trying at the capped delay and leaves the crash
 * loop (`recovered`) as soon as a worker proves itself. A worker that dies mid-call is charged to
 * that call (a hostile script must not make the pool look broken) and is replaced at once.
 */
export class ProcessPool extends EventEmitter {
  private readonly workers = new Set<Worker>();
  private readonly queue: Task[] = [];
  /** Slots waiting for their back-off before a respawn. */
  private readonly respawnTimers = new Map<NodeJS.Timeout, number>();
  private nextId = 1;
  private closed = false;
  private spawned = 0;
  private failures = 0;
  private crashLoop = false;
  private lastFailure: string | undefined;
  private readonly killed = { timeout: 0, cancelled: 0, crashed: 0 };
  private readonly restarts: Record<RestartReason, number> = Object.fromEntries(RESTART_REASONS.map((r) => [r, 0])) as Record<RestartReason, number>;
  private readonly backoff: BackoffOptions;
  private readonly crashLoopAfter: number;
  private readonly stableMs: number;
  private readonly random: () => number;

  constructor(private readonly opts: PoolOptions) {
    super();
    this.backoff = { initialMs: opts.backoff?.initialMs ?? 100, maxMs: opts.backoff?.maxMs ?? 5000 };
    this.crashLoopAfter = opts.crashLoopAfter ?? 3;
    this.stableMs = opts.stableMs ?? 1000;
    this.random = opts.random ?? Math.random;
  }

  /**
   * Spawn the warm workers and wait until each has said it is ready. A worker that cannot start
   * at boot is a deployment error: the pool closes itself and the error says why.
   */
  async start(): Promise<void> {
    const readies: Promise<void>[] = [];
    for (let i = 0; i < this.opts.size; i++) readies.push(this.spawn());
    try {
      await Promise.all(readies);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** True unless the pool is in a crash loop or closed (for /ready). */
  get healthy(): boolean {
    return !this.closed && !this.crashLoop;
  }

  health(): PoolHealth {
    const next = this.respawnTimers.size ? Math.min(...this.respawnTimers.values()) : undefined;
    return {
      name: this.opts.name,
      healthy: this.healthy,
      state: this.closed ? 'closed' : this.crashLoop ? 'crash_loop' : 'ok',
      failures: this.failures,
      ready: this.usable().length,
      ...(this.crashLoop && next !== undefined ? { retryInMs: Math.max(0, Math.round(next - performance.now())) } : {}),
      ...(this.lastFailure !== undefined ? { lastFailure: this.lastFailure } : {}),
    };
  }

  private spawn(): Promise<void> {
    let child: ChildProcess;
    try {
      child = fork(this.opts.entry, [], {
        execArgv: [...this.opts.execArgv],
        env: this.opts.env ?? { NODE_ENV: process.env.NODE_ENV ?? 'production', PATH: process.env.PATH ?? '' },
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        serialization: 'json',
      });
    } catch (err) {
      // EAGAIN, EMFILE: out of processes or descriptors. Same treatment as a worker that died at start.
      this.onStartFailure(`fork failed: ${(err as Error).message}`);
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.spawned++;
    const w: Worker = { child, ready: false, proven: false, stderrTail: '', gone: false, spawnedAt: performance.now() };
    this.workers.add(w);
    let partial = '';
    child.stderr?.on('data', (c: Buffer) => {
      const s = c.toString();
      w.stderrTail = (w.stderrTail + s).slice(-STDERR_TAIL);
      partial = (partial + s).slice(-STDERR_TAIL);
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line && !NOISE.test(line)) this.opts.onChildLog?.(line);
      }
    });
    return new Promise<void>((resolve, reject) => {
      const ended = (code: number | null, signal: NodeJS.Signals | null) => {
        if (w.gone) return;
        w.gone = true;
        if (!w.ready) reject(new Error(`${this.opts.name} worker exited before it was ready (${signal ?? `exit ${code}`}): ${this.tailOf(w)}`));
        this.onExit(w, code, signal);
      };
      child.on('message', (m: ChildMessage) => this.onMessage(w, m, resolve));
      child.on('exit', ended);
      // A spawn that fails (ENOENT, EAGAIN) may report only 'error', without a pid or an exit.
      child.on('error', () => {
        if (child.pid === undefined) ended(null, null);
      });
    });
  }

  private tailOf(w: Worker): string {
    return w.stderrTail
      .split('\n')
      .filter((l) => l && !NOISE.test(l))
      .slice(-6)
      .join(' | ');
  }

  private usable(): Worker[] {
    return [...this.workers].filter((x) => x.ready && !x.killedFor && !x.gone && x.child.connected);
  }

  private onMessage(w: Worker, m: ChildMessage, ready: () => void): void {
    if (m.type === 'ready') {
      if (w.ready) return;
      w.ready = true;
      w.stableTimer = setTimeout(() => this.prove(w), this.stableMs);
      w.stableTimer.unref();
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
    w.task = undefined;
    this.prove(w);
    const now = performance.now();
    const metrics = {
      ...m.metrics,
      duration_ms: now - (t.dispatched ?? t.enqueued),
      queued_ms: (t.dispatched ?? now) - t.enqueued,
      worker_pid: w.child.pid ?? 0,
    };
    if (m.ok) this.settle(t, () => t.resolve({ value: m.value, metrics }));
    else if ('denial' in m) this.settle(t, () => t.reject(new DenialError({ ...m.denial, detail: { ...(m.denial.detail ?? {}), ...metrics } })));
    else
      this.settle(t, () =>
        t.reject(
          new DenialError(
            deny('tool_error', `The ${this.opts.name} worker reported an error${m.error.code ? ` (${m.error.code})` : ''}.`, ['tool.failed'], {
              error: m.error.message.slice(0, 500),
            }),
          ),
        ),
      );
    this.dispatch();
  }

  /** A worker that stayed up (or finished a task) shows workers can start: the failure streak ends. */
  private prove(w: Worker): void {
    clearTimeout(w.stableTimer);
    w.stableTimer = undefined;
    if (w.proven || w.gone || this.closed) return;
    w.proven = true;
    this.failures = 0;
    if (this.crashLoop) {
      this.crashLoop = false;
      this.emit('recovered', this.health());
    }
    // The other slots need not sit out their back-off any longer.
    for (const timer of [...this.respawnTimers.keys()]) {
      clearTimeout(timer);
      this.respawnTimers.delete(timer);
      this.respawn();
    }
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(w);
    clearTimeout(w.stableTimer);
    const how = signal ?? `exit ${code}`;
    const t = w.task;
    w.task = undefined;
    let reason: RestartReason;
    if (w.killedFor === 'close') reason = 'exited';
    else if (w.killedFor) reason = w.killedFor;
    else if (t) reason = OOM.test(w.stderrTail) ? 'oom' : 'crashed';
    else reason = w.ready && w.proven ? 'exited' : 'start_failed';
    if (t) {
      if (w.killedFor === 'timeout')
        this.settle(t, () =>
          t.reject(new DenialError(deny('timeout', `The call exceeded its ${t.opts.timeoutMs} ms time cap and was stopped.`, ['exec.wall_time']))),
        );
      else if (w.killedFor === 'cancelled')
        this.settle(t, () => t.reject(new DenialError(deny('cancelled', 'The client cancelled the call; the worker was stopped.', ['call.cancelled']))));
      else if (w.killedFor === 'close') this.settle(t, () => t.reject(new DenialError(deny('unavailable', 'The server is shutting down.', ['pool.closed']))));
      else {
        this.killed.crashed++;
        if (reason === 'oom')
          this.settle(t, () =>
            t.reject(new DenialError(deny('resource_exceeded', 'The call exceeded the worker memory cap; the worker was replaced.', ['exec.memory']))),
          );
        else
          this.settle(t, () =>
            t.reject(new DenialError(deny('tool_error', `The ${this.opts.name} worker died mid-call (${how}); it was replaced.`, ['worker.crashed']))),
          );
      }
    }
    this.emit('exit', {
      pid: w.child.pid,
      code,
      signal,
      reason: w.killedFor === 'close' ? 'close' : reason,
      lived_ms: Math.round(performance.now() - w.spawnedAt),
    });
    if (this.closed) return;
    this.restarts[reason]++;
    this.refuseQueueIfStuck();
    if (reason === 'start_failed') {
      // Died before it was ready, or idle soon after: the next start would likely fail the same way.
      this.onStartFailure(`${how}${this.tailOf(w) ? `: ${this.tailOf(w)}` : ''}`);
      return;
    }
    this.respawn();
  }

  private onStartFailure(why: string): void {
    this.failures++;
    this.lastFailure = why.slice(-500);
    if (!this.crashLoop && this.failures >= this.crashLoopAfter) {
      this.crashLoop = true;
      this.emit('crash_loop', this.health());
    }
    if (this.crashLoop) this.refuseQueueIfStuck();
    this.respawn(backoffDelay(this.failures, this.backoff, this.random));
  }

  private respawn(delayMs = 0): void {
    if (this.closed) return;
    if (delayMs <= 0) {
      void this.spawn().catch(() => undefined);
      return;
    }
    const timer = setTimeout(() => {
      this.respawnTimers.delete(timer);
      if (!this.closed) void this.spawn().catch(() => undefined);
    }, delayMs);
    timer.unref();
    this.respawnTimers.set(timer, performance.now() + delayMs);
  }

  /** In a crash loop with no worker able to take a call, queued calls are answered now, not at their cap. */
  private refuseQueueIfStuck(): void {
    if (!this.crashLoop || this.usable().length) return;
    for (const t of this.queue.splice(0)) this.settle(t, () => t.reject(this.crashLoopDenial()));
  }

  private crashLoopDenial(): DenialError {
    const h = this.health();
    const retry = Math.max(1, Math.ceil((h.retryInMs ?? this.backoff.maxMs) / 1000));
    return new DenialError(
      deny('unavailable', `The ${this.opts.name} workers keep failing to start; retry in ${retry} s.`, ['pool.crash_loop'], { retry_after_s: retry }),
    );
  }

  /** Answer a task once: its timer and abort listener go with it. */
  private settle(t: Task, answer: () => void): void {
    if (t.settled) return;
    t.settled = true;
    clearTimeout(t.timer);
    t.timer = undefined;
    if (t.onAbort) t.opts.signal?.removeEventListener('abort', t.onAbort);
    t.onAbort = undefined;
    t.worker = undefined;
    answer();
  }

  private kill(w: Worker, why: 'timeout' | 'cancelled' | 'close'): void {
    if (w.killedFor) return;
    w.killedFor = why;
    if (why !== 'close') this.killed[why]++;
    w.child.kill('SIGKILL');
  }

  private dispatch(): void {
    while (this.queue.length) {
      const w = this.usable().find((x) => !x.task);
      if (!w) return;
      const t = this.queue.shift() as Task;
      const now = performance.now();
      const left = t.deadlineAt - now;
      if (left < 1) {
        this.settle(t, () => t.reject(queueTimeout(t, now)));
        continue;
      }
      w.task = t;
      t.worker = w;
      t.dispatched = now;
      clearTimeout(t.timer);
      t.timer = setTimeout(() => this.kill(w, 'timeout'), Math.ceil(Math.min(left, t.opts.runMs ?? Infinity)));
      const msg: TaskMessage = { type: 'task', id: t.id, op: t.op, payload: t.payload };
      w.child.send(msg);
    }
  }

  run<T>(op: string, payload: unknown, opts: RunOptions): Promise<RunResult<T>> {
    if (this.closed) return Promise.reject(new DenialError(deny('unavailable', 'The server is shutting down.', ['pool.closed'])));
    if (opts.signal?.aborted) {
      if (isDeadline(opts.signal.reason))
        return Promise.reject(new DenialError(deny('timeout', 'The call reached its deadline before it could run.', ['exec.queue_wait'])));
      return Promise.reject(new DenialError(deny('cancelled', 'The client cancelled the call.', ['call.cancelled'])));
    }
    if (this.crashLoop && !this.usable().length) return Promise.reject(this.crashLoopDenial());
    const idle = this.usable().some((x) => !x.task);
    if (!idle && this.queue.length >= this.opts.maxQueue) {
      return Promise.reject(new DenialError(deny('unavailable', `The ${this.opts.name} pool is saturated; retry shortly.`, ['pool.saturated'])));
    }
    return new Promise<RunResult<T>>((resolve, reject) => {
      const enqueued = performance.now();
      const cap = Math.max(1, opts.timeoutMs);
      const task: Task = {
        id: this.nextId++,
        op,
        payload,
        opts,
        enqueued,
        deadlineAt: enqueued + cap,
        resolve: resolve as (r: RunResult<unknown>) => void,
        reject,
        settled: false,
      };
      // The cap counts from now: a call that never reaches a worker is still answered at its cap.
      task.timer = setTimeout(() => {
        const i = this.queue.indexOf(task);
        if (i < 0) return;
        this.queue.splice(i, 1);
        this.settle(task, () => reject(queueTimeout(task, performance.now())));
      }, cap);
      if (opts.signal) {
        const signal = opts.signal;
        task.onAbort = () => {
          // The gate aborts with its deadline's denial: that is a timeout, not a client's cancellation.
          const deadline = isDeadline(signal.reason);
          const i = this.queue.indexOf(task);
          if (i >= 0) {
            this.queue.splice(i, 1);
            this.settle(task, () =>
              reject(
                deadline ? queueTimeout(task, performance.now()) : new DenialError(deny('cancelled', 'The client cancelled the call.', ['call.cancelled'])),
              ),
            );
          } else if (task.worker) this.kill(task.worker, deadline ? 'timeout' : 'cancelled');
        };
        opts.signal.addEventListener('abort', task.onAbort, { once: true });
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
      ready: this.usable().length,
      busy: ws.filter((w) => w.task).length,
      queued: this.queue.length,
      spawned: this.spawned,
      healthy: this.healthy,
      killed: { ...this.killed },
      restarts: { ...this.restarts },
    };
  }

  /** Pids of live workers (for tests that kill one on purpose). */
  pids(): number[] {
    return [...this.workers].map((w) => w.child.pid ?? 0).filter(Boolean);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.respawnTimers.keys()) clearTimeout(timer);
    this.respawnTimers.clear();
    for (const t of this.queue.splice(0)) this.settle(t, () => t.reject(new DenialError(deny('unavailable', 'The server is shutting down.', ['pool.closed']))));
    const exits = [...this.workers].map(
      (w) =>
        new Promise<void>((r) => {
          clearTimeout(w.stableTimer);
          if (w.gone || w.child.exitCode !== null || w.child.signalCode !== null) return r();
          w.child.once('exit', () => r());
          this.kill(w, 'close');
        }),
    );
    await Promise.all(exits);
  }
}

/** An abort reason set by the gate's deadline (src/gate/deadline.ts aborts with its denial). */
function isDeadline(reason: unknown): boolean {
  if (typeof reason !== 'object' || reason === null) return false;
  const r = reason as { code?: unknown; reasons?: unknown };
  return r.code === 'timeout' || (Array.isArray(r.reasons) && r.reasons.some((x) => typeof x === 'string' && x.startsWith('deadline.')));
}

function queueTimeout(t: Task, now: number): DenialError {
  return new DenialError(
    deny('timeout', `No worker was free within the call's ${t.opts.timeoutMs} ms time cap (waited ${Math.round(now - t.enqueued)} ms); it did not run.`, [
      'exec.queue_wait',
    ]),
  );
}
