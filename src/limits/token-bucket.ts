export interface TierSpec {
  readonly capacity: number;
  readonly refill_per_s: number;
}

export interface TakeResult {
  readonly ok: boolean;
  /** Seconds until one token is available, when refused. */
  readonly retryAfterS: number;
  readonly remaining: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/**
 * In-memory token buckets, one per key. The memory store is the single-machine default; a shared
 * store (Redis) for several replicas implements the same `take`.
 */
export class MemoryTokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  constructor(private readonly now: () => number = () => performance.now()) {}

  take(key: string, tier: TierSpec, cost = 1): TakeResult {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: tier.capacity, updatedMs: t };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(tier.capacity, b.tokens + ((t - b.updatedMs) / 1000) * tier.refill_per_s);
      b.updatedMs = t;
    }
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { ok: true, retryAfterS: 0, remaining: Math.floor(b.tokens) };
    }
    const retryAfterS = Math.max(1, Math.ceil((cost - b.tokens) / tier.refill_per_s));
    return { ok: false, retryAfterS, remaining: 0 };
  }
}
