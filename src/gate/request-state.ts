/**
 * Sealed `requestState` (MCP 2026-07-28 §mrtr): what the gate hands a client with an
 * `input_required` result and trusts again only when the retry of the very same call brings it
 * back. The spec leaves the value opaque and warns that it is attacker-controlled; here it is
 * AES-256-GCM (core/seal.ts, purpose `mcp.request_state`), so the client can neither read nor
 * change it, and its payload binds it to one call:
 *
 * - the principal (id and how it authenticated), the method (`tools/call`), the tool and the
 *   SHA-256 of the arguments (RFC 8785, the hash the audit record keeps): a state issued to Alice
 *   for `{"amount": 10}` opens for nobody else and for no other arguments;
 * - an issue time, an expiry and a random nonce, and the request id of the call that issued it;
 * - why it was issued (`approval`: a human is being asked; `tool`: the tool asked for input and
 *   keeps its own `state`).
 *
 * Single use: a state that opened is remembered (its nonce, until it expires) and refused if it
 * comes back. The memory is per process and bounded; when it is full of unexpired states, new ones
 * are refused rather than forgotten (fail closed). A retry that reaches another replica is only
 * accepted when the replicas share the key (protocol.request_state_key_file); its replay there is
 * not detected (documented in SECURITY.md).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MAX_SEALED_CHARS, Sealer } from '../core/seal.js';
import { deny, fail, pass, type Denial, type Verdict } from '../core/denial.js';
import type { Authenticated, Authorised, InputRequired, Principal, ToolResult } from '../core/call.js';

/** The Sealer purpose: a token sealed for a session id (or anything else) never opens as requestState. */
export const REQUEST_STATE_PURPOSE = 'mcp.request_state';
const PAYLOAD_VERSION = 1;
/** The environment variable read when protocol.request_state_key_file is unset. */
export const REQUEST_STATE_KEY_ENV = 'BULWARK_REQUEST_STATE_KEY';
/** How many opened states are remembered (single use) before new ones are refused. */
export const MAX_REMEMBERED_STATES = 100_000;

export type StatePurpose = 'approval' | 'tool';

/** What a human was asked to approve (the policy's obligation when the state was issued). */
export interface AskedApproval {
  readonly approvers: readonly string[];
  readonly reason: string;
  readonly ttl_ms: number;
}

export interface RequestStatePayload {
  readonly v: typeof PAYLOAD_VERSION;
  readonly purpose: StatePurpose;
  readonly principal: { readonly id: string; readonly auth: string };
  readonly method: 'tools/call';
  readonly tool: string;
  readonly args_sha256: string;
  /** Date.now() at issue and at expiry (wall clock: replicas sharing the key compare them). */
  readonly iat: number;
  readonly exp: number;
  readonly nonce: string;
  /** The request id of the call whose input_required result carried this state. */
  readonly request_id: string;
  /** purpose `approval`: what the human is asked. */
  readonly approval?: AskedApproval;
  /** purpose `tool`: an approval already granted for this call, carried to the tool's next round. */
  readonly approved?: { readonly by: string | null; readonly request_id: string };
  /** purpose `tool`: the tool's own state, handed back to it as ClientChannel.resumedState. */
  readonly state?: Readonly<Record<string, unknown>>;
}

/** Why a state was refused: the audit reason is `request_state.<why>`. */
export type StateFailure =
  'malformed' | 'tampered' | 'expired' | 'principal_mismatch' | 'method_mismatch' | 'tool_mismatch' | 'args_mismatch' | 'replayed' | 'replay_cache_full';

/** The call a state is issued for or presented with. */
export interface StateBinding {
  readonly principal: Pick<Principal, 'id' | 'auth'>;
  readonly tool: string;
  readonly argsSha256: string;
}

export type OpenedState =
  { readonly ok: true; readonly payload: RequestStatePayload } | { readonly ok: false; readonly why: StateFailure; readonly payload?: RequestStatePayload };

