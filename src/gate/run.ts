import { deny, fail, messageOf, pass, type Denial, type Verdict } from '../core/denial.js';
import type { DenialCode } from '../core/codes.js';
import { argsDigest, type RecordInput } from '../audit/record.js';
import type { CallApproval } from '../audit/record-type.js';
import { noteReceivedArgs, recordOutcome, replayInput } from './record.js';
import { STAGES, type StageName } from '../core/stages.js';
import type { ApprovalObligation, Decision } from '../core/decision.js';
import { pinPolicy, type GateDeps } from './deps.js';
import type { ToolDefinition } from '../tools/types.js';
import type {
  Analysed,
  Authenticated,
  Authorised,
  CallContext,
  Facts,
  GateOutcome,
  InputRequired,
  OutcomeStatus,
  Principal,
  RawCall,
  ToolResult,
  Validated,
} from '../core/call.js';
import { authenticate } from './authenticate.js';
import { rateLimit } from './rate-limit.js';
import { validate } from './validate.js';
import { analyse } from './analyse.js';
import { decide } from './decide.js';
import { execute } from './execute.js';
import { EXECUTOR_GRACE_MS, GateDeadline, RECORD_BOUND_MS } from './deadline.js';
import { reportIfSlow } from '../observability/slow-calls.js';
import { seekApproval } from './approval.js';
import { defaultRequestStateCodec, resumeCall, toolInputRequired, type AskedApproval, type RequestStatePayload } from './request-state.js';

/** Codes that mean "the tool ran and failed", as opposed to "the gate refused". */
const ERROR_CODES: ReadonlySet<DenialCode> = new Set(['timeout', 'resource_exceeded', 'tool_error', 'unavailable', 'internal_error']);

function statusOf(denial: Denial | undefined): OutcomeStatus {
  if (!denial) return 'ok';
  if (denial.code === 'cancelled') return 'cancelled';
  return ERROR_CODES.has(denial.code) ? 'error' : 'denied';
}

/** What the stages found out about one call; frozen once the gate has decided its answer. */
interface CallState {
  /** The definition of the tool the call names, looked up once as it enters (undefined: no such tool). */
  readonly tool: ToolDefinition | undefined;
  principalCall?: Authenticated;
  validated?: Validated;
  analysed?: Analysed;
  authorised?: Authorised;
  decision?: Decision;
  result?: ToolResult;
  denial?: Denial;
  /** Sequence number of the intent record written before a side-effecting tool ran. */
  intentSeq?: number;
  /** The requestState this call brought back, opened and checked against it (request-state.ts). */
  resumed?: RequestStatePayload;
  /** The human approval the policy obliged (or a requestState carried), and what became of it. */
  approval?: CallApproval;
  /** The call ends `input_required` (2026-07-28): what the client must answer before its retry. */
  inputRequired?: InputRequired;
  /** Milliseconds spent getting the approval (a human's answer on 2025-11-25): not the gate's slowness. */
  approvalMs?: number;
  /** Set when the answer is fixed (the deadline passed): late stage results are ignored. */
  frozen: boolean;
  readonly stageMs: Partial<Record<StageName, number>>;
}

function enter(raw: RawCall, deps: GateDeps): CallState {
  return { tool: deps.tools.get(raw.tool), frozen: false, stageMs: {} };
}

/**
 * The gate: a fixed sequence, stopping at the first denial, recording every call. Stages return
 * verdicts; a stage that throws is a bug and the call is denied (fail closed). The order is not
 * configurable and a tool cannot skip a stage.
 *
 * The gate owns each call's deadline (execution.timeout_ms, tightened by the policy's
 * obligations): queue waits, connects, the executor and retries all count against it. When it
 * passes the call's signal is aborted, no later stage starts, and after a short grace the call is
 * answered and recorded whatever the executor is still doing.
 */
