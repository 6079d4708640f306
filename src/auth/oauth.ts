import fs from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../config/schema.js';
import type { Principal } from '../gate/types.js';

type OAuthConfig = NonNullable<Config['auth']['oauth']>;

export type JwtResult = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly reason: string };

/**
 * A resource server's view of OAuth: verify JWT access tokens from one issuer (signature by the
 * issuer's JWKS, `iss`, `aud`, `exp`/`nbf` with a small clock skew) and map claims to a principal.
 * Opaque tokens and introspection are not supported.
 */
export class JwtVerifier {
  private readonly keys: JWTVerifyGetKey;

  constructor(
    private readonly cfg: OAuthConfig,
    configDir: string,
  ) {
    if (cfg.jwks_file) {
      const jwks = JSON.parse(fs.readFileSync(path.resolve(configDir, cfg.jwks_file), 'utf8')) as JSONWebKeySet;
      this.keys = createLocalJWKSet(jwks);
    } else {
      this.keys = createRemoteJWKSet(new URL(cfg.jwks_url as string), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
    }
  }

  get issuer(): string {
    return this.cfg.issuer;
  }

  async verify(token: string): Promise<JwtResult> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        clockTolerance: this.cfg.clock_skew_s,
        algorithms: [...this.cfg.algorithms],
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      return { ok: false, reason: reasonOf(err) };
    }
    const id = payload[this.cfg.principal_claim];
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) return { ok: false, reason: 'auth.jwt_no_principal' };
    const raw = payload[this.cfg.roles_claim];
    const roles = (typeof raw === 'string' ? raw.split(/\s+/) : Array.isArray(raw) ? raw : []).filter((r): r is string => typeof r === 'string' && r.length > 0 && r.length <= 64).slice(0, 32);
    return { ok: true, principal: { id, roles, auth: 'oauth', tier: this.cfg.tier } };
  }
}

function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'auth.jwt_expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `auth.jwt_claim_${err.claim}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'auth.jwt_bad_signature';
  if (err instanceof errors.JWKSNoMatchingKey) return 'auth.jwt_unknown_key';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'auth.jwt_alg_not_allowed';
  return 'auth.jwt_invalid';
}
