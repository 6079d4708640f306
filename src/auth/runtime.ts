import { AsyncLocalStorage } from 'node:async_hooks';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import argon2 from 'argon2';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Principal } from '../gate/types.js';
import { keyState, parseApiKey, readKeyFile, readUsage, usageFileOf, writeAtomic, type KeyRecord } from './api-keys.js';
import { Lockout } from './lockout.js';
import { JwtVerifier } from './oauth.js';

/**
 * The principal the HTTP transport authenticated for the request being served. The transport
 * runs the MCP handlers inside `requestAuth.run(...)`, and the gate's authenticate stage reads it:
 * the bearer is checked once per HTTP request, before the body is parsed.
 */
export const requestAuth = new AsyncLocalStorage<{ readonly principal: Principal }>();

export type AuthResult =
  | { readonly ok: true; readonly principal: Principal; readonly keyId?: string }
  | { readonly ok: false; readonly status: 401 | 429; readonly reason: string; readonly retryAfterS?: number; readonly keyId?: string };

export interface AuthHooks {
  /** Called before every argon2 verification (tests count them). */
  readonly onArgon2?: () => void;
  readonly now?: () => number;
}

interface Proof {
  readonly mac: Buffer;
  readonly until: number;
}

const USAGE_WRITE_MS = 60_000;

export function keysFileOf(config: Readonly<Config>, configDir: string): string {
  return path.resolve(configDir, config.auth.keys_file);
}

/**
 * Bearer authentication for HTTP: API keys (argon2id, then a short-lived HMAC proof in memory)
 * and, when configured, JWT access tokens from one issuer. Failures back off per client address
 * and per key id; a locked subject is answered without running argon2.
 */
export class AuthRuntime {
  readonly keysFile: string;
  readonly jwt: JwtVerifier | undefined;
  /** argon2 verifications run (for metrics and tests). */
  argon2Runs = 0;
  private readonly procKey = crypto.randomBytes(32);
  private readonly proofs = new Map<string, Proof>();
  private readonly inflight = new Map<string, Promise<boolean>>();
  private readonly lockout: Lockout;
  private records = new Map<string, KeyRecord>();
  private stamp = '';
  private lastCheck = -Infinity;
  private readonly usage = new Map<string, number>();
  private usageDirty = false;
  private usageWritten = 0;
  private readonly now: () => number;
  private readonly proofTtlMs: number;

  constructor(
    private readonly config: Readonly<Config>,
    configDir: string,
    private readonly logger: Logger,
    private readonly hooks: AuthHooks = {},
  ) {
    this.now = hooks.now ?? Date.now;
    this.keysFile = keysFileOf(config, configDir);
    this.proofTtlMs = config.auth.proof_ttl_s * 1000;
    const l = config.auth.lockout;
    this.lockout = new Lockout({ threshold: l.threshold, baseMs: l.base_s * 1000, maxMs: l.max_s * 1000, forgetMs: l.forget_s * 1000 }, this.now);
    this.jwt = config.auth.oauth ? new JwtVerifier(config.auth.oauth, configDir) : undefined;
    for (const [id, iso] of Object.entries(readUsage(this.keysFile))) {
      const t = Date.parse(iso);
      if (Number.isFinite(t)) this.usage.set(id, t);
    }
    if (config.auth.http === 'api_key') this.reload(true);
  }

  get required(): boolean {
    return this.config.auth.http === 'api_key';
  }

  /** Re-read the store when its mtime/size/inode changed; checked at most every reload_check_ms. */
  private reload(force = false): void {
    const t = this.now();
    if (!force && t - this.lastCheck < this.config.auth.reload_check_ms) return;
    this.lastCheck = t;
    let stamp: string;
    try {
      const st = fs.statSync(this.keysFile);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      stamp = 'missing';
    }
    if (stamp === this.stamp) return;
    try {
      const file = stamp === 'missing' ? { keys: [] as KeyRecord[] } : readKeyFile(this.keysFile);
      this.records = new Map(file.keys.map((k) => [k.id, k]));
      this.stamp = stamp;
      for (const id of [...this.proofs.keys()]) {
        const k = this.records.get(id);
        if (!k || keyState(k, t) !== 'active') this.proofs.delete(id);
      }
    } catch (err) {
      // Keep the last good copy: a half-written file never appears (writes are atomic renames),
      // so this is damage the operator must see.
      this.logger.error('the API key store could not be read; keeping the last good copy', { file: this.keysFile, error: (err as Error).message });
    }
  }

  private mac(id: string, secret: string): Buffer {
    return crypto.createHmac('sha256', this.procKey).update(id).update('\0').update(secret).digest();
  }