export async function runGate(raw: RawCall, liveDeps: GateDeps): Promise<GateOutcome> {
  // The policy is read once: a reload during this call does not change the revision that decides and is recorded.
  const deps = pinPolicy(liveDeps);
  const started = performance.now();
  const capMs = deps.config.execution.timeout_ms;
  const deadline = new GateDeadline(started, capMs, raw.context.signal);
  const context: CallContext = { ...raw.context, signal: deadline.signal, deadline };
  noteReceivedArgs(context, raw.args);
  const s = enter(raw, deps);

  const stages = runStages(raw, context, deadline, deps, s);
  const answeredAnyway = new Promise<void>((resolve) => deadline.onExpire(() => setTimeout(resolve, EXECUTOR_GRACE_MS).unref()));
  await Promise.race([stages, answeredAnyway]);
  if (!s.frozen) {
    // The deadline passed and the stages have not finished: answer without them.
    s.frozen = true;
    s.denial = deadline.denial ?? deny('timeout', 'The call exceeded its deadline.', ['deadline.exceeded']);
    s.result = undefined;
    deps.logger.warn('call answered at its deadline; the executor was cancelled', {
      request_id: raw.context.requestId,
      tool: raw.tool,
      reasons: s.denial.reasons,
    });
  }
  deadline.dispose();

  const durationMs = performance.now() - started;
  const { tool, validated, analysed, authorised, decision, result } = s;
  // Input the client must give ends the call without a denial; any denial (the record's too) wins.
  const statusFor = (d: Denial | undefined): OutcomeStatus => (!d && s.inputRequired ? 'input_required' : statusOf(d));
  const record: RecordInput = {
    context: raw.context,
    tool: raw.tool,
    toolKnown: tool !== undefined,
    principal: s.principalCall?.principal,
    args: validated ? validated.args : raw.args,
    rawArgs: raw.args,
    argsValidated: validated !== undefined,
    auditArgs: validated && tool?.auditArgs ? tool.auditArgs(validated.args) : undefined,
    facts: analysed?.facts,
    decision,
    ...replayInput(analysed, decision, s.denial),
    policyRevision: deps.policy.revision,
    status: statusFor(s.denial),
    denial: s.denial,
    result,
    durationMs,
    ...(s.intentSeq === undefined ? {} : { intentSeq: s.intentSeq }),
    ...(s.approval ? { approval: s.approval } : {}),
    execution: authorised
      ? {
          ...(result?.metrics ? { metrics: { ...result.metrics } } : {}),
          caps: {
            timeout_ms: deadline.cap,
            max_bytes: authorised.caps.maxBytes,
            ...(authorised.caps.maxRows === undefined ? {} : { max_rows: authorised.caps.maxRows }),
            ...(authorised.caps.memoryMb === undefined ? {} : { memory_mb: authorised.caps.memoryMb }),
            redact_columns: [...authorised.caps.redactColumns],
          },
        }
      : undefined,
  };
  let denial = s.denial;
  let answer = result;
  let auditSeq: number | undefined;
  const recordStart = performance.now();
  try {
    auditSeq = (await withinBound(recordOutcome(record, deps), RECORD_BOUND_MS)).seq;
    s.stageMs.record = performance.now() - recordStart;
    deps.metrics.count('record', 'pass');
  } catch (err) {
    deps.metrics.count('record', 'error');
    deps.logger.error('audit append failed; withholding the result', { request_id: raw.context.requestId, error: messageOf(err) });
    // Without evidence there is no answer: the result is withheld even if the tool ran.
    denial = deny('audit_unavailable', 'The call could not be recorded in the audit log, so its result is withheld.', [
      err instanceof RecordTimeout ? 'audit.append_timeout' : 'audit.append_failed',
    ]);
    answer = undefined;
  }
  const totalMs = performance.now() - started;
  reportIfSlow(
    {
      requestId: raw.context.requestId,
      tool: raw.tool,
      toolKnown: tool !== undefined,
      principal: s.principalCall?.principal.id,
      status: statusFor(denial),
      code: denial?.code,
      // A human deciding is not a slow call: the approval's wait is left out of the threshold.
      durationMs: totalMs - (s.approvalMs ?? 0),
      stageMs: s.stageMs,
      facts: analysed?.facts,
    },
    deps,
  );
  return {
    requestId: raw.context.requestId,
    tool: raw.tool,
    status: statusFor(denial),
    ...(answer ? { result: answer } : {}),
    ...(denial ? { denial } : {}),
    ...(!denial && s.inputRequired ? { inputRequired: s.inputRequired } : {}),
    ...(decision ? { decision, obligations: decision.obligations } : {}),
    durationMs: totalMs,
    stageMs: s.stageMs,
    ...(auditSeq === undefined ? {} : { auditSeq }),
  };
}

/** What a dry run found: as far as it got, and the denial that stopped it if one did. */
export interface DryRunOutcome {
  readonly principal?: Principal;
  readonly facts?: Facts;
  readonly decision?: Decision;
  readonly denial?: Denial;
}

