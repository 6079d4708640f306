/** Counters per upstream, for api_stats. Per replica: each process counts what it served. */
export class UpstreamStats {
  requests = 0;
  upstreamRequests = 0;
  cacheHits = 0;
  cacheMisses = 0;
  rateLimited = 0;
  breakerRejected = 0;
  retries = 0;
  redirects = 0;
  errors = 0;
  timeouts = 0;
  tooLarge = 0;
  secretsRedacted = 0;
  readonly status: Record<string, number> = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  latencyTotalMs = 0;
  latencyCount = 0;

  countStatus(status: number): void {
    const bucket = `${Math.min(5, Math.max(1, Math.floor(status / 100)))}xx`;
    this.status[bucket] = (this.status[bucket] ?? 0) + 1;
  }

  observeLatency(ms: number): void {
    this.latencyTotalMs += ms;
    this.latencyCount += 1;
  }

  snapshot(): Record<string, unknown> {
    const lookups = this.cacheHits + this.cacheMisses;
    return {
      requests: this.requests,
      upstream_requests: this.upstreamRequests,
      cache_hits: this.cacheHits,
      cache_misses: this.cacheMisses,
      cache_hit_rate: lookups === 0 ? 0 : Math.round((this.cacheHits / lookups) * 10_000) / 10_000,
      rate_limited: this.rateLimited,
      breaker_rejected: this.breakerRejected,
      retries: this.retries,
      redirects: this.redirects,
      errors: this.errors,
      timeouts: this.timeouts,
      too_large: this.tooLarge,
      secrets_redacted: this.secretsRedacted,
      status: { ...this.status },
      mean_upstream_ms: this.latencyCount === 0 ? 0 : Math.round((this.latencyTotalMs / this.latencyCount) * 1000) / 1000,
    };
  }
}
