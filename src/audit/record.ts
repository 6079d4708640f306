import { sha256Hex } from './chain.js';
import type { Denial } from '../errors/denial.js';
import type { Decision } from '../policy/types.js';
import type { Authorised, Facts, OutcomeStatus, Principal, ToolResult, CallContext } from '../gate/types.js';

export interface RecordInput {
  readonly context: CallContext;
  readonly tool: string;
  readonly toolKnown: boolean;
  readonly principal?: Principal | undefined;
  /** Validated arguments, when validation passed; raw otherwise (then only their hash is kept). */
  readonly args: unknown;
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
  /** What executing cost, and the caps it ran under (issue: caps are evidence too). */
  readonly execution?: { readonly metrics?: Readonly<Record<string, number>>; readonly caps?: Readonly<Record<string, unknown>> } | undefined;
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

/** The fields of one audit record (the log adds v, seq, ts, prev, hash). */
export function auditFields(r: RecordInput): Record<string, unknown> {
  const argsJson = stableStringify(r.args ?? {});
  const masked: string[] = [];
  let args: unknown = null;
  if (r.argsValidated) {
    args = r.auditArgs ?? r.args;
  } else {
    // Unvalidated input is untrusted in size and shape: keep its hash and size, not its body.
    masked.push('args');
  }
  const resultJson = r.result ? stableStringify(r.result.structured) : undefined;
  return {
    request_id: r.context.requestId,
    transport: r.context.transport,
    client_ip: r.context.clientIp ?? null,
    principal: r.principal ? { id: r.principal.id, roles: [...r.principal.roles], auth: r.principal.auth } : null,
    // JSON.stringify escapes anything odd, so an unknown name is always a representable string.
    tool: r.toolKnown ? r.tool : JSON.stringify(r.tool).slice(0, 200),
    args,
    args_sha256: sha256Hex(argsJson),
    args_bytes: Buffer.byteLength(argsJson),
    masked,
    facts: r.facts ?? null,
    decision: r.decision ? { allow: r.decision.allow, reasons: [...r.decision.reasons], policy_revision: r.policyRevision } : null,
    policy_revision: r.policyRevision,
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
  };
}

/**
 * The intent record a side-effecting call leaves before its tool runs: who, what (arguments as
 * the outcome record keeps them, and their hash), the facts and the decision. Its outcome record
 * follows and names it (`intent_seq`); an intent with no outcome is "outcome unknown" (the
 * process stopped mid-call), which verify and the report show and do not call damage.
 */
export function intentFields(call: Authorised, policyRevision: string, auditArgs: Record<string, unknown> | undefined): Record<string, unknown> {
  const argsJson = stableStringify(call.args ?? {});
  return {
    event: 'intent',
    request_id: call.context.requestId,
    transport: call.context.transport,
    client_ip: call.context.clientIp ?? null,
    principal: { id: call.principal.id, roles: [...call.principal.roles], auth: call.principal.auth },
    tool: call.tool,
    args: auditArgs ?? call.args,
    args_sha256: sha256Hex(argsJson),
    args_bytes: Buffer.byteLength(argsJson),
    masked: [],
    facts: call.facts,
    decision: { allow: true, reasons: [...call.decision.reasons], policy_revision: policyRevision },
    policy_revision: policyRevision,
  };
}

/** When validated arguments still cannot be hashed reproducibly (a lone surrogate, say), record without them. */
export function withoutArgs(fields: Record<string, unknown>, reason: string): Record<string, unknown> {
  return { ...fields, args: null, masked: [...((fields.masked as string[]) ?? []), 'args'], args_unrepresentable: reason };
}

/** Milliseconds to microsecond precision, integers as they are: stable, hashable numbers. */
function roundMetrics(m: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (Number.isFinite(v)) out[k] = Number.isInteger(v) ? v : Math.round(v * 1000) / 1000;
  return out;
}