export interface DryRunOptions {
  /** The last stage to run (default `decide`). */
  readonly until?: 'authenticate' | 'validate' | 'analyse' | 'decide';
  /** Replace the authenticated principal (the CLI's `--roles`, `--principal`): ask as someone else. */
  readonly asPrincipal?: (p: Principal) => Principal;
}

/**
 * The gate's own stages up to a decision, without executing, recording or taking rate-limit
 * tokens: what `bulwark policy eval` answers and how tools/list learns the caller. It runs the
 * same code in the same order as a call, so the answer cannot drift from what a call would get.
 */
export async function dryRun(raw: RawCall, liveDeps: GateDeps, opts: DryRunOptions = {}): Promise<DryRunOutcome> {
  const deps = pinPolicy(liveDeps);
  const deadline = new GateDeadline(performance.now(), deps.config.execution.timeout_ms, raw.context.signal);
  const context: CallContext = { ...raw.context, signal: deadline.signal, deadline };
  const s = enter(raw, deps);
  try {
    await runStages(raw, context, deadline, deps, s, { dry: true, until: opts.until ?? 'decide', asPrincipal: opts.asPrincipal });
  } finally {
    deadline.dispose();
  }
  return {
    ...(s.principalCall ? { principal: s.principalCall.principal } : {}),
    ...(s.analysed ? { facts: s.analysed.facts } : {}),
    ...(s.decision ? { decision: s.decision } : {}),
    ...(s.denial ? { denial: s.denial } : {}),
  };
}

interface StagePlan {
  /** A dry run takes no rate-limit tokens, counts no metrics and never executes. */
  readonly dry: boolean;
  readonly until: StageName;
  readonly asPrincipal?: ((p: Principal) => Principal) | undefined;
}

const FULL_RUN: StagePlan = { dry: false, until: 'execute' };