export interface IssueOptions {
  readonly requestId: string;
  readonly ttlMs: number;
  readonly approval?: AskedApproval | undefined;
  readonly approved?: RequestStatePayload['approved'] | undefined;
  readonly state?: Readonly<Record<string, unknown>> | undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isTime = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function asAsked(v: unknown): AskedApproval | undefined | false {
  if (v === undefined) return undefined;
  if (!isObj(v) || !Array.isArray(v.approvers) || !v.approvers.every(isStr) || !isStr(v.reason) || !isTime(v.ttl_ms)) return false;
  return { approvers: v.approvers, reason: v.reason, ttl_ms: v.ttl_ms };
}

/** Checked field by field even though we sealed it: a key shared with another version must not yield surprises. */
function asPayload(v: unknown): RequestStatePayload | undefined {
  if (!isObj(v) || v.v !== PAYLOAD_VERSION || (v.purpose !== 'approval' && v.purpose !== 'tool')) return undefined;
  const p = v.principal;
  if (!isObj(p) || !isStr(p.id) || !isStr(p.auth)) return undefined;
  if (v.method !== 'tools/call' || !isStr(v.tool) || !isStr(v.args_sha256) || !isTime(v.iat) || !isTime(v.exp) || !isStr(v.nonce) || !isStr(v.request_id))
    return undefined;
  const approval = asAsked(v.approval);
  if (approval === false) return undefined;
  const ap = v.approved;
  if (ap !== undefined && (!isObj(ap) || !(ap.by === null || isStr(ap.by)) || !isStr(ap.request_id))) return undefined;
  if (v.state !== undefined && !isObj(v.state)) return undefined;
  return {
    v: PAYLOAD_VERSION,
    purpose: v.purpose,
    principal: { id: p.id, auth: p.auth },
    method: 'tools/call',
    tool: v.tool,
    args_sha256: v.args_sha256,
    iat: v.iat,
    exp: v.exp,
    nonce: v.nonce,
    request_id: v.request_id,
    ...(approval ? { approval } : {}),
    ...(ap ? { approved: { by: ap.by as string | null, request_id: ap.request_id as string } } : {}),
    ...(v.state ? { state: v.state } : {}),
  };
}

export class RequestStateCodec {
  /** Nonces of states that opened, with their expiry (a Map keeps insertion order for the sweep). */
  private readonly used = new Map<string, number>();

  constructor(
    readonly sealer: Sealer,
    private readonly opts: { readonly now?: () => number; readonly maxRemembered?: number } = {},
  ) {}

