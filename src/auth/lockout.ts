export interface LockoutOptions {
  /** Failures allowed before the first lock (attempts still running count as failures). */
  readonly threshold: number;
  /** The first lock; each further failure doubles it. */
  readonly baseMs: number;
  readonly maxMs: number;
  /** A subject's failure count is forgotten after this long without failures. */
  readonly forgetMs: number;
}

interface Entry {
  failures: number;
  /** Attempts begun and not yet settled: they count towards the threshold (issue 17). */
  inflight: number;
  lockedUntil: number;
  lastFailure: number;
}

/**
 * Exponential back-off per subject (`ip:<address>`, `key:<id>@<address>`). Checked before argon2
 * runs, so a locked subject costs a Map lookup, not a hash. An attempt counts from when it
 * begins (`begin`/`end`): a burst of concurrent guesses cannot all pass the check before the
 * first of them fails. Bounded: past `maxEntries` the oldest entries go (an attacker spraying
 * addresses can only make us forget, never grow without bound); an entry with an attempt in
 * flight is kept in the count until it ends or is evicted.
 */
export class Lockout {
  private readonly entries = new Map<string, Entry>();
  constructor(
    private readonly opts: LockoutOptions,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {}

  private live(subject: string, t: number): Entry | undefined {
    const e = this.entries.get(subject);
    if (!e) return undefined;
    if (e.inflight === 0 && t - e.lastFailure > this.opts.forgetMs && e.lockedUntil <= t) {
      this.entries.delete(subject);
      return undefined;
    }
    return e;
  }

  /**
   * Seconds until the subject may try again, or 0 when it may. A subject whose failures plus
   * running attempts reach the threshold waits at least a second, without a lock of its own.
   */
  retryAfterS(subject: string): number {
    const t = this.now();
    const e = this.live(subject, t);
    if (!e) return 0;
    if (e.lockedUntil > t) return Math.max(1, Math.ceil((e.lockedUntil - t) / 1000));
    return e.inflight > 0 && e.failures + e.inflight >= this.opts.threshold ? 1 : 0;
  }

  /** Failures recorded (not counting running attempts) for a subject that is still remembered. */
  failures(subject: string): number {
    return this.live(subject, this.now())?.failures ?? 0;
  }

  inflight(subject: string): number {
    return this.entries.get(subject)?.inflight ?? 0;
  }

  /** An attempt starts: it counts towards the threshold until `end`. */
  begin(subject: string): void {
    const t = this.now();
    const e = this.live(subject, t) ?? { failures: 0, inflight: 0, lockedUntil: 0, lastFailure: t };
    e.inflight += 1;
    this.put(subject, e);
  }

  /** The attempt begun with `begin` settled; `failed` adds it as a failure. */
  end(subject: string, failed: boolean): void {
    const e = this.entries.get(subject);
    if (e && e.inflight > 0) e.inflight -= 1;
    if (failed) this.failure(subject);
  }

  failure(subject: string, lockNow = false): void {
    const t = this.now();
    let e = this.live(subject, t);
    if (!e) e = { failures: 0, inflight: 0, lockedUntil: 0, lastFailure: t };
    e.failures = lockNow ? Math.max(e.failures + 1, this.opts.threshold) : e.failures + 1;
    e.lastFailure = t;
    if (e.failures >= this.opts.threshold) {
      const ms = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** Math.min(30, e.failures - this.opts.threshold));
      e.lockedUntil = t + ms;
    }
    this.put(subject, e);
  }

  success(subject: string): void {
    const e = this.entries.get(subject);
    if (e && e.inflight > 0) {
      e.failures = 0;
      e.lockedUntil = 0;
    } else {
      this.entries.delete(subject);
    }
  }

  private put(subject: string, e: Entry): void {
    this.entries.delete(subject); // re-insert: Map order is our LRU
    this.entries.set(subject, e);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
