import { canonicalJson } from './canonical-json.js';
import { sha256Hex } from './chain.js';
import type { Denial } from '../core/denial.js';
import type { Decision } from '../core/decision.js';
import type { Authorised, Facts, OutcomeStatus, Principal, ToolResult, CallContext } from '../core/call.js';
import type { ApprovalRequestFields, CallApproval, CallPrincipal, IntentFields, OutcomeFields } from './record-type.js';
import { attachPolicyInput, policyInputCopy } from './policy-inputs.js';

export interface RecordInput {
  readonly context: CallContext;
  readonly tool: string;
  readonly toolKnown: boolean;
  readonly principal?: Principal | undefined;
  /** Validated arguments, when validation passed; raw otherwise (then only their hash is kept). */
  readonly args: unknown;
  /**
   * The arguments as the client sent them (before validation filled in defaults): what
   * args_sha256 hashes, so a client can reproduce it. When absent, `args` is hashed.
   */
  readonly rawArgs?: unknown;
  readonly argsValidated: boolean;
  readonly auditArgs?: Record<string, unknown> | undefined;
  readonly facts?: Facts | undefined;
  readonly decision?: Decision | undefined;
  readonly policyRevision: string;
  readonly status: OutcomeStatus;
  readonly denial?: Denial | undefined;
  readonly result?: ToolResult | undefined;
  readonly durationMs: number;
  /** The intent record written before a side-effecting tool ran (its seq), if one was. */
  readonly intentSeq?: number | undefined;
  /**
   * The exact input the policy evaluated (policy/input.ts), when it was asked: the record keeps its
   * canonical hash, and the log a copy beside it (policy-inputs.ts), so `audit replay` can ask again.
   */
  readonly policyInput?: unknown;
  /** What evaluated the policy (its runtime and version), for replay. */
  readonly policyEngine?: string | undefined;
  /** What executing cost, and the caps it ran under (issue: caps are evidence too). */
  readonly execution?: { readonly metrics?: Readonly<Record<string, number>>; readonly caps?: Readonly<Record<string, unknown>> } | undefined;
  /** The human approval the policy obliged, or a requestState carried, and what became of it. */
  readonly approval?: CallApproval | undefined;
}

/** The principal as the record keeps it: who, with which roles, how verified, and its attributes if any. */
function recordedPrincipal(p: Principal): CallPrincipal {
  const attributes = p.attributes && Object.keys(p.attributes).length > 0 ? p.attributes : undefined;
  return { id: p.id, roles: [...p.roles], auth: p.auth, ...(attributes ? { attributes } : {}) };
}

/**
 * JSON text of a parsed JSON value, exactly as JSON.stringify writes it, without recursion: so
 * arguments nested 100,000 levels deep still get a hash of what was received instead of a
 * placeholder. Lone surrogates are escaped (\udXXX) as JSON.stringify does since ES2019.
 */
export function jsonTextOf(value: unknown): string {
  const out: string[] = [];
  // A work list of values to write and literal punctuation to emit between them.
  const work: unknown[] = [value];
  const PUNCT = Symbol('punct');
  type Punct = { [PUNCT]: string };
  const punct = (text: string): Punct => ({ [PUNCT]: text });
  while (work.length) {
    const v = work.pop();
    if (v !== null && typeof v === 'object' && PUNCT in (v as object)) {
      out.push((v as Punct)[PUNCT]);
      continue;
    }
    if (v === null || v === undefined || typeof v === 'function' || typeof v === 'symbol') {
      out.push('null');
    } else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
      out.push(JSON.stringify(v));
    } else if (typeof v === 'bigint') {
      out.push(JSON.stringify(String(v)));
    } else if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      work.push((v as { toJSON: () => unknown }).toJSON());
    } else if (Array.isArray(v)) {
      const items: unknown[] = [punct('[')];
      v.forEach((x, i) => {
        if (i) items.push(punct(','));
        items.push(x);
      });
      items.push(punct(']'));
      for (let i = items.length - 1; i >= 0; i--) work.push(items[i]);
    } else {
      const items: unknown[] = [punct('{')];
      let first = true;
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
        items.push(punct(`${first ? '' : ','}${JSON.stringify(k)}:`), x);
        first = false;
      }
      items.push(punct('}'));
      for (let i = items.length - 1; i >= 0; i--) work.push(items[i]);
    }
  }
  return out.join('');
}

/** Serialisation that never throws; used only for hashing what the client sent. */
function stableStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    // Too deep for the engine's recursion: the same text, written iteratively.
    return jsonTextOf(value);
  }
}

/**
 * The hash a client can reproduce: SHA-256 of the RFC 8785 canonical JSON (keys sorted by UTF-16
 * code units, ECMAScript number form, no white space, UTF-8) of the arguments as received (`{}`
 * when absent). Arguments that have no canonical form (nesting deeper than 64, integers beyond
 * 2^53, lone surrogates: all refused at validation) are hashed as JSON.stringify writes them, and
 * the record says so (`args_sha256_form: "json"`).
 */
export function argsDigest(args: unknown): { readonly sha256: string; readonly bytes: number; readonly form: 'jcs' | 'json' } {
  let text: string;
  let form: 'jcs' | 'json' = 'jcs';
  try {
    text = canonicalJson(args ?? {});
  } catch {
    text = stableStringify(args ?? {});
    form = 'json';
  }
  return { sha256: sha256Hex(text), bytes: Buffer.byteLength(text), form };
}

