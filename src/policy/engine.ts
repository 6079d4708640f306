import crypto from 'node:crypto';
import fs from 'node:fs';
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { PolicyError } from './types.js';
import type { ApprovalObligation, Decision, Obligations } from '../core/decision.js';

export const DECISION_ENTRYPOINT = 'bulwark/authz/decision';
export const VISIBLE_TOOLS_ENTRYPOINT = 'bulwark/authz/visible_tools';

/** 64 KiB pages: start at 2 MiB, never grow past 64 MiB, so a hostile input cannot eat the host. */
const MEMORY = { initial: 32, maximum: 1024 } as const;

export interface PolicyEvaluator {
  readonly revision: string;
  readonly ready: boolean;
  /** Throws PolicyError on any failure: callers deny with `policy_error`. */
  decide(input: unknown): Decision;
  visibleTools(input: unknown): string[];
  /**
   * The engine one call uses from its first stage to its record. A live (reloadable) policy answers
   * the engine loaded at that moment, so a swap never changes a call half-way; a fixed engine answers itself.
   */
  pin?(): PolicyEvaluator;
}

const OBLIGATION_NUMBERS = ['max_bytes', 'timeout_ms', 'max_rows', 'memory_mb', 'max_plan_cost', 'max_plan_rows'] as const;

function parseObligations(value: unknown): Obligations {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new PolicyError('policy.malformed_decision', 'obligations is not an object');
  const out: Record<string, unknown> = {};
  const v = value as Record<string, unknown>;
  for (const key of OBLIGATION_NUMBERS) {
    if (v[key] === undefined) continue;
    const n = v[key];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0)
      throw new PolicyError('policy.malformed_decision', `obligation ${key} is not a non-negative number`);
    out[key] = n;
  }
  if (v.redact_columns !== undefined) {
    if (!Array.isArray(v.redact_columns) || !v.redact_columns.every((c) => typeof c === 'string')) {
      throw new PolicyError('policy.malformed_decision', 'obligation redact_columns is not a list of strings');
    }
    out.redact_columns = Object.freeze([...v.redact_columns]);
  }
  if (v.row_filters !== undefined) {
    if (!Array.isArray(v.row_filters)) throw new PolicyError('policy.malformed_decision', 'obligation row_filters is not a list');
    out.row_filters = Object.freeze(structuredClone(v.row_filters) as unknown[]);
  }
  if (v.approval !== undefined) out.approval = parseApproval(v.approval);
  // Passed through; the SQL gate (src/analysis/sql-masks.ts) validates each rule and fails closed.
  if (v.column_rules !== undefined) {
    if (v.column_rules === null || typeof v.column_rules !== 'object' || Array.isArray(v.column_rules))
      throw new PolicyError('policy.malformed_decision', 'obligation column_rules is not an object');
    out.column_rules = Object.freeze(structuredClone(v.column_rules) as Record<string, unknown>);
  }
  return Object.freeze(out) as Obligations;
}

/** The approval window the policy may ask for: long enough for a human, short enough that an approval does not linger. */
export const APPROVAL_TTL_MS = { min: 1000, max: 86_400_000 } as const;

