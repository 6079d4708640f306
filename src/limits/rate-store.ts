import { MemoryTokenBuckets, type TakeResult, type TierSpec } from './token-bucket.js';

/**
 * Where token buckets live. The memory store is the single-machine default; the Redis store
 * (redis-token-bucket.ts) shares buckets between replicas with one atomic script per take.
 * A store that cannot answer rejects: callers refuse the call (fail closed), never let it through.
 */
export interface RateStore {
  readonly kind: 'memory' | 'redis';
  /** Rejects (RateStoreUnavailable) when the store cannot answer; never waits past its own short bound. */
  take(key: string, tier: TierSpec, cost?: number): Promise<TakeResult>;
  /** Whether the store can answer now (for /ready). */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/** The store could not answer: the call is refused `unavailable`, never let through. */
export class RateStoreUnavailable extends Error {
  override readonly name = 'RateStoreUnavailable';
}

export class MemoryRateStore implements RateStore {
  readonly kind = 'memory' as const;
  private readonly buckets: MemoryTokenBuckets;
  constructor(now?: () => number) {
    this.buckets = new MemoryTokenBuckets(now);
  }
  async take(key: string, tier: TierSpec, cost = 1): Promise<TakeResult> {
    return this.buckets.take(key, tier, cost);
  }
  async healthy(): Promise<boolean> {
    return true;
  }
  async close(): Promise<void> {}
}
