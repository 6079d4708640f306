import { deny, fail, pass, type Verdict } from '../core/denial.js';
import type { GateDeps } from './deps.js';
import type { Authenticated, RawCall } from '../core/call.js';
import { isLoopback } from '../analysis/ip-ranges.js';

/**
 * stdio: the process was launched by the local user, so the configured local principal is the caller.
 * HTTP with `auth.http: api_key`: the transport verified the bearer (API key or JWT) before the
 * body was read, and the request's MCP server bound that principal to this call's context
 * (`verifiedPrincipal`); the principal comes from there only, never from the request body.
 * HTTP with `auth.http: loopback-only`: loopback clients are the configured loopback principal.
 */
export function authenticate(call: RawCall, deps: GateDeps): Verdict<Authenticated> {
  const { principals } = deps.config;
  if (call.context.transport === 'stdio') {
    const p = principals.stdio;
    return pass({ ...call, principal: { id: p.id, roles: p.roles, auth: 'stdio', tier: p.tier, ...(p.attributes ? { attributes: p.attributes } : {}) } });
  }
  if (deps.config.auth.http === 'api_key') {
    const principal = call.context.verifiedPrincipal;
    if (principal) return pass({ ...call, principal });
    return fail(deny('unauthenticated', 'This server requires a bearer token (API key or access token).', ['auth.missing']));
  }
  if (call.context.clientIp && isLoopback(call.context.clientIp)) {
    const p = principals.loopback;
    return pass({ ...call, principal: { id: p.id, roles: p.roles, auth: 'loopback', tier: p.tier, ...(p.attributes ? { attributes: p.attributes } : {}) } });
  }
  return fail(deny('unauthenticated', 'HTTP accepts only loopback clients unless auth.http is api_key.', ['auth.not_loopback']));
}
