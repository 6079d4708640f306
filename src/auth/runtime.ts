import crypto from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Principal } from '../core/call.js';
import { attributesProblems, frozenAttributes, type PrincipalAttributes } from '../core/principal-attributes.js';
import { keyState, parseApiKey, type KeyRecord } from './api-keys.js';
import type { KeyStore } from './key-store.js';
import { keysFileOf, openKeyStore } from './key-store-open.js';
import { Lockout } from './lockout.js';
import { Argon2Gate, type Verdict } from '../execution/argon2-verifier.js';
import { RefusalBudget, type RefusalAggregate } from './refusal-budget.js';
import { JWKS_FAILURE_REASONS, JwtVerifier, wellFormedId, wellFormedRole } from './oauth.js';

export type AuthResult =
  | { readonly ok: true; readonly principal: Principal; readonly keyId?: string }
  | { readonly ok: false; readonly status: 401 | 429 | 503; readonly reason: string; readonly retryAfterS?: number; readonly keyId?: string };

export interface AuthHooks {
  /** Called before every argon2 verification (tests count them). */
  readonly onArgon2?: () => void;
  readonly now?: () => number;
  /** Use this store instead of the configured one. */
  readonly store?: KeyStore;
}

interface Proof {
  readonly mac: Buffer;
  readonly until: number;
}

const USAGE_WRITE_MS = 60_000;
/** A request waits at most this long for a store poll; past it the last good copy answers (within max_stale_s). */
const POLL_WAIT_MS = 1000;
const UNKNOWN_RECHECK_MS = 100;

export { keysFileOf };

/**
 * Bearer authentication for HTTP: API keys (argon2id, then a short-lived HMAC proof in memory)
 * and, when configured, JWT access tokens from one issuer. Failures back off per client address
 * and per key id; a locked subject is answered without running argon2.
 *
 * Keys come from a KeyStore (a file, or PostgreSQL shared by replicas), polled at most every
 * auth.reload_check_ms by the request that finds the copy due, and at once after a change
 * notification. When the store cannot be read, the last good copy serves for auth.max_stale_s;
 * after that keys are refused (503): a revocation must not go unseen indefinitely.
 */
export class AuthRuntime {
  readonly store: KeyStore;
  readonly jwt: JwtVerifier | undefined;
  /** argon2 verifications run (for metrics and tests). */
  argon2Runs = 0;
  private readonly procKey = crypto.randomBytes(32);
  private readonly proofs = new Map<string, Proof>();
  private readonly inflight = new Map<string, Promise<Verdict>>();
  /** Failures per (key id, address): `key:<id>@<address>`. */
  private readonly keyLock: Lockout;
  /** Failures per address, whatever was presented: `ip:<address>`. */
  private readonly addrLock: Lockout;
  private readonly argon2: Argon2Gate;
  /** Which refusals get an audit record each; the rest are aggregated (see RefusalBudget). */
  readonly refusals: RefusalBudget;
  private aggregateSink: ((aggs: RefusalAggregate[]) => Promise<void>) | undefined;
  private aggregateTimer: NodeJS.Timeout | undefined;
  private records = new Map<string, KeyRecord>();
  private stamp = '';
  private lastCheck = -Infinity;
  private lastGood = -Infinity;
  private storeError: string | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly usage = new Map<string, number>();
  private usageDirty = false;
  private usageWritten = 0;
  private readonly now: () => number;
  private readonly proofTtlMs: number;
  private readonly maxStaleMs: number;

  constructor(
    private readonly config: Readonly<Config>,
    configDir: string,
    private readonly logger: Logger,
    private readonly hooks: AuthHooks = {},
  ) {
    this.now = hooks.now ?? Date.now;
    this.store = hooks.store ?? openKeyStore(config, configDir);
    this.proofTtlMs = config.auth.proof_ttl_s * 1000;
    this.maxStaleMs = config.auth.max_stale_s * 1000;
    const l = config.auth.lockout;
    const timing = { baseMs: l.base_s * 1000, maxMs: l.max_s * 1000, forgetMs: l.forget_s * 1000 };
    this.keyLock = new Lockout({ threshold: l.threshold, ...timing }, this.now);
    this.addrLock = new Lockout({ threshold: l.address_threshold ?? 4 * l.threshold, ...timing }, this.now);
    this.argon2 = new Argon2Gate(config.auth.argon2.concurrency, config.auth.argon2.queue, config.auth.argon2.isolate);
    this.refusals = new RefusalBudget(
      { perAddress: config.auth.refusals.per_address, intervalMs: config.auth.refusals.interval_s * 1000, maxAddresses: 10_000 },
      this.now,
    );
    this.jwt = config.auth.oauth ? new JwtVerifier(config.auth.oauth, configDir) : undefined;
  }