  async authenticate(authorization: string | undefined, clientIp: string): Promise<AuthResult> {
    const ipSubject = `ip:${clientIp}`;
    const m = /^Bearer[ ]+([\x21-\x7e]{1,4096})\s*$/i.exec(authorization ?? '');
    if (!m) return { ok: false, status: 401, reason: authorization ? 'auth.malformed_header' : 'auth.missing' };
    const token = m[1] as string;
    const key = parseApiKey(token);
    if (key) return this.checkKey(key.id, key.secret, ipSubject);
    if (this.jwt && token.split('.').length === 3) {
      const ipWait = this.lockout.retryAfterS(ipSubject);
      if (ipWait > 0) return { ok: false, status: 429, reason: 'auth.locked_out', retryAfterS: ipWait };
      const r = await this.jwt.verify(token);
      if (r.ok) return { ok: true, principal: r.principal };
      this.lockout.failure(ipSubject);
      return { ok: false, status: 401, reason: r.reason };
    }
    this.lockout.failure(ipSubject);
    return { ok: false, status: 401, reason: 'auth.malformed_token' };
  }

  private async checkKey(id: string, secret: string, ipSubject: string): Promise<AuthResult> {
    this.reload();
    const t = this.now();
    const rec = this.records.get(id);
    const state = rec ? keyState(rec, t) : undefined;
    const presented = this.mac(id, secret);
    // A live proof passes before the lockout check: someone hammering a key id with wrong
    // secrets must not lock its holder out, and a proof only matches the right secret.
    const proof = this.proofs.get(id);
    if (rec && state === 'active' && proof && proof.until > t && crypto.timingSafeEqual(proof.mac, presented)) {
      return this.succeeded(rec, ipSubject, t);
    }
    const wait = Math.max(this.lockout.retryAfterS(ipSubject), this.lockout.retryAfterS(`key:${id}`));
    if (wait > 0) return { ok: false, status: 429, reason: 'auth.locked_out', retryAfterS: wait, keyId: id };
    if (!rec || state !== 'active') {
      this.failed(id, ipSubject);
      return { ok: false, status: 401, reason: rec ? `auth.key_${state}` : 'auth.unknown_key', keyId: id };
    }
    // Concurrent first requests with the same key share one argon2 run.
    const slot = presented.toString('hex');
    let pending = this.inflight.get(slot);
    if (!pending) {
      this.hooks.onArgon2?.();
      this.argon2Runs += 1;
      pending = argon2.verify(rec.hash, secret).catch(() => false).finally(() => this.inflight.delete(slot));
      this.inflight.set(slot, pending);
    }
    const good = await pending;
    if (!good) {
      this.failed(id, ipSubject);
      return { ok: false, status: 401, reason: 'auth.bad_secret', keyId: id };
    }
    // The store may have changed while argon2 ran.
    const now = this.now();
    const current = this.records.get(id);
    if (!current || keyState(current, now) !== 'active') return { ok: false, status: 401, reason: 'auth.key_revoked', keyId: id };
    if (this.proofTtlMs > 0) this.proofs.set(id, { mac: presented, until: now + this.proofTtlMs });
    return this.succeeded(current, ipSubject, now);
  }

  private failed(id: string, ipSubject: string): void {
    this.lockout.failure(ipSubject);
    this.lockout.failure(`key:${id}`);
  }

  private succeeded(rec: KeyRecord, _ipSubject: string, t: number): AuthResult {
    // Only the key's own count resets: a client holding one valid key must not be able to wipe
    // its address's failures by interleaving good requests (address failures decay with forget_s).
    this.lockout.success(`key:${rec.id}`);
    const last = this.usage.get(rec.id) ?? 0;
    if (t - last >= USAGE_WRITE_MS) {
      this.usage.set(rec.id, t);
      this.usageDirty = true;
      this.flushUsage(false);
    }
    return { ok: true, keyId: rec.id, principal: { id: rec.principal, roles: [...rec.roles], auth: 'api_key', tier: rec.tier } };
  }

  /** last_used goes to a sidecar file, written at most once a minute (or at close). */
  flushUsage(force: boolean): void {
    if (!this.usageDirty) return;
    if (!force && this.now() - this.usageWritten < USAGE_WRITE_MS && this.usageWritten !== 0) return;
    this.usageDirty = false;
    this.usageWritten = this.now();
    const out = Object.fromEntries([...this.usage].map(([id, ms]) => [id, new Date(ms).toISOString()]));
    try {
      writeAtomic(usageFileOf(this.keysFile), `${JSON.stringify(out)}\n`);
    } catch (err) {
      this.logger.warn('could not write API key last-used times', { error: (err as Error).message });
    }
  }

  close(): void {
    this.flushUsage(true);
  }
}
