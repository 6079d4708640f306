export interface LockoutOptions {
  /** Failures allowed before the first lock. */
  readonly threshold: number;
  /** The first lock; each further failure doubles it. */
  readonly baseMs: number;
  readonly maxMs: number;
  /** A subject's failure count is forgotten after this long without failures. */
  readonly forgetMs: number;
}

interface Entry {
  failures: number;
  lockedUntil: number;
  lastFailure: number;
}

/**
 * Exponential back-off per subject (`ip:<address>`, `key:<id>`). Checked before argon2 runs, so a
 * locked subject costs a Map lookup, not a hash. Bounded: past `maxEntries` the oldest entries go
 * (an attacker spraying addresses can only make us forget, never grow without bound).
 */
export class Lockout {
  private readonly entries = new Map<string, Entry>();
  constructor(
    private readonly opts: LockoutOptions,
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {}

  /** Seconds until the subject may try again, or 0 when it is not locked. */
  retryAfterS(subject: string): number {
    const e = this.entries.get(subject);
    if (!e) return 0;
    const t = this.now();
    if (t - e.lastFailure > this.opts.forgetMs && e.lockedUntil <= t) {
      this.entries.delete(subject);
      return 0;
    }
    return e.lockedUntil > t ? Math.max(1, Math.ceil((e.lockedUntil - t) / 1000)) : 0;
  }

  failure(subject: string): void {
    const t = this.now();
    let e = this.entries.get(subject);
    if (!e || (t - e.lastFailure > this.opts.forgetMs && e.lockedUntil <= t)) {
      e = { failures: 0, lockedUntil: 0, lastFailure: t };
    } else {
      this.entries.delete(subject); // re-insert: Map order is our LRU
    }
    e.failures += 1;
    e.lastFailure = t;
    if (e.failures >= this.opts.threshold) {
      const ms = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** Math.min(30, e.failures - this.opts.threshold));
      e.lockedUntil = t + ms;
    }
    this.entries.set(subject, e);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  success(subject: string): void {
    this.entries.delete(subject);
  }
}
