import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { ConfigError } from '../config/loader.js';
import type { Config } from '../config/schema.js';
import type { Principal } from '../core/call.js';
import { attributeValueProblem, MAX_ATTRIBUTES_BYTES, type AttributeValue, type PrincipalAttributes } from '../core/principal-attributes.js';

type OAuthConfig = NonNullable<Config['auth']['oauth']>;

export type JwtResult =
  | { readonly ok: true; readonly principal: Principal }
  /** `detail` says why for the operator's log (never the token); `reason` is the stable code. */
  | { readonly ok: false; readonly reason: string; readonly detail?: string };

/**
 * How the keys at `auth.oauth.jwks_url` are fetched and kept. Defaults are the shipped behaviour;
 * the constructor accepts overrides so tests can shorten them.
 */
export interface JwksTiming {
  /** One fetch may take this long, headers and body together. */
  readonly timeoutMs: number;
  /**
   * At most one fetch per this interval is caused by a token with an unknown `kid` (key rotation)
   * or by a retry after a failed fetch: whatever kids a client invents, the issuer sees at most
   * one request per interval from us, plus the max-age refresh.
   */
  readonly cooldownMs: number;
  /** Keys are refetched before use once this old; a key the issuer removed is refused after it. */
  readonly maxAgeMs: number;
  /** A larger JWKS document is refused. */
  readonly maxBytes: number;
}

export const JWKS_DEFAULTS: JwksTiming = { timeoutMs: 3000, cooldownMs: 5000, maxAgeMs: 300_000, maxBytes: 256 * 1024 };

/** Reasons that are the issuer's fault, not the client's (the JWKS could not be had). */
export const JWKS_FAILURE_REASONS = ['auth.jwks_unavailable', 'auth.jwks_invalid'] as const;
type JwksFailureReason = (typeof JWKS_FAILURE_REASONS)[number];

class JwksFailure extends Error {
  constructor(
    readonly reason: JwksFailureReason,
    detail: string,
  ) {
    super(detail);
    this.name = 'JwksFailure';
  }
}

/**
 * A resource server's view of OAuth: verify JWT access tokens from one issuer (signature by the
 * issuer's JWKS, `iss`, `aud`, `exp`/`nbf` with a small clock skew) and map claims to a principal.
 * Opaque tokens and introspection are not supported.
 */
export class JwtVerifier {
  private readonly keys: JWTVerifyGetKey;
  /** The remote key set when `jwks_url` is configured (tests read its fetch count). */
  readonly remote: RemoteJwks | undefined;

  constructor(
    private readonly cfg: OAuthConfig,
    configDir: string,
    timing: Partial<JwksTiming> = {},
  ) {
    if (cfg.jwks_file) {
      const file = path.resolve(configDir, cfg.jwks_file);
      try {
        this.keys = createLocalJWKSet(JSON.parse(fs.readFileSync(file, 'utf8')) as JSONWebKeySet);
      } catch (err) {
        throw new ConfigError([`auth.oauth.jwks_file: ${file}: ${(err as Error).message}`]);
      }
    } else {
      this.remote = new RemoteJwks(jwksUrl(cfg.jwks_url as string), { ...JWKS_DEFAULTS, ...timing });
      this.keys = this.remote.getKey;
    }
  }

  get issuer(): string {
    return this.cfg.issuer;
  }

  async verify(token: string): Promise<JwtResult> {
    let payload: Record<string, unknown>;
    const opts = {
      issuer: this.cfg.issuer,
      audience: this.cfg.audience,
      clockTolerance: this.cfg.clock_skew_s,
      algorithms: [...this.cfg.algorithms],
      requiredClaims: ['exp'],
    };
    try {
      try {
        ({ payload } = await jwtVerify(token, this.keys, opts));
      } catch (err) {
        // No `kid` and several keys of the token's type: normal while an issuer rotates keys.
        if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
        payload = await tryCandidates(token, err, opts);
      }
    } catch (err) {
      const reason = reasonOf(err);
      return err instanceof JwksFailure || err instanceof errors.JWKSInvalid ? { ok: false, reason, detail: err.message } : { ok: false, reason };
    }
    const id = payload[this.cfg.principal_claim];
    if (typeof id !== 'string' || id.length === 0) return { ok: false, reason: 'auth.jwt_no_principal' };
    if (!wellFormedId(id)) return { ok: false, reason: 'auth.jwt_bad_principal' };
    const raw = payload[this.cfg.roles_claim];
    // RFC 6749 §3.3: scope tokens are separated by SP (%x20) only; any other white space is part
    // of a token (and then refused below), so `x\u00a0developer` can never become `developer`.
    const roles =
      typeof raw === 'string' ? raw.split(' ').filter((r) => r.length > 0) : Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : undefined;
    if (roles === undefined || roles.length > MAX_ROLES || !roles.every((r): r is string => typeof r === 'string' && wellFormedRole(r)))
      return { ok: false, reason: 'auth.jwt_bad_principal' };
    const attributes = claimAttributes(payload, this.cfg.attributes);
    return { ok: true, principal: { id, roles, auth: 'oauth', tier: this.cfg.tier, ...(attributes ? { attributes } : {}) } };
  }
}

