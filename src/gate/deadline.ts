import { deny, type Denial } from '../core/denial.js';
import type { CallDeadline } from '../core/call.js';

/**
 * After the deadline the executor gets this long to report its own typed answer (a pool's
 * `timeout`, a cancelled query) before the gate answers without it. It is the "small bound" of
 * the invariant: every call is answered within its deadline plus this, plus the record's bound.
 */
export const EXECUTOR_GRACE_MS = 250;

/** How long the gate waits for the outcome record before answering `audit_unavailable`. */
export const RECORD_BOUND_MS = 2000;

/**
 * One call's deadline. The gate owns it: it is set when the call enters, tightened once the
 * policy's obligations are known, and when it passes the call's signal is aborted (executors stop
 * their work) and the gate answers. Marks say what the call was waiting on, so a call stuck on an
 * unreachable dependency is answered `unavailable`, not `timeout`.
 */
export class GateDeadline implements CallDeadline {
  private readonly controller = new AbortController();
  private readonly marks = new Map<number, string>();
  private nextMark = 1;
  private timer: NodeJS.Timeout | undefined;
  private expiredWith: Denial | undefined;
  private readonly listeners: (() => void)[] = [];
  /** Aborted at the deadline or when the client cancels: what executors listen to. */
  readonly signal: AbortSignal;

  private atMs: number;
  private disposed = false;

  constructor(
    private enteredAt: number,
    private capMs: number,
    clientSignal: AbortSignal,
  ) {
    this.atMs = enteredAt + capMs;
    // One controller fed by the client's signal (cheaper than AbortSignal.any on every call).
    this.signal = this.controller.signal;
    if (clientSignal.aborted) this.controller.abort(clientSignal.reason);
    else {
      this.clientSignal = clientSignal;
      clientSignal.addEventListener('abort', this.onClientAbort, { once: true });
    }
    this.arm();
  }

  private clientSignal: AbortSignal | undefined;
  private readonly onClientAbort = (): void => {
    this.controller.abort(this.clientSignal?.reason);
  };

  get at(): number {
    return this.atMs;
  }

  /** The call's time cap in ms (configured, tightened by obligations): what the record shows. */
  get cap(): number {
    return this.capMs;
  }

  get expired(): boolean {
    return this.expiredWith !== undefined;
  }

  /** The answer for a call whose deadline passed (set once, when it passed). */
  get denial(): Denial | undefined {
    return this.expiredWith;
  }

  remainingMs(): number {
    return Math.max(1, Math.floor(this.atMs - performance.now()));
  }

  waitingOn(dependency: string): () => void {
    const id = this.nextMark++;
    this.marks.set(id, dependency);
    return () => {
      this.marks.delete(id);
    };
  }

  /** The policy's time obligation, counted from the call's entry; it only ever tightens. */
  tightenCap(capMs: number): void {
    const atMs = this.enteredAt + capMs;
    if (atMs >= this.atMs || this.expired) return;
    this.atMs = atMs;
    this.capMs = capMs;
    this.arm();
  }

  /**
   * Stop the clock while a human is asked to approve the call (gate/approval.ts): the wait does not
   * eat the call's time, and the returned function starts the cap again in full from that moment.
   * The client's cancel still aborts the signal meanwhile; the ask has its own time limit.
   */
  suspend(): () => void {
    clearTimeout(this.timer);
    this.timer = undefined;
    return () => {
      if (this.expired || this.disposed) return;
      this.enteredAt = performance.now();
      this.atMs = this.enteredAt + this.capMs;
      this.arm();
    };
  }

  /** Called once when the deadline passes (immediately if it already has). */
  onExpire(fn: () => void): void {
    if (this.expired) fn();
    else this.listeners.push(fn);
  }

  /** Stop the timer: the call was answered. */
  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.listeners.length = 0;
    this.clientSignal?.removeEventListener('abort', this.onClientAbort);
    this.clientSignal = undefined;
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.expire(), Math.max(0, this.atMs - performance.now()));
  }

  private expire(): void {
    if (this.expired) return;
    const waiting = [...new Set(this.marks.values())];
    this.expiredWith = waiting.length
      ? deny(
          'unavailable',
          `The call reached its ${this.capMs} ms deadline while waiting for ${waiting.join(', ')}.`,
          waiting.map((d) => `deadline.${d}`),
        )
      : deny('timeout', `The call exceeded its ${this.capMs} ms deadline and was stopped.`, ['deadline.exceeded']);
    if (!this.controller.signal.aborted) this.controller.abort(this.expiredWith);
    for (const fn of this.listeners.splice(0)) fn();
  }
}