  /** A random key for this process only (the default when no key is configured). */
  static random(opts?: { readonly now?: () => number; readonly maxRemembered?: number }): RequestStateCodec {
    return new RequestStateCodec(Sealer.random(), opts);
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  issue(purpose: StatePurpose, binding: StateBinding, o: IssueOptions): { readonly token: string; readonly payload: RequestStatePayload } {
    const iat = this.now();
    const payload: RequestStatePayload = {
      v: PAYLOAD_VERSION,
      purpose,
      principal: { id: binding.principal.id, auth: binding.principal.auth },
      method: 'tools/call',
      tool: binding.tool,
      args_sha256: binding.argsSha256,
      iat,
      exp: iat + o.ttlMs,
      nonce: crypto.randomBytes(16).toString('base64url'),
      request_id: o.requestId,
      ...(o.approval ? { approval: { approvers: [...o.approval.approvers], reason: o.approval.reason, ttl_ms: o.approval.ttl_ms } } : {}),
      ...(o.approved ? { approved: o.approved } : {}),
      ...(o.state ? { state: o.state } : {}),
    };
    return { token: this.sealer.seal(REQUEST_STATE_PURPOSE, payload), payload };
  }

  /**
   * The payload, when `token` was sealed by this key for exactly this call, has not expired and was
   * not used before; it is then remembered as used. Never throws on client input.
   */
  open(token: unknown, binding: StateBinding): OpenedState {
    const unsealed = this.sealer.unseal(REQUEST_STATE_PURPOSE, token);
    if (!unsealed.ok) return { ok: false, why: unsealed.why };
    const payload = asPayload(unsealed.payload);
    if (!payload) return { ok: false, why: 'malformed' };
    // Binding first: a state presented by someone else is the event worth naming, whatever its age.
    const why: StateFailure | undefined =
      payload.principal.id !== binding.principal.id || payload.principal.auth !== binding.principal.auth
        ? 'principal_mismatch'
        : payload.method !== 'tools/call'
          ? 'method_mismatch'
          : payload.tool !== binding.tool
            ? 'tool_mismatch'
            : payload.args_sha256 !== binding.argsSha256
              ? 'args_mismatch'
              : this.now() >= payload.exp
                ? 'expired'
                : undefined;
    if (why) return { ok: false, why, payload };
    const remembered = this.remember(payload);
    if (remembered) return { ok: false, why: remembered, payload };
    return { ok: true, payload };
  }

  private remember(p: RequestStatePayload): StateFailure | undefined {
    if (this.used.has(p.nonce)) return 'replayed';
    const max = this.opts.maxRemembered ?? MAX_REMEMBERED_STATES;
    if (this.used.size >= max) {
      const now = this.now();
      for (const [nonce, exp] of this.used) if (exp <= now) this.used.delete(nonce);
      // Forgetting an unexpired nonce would let its state be replayed: refuse instead.
      if (this.used.size >= max) return 'replay_cache_full';
    }
    this.used.set(p.nonce, p.exp);
    return undefined;
  }
}

/**
 * The sealing key: protocol.request_state_key_file (relative to the config file), else the
 * environment variable, else none (undefined: the caller uses a random per-process key). Throws
 * at boot on a key shorter than 32 bytes or a file that cannot be read.
 */
/** The part of the config the key comes from. */
export interface KeyConfig {
  readonly protocol: { readonly request_state_key_file?: string | undefined };
}

export function requestStateKey(config: KeyConfig, configDir: string, env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  const file = config.protocol.request_state_key_file;
  let key: Buffer | undefined;
  let from: string;
  if (file !== undefined) {
    from = `protocol.request_state_key_file (${file})`;
    key = fs.readFileSync(path.resolve(configDir, file));
  } else if (env[REQUEST_STATE_KEY_ENV]) {
    from = REQUEST_STATE_KEY_ENV;
    key = Buffer.from(env[REQUEST_STATE_KEY_ENV] as string, 'utf8');
  } else {
    return undefined;
  }
  // A trailing newline from `openssl rand -base64 48 > file` is not key material.
  let end = key.length;
  while (end > 0 && (key[end - 1] === 0x0a || key[end - 1] === 0x0d)) end--;
  key = key.subarray(0, end);
  if (key.length < 32) throw new Error(`${from} holds ${key.length} bytes; the requestState key needs at least 32`);
  return key;
}

/** The codec for a server: the configured key, or a random one for this process. */
export function requestStateCodecFor(config: KeyConfig, configDir: string, env?: NodeJS.ProcessEnv): RequestStateCodec {
  const key = requestStateKey(config, configDir, env);
  return key ? new RequestStateCodec(new Sealer(key)) : RequestStateCodec.random();
}

/** One codec per process for gates built without one (tests, one-shot commands): a random key. */
let processCodec: RequestStateCodec | undefined;
export function defaultRequestStateCodec(): RequestStateCodec {
  processCodec ??= RequestStateCodec.random();
  return processCodec;
}

const MESSAGES: Readonly<Record<StateFailure, string>> = {
  malformed: 'The requestState is not one this server issued.',
  tampered: 'The requestState was altered or sealed with another key.',
  expired: 'The requestState has expired.',
  principal_mismatch: 'The requestState was issued to another principal.',
  method_mismatch: 'The requestState was issued for another method.',
  tool_mismatch: 'The requestState was issued for another tool.',
  args_mismatch: 'The requestState was issued for other arguments: a changed argument needs a new round (and a new approval).',
  replayed: 'The requestState was already used.',
  replay_cache_full: 'Too many requestStates are outstanding on this server; retry later.',
};

export function stateDenial(why: StateFailure): Denial {
  return deny('request_state_invalid', `${MESSAGES[why]} Send the call again without requestState to start over.`, [`request_state.${why}`]);
}

/** What the gate learned from the requestState a call brought back. */
export interface Resumed<C extends Authenticated = Authenticated> {
  /** The call, with ClientChannel.resumedState set when a tool's state came back. */
  readonly call: C;
  readonly payload?: RequestStatePayload | undefined;
}

/**
 * Open the requestState the client sent with this call (if any) against this call: its principal,
 * tool and arguments as received. Refused states are `request_state_invalid`; the payload, when it
 * could be read, goes with the refusal so the record can say what it was (an expired approval).
 */
export function resumeCall<C extends Authenticated>(
  call: C,
  argsSha256: string,
  codec: RequestStateCodec,
): { readonly verdict: Verdict<Resumed<C>>; readonly payload?: RequestStatePayload | undefined } {
  const client = call.context.client;
  if (client?.requestState === undefined) return { verdict: pass({ call }) };
  const opened = codec.open(client.requestState, { principal: call.principal, tool: call.tool, argsSha256 });
  if (!opened.ok) return { verdict: fail(stateDenial(opened.why)), payload: opened.payload };
  const p = opened.payload;
  if (p.purpose !== 'tool') return { verdict: pass({ call, payload: p }), payload: p };
  const context = { ...call.context, client: { ...client, resumedState: p.state ?? {} } };
  return { verdict: pass({ call: { ...call, context }, payload: p }), payload: p };
}

/**
 * A tool's `needsInput` as the answer to this call: its input requests, and its state sealed for
 * the retry (purpose `tool`, bound like an approval). Only a 2026-07-28 client can be answered so;
 * for any other the tool broke its contract and the call fails.
 */
export function toolInputRequired(
  call: Authorised,
  needs: NonNullable<ToolResult['needsInput']>,
  o: {
    readonly argsSha256: string;
    readonly ttlMs: number;
    readonly approved?: RequestStatePayload['approved'] | undefined;
    readonly codec: RequestStateCodec;
  },
): Verdict<InputRequired> {
  if (call.context.client?.era !== '2026-07-28')
    return fail(deny('tool_error', `${call.tool} needs input from the client, which only a 2026-07-28 client can give.`, ['tool.input_required_unsupported']));
  const { token } = o.codec.issue(
    'tool',
    { principal: call.principal, tool: call.tool, argsSha256: o.argsSha256 },
    { requestId: call.context.requestId, ttlMs: o.ttlMs, approved: o.approved, state: needs.state },
  );
  // A state the retry could not bring back (the unsealer refuses longer tokens) is refused now.
  if (token.length > MAX_SEALED_CHARS)
    return fail(deny('tool_error', `${call.tool} asked to keep more state than a requestState can carry.`, ['tool.state_too_large']));
  return pass({ inputRequests: needs.inputRequests, requestState: token });
}