/** A tool name as the client gave it, capped at 200 UTF-16 units; quoted only if it is not well-formed text. */
export function recordedToolName(name: string): string {
  const cut = name.length > 200 ? name.slice(0, 200) : name;
  const wellFormed = (x: string): boolean => (x as unknown as { isWellFormed?: () => boolean }).isWellFormed?.() ?? !/[\ud800-\udfff]/.test(x);
  if (wellFormed(cut)) return cut;
  // A cut through a surrogate pair leaves half of it: drop that half.
  if (cut.length === 200 && wellFormed(cut.slice(0, 199))) return cut.slice(0, 199);
  // Lone surrogates cannot be hashed reproducibly: the escaped JSON form stands in.
  return JSON.stringify(name).slice(0, 200);
}

/** The fields of one call's outcome record (the log adds v, seq, ts, prev, hash). */
export function auditFields(r: RecordInput): OutcomeFields {
  const digest = argsDigest('rawArgs' in r ? r.rawArgs : r.args);
  const masked: string[] = [];
  let args: unknown = null;
  if (r.argsValidated) {
    args = r.auditArgs ?? r.args;
  } else {
    // Unvalidated input is untrusted in size and shape: keep its hash and size, not its body.
    masked.push('args');
  }
  const resultJson = r.result ? stableStringify(r.result.structured) : undefined;
  const input = r.policyInput === undefined ? undefined : policyInputCopy(r.policyInput);
  const fields: OutcomeFields = {
    request_id: r.context.requestId,
    transport: r.context.transport,
    client_ip: r.context.clientIp ?? null,
    principal: r.principal ? recordedPrincipal(r.principal) : null,
    tool: r.toolKnown ? r.tool : recordedToolName(r.tool),
    args,
    args_sha256: digest.sha256,
    args_bytes: digest.bytes,
    ...(digest.form === 'json' ? { args_sha256_form: digest.form } : {}),
    masked,
    facts: r.facts ?? null,
    decision: r.decision
      ? { allow: r.decision.allow, reasons: [...r.decision.reasons], obligations: { ...r.decision.obligations }, policy_revision: r.policyRevision }
      : null,
    policy_revision: r.policyRevision,
    ...(input ? { policy_input_sha256: input.sha256 } : {}),
    ...(r.policyEngine === undefined ? {} : { policy_engine: r.policyEngine }),
    outcome: {
      status: r.status,
      code: r.denial?.code ?? null,
      reasons: r.denial ? [...r.denial.reasons] : [],
      duration_ms: Math.round(r.durationMs * 1000) / 1000,
      result_sha256: resultJson === undefined ? null : sha256Hex(resultJson),
      result_bytes: resultJson === undefined ? 0 : Buffer.byteLength(resultJson),
      ...(r.execution?.metrics ? { metrics: roundMetrics(r.execution.metrics) } : {}),
      ...(r.execution?.caps ? { caps: r.execution.caps } : {}),
    },
    ...(r.intentSeq === undefined ? {} : { intent_seq: r.intentSeq }),
    ...(r.approval ? { approval: r.approval } : {}),
  };
  // The copy goes with the fields to the log, which writes it beside the record.
  return input ? attachPolicyInput(fields, input) : fields;
}

/**
 * The intent record a side-effecting call leaves before its tool runs: who, what (arguments as
 * the outcome record keeps them, and their hash), the facts and the decision. Its outcome record
 * follows and names it (`intent_seq`); an intent with no outcome is "outcome unknown" (the
 * process stopped mid-call), which verify and the report show and do not call damage.
 */
export function intentFields(
  call: Authorised,
  policyRevision: string,
  auditArgs: Record<string, unknown> | undefined,
  received?: { readonly args: unknown },
): IntentFields {
  // The same hash as its outcome record's: over the arguments as received, when the caller has them.
  const digest = argsDigest(received ? received.args : call.args);
  return {
    event: 'intent',
    request_id: call.context.requestId,
    transport: call.context.transport,
    client_ip: call.context.clientIp ?? null,
    principal: recordedPrincipal(call.principal),
    tool: call.tool,
    args: auditArgs ?? call.args,
    args_sha256: digest.sha256,
    args_bytes: digest.bytes,
    ...(digest.form === 'json' ? { args_sha256_form: digest.form } : {}),
    masked: [],
    facts: call.facts,
    decision: { allow: true, reasons: [...call.decision.reasons], policy_revision: policyRevision },
    policy_revision: policyRevision,
  };
}

/**
 * The record a 2025-11-25 call leaves before its client is asked to approve it: the intent's
 * fields (who, what, the decision) with what the human is asked. The outcome record names it
 * (`approval.request_seq`); a request with no outcome means the process stopped while asking.
 */
export function approvalRequestFields(
  call: Authorised,
  policyRevision: string,
  auditArgs: Record<string, unknown> | undefined,
  received: { readonly args: unknown } | undefined,
  approval: CallApproval,
): ApprovalRequestFields {
  return { ...intentFields(call, policyRevision, auditArgs, received), event: 'approval', approval };
}

/** When validated arguments still cannot be hashed reproducibly (a lone surrogate, say), record without them. */
export function withoutArgs<F extends OutcomeFields | IntentFields | ApprovalRequestFields>(fields: F, reason: string): F {
  return { ...fields, args: null, masked: [...fields.masked, 'args'], args_unrepresentable: reason };
}

/** Milliseconds to microsecond precision, integers as they are: stable, hashable numbers. */
function roundMetrics(m: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (Number.isFinite(v)) out[k] = Number.isInteger(v) ? v : Math.round(v * 1000) / 1000;
  return out;
}
