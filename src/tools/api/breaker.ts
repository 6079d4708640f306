/**
 * A circuit breaker per upstream. Closed: calls go through and consecutive failed calls are
 * counted. After `failures` in a row it opens: calls are refused at once (`unavailable`) for
 * `cooldownMs`. Then it is half-open: exactly one call goes through as a probe; its success
 * closes the breaker, its failure opens it for another cool-down. A call counts once, after its
 * retries, so "failures" means failed calls, not attempts.
 */
export type BreakerState = 'closed' | 'open' | 'half_open';

export type BreakerTicket = { readonly ok: true; readonly probe: boolean } | { readonly ok: false; readonly retryAfterMs: number };

export interface BreakerSnapshot {
  readonly state: BreakerState;
  readonly consecutive_failures: number;
  readonly failure_threshold: number;
  readonly cooldown_ms: number;
  readonly opened: number;
  readonly retry_after_ms?: number;
}

export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private consecutive = 0;
  private openedAt = 0;
  private probeInFlight = false;
  private timesOpened = 0;

  constructor(
    private readonly failureThreshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  acquire(): BreakerTicket {
    if (this.state === 'open') {
      const waited = this.now() - this.openedAt;
      if (waited < this.cooldownMs) return { ok: false, retryAfterMs: this.cooldownMs - waited };
      this.state = 'half_open';
    }
    if (this.state === 'half_open') {
      // One probe at a time; everyone else waits for its verdict.
      if (this.probeInFlight) return { ok: false, retryAfterMs: Math.min(this.cooldownMs, 1000) };
      this.probeInFlight = true;
      return { ok: true, probe: true };
    }
    return { ok: true, probe: false };
  }

  success(ticket: BreakerTicket): void {
    this.consecutive = 0;
    if (ticket.ok && ticket.probe) {
      this.probeInFlight = false;
      this.state = 'closed';
    }
  }

  failure(ticket: BreakerTicket): void {
    this.consecutive += 1;
    if (ticket.ok && ticket.probe) {
      this.probeInFlight = false;
      this.open();
    } else if (this.state === 'closed' && this.consecutive >= this.failureThreshold) {
      this.open();
    }
  }

  /** The call ended without a verdict on the upstream (cancelled, refused locally): free the probe slot. */
  release(ticket: BreakerTicket): void {
    if (ticket.ok && ticket.probe) {
      this.probeInFlight = false;
    }
  }

  private open(): void {
    this.state = 'open';
    this.openedAt = this.now();
    this.timesOpened += 1;
  }

  snapshot(): BreakerSnapshot {
    const base = { consecutive_failures: this.consecutive, failure_threshold: this.failureThreshold, cooldown_ms: this.cooldownMs, opened: this.timesOpened };
    if (this.state === 'open') {
      const left = this.cooldownMs - (this.now() - this.openedAt);
      // Report the state a call would find now.
      if (left <= 0) return { state: 'half_open', ...base };
      return { state: 'open', ...base, retry_after_ms: Math.ceil(left) };
    }
    return { state: this.state, ...base };
  }
}
