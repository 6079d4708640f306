import { deny, fail, pass, type Verdict } from '../errors/denial.js';
import type { GateDeps } from './deps.js';
import type { Authenticated } from './types.js';

export function rateLimit(call: Authenticated, deps: GateDeps): Verdict<Authenticated> {
  const tiers = deps.config.limits.tiers;
  const tier = tiers[call.principal.tier] ?? tiers[deps.config.limits.default_tier];
  if (!tier) return fail(deny('rate_limited', 'No rate tier applies to this principal.', ['rate.no_tier']));
  const r = deps.buckets.take(`principal:${call.principal.id}`, tier);
  if (r.ok) return pass(call);
  return fail(deny('rate_limited', `Rate limit reached; retry in ${r.retryAfterS} s.`, ['rate.principal'], { retry_after_s: r.retryAfterS }));
}
