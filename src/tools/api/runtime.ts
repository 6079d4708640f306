import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.js';
import { ConfigError } from '../../config/loader.js';
import type { Logger } from '../../observability/logger.js';
import { compileTarget, systemResolver, type HttpMethod, type Resolver, type UpstreamTarget } from '../../analysis/url.js';
import type { TierSpec } from '../../limits/token-bucket.js';
import { MemoryRateStore, type RateStore } from '../../limits/rate-store.js';
import { RedisTokenBuckets } from '../../limits/redis-token-bucket.js';
import { createRedis, redisHealthy } from '../../limits/redis.js';
import { CircuitBreaker } from './breaker.js';
import { ResponseCache } from './cache.js';
import { PinnedPools } from './http.js';
import { UpstreamStats } from './stats.js';
import { secretVariants } from './secrets.js';

export type UpstreamSpec = NonNullable<Config['apis']>[string];

/** Headers Bulwark owns on the wire: a configured value could desynchronise or redirect the request. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'proxy-authorization',
  'proxy-connection',
  'accept-encoding',
]);

/** A configured upstream, compiled once at boot. */
export interface Upstream {
  readonly name: string;
  readonly spec: UpstreamSpec;
  readonly target: UpstreamTarget;
  readonly methods: ReadonlySet<HttpMethod>;
  /** Lower-case header names; values are secrets. */
  readonly headers: Readonly<Record<string, string>>;
  /** Every form in which a configured header value might come back (see secrets.ts). */
  readonly secrets: readonly Buffer[];
}

const tables = new WeakMap<object, ReadonlyMap<string, Upstream>>();

/** The upstream table for a configuration (memoised per frozen config object). Throws ConfigError. */
export function upstreamTable(config: Readonly<Config>): ReadonlyMap<string, Upstream> {
  const cached = tables.get(config);
  if (cached) return cached;
  const problems: string[] = [];
  const map = new Map<string, Upstream>();
  for (const [name, spec] of Object.entries(config.apis ?? {})) {
    let target: UpstreamTarget;
    try {
      target = compileTarget(name, spec);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(spec.headers)) {
      const lower = k.toLowerCase();
      if (RESERVED_HEADERS.has(lower)) problems.push(`apis.${name}.headers.${k}: Bulwark sets this header itself`);
      else if (Object.hasOwn(headers, lower)) problems.push(`apis.${name}.headers.${k}: given twice`);
      else headers[lower] = v;
    }
    if (typeof spec.rate === 'string' && !Object.hasOwn(config.limits.tiers, spec.rate))
      problems.push(`apis.${name}.rate: no tier named "${spec.rate}" in limits.tiers`);
    map.set(name, { name, spec, target, methods: new Set(spec.methods), headers, secrets: secretVariants(Object.values(headers)) });
  }
  if (problems.length) throw new ConfigError(problems);
  tables.set(config, map);
  return map;
}

export interface UpstreamState {
  readonly breaker: CircuitBreaker;
  readonly stats: UpstreamStats;
}

export interface ApiRuntimeOptions {
  /** Replace getaddrinfo (tests; a DoH resolver). */
  readonly resolver?: Resolver;
  readonly now?: () => number;
  readonly random?: () => number;
}

/**
 * Everything the API tools keep between calls, built once at boot and closed at shutdown: the
 * upstream table, pinned connection pools, circuit breakers and counters per upstream, the rate
 * store (memory or Redis) and the response cache.
 */
export class ApiRuntime {
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly state: ReadonlyMap<string, UpstreamState>;
  readonly pools = new PinnedPools();
  readonly now: () => number;
  readonly random: () => number;
  private resolverFn: Resolver;

  private constructor(
    readonly config: Readonly<Config>,
    readonly logger: Logger,
    readonly rate: RateStore,
    readonly cache: ResponseCache,
    private readonly redis: Redis | undefined,
    opts: ApiRuntimeOptions,
  ) {
    this.upstreams = upstreamTable(config);
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.resolverFn = opts.resolver ?? systemResolver;
    const state = new Map<string, UpstreamState>();
    for (const u of this.upstreams.values()) {
      state.set(u.name, { breaker: new CircuitBreaker(u.spec.breaker.failures, u.spec.breaker.cooldown_ms, this.now), stats: new UpstreamStats() });
    }
    this.state = state;
  }

  static create(config: Readonly<Config>, logger: Logger, opts: ApiRuntimeOptions = {}): ApiRuntime {
    upstreamTable(config); // configuration errors first, before any connection is opened
    const limits = config.limits;
    const needsRedis = limits.store === 'redis' || limits.api_cache.store === 'redis';
    if (needsRedis && !limits.redis_url) throw new ConfigError(['limits.redis_url: required when limits.store or limits.api_cache.store is "redis"']);
    const redis = needsRedis ? createRedis(limits.redis_url as string, logger, 'bulwark-api') : undefined;
    const rate: RateStore = limits.store === 'redis' ? new RedisTokenBuckets(redis as Redis, limits.redis_prefix, false, logger) : new MemoryRateStore();
    const cache = new ResponseCache(limits.api_cache.max_bytes, logger, limits.api_cache.store === 'redis' ? redis : undefined, limits.redis_prefix);
    return new ApiRuntime(config, logger, rate, cache, redis, opts);
  }

  get resolver(): Resolver {
    return this.resolverFn;
  }

  /** Swap the resolver (tests, or a deployment's own DNS client). Addresses are still checked. */
  useResolver(resolver: Resolver): void {
    this.resolverFn = resolver;
  }

  stateOf(name: string): UpstreamState {
    const s = this.state.get(name);
    if (!s) throw new Error(`no state for upstream ${name}`);
    return s;
  }

  /** The bucket for one principal on one upstream: the upstream's `rate`, else the principal's tier. */
  tierFor(upstream: Upstream, principalTier: string): TierSpec | undefined {
    const tiers = this.config.limits.tiers;
    const r = upstream.spec.rate;
    if (typeof r === 'string') return tiers[r];
    if (r) return r;
    return tiers[principalTier] ?? tiers[this.config.limits.default_tier];
  }

  /**
   * For /ready: true without Redis in the configuration; otherwise whether Redis is connected and
   * answers a PING within the command timeout (about a second at worst). With limits.store: redis
   * every call is refused while this is false; with only the API cache in Redis, calls still work
   * (uncached), so a deployment may choose to report this check without failing readiness on it.
   */
  async redisHealthy(): Promise<boolean> {
    return this.redis ? redisHealthy(this.redis) : true;
  }

  /** Whether Redis backs a control that fails closed (limits.store: redis), not only the cache. */
  get redisRequired(): boolean {
    return this.config.limits.store === 'redis';
  }

  async close(): Promise<void> {
    await this.pools.close();
    await this.rate.close();
    if (!this.redis) return;
    // QUIT waits for a reply: on a connection that is not up, just drop it.
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis?.disconnect());
    else this.redis.disconnect();
  }
}
