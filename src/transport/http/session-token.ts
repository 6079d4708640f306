import crypto from 'node:crypto';
import type { ClientCapabilities, Principal } from '../../core/call.js';
import type { Sealer } from '../../core/seal.js';

/** The Sealer purpose of 2025-11-25 session ids: a token sealed for requestState never opens as one. */
export const SESSION_PURPOSE = 'session';

/**
 * A 2025-11-25 Streamable HTTP session, carried by the client in `Mcp-Session-Id` and opened on
 * every request: the server keeps no session table, so any process holding the sealing key can
 * read it. It exists so that a stateless server knows, per request, what the client declared in
 * initialize (what it may be asked), and to bind the asks of a call to the client that made it.
 */
export interface HttpSession {
  /** Random per initialize: an ask is answered only within the session that was asked. */
  readonly sid: string;
  /** Who initialized it (`principalKey`): a token presented under any other principal is unknown. */
  readonly principal: string;
  readonly capabilities: ClientCapabilities;
  readonly protocolVersion: string;
  /** Date.now() at initialize. */
  readonly issuedAt: number;
}

/**
 * The principal a session is bound to, as the transport knows it before the gate runs: the
 * verified bearer's principal with api keys; without a bearer (loopback-only) every caller is the
 * loopback principal, so the binding is that mode.
 */
export function principalKey(principal: Principal | undefined): string {
  return principal ? `${principal.auth}:${principal.id}` : 'loopback';
}

export function issueSession(
  sealer: Sealer,
  principal: Principal | undefined,
  capabilities: ClientCapabilities,
  protocolVersion: string,
  now = Date.now(),
): { token: string; session: HttpSession } {
  const session: HttpSession = {
    sid: crypto.randomBytes(16).toString('base64url'),
    principal: principalKey(principal),
    capabilities,
    protocolVersion,
    issuedAt: now,
  };
  return { token: sealer.seal(SESSION_PURPOSE, session), session };
}

/**
 * The session a presented id stands for, or undefined when it is not one this server issued to
 * this principal within `ttlMs` (tampered, malformed, sealed under another key, bound to another
 * principal, expired): all answered alike, as an unknown session (404), so a probe learns nothing.
 */
export function openSession(sealer: Sealer, token: string, principal: Principal | undefined, ttlMs: number, now = Date.now()): HttpSession | undefined {
  const opened = sealer.unseal(SESSION_PURPOSE, token);
  if (!opened.ok) return undefined;
  const session = asSession(opened.payload);
  if (!session || session.principal !== principalKey(principal)) return undefined;
  // A token from the future (clock skew between replicas) is accepted up to a minute.
  if (now - session.issuedAt > ttlMs || session.issuedAt - now > 60_000) return undefined;
  return session;
}

/** Sealed by us, yet checked field by field: a key shared with older code must not yield surprises. */
function asSession(v: unknown): HttpSession | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.sid !== 'string' || typeof o.principal !== 'string' || typeof o.protocolVersion !== 'string') return undefined;
  if (typeof o.issuedAt !== 'number' || !Number.isFinite(o.issuedAt)) return undefined;
  const c = o.capabilities;
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return undefined;
  const caps = c as Record<string, unknown>;
  const e = caps.elicitation as Record<string, unknown> | undefined;
  const capabilities: ClientCapabilities = {
    ...(e !== null && typeof e === 'object' ? { elicitation: { form: e.form === true, url: e.url === true } } : {}),
    ...(caps.sampling === true ? { sampling: true } : {}),
    ...(caps.roots === true ? { roots: true } : {}),
  };
  return { sid: o.sid, principal: o.principal, capabilities, protocolVersion: o.protocolVersion, issuedAt: o.issuedAt };
}