/** An approval obligation the gate can act on exactly, or a PolicyError (the call is denied, never run unapproved). */
function parseApproval(value: unknown): ApprovalObligation {
  const bad = (what: string): PolicyError => new PolicyError('policy.malformed_decision', `obligation approval: ${what}`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('is not an object');
  const a = value as Record<string, unknown>;
  if (!Array.isArray(a.approvers) || !a.approvers.every((r) => typeof r === 'string' && r.length > 0 && r.length <= 64) || a.approvers.length > 32)
    throw bad('approvers is not a list of up to 32 role names');
  if (typeof a.reason !== 'string' || a.reason.length === 0 || a.reason.length > 1000) throw bad('reason is not a string of 1 to 1000 characters');
  if (typeof a.ttl_ms !== 'number' || !Number.isInteger(a.ttl_ms) || a.ttl_ms < APPROVAL_TTL_MS.min || a.ttl_ms > APPROVAL_TTL_MS.max)
    throw bad(`ttl_ms is not an integer from ${APPROVAL_TTL_MS.min} to ${APPROVAL_TTL_MS.max}`);
  return Object.freeze({ approvers: Object.freeze([...(a.approvers as string[])]), reason: a.reason, ttl_ms: a.ttl_ms });
}

/** Shape-check what the wasm returned: anything but a well-formed decision is an error, never an allow. */
export function parseDecision(resultSet: unknown): Decision {
  if (!Array.isArray(resultSet) || resultSet.length !== 1) throw new PolicyError('policy.undefined_decision', 'the policy returned no decision');
  const result = (resultSet[0] as { result?: unknown }).result;
  if (result === null || typeof result !== 'object' || Array.isArray(result))
    throw new PolicyError('policy.undefined_decision', 'the policy decision is not an object');
  const r = result as Record<string, unknown>;
  if (typeof r.allow !== 'boolean') throw new PolicyError('policy.malformed_decision', 'decision.allow is not a boolean');
  const reasons = r.reasons ?? [];
  if (!Array.isArray(reasons) || !reasons.every((x) => typeof x === 'string'))
    throw new PolicyError('policy.malformed_decision', 'decision.reasons is not a list of strings');
  return Object.freeze({ allow: r.allow, reasons: Object.freeze([...reasons]), obligations: parseObligations(r.obligations) });
}

export class WasmPolicyEngine implements PolicyEvaluator {
  readonly revision: string;
  readonly ready = true;
  private readonly policy: LoadedPolicy;
  private readonly maxInputBytes: number;
  private readonly encoder = new TextEncoder();

  private constructor(policy: LoadedPolicy, revision: string, maxInputBytes: number) {
    this.policy = policy;
    this.revision = revision;
    this.maxInputBytes = maxInputBytes;
  }

  /** Load and instantiate once at boot; the call path only evaluates. */
  static async load(wasmPath: string, data: unknown, maxInputBytes: number): Promise<WasmPolicyEngine> {
    let wasm: Buffer;
    try {
      wasm = fs.readFileSync(wasmPath);
    } catch (err) {
      throw new PolicyError('policy.wasm_missing', `cannot read ${wasmPath}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    return WasmPolicyEngine.fromBytes(wasm, JSON.stringify(data ?? {}), maxInputBytes, wasmPath);
  }

  /**
   * Instantiate from bytes (a verified bundle's policy.wasm) and the data JSON exactly as it is
   * hashed into the revision; `label` names the source in errors.
   */
  static async fromBytes(wasm: Uint8Array, dataJson: string, maxInputBytes: number, label: string): Promise<WasmPolicyEngine> {
    let policy: LoadedPolicy;
    try {
      policy = await loadPolicy(wasm, MEMORY);
      policy.setData(JSON.parse(dataJson) as object);
    } catch (err) {
      throw new PolicyError('policy.wasm_invalid', `cannot load ${label}: ${(err as Error).message}`);
    }
    const entrypoints = Object.keys((policy.entrypoints ?? {}) as Record<string, number>);
    for (const e of [DECISION_ENTRYPOINT, VISIBLE_TOOLS_ENTRYPOINT]) {
      if (!entrypoints.includes(e))
        throw new PolicyError('policy.entrypoint_missing', `${label} has no entrypoint ${e} (has: ${entrypoints.join(', ') || 'none'})`);
    }
    const revision = crypto.createHash('sha256').update(wasm).update('\0').update(dataJson).digest('hex');
    return new WasmPolicyEngine(policy, revision, maxInputBytes);
  }

  private evaluate(input: unknown, entrypoint: string): unknown {
    const json = JSON.stringify(input);
    if (json === undefined) throw new PolicyError('policy.input_malformed', 'policy input is not serialisable');
    const bytes = this.encoder.encode(json);
    // Large inputs cost milliseconds in wasm and can exhaust its memory: refuse rather than try.
    if (bytes.byteLength > this.maxInputBytes)
      throw new PolicyError('policy.input_too_large', `policy input is ${bytes.byteLength} bytes (cap ${this.maxInputBytes})`);
    try {
      return this.policy.evaluate(bytes.buffer, entrypoint);
    } catch (err) {
      throw new PolicyError('policy.evaluation_failed', `policy evaluation failed: ${(err as Error).message}`);
    }
  }

  decide(input: unknown): Decision {
    return parseDecision(this.evaluate(input, DECISION_ENTRYPOINT));
  }

  visibleTools(input: unknown): string[] {
    const rs = this.evaluate(input, VISIBLE_TOOLS_ENTRYPOINT);
    const result = Array.isArray(rs) && rs.length === 1 ? (rs[0] as { result?: unknown }).result : undefined;
    if (!Array.isArray(result) || !result.every((x) => typeof x === 'string'))
      throw new PolicyError('policy.undefined_decision', 'visible_tools returned no list');
    return result as string[];
  }
}

/** Stands in when the policy could not be loaded: the server stays up, reports not-ready, and denies everything. */
export class UnavailablePolicy implements PolicyEvaluator {
  readonly revision = 'unavailable';
  readonly ready = false;
  constructor(readonly error: PolicyError) {}
  decide(): Decision {
    throw this.error;
  }
  visibleTools(): string[] {
    throw this.error;
  }
}

export function readPolicyData(dataPath: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(dataPath, 'utf8')) as unknown;
  } catch (err) {
    throw new PolicyError('policy.data_invalid', `cannot read policy data ${dataPath}: ${(err as Error).message}`);
  }
}
