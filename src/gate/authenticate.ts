import { deny, fail, pass, type Verdict } from '../errors/denial.js';
import type { GateDeps } from './deps.js';
import type { Authenticated, RawCall } from './types.js';
import { isLoopback } from '../transport/loopback.js';

/**
 * stdio: the process was launched by the local user, so the configured local principal is the caller.
 * HTTP: until API keys land, only loopback clients are served, as the configured loopback principal.
 */
export function authenticate(call: RawCall, deps: GateDeps): Verdict<Authenticated> {
  const { principals } = deps.config;
  if (call.context.transport === 'stdio') {
    const p = principals.stdio;
    return pass({ ...call, principal: { id: p.id, roles: p.roles, auth: 'stdio', tier: p.tier } });
  }
  if (call.context.clientIp && isLoopback(call.context.clientIp)) {
    const p = principals.loopback;
    return pass({ ...call, principal: { id: p.id, roles: p.roles, auth: 'loopback', tier: p.tier } });
  }
  return fail(deny('unauthenticated', 'HTTP accepts only loopback clients until API keys are configured.', ['auth.not_loopback']));
}
