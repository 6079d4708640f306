import argon2 from 'argon2';

/**
 * argon2's Node binding runs each verification on the libuv thread pool (4 threads by default),
 * the same pool the audit log's fdatasync and every fs call use, and each verification keeps a
 * thread busy for ≈ 140 ms. Unbounded, a burst of wrong secrets occupies the whole pool and every
 * audited call waits behind it (issue 17: 4.5–9.4 s). So at most `concurrency` verifications run
 * at once (default 1: three threads stay free for I/O), at most `queue` wait, and the rest are
 * refused at once — the caller answers 503 `auth.busy` with Retry-After, which costs nothing.
 */
export class Argon2Gate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Verifications refused because the queue was full (for tests and metrics). */
  refused = 0;

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
  ) {}

  /** Verify, or undefined at once when the gate is full. A failure to verify is a wrong secret. */
  verify(hash: string, secret: string): Promise<boolean> | undefined {
    if (this.running >= this.concurrency && this.waiting.length >= this.queue) {
      this.refused += 1;
      return undefined;
    }
    return this.run(() => argon2.verify(hash, secret).catch(() => false));
  }

  get busy(): number {
    return this.running;
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running += 1;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `running` never drops below the bound.
      if (next) next();
      else this.running -= 1;
    }
  }
}
