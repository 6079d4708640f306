import crypto from 'node:crypto';
import type http from 'node:http';
import type { AuthRuntime } from '../../auth/runtime.js';
import type { RefusalAggregate } from '../../auth/refusal-budget.js';
import type { Principal } from '../../core/call.js';
import type { GateDeps } from '../../gate/deps.js';
import { recordAggregatedRefusals, recordRefusedAuthentication, type RefusedAuthentication } from '../../gate/record.js';
import { httpRefusal, type HttpRefusal } from '../../server/surface.js';
import { sendRefusal } from './respond.js';

/**
 * The bearer check of a protected endpoint: the principal, or undefined once the refusal (401,
 * 403, 429 or 503) has been answered. `roles`: the principal must also hold one of them.
 */
export type BearerCheck = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  peer: string,
  requestId: string,
  roles?: readonly string[],
) => Promise<Principal | undefined>;

type BearerDeps = Pick<GateDeps, 'logger' | 'prom' | 'audit' | 'policy'>;

/** A refusal that may get an audit record of its own: the record and the answer carry the same code. */
type RecordedRefusal = HttpRefusal<RefusedAuthentication['code']>;

/** `challengeUrl`: where the RFC 9728 metadata lives, named in the 401's WWW-Authenticate. */
export function bearerCheck(auth: AuthRuntime, deps: BearerDeps, challengeUrl: (req: http.IncomingMessage) => string): BearerCheck {
  const { logger, prom } = deps;

  const record = async (requestId: string, peer: string, refusal: RecordedRefusal, keyId: string | undefined, durationMs: number): Promise<void> => {
    try {
      await recordRefusedAuthentication({ requestId, clientIp: peer, reason: refusal.reasons[0], keyId, durationMs, code: refusal.code }, deps);
    } catch (err) {
      logger.error('could not audit a refused authentication', { request_id: requestId, error: (err as Error).message });
    }
  };

  // One record per address and interval for the refusals past its budget (count, first/last time, reasons).
  auth.onAggregates(async (aggs: RefusalAggregate[]) => {
    for (const a of aggs) {
      try {
        await recordAggregatedRefusals({ requestId: crypto.randomUUID(), ...a }, deps);
      } catch (err) {
        logger.error('could not audit aggregated refusals', { client_ip: a.address, count: a.count, error: (err as Error).message });
      }
    }
  });

  return async (req, res, peer, requestId, roles) => {
    const started = performance.now();
    const r = await auth.authenticate(req.headers.authorization, peer);
    prom?.authOutcomes.inc({ outcome: r.ok ? 'ok' : r.status === 429 ? 'locked' : 'refused', reason: r.ok ? r.principal.auth : r.reason });
    if (r.ok) {
      logger.debug('authenticated', { request_id: requestId, client_ip: peer, principal: r.principal.id, auth: r.principal.auth, key_id: r.keyId ?? null });
      if (roles !== undefined && !roles.some((x) => r.principal.roles.includes(x))) {
        sendRefusal(res, httpRefusal('policy_denied', 'auth.role_required', `This endpoint requires one of the roles ${roles.join(', ')}.`));
        return undefined;
      }
      return r.principal;
    }
    // Past the address's budget a refusal is counted into one record per address and interval
    // instead of a record (an fsync) each; lockout 429s are always counted, never recorded singly.
    const ownRecord = auth.refusals.admit(peer, r.reason, r.status !== 429);
    if (ownRecord)
      logger.warn('authentication refused', { request_id: requestId, client_ip: peer, reason: r.reason, key_id: r.keyId ?? null, status: r.status });
    const retry = { retry_after_s: r.retryAfterS ?? 1 };
    if (r.status === 429) {
      prom?.rateLimited.inc({ scope: 'auth_lockout' });
      sendRefusal(res, httpRefusal('rate_limited', r.reason, 'Too many failed authentications for this key from this address; retry later.', retry));
      return undefined;
    }
    let refusal: RecordedRefusal;
    let headers: Record<string, string> = {};
    if (r.status === 503) {
      // The key store has not been readable for auth.max_stale_s, or argon2 is saturated: fail closed, and say so.
      const message =
        r.reason === 'auth.busy'
          ? 'Too many key verifications are running; retry shortly.'
          : 'The API key store cannot be read; keys are refused until it can.';
      refusal = httpRefusal('unavailable', r.reason, message, retry);
    } else {
      refusal = httpRefusal('unauthenticated', r.reason, 'A valid bearer token (API key or access token) is required.');
      headers = { 'www-authenticate': `Bearer resource_metadata="${challengeUrl(req)}"${req.headers.authorization ? ', error="invalid_token"' : ''}` };
    }
    if (ownRecord) await record(requestId, peer, refusal, r.keyId, performance.now() - started);
    sendRefusal(res, refusal, headers);
    return undefined;
  };
}
