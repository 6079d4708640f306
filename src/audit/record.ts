import { sha256Hex } from './chain.js';
import type { Denial } from '../errors/denial.js';
import type { Decision } from '../policy/types.js';
import type { Facts, OutcomeStatus, Principal, ToolResult, CallContext } from '../gate/types.js';

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
  /** What executing cost, and the caps it ran under (issue: caps are evidence too). */
  readonly execution?: { readonly metrics?: Readonly<Record<string, number>>; readonly caps?: Readonly<Record<string, unknown>> } | undefined;
}

/** Serialisation that never throws on odd strings; used only for hashing what the client sent. */
function stableStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return '"<unserialisable>"';
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
