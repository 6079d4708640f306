/**
 * The one writer of audit records: a call's outcome, the intent before a side effect, and the
 * refusals of the HTTP authenticator (which answers before a call enters the gate). Every record
 * is built by audit/record.ts and appended here, so a field is added in one place.
 */
import { CanonicalJsonError } from '../audit/canonical-json.js';
import type { Appended, AuditLog } from '../audit/audit-log.js';
import { approvalRequestFields, auditFields, intentFields, withoutArgs, type RecordInput } from '../audit/record.js';
import type { ApprovalRequestFields, CallApproval, IntentFields, OutcomeFields } from '../audit/record-type.js';
import type { Analysed, Authorised, CallContext } from '../core/call.js';
import type { Decision } from '../core/decision.js';
import { deny, type Denial } from '../core/denial.js';
import { POLICY_ENGINE } from '../policy/archive.js';
import { policyInput } from '../policy/input.js';

/** What writing a record needs: the log, and the policy revision the record names. */
export interface RecordDeps {
  readonly audit: AuditLog;
  readonly policy: { readonly revision: string };
}

/** The pseudo tool name of a record for an HTTP request refused before any tool was named. */
export const AUTH_AUDIT_TOOL = 'http:authenticate';

/** Append, and when the fields hold something that cannot be hashed reproducibly, append without it. */
async function appendFields(fields: OutcomeFields | IntentFields | ApprovalRequestFields, deps: RecordDeps): Promise<Appended> {
  try {
    return await deps.audit.append(fields);
  } catch (err) {
    if (!(err instanceof CanonicalJsonError)) throw err;
    // The arguments (or facts) hold something that cannot be hashed reproducibly: keep the
    // record, drop the unrepresentable part and say so.
    return deps.audit.append({ ...withoutArgs(fields, err.reason), facts: null });
  }
}

/**
 * The arguments as the client sent them, by the gate's context of the call: args_sha256 hashes
 * these (not the validated arguments with defaults filled in), so a client can reproduce it.
 */
const received = new WeakMap<CallContext, { readonly args: unknown }>();

export function noteReceivedArgs(context: CallContext, args: unknown): void {
  received.set(context, { args });
}

/**
 * What `audit replay` needs of a call the policy was asked about (it decided, or failed to): the
 * exact input, rebuilt by the same pure function decide used, and what evaluated it.
 */
export function replayInput(
  analysed: Analysed | undefined,
  decision: Decision | undefined,
  denial: Denial | undefined,
): Pick<RecordInput, 'policyInput' | 'policyEngine'> {
  if (!analysed || (!decision && denial?.code !== 'policy_error')) return {};
  return { policyInput: policyInput(analysed), policyEngine: POLICY_ENGINE };
}

/** The outcome record of one call that entered the gate. */
export function recordOutcome(input: RecordInput, deps: RecordDeps): Promise<Appended> {
  return appendFields(auditFields(input), deps);
}

/** The intent record, durable before a side-effecting tool runs. */
export function recordIntent(call: Authorised, auditArgs: Record<string, unknown> | undefined, deps: RecordDeps): Promise<Appended> {
  return appendFields(intentFields(call, deps.policy.revision, auditArgs, received.get(call.context)), deps);
}

/** The approval request, durable before a 2025-11-25 client is asked to approve the call. */
export function recordApprovalRequest(
  call: Authorised,
  auditArgs: Record<string, unknown> | undefined,
  approval: CallApproval,
  deps: RecordDeps,
): Promise<Appended> {
  return appendFields(approvalRequestFields(call, deps.policy.revision, auditArgs, received.get(call.context), approval), deps);
}

/** One HTTP request refused by the authenticator (no tool was named, no principal is known). */
export interface RefusedAuthentication {
  readonly requestId: string;
  readonly clientIp: string;
  readonly reason: string;
  readonly keyId?: string | undefined;
  readonly durationMs: number;
  /** `unavailable`: the key store or argon2 could not answer; `unauthenticated`: the token was refused. */
  readonly code: 'unauthenticated' | 'unavailable';
}

export function recordRefusedAuthentication(r: RefusedAuthentication, deps: RecordDeps): Promise<Appended> {
  const denial =
    r.code === 'unavailable'
      ? deny('unavailable', r.reason === 'auth.busy' ? 'Too many key verifications were running.' : 'The API key store cannot be read.', [r.reason])
      : deny('unauthenticated', 'The bearer token was missing or not valid.', [r.reason]);
  return recordOutcome(
    {
      context: { transport: 'http', clientIp: r.clientIp, requestId: r.requestId, receivedAt: new Date(), signal: new AbortController().signal },
      tool: AUTH_AUDIT_TOOL,
      toolKnown: true,
      args: r.keyId ? { key_id: r.keyId } : {},
      argsValidated: true,
      policyRevision: deps.policy.revision,
      status: 'denied',
      denial,
      durationMs: r.durationMs,
    },
    deps,
  );
}

/** Refusals past an address's budget, counted into one record per address and interval. */
export interface AggregatedRefusals {
  readonly requestId: string;
  readonly address: string;
  readonly count: number;
  /** Epoch milliseconds of the first and last refusal counted. */
  readonly first: number;
  readonly last: number;
  readonly reasons: Readonly<Record<string, number>>;
}

export function recordAggregatedRefusals(a: AggregatedRefusals, deps: RecordDeps): Promise<Appended> {
  return recordOutcome(
    {
      context: { transport: 'http', clientIp: a.address, requestId: a.requestId, receivedAt: new Date(a.first), signal: new AbortController().signal },
      tool: AUTH_AUDIT_TOOL,
      toolKnown: true,
      args: { aggregated: { count: a.count, first: new Date(a.first).toISOString(), last: new Date(a.last).toISOString(), reasons: { ...a.reasons } } },
      argsValidated: true,
      policyRevision: deps.policy.revision,
      status: 'denied',
      denial: deny('unauthenticated', `${a.count} refused authentications from this address, counted rather than recorded one by one.`, [
        'auth.refusals_aggregated',
        ...Object.keys(a.reasons).sort(),
      ]),
      durationMs: a.last - a.first,
    },
    deps,
  );
}
