import { MemoryTokenBuckets, type TakeResult, type TierSpec } from './token-bucket.js';

/**
 * Where token buckets live. The memory store is the single-machine default; the Redis store
 * (redis-token-bucket.ts) shares buckets between replicas with one atomic script per take.
 * A store that cannot answer rejects: callers refuse the call (fail closed), never let it through.
 */
export interface RateStore {
  readonly kind: 'memory' | 'redis';
  take(key: string, tier: TierSpec, cost?: number): Promise<TakeResult>;
  close(): Promise<void>;
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
  async close(): Promise<void> {}
}