/**
 * `auth.oauth.attributes` (attribute → top-level claim) read from a verified token's claims. A
 * missing claim, or one that is not a string, a safe integer or a list of strings within the
 * attribute bounds, leaves that attribute absent rather than refusing the token: a row filter that
 * needs it refuses the call (sql.row_filter_attribute), and nothing else depends on it.
 */
export function claimAttributes(
  payload: Readonly<Record<string, unknown>>,
  mapping: Readonly<Record<string, string>> | undefined,
): PrincipalAttributes | undefined {
  if (mapping === undefined) return undefined;
  const out: Record<string, AttributeValue> = {};
  let bytes = 2;
  for (const name of Object.keys(mapping).sort()) {
    const claim = mapping[name] as string;
    const raw = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
    const value = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : raw;
    if (value === undefined || attributeValueProblem(value) !== undefined) continue;
    const v: AttributeValue = typeof value === 'string' ? value : Object.freeze([...(value as readonly string[])]);
    bytes += Buffer.byteLength(JSON.stringify(name)) + Buffer.byteLength(JSON.stringify(v)) + 2;
    // Past the size bound the remaining attributes are left absent, in name order (deterministic).
    if (bytes > MAX_ATTRIBUTES_BYTES) break;
    out[name] = v;
  }
  return Object.keys(out).length > 0 ? Object.freeze(out) : undefined;
}

/** At most this many keys are tried for a token without `kid` (a key set is small; this bounds the cost). */
const MAX_KID_CANDIDATES = 4;
const MAX_ROLES = 32;

async function tryCandidates(
  token: string,
  multiple: errors.JWKSMultipleMatchingKeys,
  opts: Parameters<typeof jwtVerify>[2],
): Promise<Record<string, unknown>> {
  let tried = 0;
  let last: unknown = multiple;
  for await (const key of multiple as unknown as AsyncIterable<Parameters<typeof jwtVerify>[1]>) {
    if (tried++ >= MAX_KID_CANDIDATES) break;
    try {
      return (await jwtVerify(token, key as Exclude<Parameters<typeof jwtVerify>[1], JWTVerifyGetKey>, opts)).payload;
    } catch (err) {
      // Another key may have signed it; any other failure (claims, expiry) is the token's own.
      if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw err;
      last = err;
    }
  }
  throw last;
}

/**
 * Identities must be recordable: the audit log canonicalises them, and the policy sees them. A
 * lone surrogate, a control or format character (invisible look-alikes, bidi overrides) or an
 * over-long id is refused with `auth.jwt_bad_principal`, not passed on to fail later.
 */
// With the u flag \p{Cs} matches only a lone surrogate (a pair is one code point).
const BAD_CHARS = /[\p{Cs}\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
export function wellFormedId(s: string): boolean {
  return s.length >= 1 && s.length <= 128 && !BAD_CHARS.test(s);
}
/** A role is one scope token: no white space of any kind either. */
export function wellFormedRole(s: string): boolean {
  return s.length >= 1 && s.length <= 64 && !BAD_CHARS.test(s) && !/\s/u.test(s);
}

/**
 * The signing keys are what every token is checked against, so a plain-http JWKS lets anyone on
 * the path mint tokens. http is accepted only for a loopback host (development, tests).
 */
function jwksUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError([`auth.oauth.jwks_url: not a URL`]);
  }
  const loopback = url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new ConfigError([`auth.oauth.jwks_url: must be https (plain http only for a loopback host), got ${url.protocol}//${url.host}`]);
  }
  if (url.username || url.password) throw new ConfigError(['auth.oauth.jwks_url: must not carry credentials']);
  return url;
}

