import { deny, type Denial, type Verdict } from '../errors/denial.js';
import type { DenialCode } from '../errors/codes.js';
import { CanonicalJsonError } from '../audit/canonical-json.js';
import { auditFields, withoutArgs, type RecordInput } from '../audit/record.js';
import type { StageName } from '../observability/gate-metrics.js';
import type { Decision } from '../policy/types.js';
import type { GateDeps } from './deps.js';
import type { Analysed, Authenticated, Authorised, GateOutcome, OutcomeStatus, RawCall, ToolResult, Validated } from './types.js';
import { authenticate } from './authenticate.js';
import { rateLimit } from './rate-limit.js';
import { validate } from './validate.js';
import { analyse } from './analyse.js';
import { decide } from './decide.js';
import { execute } from './execute.js';

/** Codes that mean "the tool ran and failed", as opposed to "the gate refused". */
const ERROR_CODES: ReadonlySet<DenialCode> = new Set(['timeout', 'resource_exceeded', 'tool_error', 'unavailable', 'internal_error']);

function statusOf(denial: Denial | undefined): OutcomeStatus {
  if (!denial) return 'ok';
  if (denial.code === 'cancelled') return 'cancelled';
  return ERROR_CODES.has(denial.code) ? 'error' : 'denied';
}

/**
 * The gate: a fixed sequence, stopping at the first denial, recording every call. Stages return
 * verdicts; a stage that throws is a bug and the call is denied (fail closed). The order is not
 * configurable and a tool cannot skip a stage.
 */
export async function runGate(raw: RawCall, deps: GateDeps): Promise<GateOutcome> {
  const started = performance.now();
  let principalCall: Authenticated | undefined;
  let validated: Validated | undefined;
  let analysed: Analysed | undefined;
  let decision: Decision | undefined;
  let result: ToolResult | undefined;
  let denial: Denial | undefined;

  const stageMs: Partial<Record<StageName, number>> = {};
  const guard = async <T>(stage: StageName, fn: () => Verdict<T> | Promise<Verdict<T>>): Promise<T | undefined> => {
    let v: Verdict<T>;
    const t0 = performance.now();
    try {
      v = await fn();
      stageMs[stage] = performance.now() - t0;
    } catch (err) {
      stageMs[stage] = performance.now() - t0;
      deps.metrics.count(stage, 'error');
      deps.logger.error('gate stage threw', { stage, request_id: raw.context.requestId, error: (err as Error).message });
      denial = deny('internal_error', 'An internal error stopped the call; it was denied.', [`gate.${stage}_failed`]);
      return undefined;
    }
    if (v.ok) {
      deps.metrics.count(stage, 'pass');
      return v.value;
    }
    deps.metrics.count(stage, 'deny');
    denial = v.denial;
    return undefined;
  };

  principalCall = await guard('authenticate', () => authenticate(raw, deps));
  const limited = principalCall && (await guard('rate_limit', () => rateLimit(principalCall as Authenticated, deps)));
  validated = limited && (await guard('validate', () => validate(limited, deps)));
  analysed = validated && (await guard('analyse', () => analyse(validated as Validated, deps)));
  const authorised: Authorised | undefined = analysed
    ? await guard('decide', () => {
        const out = decide(analysed as Analysed, deps);
        decision = out.decision;
        return out.verdict;
      })
    : undefined;
  result = authorised && (await guard('execute', () => execute(authorised, deps)));
  if (denial) result = undefined;

  const durationMs = performance.now() - started;
  const tool = deps.tools.get(raw.tool);
  const record: RecordInput = {
    context: raw.context,
    tool: raw.tool,
    toolKnown: tool !== undefined,
    principal: principalCall?.principal,
    args: validated ? validated.args : raw.args,
    argsValidated: validated !== undefined,
    auditArgs: validated && tool?.auditArgs ? tool.auditArgs(validated.args) : undefined,
    facts: analysed?.facts,
    decision,
    policyRevision: deps.policy.revision,
    status: statusOf(denial),
    denial,
    result,
    durationMs,
    execution: authorised
      ? {
          ...(result?.metrics ? { metrics: { ...result.metrics } } : {}),
          caps: { timeout_ms: authorised.caps.timeoutMs, max_bytes: authorised.caps.maxBytes, ...(authorised.caps.maxRows === undefined ? {} : { max_rows: authorised.caps.maxRows }), ...(authorised.caps.memoryMb === undefined ? {} : { memory_mb: authorised.caps.memoryMb }), redact_columns: [...authorised.caps.redactColumns] },
        }
      : undefined,
  };
  let auditSeq: number | undefined;
  const recordStart = performance.now();
  try {
    auditSeq = (await appendRecord(record, deps)).seq;
    stageMs.record = performance.now() - recordStart;
    deps.metrics.count('record', 'pass');
  } catch (err) {
    deps.metrics.count('record', 'error');
    deps.logger.error('audit append failed; withholding the result', { request_id: raw.context.requestId, error: (err as Error).message });
    // Without evidence there is no answer: the result is withheld even if the tool ran.
    denial = deny('audit_unavailable', 'The call could not be recorded in the audit log, so its result is withheld.', ['audit.append_failed']);
    result = undefined;
  }
  return {
    requestId: raw.context.requestId,
    tool: raw.tool,
    status: statusOf(denial),
    ...(result ? { result } : {}),
    ...(denial ? { denial } : {}),
    ...(decision ? { decision, obligations: decision.obligations } : {}),
    durationMs: performance.now() - started,
    stageMs,
    ...(auditSeq === undefined ? {} : { auditSeq }),
  };
}

async function appendRecord(record: RecordInput, deps: GateDeps) {
  const fields = auditFields(record);
  try {
    return await deps.audit.append(fields);
  } catch (err) {
    if (!(err instanceof CanonicalJsonError)) throw err;
    // The arguments (or facts) hold something that cannot be hashed reproducibly: keep the
    // record, drop the unrepresentable part and say so.
    return deps.audit.append({ ...withoutArgs(fields, err.reason), facts: null });
  }
}
