import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import type { Logger } from '../../observability/logger.js';
import { redactUrl } from '../../config/redact-url.js';
import { redisUsable } from '../../limits/redis.js';

/** A successful GET response as the cache keeps it (secrets already redacted). */
export interface CachedResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** Epoch milliseconds when it was fetched. */
  readonly storedAt: number;
  readonly redacted: number;
}

/** Bookkeeping per entry beyond the body, for the LRU's byte budget. */
const ENTRY_OVERHEAD = 512;

export interface CacheKeyParts {
  readonly upstream: string;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  /** The principal's scope: one principal never sees another's cached response. */
  readonly principal: string;
}

/** Unambiguous (JSON array, not concatenation) and fixed-length (sha256). */
export function cacheKey(p: CacheKeyParts): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify([p.upstream, p.method, p.path, p.query, p.principal]))
    .digest('hex');
}

/**
 * The API response cache: a bounded in-memory LRU (bytes, not entries), optionally in front of
 * Redis so replicas share entries.
 *
 * Without Redis the cache is skipped, not the call: a read that cannot reach Redis is a miss (the
 * call goes to the upstream) and a write that cannot reach it is dropped. That is safe because
 * every key carries the principal's scope (cacheKey): a miss can only lead to a fresh upstream
 * response for the same principal, never to another principal's entry. Failing the call closed
 * would turn an optimisation into an outage; the controls that must hold during a Redis outage
 * (rate limits with limits.store: redis) fail closed on their own. The cost is load on the upstream,
 * which the upstream's rate buckets and circuit breaker still bound. Redis is never waited for
 * past redis.ts's short bounds, and the outage is logged once when it starts and once when it ends.
 */
export class ResponseCache {
  private readonly lru: LRUCache<string, CachedResponse> | undefined;
  private reachable = true;

  constructor(
    readonly maxBytes: number,
    private readonly logger: Logger,
    private readonly redis?: Redis,
    private readonly prefix = 'bulwark:',
  ) {
    this.lru =
      maxBytes > 0
        ? new LRUCache<string, CachedResponse>({
            maxSize: maxBytes,
            maxEntrySize: Math.max(ENTRY_OVERHEAD + 1, Math.floor(maxBytes / 4)),
            sizeCalculation: (v) => v.body.length + ENTRY_OVERHEAD,
            ttlAutopurge: false,
          })
        : undefined;
  }

  get store(): 'memory' | 'redis' {
    return this.redis ? 'redis' : 'memory';
  }

  async get(key: string): Promise<CachedResponse | undefined> {
    const local = this.lru?.get(key);
    if (local) return local;
    if (!this.redis) return undefined;
    try {
      if (!(await redisUsable(this.redis))) throw new Error(`not connected (${this.redis.status})`);
      const [raw, ttl] = await Promise.all([this.redis.getBuffer(`${this.prefix}api-cache:${key}`), this.redis.pttl(`${this.prefix}api-cache:${key}`)]);
      this.reached();
      if (!raw) return undefined;
      const entry = decode(raw);
      if (entry && ttl > 0) this.lru?.set(key, entry, { ttl });
      return entry;
    } catch (err) {
      this.unreachable(err);
      return undefined;
    }
  }

  async set(key: string, entry: CachedResponse, ttlMs: number): Promise<void> {
    if (ttlMs <= 0) return;
    this.lru?.set(key, entry, { ttl: ttlMs });
    if (!this.redis) return;
    try {
      if (!(await redisUsable(this.redis))) throw new Error(`not connected (${this.redis.status})`);
      await this.redis.set(`${this.prefix}api-cache:${key}`, encode(entry), 'PX', ttlMs);
      this.reached();
    } catch (err) {
      this.unreachable(err);
    }
  }

  private reached(): void {
    if (this.reachable) return;
    this.reachable = true;
    this.logger.warn('api cache: redis reachable again; shared entries in use');
  }

  private unreachable(err: unknown): void {
    if (!this.reachable) return;
    this.reachable = false;
    this.logger.warn('api cache: redis unreachable; calls go to the upstream uncached until it answers', { error: redactUrl((err as Error).message) });
  }

  snapshot(): Record<string, unknown> {
    return { store: this.store, entries: this.lru?.size ?? 0, bytes: this.lru?.calculatedSize ?? 0, max_bytes: this.maxBytes };
  }
}

function encode(e: CachedResponse): Buffer {
  const head = Buffer.from(JSON.stringify({ status: e.status, headers: e.headers, storedAt: e.storedAt, redacted: e.redacted }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length);
  return Buffer.concat([len, head, e.body]);
}

function decode(raw: Buffer): CachedResponse | undefined {
  try {
    const n = raw.readUInt32BE(0);
    const head = JSON.parse(raw.subarray(4, 4 + n).toString('utf8')) as Omit<CachedResponse, 'body'>;
    if (typeof head.status !== 'number' || typeof head.headers !== 'object' || head.headers === null) return undefined;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(head.headers)) if (typeof v === 'string') headers[k] = v;
    return { status: head.status, headers, storedAt: Number(head.storedAt) || 0, redacted: Number(head.redacted) || 0, body: Buffer.from(raw.subarray(4 + n)) };
  } catch {
    return undefined;
  }
}