/**
 * Keys from the issuer's JWKS URL. jose's createRemoteJWKSet is not used: it reads the body
 * uncapped and retries a failed fetch on every request (its cooldown only starts after a success).
 * Here every fetch — initial, max-age refresh, unknown `kid`, retry after a failure — is one at a
 * time, and the last two are spaced by `cooldownMs`. Redirects are not followed (the keys come
 * from the configured URL or nowhere). Keys older than `maxAgeMs` are never used: if the refresh
 * fails, tokens are refused until the issuer answers again.
 */
export class RemoteJwks {
  /** Fetches started (for tests and diagnostics). */
  fetches = 0;
  private local: JWTVerifyGetKey | undefined;
  private fetchedAt = -Infinity;
  private attemptedAt = -Infinity;
  private failure: JwksFailure | undefined;
  private inflight: Promise<void> | undefined;

  constructor(
    private readonly url: URL,
    private readonly timing: JwksTiming,
  ) {}

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.local || Date.now() - this.fetchedAt >= this.timing.maxAgeMs) await this.refresh();
    try {
      return await (this.local as JWTVerifyGetKey)(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // An unknown kid may be a rotation we have not seen yet: refetch, but not more than once per
      // cooldown, or anyone could make us hammer the issuer by inventing kids.
      if (!this.inflight && Date.now() - this.attemptedAt < this.timing.cooldownMs) throw this.failure ?? err;
      await this.refresh();
      return (this.local as JWTVerifyGetKey)(header, token);
    }
  };

  private refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.failure && Date.now() - this.attemptedAt < this.timing.cooldownMs) return Promise.reject(this.failure);
    this.fetches += 1;
    // Only one fetch is ever in flight, so clearing the slot when it settles cannot drop a newer one.
    this.inflight = this.fetchKeys()
      .then(
        (keys) => {
          this.local = keys;
          this.fetchedAt = this.attemptedAt = Date.now();
          this.failure = undefined;
        },
        (err: unknown) => {
          this.attemptedAt = Date.now();
          this.failure = err instanceof JwksFailure ? err : new JwksFailure('auth.jwks_unavailable', (err as Error).message);
          throw this.failure;
        },
      )
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  private async fetchKeys(): Promise<JWTVerifyGetKey> {
    const { timeoutMs, maxBytes } = this.timing;
    const signal = AbortSignal.timeout(timeoutMs);
    let text: string;
    try {
      const res = await fetch(this.url, { method: 'GET', redirect: 'manual', signal, headers: { accept: 'application/jwk-set+json, application/json' } });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        throw new JwksFailure(
          'auth.jwks_unavailable',
          `the JWKS URL answered HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : ''}`,
        );
      }
      text = await readCapped(res, maxBytes);
    } catch (err) {
      if (err instanceof JwksFailure) throw err;
      if (signal.aborted) throw new JwksFailure('auth.jwks_unavailable', `the JWKS URL did not answer within ${timeoutMs} ms`);
      const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
      throw new JwksFailure('auth.jwks_unavailable', `the JWKS URL could not be fetched: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new JwksFailure('auth.jwks_invalid', 'the JWKS URL did not return JSON');
    }
    try {
      return createLocalJWKSet(json as JSONWebKeySet);
    } catch (err) {
      throw new JwksFailure('auth.jwks_invalid', `the JWKS URL did not return a key set: ${(err as Error).message}`);
    }
  }
}

async function readCapped(res: Response, maxBytes: number): Promise<string> {
  const tooLarge = (): JwksFailure => new JwksFailure('auth.jwks_invalid', `the JWKS document is larger than ${maxBytes} bytes`);
  if (Number(res.headers.get('content-length') ?? 0) > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function reasonOf(err: unknown): string {
  if (err instanceof JwksFailure) return err.reason;
  if (err instanceof errors.JWTExpired) return 'auth.jwt_expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `auth.jwt_claim_${err.claim}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'auth.jwt_bad_signature';
  if (err instanceof errors.JWKSNoMatchingKey) return 'auth.jwt_unknown_key';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'auth.jwt_alg_not_allowed';
  // A key set member jose refuses to use (a private key published as a JWKS member, …).
  if (err instanceof errors.JWKSInvalid) return 'auth.jwks_invalid';
  return 'auth.jwt_invalid';
}
