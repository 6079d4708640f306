import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { RateStoreUnavailable, type RateStore } from './rate-store.js';
import { redactUrl } from '../config/redact-url.js';
import { redisHealthy, redisUsable } from './redis.js';
import type { TakeResult, TierSpec } from './token-bucket.js';

/**
 * Token buckets in Redis, shared by every replica. One Lua script reads, refills, takes and writes
 * the bucket atomically, on Redis's own clock (TIME), so replicas with skewed clocks still agree.
 * Buckets expire once they would be full again, so idle keys do not accumulate.
 *
 * Returns {allowed (0|1), tokens left (string: Lua numbers are truncated to integers on the way
 * out), milliseconds until `cost` tokens are available}.
 */
export const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local refill_per_ms = tonumber(ARGV[2]) / 1000
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * refill_per_ms)
  ts = now
end
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) / refill_per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / refill_per_ms) + 1000)
return {allowed, string.format('%.17g', tokens), wait_ms}
`;

type TakeReply = [number, string, number];

interface WithTake {
  bulwarkTake(key: string, capacity: string, refillPerS: string, cost: string): Promise<TakeReply>;
}

export class RedisTokenBuckets implements RateStore {
  readonly kind = 'redis' as const;
  private readonly redis: Redis & WithTake;
  /** Whether the last take reached Redis: the outage is logged once when it starts and once when it ends. */
  private reachable = true;

  /** `prefix` namespaces the keys (several deployments may share one Redis). */
  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly ownsConnection = false,
    private readonly logger?: Logger,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL when the script cache was flushed
    // (a restarted Redis has none).
    redis.defineCommand('bulwarkTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.redis = redis as Redis & WithTake;
  }

  /**
   * Rejects with RateStoreUnavailable, promptly, when Redis cannot answer: while disconnected at
   * once, on a hung connection after the command timeout (see redis.ts). Never waits for a reconnect.
   */
  async take(key: string, tier: TierSpec, cost = 1): Promise<TakeResult> {
    let reply: TakeReply;
    try {
      if (!(await redisUsable(this.redis))) throw new Error(`not connected (${this.redis.status})`);
      reply = await this.redis.bulwarkTake(`${this.prefix}rate:${key}`, String(tier.capacity), String(tier.refill_per_s), String(cost));
    } catch (err) {
      if (this.reachable) {
        this.reachable = false;
        this.logger?.warn('rate store unavailable: calls are refused until Redis answers again', { error: redactUrl((err as Error).message) });
      }
      throw new RateStoreUnavailable((err as Error).message);
    }
    if (!this.reachable) {
      this.reachable = true;
      this.logger?.warn('rate store available again');
    }
    const [allowed, tokens, waitMs] = reply;
    if (allowed === 1) return { ok: true, retryAfterS: 0, remaining: Math.floor(Number(tokens)) };
    return { ok: false, retryAfterS: Math.max(1, Math.ceil(Number(waitMs) / 1000)), remaining: 0 };
  }

  healthy(): Promise<boolean> {
    return redisHealthy(this.redis);
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.redis.quit().catch(() => undefined);
  }
}
