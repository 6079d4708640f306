import { deny, fail, messageOf, pass, type Verdict } from '../core/denial.js';
import { PolicyError } from '../policy/types.js';
import type { Decision, Obligations } from '../core/decision.js';
import { policyInput } from '../policy/input.js';
import type { ToolDefinition, ToolFamily } from '../tools/types.js';
import type { GateDeps } from './deps.js';
import type { Analysed, Authorised, Caps } from '../core/call.js';
import type { GateDeadline } from './deadline.js';

/** Each Authorised value minted below, with the definition of the tool it was decided for. */
const minted = new WeakMap<object, ToolDefinition>();

/**
 * The executor's runtime half of the Authorised brand: the definition decide authorised this
 * very value for, or undefined for a value decide did not mint (it must not run).
 */
export function authorisedTool(value: object): ToolDefinition | undefined {
  return minted.get(value);
}

function tighten(configured: number, obligation: number | undefined): number {
  return obligation === undefined ? configured : Math.min(configured, obligation);
}

function configuredMaxBytes(family: ToolFamily, deps: GateDeps): number {
  switch (family) {
    case 'filesystem':
      return deps.config.filesystem.max_result_bytes;
    case 'database':
      return deps.config.database.max_result_bytes;
    case 'api':
      // Each upstream caps its own responses (apis.<name>.max_response_bytes); this is the ceiling.
      return Math.max(deps.config.filesystem.max_result_bytes, ...Object.values(deps.config.apis ?? {}).map((a) => a.max_response_bytes));
    case 'javascript':
      return deps.config.javascript.max_output_bytes;
    case 'conformance':
      // The test-only fixtures answer constants of a few hundred bytes.
      return deps.config.filesystem.max_result_bytes;
    default: {
      const never: never = family;
      throw new Error(`unknown family ${String(never)}`);
    }
  }
}

/** Obligations only tighten the configured caps, never loosen them. */
export function capsFor(family: ToolFamily, o: Obligations, deps: GateDeps): Caps {
  return {
    timeoutMs: tighten(deps.config.execution.timeout_ms, o.timeout_ms),
    maxBytes: tighten(configuredMaxBytes(family, deps), o.max_bytes),
    ...(o.max_rows === undefined ? {} : { maxRows: o.max_rows }),
    memoryMb: tighten(deps.config.javascript.memory_mb, o.memory_mb),
    redactColumns: o.redact_columns ?? [],
  };
}

export interface DecideOutput {
  readonly verdict: Verdict<Authorised>;
  readonly decision?: Decision;
}

/**
 * Ask the policy. With the gate's deadline, the time obligation tightens the deadline and the
 * executor's time cap is what is left of it (queue waits and connects count against it too).
 */
export function decide(call: Analysed, tool: ToolDefinition, deps: GateDeps, deadline?: GateDeadline): DecideOutput {
  let decision: Decision;
  try {
    decision = deps.policy.decide(policyInput(call));
  } catch (err) {
    const reason = err instanceof PolicyError ? err.reason : 'policy.evaluation_failed';
    deps.logger.error('policy evaluation failed', { request_id: call.context.requestId, reason, error: messageOf(err) });
    return { verdict: fail(deny('policy_error', 'The policy could not be evaluated, so the call is denied.', [reason])) };
  }
  if (!decision.allow) {
    return { verdict: fail(deny('policy_denied', `The policy denied ${call.tool}.`, decision.reasons)), decision };
  }
  let caps = capsFor(tool.family, decision.obligations, deps);
  if (deadline) {
    deadline.tightenCap(caps.timeoutMs);
    caps = { ...caps, timeoutMs: Math.min(caps.timeoutMs, deadline.remainingMs()) };
  }
  const authorised = { ...call, decision: decision as Decision & { allow: true }, caps } as Authorised;
  minted.set(authorised, tool);
  return { verdict: pass(authorised), decision };
}