  get required(): boolean {
    return this.config.auth.http === 'api_key';
  }

  /** The key store was read within max_stale_s (for /ready). */
  get storeFresh(): boolean {
    return this.now() - this.lastGood <= this.maxStaleMs;
  }

  get storeProblem(): string | undefined {
    return this.storeError;
  }

  /** First read of the store, and change notifications; the server calls this before listening. */
  async start(): Promise<void> {
    if (!this.required) return;
    await this.refresh();
    try {
      await this.store.watch(() => {
        this.lastCheck = -Infinity;
      });
    } catch (err) {
      this.logger.warn('no change notifications from the API key store; polling only', { store: this.store.where, error: (err as Error).message });
    }
  }

  private refresh(): Promise<void> {
    this.refreshing ??= this.poll().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async poll(): Promise<void> {
    const t = this.now();
    this.lastCheck = t;
    try {
      const snap = await this.store.poll(this.stamp);
      // Fresh as of when the poll started: anything revoked before then is in this copy.
      this.lastGood = t;
      if (this.storeError) this.logger.info('the API key store is readable again', { store: this.store.where });
      this.storeError = undefined;
      if (!snap) return;
      this.records = new Map(snap.keys.map((k) => [k.id, k]));
      this.stamp = snap.stamp;
      for (const id of [...this.proofs.keys()]) {
        const k = this.records.get(id);
        if (!k || keyState(k, t) !== 'active') this.proofs.delete(id);
      }
    } catch (err) {
      const message = (err as Error).message;
      if (this.storeError !== message) {
        this.logger.error('the API key store could not be read; serving the last good copy until auth.max_stale_s', {
          store: this.store.where,
          error: message,
          max_stale_s: this.config.auth.max_stale_s,
        });
      }
      this.storeError = message;
    }
  }

  /** Poll (shared with concurrent callers); a slow store delays a request by at most POLL_WAIT_MS. */
  private async pollBounded(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.refresh(), new Promise<void>((r) => (timer = setTimeout(r, POLL_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private mac(id: string, secret: string): Buffer {
    return crypto.createHmac('sha256', this.procKey).update(id).update('\0').update(secret).digest();
  }

  async authenticate(authorization: string | undefined, clientIp: string): Promise<AuthResult> {
    const ipSubject = `ip:${clientIp}`;
    // A missing header is how RFC 9728 discovery starts: it always gets its 401 and challenge (no
    // argon2 runs, and its audit records are bounded by the refusal budget), and it does not lock
    // the address, so clients discovering behind one NAT cannot lock out those holding keys.
    if (authorization === undefined || authorization === '') return { ok: false, status: 401, reason: 'auth.missing' };
    const ipWait = this.addrLock.retryAfterS(ipSubject);
    const m = /^Bearer[ ]+([\x21-\x7e]{1,4096})\s*$/i.exec(authorization);
    if (!m) {
      if (ipWait > 0) return { ok: false, status: 429, reason: 'auth.locked_out', retryAfterS: ipWait };
      this.addrLock.failure(ipSubject);
      return { ok: false, status: 401, reason: 'auth.malformed_header' };
    }
    const token = m[1] as string;
    const key = parseApiKey(token);
    if (key) return this.checkKey(key.id, key.secret, clientIp);
    if (ipWait > 0) return { ok: false, status: 429, reason: 'auth.locked_out', retryAfterS: ipWait };
    if (this.jwt && token.split('.').length === 3) {
      // Counted from the start: concurrent forged tokens cannot all pass the check above.
      this.addrLock.begin(ipSubject);
      let failed = false;
      try {
        const r = await this.jwt.verify(token);
        if (r.ok) return { ok: true, principal: r.principal };
        if ((JWKS_FAILURE_REASONS as readonly string[]).includes(r.reason)) {
          // The issuer's key set could not be had: not the client's fault, so no lockout strike
          // (an issuer outage must not lock every client out for lockout.max_s).
          this.logger.warn('the JWKS could not be used; access tokens are refused until it can', { reason: r.reason, detail: r.detail });
        } else {
          failed = true;
        }
        return { ok: false, status: 401, reason: r.reason };
      } finally {
        this.addrLock.end(ipSubject, failed);
      }
    }
    this.addrLock.failure(ipSubject);
    return { ok: false, status: 401, reason: 'auth.malformed_token' };
  }

  private async checkKey(id: string, secret: string, clientIp: string): Promise<AuthResult> {
    const ipSubject = `ip:${clientIp}`;
    const pairSubject = `key:${id}@${clientIp}`;
    const reloadMs = this.config.auth.reload_check_ms;
    const since = this.now();
    // Due, or a poll is under way and our copy is older than the bound (e.g. the very first load).
    if (since - this.lastCheck >= reloadMs || (this.refreshing && since - this.lastGood >= reloadMs)) await this.pollBounded();
    // A key created a moment ago: look again rather than count its first use as a failure
    // (at most one extra poll per UNKNOWN_RECHECK_MS, whoever asks).
    if (!this.records.has(id) && this.now() - this.lastCheck >= UNKNOWN_RECHECK_MS) await this.pollBounded();
    const t = this.now();
    if (t - this.lastGood > this.maxStaleMs) return { ok: false, status: 503, reason: 'auth.store_unavailable', retryAfterS: 1, keyId: id };
    const rec = this.records.get(id);
    const state = rec ? keyState(rec, t) : undefined;
    const presented = this.mac(id, secret);
    // A live proof passes before the lockout check: someone hammering a key id with wrong
    // secrets must not lock its holder out, and a proof only matches the right secret.
    const proof = this.proofs.get(id);
    if (rec && state === 'active' && proof && proof.until > t && crypto.timingSafeEqual(proof.mac, presented)) {
      return this.succeeded(rec, t);
    }
    // Locks are per (key id, address) plus a budget per address (issue 17): key ids are public,
    // so a lock per key id alone would let anyone keep its holder out from wherever they are.
    // Total argon2 cost is bounded by the Argon2Gate whatever the addresses.
    const pairWait = this.keyLock.retryAfterS(pairSubject);
    if (pairWait > 0) return { ok: false, status: 429, reason: 'auth.locked_out', retryAfterS: pairWait, keyId: id };
    const ipWait = this.addrLock.retryAfterS(ipSubject);
    // An address over its budget (someone on a shared address guessing) still gets one attempt
    // per key id that has never failed from it: a holder is not locked out by a neighbour, and
    // a guess costs the guesser that key id for a full lock period (`strict`).
    const strict = ipWait > 0;
    if (strict && (this.keyLock.failures(pairSubject) > 0 || this.keyLock.inflight(pairSubject) > 0)) {
      return { ok: false, status: 429, reason: 'auth.locked_out', retryAfterS: ipWait, keyId: id };
    }
    if (!rec || state !== 'active') {
      this.addrLock.failure(ipSubject);
      this.keyLock.failure(pairSubject, strict);
      return { ok: false, status: 401, reason: rec ? `auth.key_${state}` : 'auth.unknown_key', keyId: id };
    }
    // Concurrent first requests with the same key share one argon2 run; only a new run is an
    // attempt (so 16 concurrent first calls of a holder are one attempt, 48 different guesses 48).
    const slot = presented.toString('hex');
    let pending = this.inflight.get(slot);
    if (!pending) {
      const run = this.argon2.verify(rec.hash, secret);
      if (!run) return { ok: false, status: 503, reason: 'auth.busy', retryAfterS: 1, keyId: id };
      this.hooks.onArgon2?.();
      this.argon2Runs += 1;
      this.addrLock.begin(ipSubject);
      this.keyLock.begin(pairSubject);
      pending = run.then((v) => {
        // `error`: the verification could not run — not the client's failure.
        const failed = v === false;
        this.addrLock.end(ipSubject, failed);
        this.keyLock.end(pairSubject, false);
        if (failed) this.keyLock.failure(pairSubject, strict);
        return v;
      });
      this.inflight.set(slot, pending);
      void pending.finally(() => this.inflight.delete(slot));
    }
    const verdict = await pending;
    if (verdict === 'error') return { ok: false, status: 503, reason: 'auth.busy', retryAfterS: 1, keyId: id };
    if (!verdict) return { ok: false, status: 401, reason: 'auth.bad_secret', keyId: id };
    // The store may have changed while argon2 ran.
    const now = this.now();
    const current = this.records.get(id);
    if (!current || keyState(current, now) !== 'active') return { ok: false, status: 401, reason: 'auth.key_revoked', keyId: id };
    if (this.proofTtlMs > 0) this.proofs.set(id, { mac: presented, until: now + this.proofTtlMs });
    this.keyLock.success(pairSubject);
    return this.succeeded(current, now);
  }

  private succeeded(rec: KeyRecord, t: number): AuthResult {
    // A store written by hand or by another tool may hold an identity the audit log cannot record
    // or the policy would misread: refuse it like a JWT's (issue 17), never pass it on.
    const attributes = attributesOf(rec);
    if (!wellFormedId(rec.principal) || rec.roles.length > 32 || !rec.roles.every(wellFormedRole) || attributes === 'bad') {
      this.logger.error('an API key names a principal, role or attribute that is not well-formed; it is refused', { key_id: rec.id });
      return { ok: false, status: 401, reason: 'auth.key_bad_principal', keyId: rec.id };
    }
    // The address's failures are never reset by a success: a client holding one valid key must
    // not be able to launder its address (address failures decay with forget_s).
    const last = this.usage.get(rec.id) ?? 0;
    if (t - last >= USAGE_WRITE_MS) {
      this.usage.set(rec.id, t);
      this.usageDirty = true;
      void this.flushUsage(false);
    }
    return {
      ok: true,
      keyId: rec.id,
      principal: { id: rec.principal, roles: [...rec.roles], auth: 'api_key', tier: rec.tier, ...(attributes ? { attributes } : {}) },
    };
  }

  /** last_used goes to the store (a sidecar file, or a table), at most once a minute (or at close). */
  flushUsage(force: boolean): Promise<void> {
    if (!this.usageDirty) return Promise.resolve();
    if (!force && this.now() - this.usageWritten < USAGE_WRITE_MS && this.usageWritten !== 0) return Promise.resolve();
    this.usageDirty = false;
    this.usageWritten = this.now();
    return this.store.recordUsage(new Map(this.usage)).catch((err: Error) => {
      this.logger.warn('could not record API key last-used times', { store: this.store.where, error: err.message });
    });
  }

  /**
   * Where aggregated refusals go (the HTTP transport writes each as one audit record): checked
   * every tenth of an interval, and drained at close.
   */
  onAggregates(sink: (aggs: RefusalAggregate[]) => Promise<void>): void {
    this.aggregateSink = sink;
    clearInterval(this.aggregateTimer);
    const every = Math.max(100, Math.min(5000, (this.config.auth.refusals.interval_s * 1000) / 10));
    this.aggregateTimer = setInterval(() => {
      const due = this.refusals.due();
      if (due.length > 0) void sink(due);
    }, every);
    this.aggregateTimer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.aggregateTimer);
    this.argon2.close();
    const left = this.refusals.drain();
    if (left.length > 0 && this.aggregateSink) await this.aggregateSink(left);
    await this.flushUsage(true);
    await this.store.close().catch(() => undefined);
  }
}

/** A key record's attributes, checked and frozen once per record (records are replaced on reload). */
const checkedAttributes = new WeakMap<KeyRecord, PrincipalAttributes | undefined | 'bad'>();
function attributesOf(rec: KeyRecord): PrincipalAttributes | undefined | 'bad' {
  if (checkedAttributes.has(rec)) return checkedAttributes.get(rec);
  const v = attributesProblems(rec.attributes).length > 0 ? 'bad' : frozenAttributes(rec.attributes);
  checkedAttributes.set(rec, v);
  return v;
}
