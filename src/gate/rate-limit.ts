import { deny, fail, pass, type Verdict } from '../core/denial.js';
import type { TierSpec } from '../limits/token-bucket.js';
import type { GateDeps } from './deps.js';
import type { Authenticated } from '../core/call.js';

function tierOf(spec: string | TierSpec | undefined, deps: GateDeps): TierSpec | undefined {
  if (spec === undefined) return undefined;
  return typeof spec === 'string' ? deps.config.limits.tiers[spec] : spec;
}

/**
 * One bucket per principal (its tier), and one per principal and tool where limits.per_tool names
 * the tool. A store that cannot answer refuses the call: a limit that cannot be checked is not
 * a limit that passed. `known`: the call names a registered tool; only those get a per-tool bucket,
 * since any other name is the client's to invent.
 */
export async function rateLimit(call: Authenticated, known: boolean, deps: GateDeps): Promise<Verdict<Authenticated>> {
  const limits = deps.config.limits;
  const tier = limits.tiers[call.principal.tier] ?? limits.tiers[limits.default_tier];
  if (!tier) return fail(deny('rate_limited', 'No rate tier applies to this principal.', ['rate.no_tier']));
  const perTool = known ? tierOf(limits.per_tool[call.tool], deps) : undefined;
  // A store that hangs past the call's deadline makes the gate answer `unavailable`, not `timeout`.
  const clear = call.context.deadline?.waitingOn('rate_store');
  // Identities are namespaced by how they were established: an API key's principal `carol` and a
  // token's subject `carol` are different callers with different tiers and must not share a bucket.
  const who = `${call.principal.auth}:${call.principal.id}`;
  try {
    const r = await deps.buckets.take(`principal:${who}`, tier);
    if (!r.ok) return fail(deny('rate_limited', `Rate limit reached; retry in ${r.retryAfterS} s.`, ['rate.principal'], { retry_after_s: r.retryAfterS }));
    if (perTool) {
      const t = await deps.buckets.take(`principal:${who}:tool:${call.tool}`, perTool);
      if (!t.ok)
        return fail(
          deny('rate_limited', `Rate limit for ${call.tool} reached; retry in ${t.retryAfterS} s.`, ['rate.principal_tool'], { retry_after_s: t.retryAfterS }),
        );
    }
  } catch {
    // Any failure of the store (Redis down, hung, refusing): fail closed, typed, and retryable.
    return fail(deny('unavailable', 'The rate-limit store is unavailable; retry shortly.', ['rate.store_unavailable'], { retry_after_s: 1 }));
  } finally {
    clear?.();
  }
  return pass(call);
}