/** The stages in their fixed order (core/stages.ts). Writes into `s` only until the answer is frozen. */
async function runStages(raw: RawCall, context: CallContext, deadline: GateDeadline, deps: GateDeps, s: CallState, plan: StagePlan = FULL_RUN): Promise<void> {
  const count = (stage: StageName, outcome: 'pass' | 'deny' | 'error'): void => {
    if (!plan.dry) deps.metrics.count(stage, outcome);
  };
  const upTo = (stage: StageName): boolean => STAGES.indexOf(stage) <= STAGES.indexOf(plan.until);
  const guard = async <T>(stage: StageName, fn: () => Verdict<T> | Promise<Verdict<T>>): Promise<T | undefined> => {
    if (!upTo(stage)) return undefined;
    if (s.frozen) return undefined;
    if (deadline.expired) {
      // No stage starts after the deadline (above all, no executor).
      s.denial = deadline.denial;
      return undefined;
    }
    let v: Verdict<T>;
    const t0 = performance.now();
    try {
      v = await fn();
    } catch (err) {
      if (s.frozen) return undefined;
      s.stageMs[stage] = performance.now() - t0;
      count(stage, 'error');
      try {
        deps.logger.error('gate stage threw', { stage, request_id: raw.context.requestId, error: messageOf(err) });
      } catch {
        // A logger that throws must not cost the call its answer or its record.
      }
      s.denial = deny('internal_error', 'An internal error stopped the call; it was denied.', [`gate.${stage}_failed`]);
      return undefined;
    }
    if (s.frozen) return undefined;
    s.stageMs[stage] = performance.now() - t0;
    if (v.ok) {
      count(stage, 'pass');
      return v.value;
    }
    count(stage, 'deny');
    s.denial = v.denial;
    return undefined;
  };

  // Authentication reads the transport's own context (the verified principal is bound to it);
  // every later stage sees the gate's context, whose signal carries the deadline.
  const who = await guard('authenticate', () => authenticate(raw, deps));
  if (who) s.principalCall = { ...who, context, ...(plan.asPrincipal ? { principal: plan.asPrincipal(who.principal) } : {}) };
  // A dry run asks; it does not spend the caller's tokens.
  const known = s.tool !== undefined;
  const limited = s.principalCall && (plan.dry ? s.principalCall : await guard('rate_limit', () => rateLimit(s.principalCall as Authenticated, known, deps)));
  // SHA-256 of the arguments as received, computed once and only when a requestState or an approval needs it.
  let argsSha256: string | undefined;
  const argsSha = (): string => (argsSha256 ??= argsDigest(raw.args).sha256);
  const validated =
    limited &&
    (await guard('validate', () => {
      const v = validate(limited, s.tool, deps);
      // A requestState sent back is opened against this very call (principal, tool, arguments) before anything trusts it.
      if (!v.ok || plan.dry || limited.context.client?.requestState === undefined) return v;
      const r = resumeCall(v.value.call, argsSha(), deps.requestState ?? defaultRequestStateCodec());
      if (!r.verdict.ok) {
        if (r.payload?.approval && !s.frozen) s.approval = refusedApproval(r.payload, r.payload.approval, r.verdict.denial, argsSha());
        return r.verdict;
      }
      if (!s.frozen) s.resumed = r.verdict.value.payload;
      // The intent record hashes the arguments as received, found by the call's context.
      if (r.verdict.value.call.context !== v.value.call.context) noteReceivedArgs(r.verdict.value.call.context, raw.args);
      return pass({ ...v.value, call: r.verdict.value.call });
    }));
  if (validated && !s.frozen) s.validated = validated.call;
  const analysed = validated && (await guard('analyse', () => analyse(validated.call, validated.tool, deps)));
  if (analysed && !s.frozen) s.analysed = analysed;
  // After the decision and before any record of intent or the tool: the approval the policy may oblige.
  const approve = async (call: Authorised, obligation: ApprovalObligation): Promise<Verdict<Authorised | undefined>> => {
    const t0 = performance.now();
    const step = await seekApproval(call, { obligation, argsSha256: argsSha(), resumed: s.resumed, deadline }, deps);
    s.approvalMs = performance.now() - t0;
    if (s.frozen) return pass(undefined);
    s.approval = step.approval;
    if (step.kind === 'deny') return fail(step.denial);
    if (step.kind === 'input') {
      s.inputRequired = step.inputRequired;
      return pass(undefined);
    }
    return pass(call);
  };
  const authorised: Authorised | undefined = analysed
    ? await guard<Authorised | undefined>('decide', () => {
        const out = decide(analysed, validated.tool, deps, deadline);
        if (!s.frozen) s.decision = out.decision;
        const obligation = out.verdict.ok ? out.decision?.obligations.approval : undefined;
        // A dry run (tools/list, policy eval) reports the obligation; it never asks anyone.
        if (!out.verdict.ok || !obligation || plan.dry) return out.verdict;
        return approve(out.verdict.value, obligation);
      })
    : undefined;
  if (authorised && !s.frozen) s.authorised = authorised;
  const result =
    authorised && !plan.dry ? await guard('execute', () => execute(authorised, deps, { deadline, onIntent: (seq) => (s.intentSeq = seq) })) : undefined;
  if (s.frozen) return;
  if (s.denial?.code === 'cancelled' && deadline.expired && !raw.context.signal.aborted) {
    // The executor saw the deadline's abort as a cancellation: it was the deadline.
    s.denial = deadline.denial;
  }
  if (!s.denial && authorised && result?.needsInput) {
    // The tool needs the client's answers: its state goes to the client sealed, and nothing of its result.
    try {
      const granted =
        s.approval?.status === 'granted' ? { by: s.approval.by ?? null, request_id: s.approval.requested_in ?? raw.context.requestId } : undefined;
      const v = toolInputRequired(authorised, result.needsInput, {
        argsSha256: argsSha(),
        ttlMs: deps.config.protocol.request_state_ttl_ms,
        approved: granted,
        codec: deps.requestState ?? defaultRequestStateCodec(),
      });
      if (v.ok) s.inputRequired = v.value;
      else s.denial = v.denial;
    } catch (err) {
      deps.logger.error('sealing a tool state failed', { request_id: raw.context.requestId, tool: raw.tool, error: messageOf(err) });
      s.denial = deny('internal_error', 'An internal error stopped the call; it was denied.', ['gate.request_state_failed']);
    }
    s.frozen = true;
    return;
  }
  s.result = s.denial ? undefined : result;
  s.frozen = true;
}

/** The record's note for a refused requestState that carried an approval: expired, or not to be trusted. */
function refusedApproval(p: RequestStatePayload, asked: AskedApproval, denial: Denial, argsSha256: string): CallApproval {
  return {
    status: denial.reasons.includes('request_state.expired') ? 'expired' : 'invalid',
    via: 'input_required',
    approvers: [...asked.approvers],
    reason: asked.reason,
    ttl_ms: asked.ttl_ms,
    args_sha256: argsSha256,
    requested_in: p.request_id,
  };
}

class RecordTimeout extends Error {}

function withinBound<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RecordTimeout(`the audit record was not durable within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
