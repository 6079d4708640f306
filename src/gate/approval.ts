/**
 * Human approval bound to the exact call. When the policy's decision carries an `approval`
 * obligation, this step runs after decide and before the intent record and the tool:
 *
 * - 2026-07-28 (`ClientChannel.era`): the first call ends `input_required` with a form
 *   elicitation under the key `approval` and a sealed requestState (request-state.ts) bound to the
 *   principal, the tool and the arguments hash; the retry that brings the state back (opened and
 *   checked against that retry in the validate stage) runs when `inputResponses.approval` accepts
 *   with `approve: true`. A changed argument opens no state, so it needs a new approval.
 * - 2025-11-25 with `ask` and form elicitation declared: an `approval` record is made durable
 *   first, then the client is asked inline on the call's own stream, with the obligation's ttl_ms
 *   as the time limit. The call's deadline is suspended while the human decides and starts in full
 *   once they have (gate/deadline.ts `suspend`), so the wait never eats the tool's time.
 * - Any other client: denied `approval_required`, never run.
 *
 * What the client says about who approved is recorded as it says it: Bulwark cannot verify the
 * human behind a client, only bind the answer to the call it was asked about.
 */
import { deny, messageOf, type Denial } from '../core/denial.js';
import type { ApprovalObligation } from '../core/decision.js';
import type { Authorised, ClientInputRequest, InputRequired } from '../core/call.js';
import type { CallApproval } from '../audit/record-type.js';
import { recordedToolName } from '../audit/record.js';
import { recordApprovalRequest } from './record.js';
import { authorisedTool } from './decide.js';
import { defaultRequestStateCodec, type RequestStatePayload } from './request-state.js';
import type { GateDeps } from './deps.js';
import type { GateDeadline } from './deadline.js';

/** The key of the approval request in `inputRequests` / `inputResponses`. */
export const APPROVAL_INPUT_KEY = 'approval';

/** The longest argument text shown to the human; the hash covers all of it. */
const MAX_SUMMARY_CHARS = 1500;

/** JSON-RPC "request timed out" (the SDK's McpError code when an ask passes its time limit). */
const REQUEST_TIMEOUT = -32001;

export type ApprovalStep =
  | { readonly kind: 'run'; readonly approval: CallApproval }
  | { readonly kind: 'deny'; readonly denial: Denial; readonly approval: CallApproval }
  | { readonly kind: 'input'; readonly inputRequired: InputRequired; readonly approval: CallApproval };

export interface ApprovalContext {
  readonly obligation: ApprovalObligation;
  /** SHA-256 of the arguments as received (the record's args_sha256). */
  readonly argsSha256: string;
  /** The requestState this call brought back, already opened against this call. */
  readonly resumed?: RequestStatePayload | undefined;
  readonly deadline?: GateDeadline | undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The arguments as the human reads them: JSON, cut at MAX_SUMMARY_CHARS (the hash names the whole). */
function argsSummary(args: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(args) ?? 'null';
  } catch {
    text = '(not representable as JSON)';
  }
  return text.length > MAX_SUMMARY_CHARS ? `${text.slice(0, MAX_SUMMARY_CHARS).replace(/[\uD800-\uDBFF]$/, '')}… (${text.length} characters)` : text;
}

/** The form elicitation a human answers: a required `approve`, and an optional name for the record. */
export function approvalRequest(call: Authorised, ob: ApprovalObligation, argsSha256: string): ClientInputRequest {
  const approvers = ob.approvers.length ? ob.approvers.join(', ') : 'anyone';
  return {
    method: 'elicitation/create',
    params: {
      mode: 'form',
      message:
        `Approve ${call.tool} for ${call.principal.id}? ${ob.reason}\n` +
        `Arguments: ${argsSummary(call.args)}\n` +
        `Arguments SHA-256: ${argsSha256}\n` +
        `Who may approve: ${approvers}. The approval covers these exact arguments only and lapses after ${Math.ceil(ob.ttl_ms / 1000)} s.`,
      requestedSchema: {
        type: 'object',
        properties: {
          approve: { type: 'boolean', title: 'Approve this call', description: `Run ${call.tool} with exactly these arguments.` },
          approver: { type: 'string', title: 'Your name', description: 'Recorded in the audit log as who approved or declined.', maxLength: 200 },
        },
        required: ['approve'],
      },
    },
  };
}

interface Answer {
  readonly action: 'accept' | 'decline' | 'cancel';
  readonly approve: boolean;
  readonly by?: string;
}

/** An ElicitResult as the client sent it (untrusted): undefined when it is not one. */
export function readAnswer(v: unknown): Answer | undefined {
  if (!isObj(v) || (v.action !== 'accept' && v.action !== 'decline' && v.action !== 'cancel')) return undefined;
  const content = isObj(v.content) ? v.content : {};
  const name = typeof content.approver === 'string' ? content.approver.trim() : '';
  // Client text in the record: at most 200 characters, escaped if it is not well-formed.
  return { action: v.action, approve: v.action === 'accept' && content.approve === true, ...(name ? { by: recordedToolName(name) } : {}) };
}

function decided(call: Authorised, answer: Answer, note: CallApproval): ApprovalStep {
  const approval: CallApproval = { ...note, status: answer.approve ? 'granted' : 'declined', action: answer.action, ...(answer.by ? { by: answer.by } : {}) };
  if (answer.approve) return { kind: 'run', approval };
  const how = answer.action === 'accept' ? 'not approved' : answer.action === 'decline' ? 'declined' : 'cancelled';
  return {
    kind: 'deny',
    approval,
    denial: deny('approval_declined', `The approval to run ${call.tool} was ${how}; it did not run.`, [`approval.${how.replace(' ', '_')}`]),
  };
}

function unsupported(call: Authorised, note: CallApproval): ApprovalStep {
  return {
    kind: 'deny',
    approval: { ...note, status: 'unsupported', via: 'none' },
    denial: deny(
      'approval_required',
      `${call.tool} needs a human's approval (${note.reason}), and this client cannot be asked for it: use a client that declares form elicitation (MCP 2025-11-25) or answers input_required results (2026-07-28).`,
      ['approval.unsupported'],
    ),
  };
}

/** Ask for, or check, the approval the policy obliged for this call. Never throws on client input. */
export async function seekApproval(call: Authorised, ac: ApprovalContext, deps: GateDeps): Promise<ApprovalStep> {
  const ob = ac.obligation;
  const note: CallApproval = {
    status: 'requested',
    via: 'none',
    approvers: [...ob.approvers],
    reason: ob.reason,
    ttl_ms: ob.ttl_ms,
    args_sha256: ac.argsSha256,
  };
  const client = call.context.client;
  const r = ac.resumed;
  if (r?.purpose === 'tool' && r.approved) {
    // The tool asked for more input after its approval was granted: the grant travelled sealed, bound to these arguments.
    const by = r.approved.by;
    return { kind: 'run', approval: { ...note, status: 'granted', via: 'input_required', requested_in: r.approved.request_id, ...(by ? { by } : {}) } };
  }
  if (r?.purpose === 'approval') {
    const answer = readAnswer(client?.inputResponses?.[APPROVAL_INPUT_KEY]);
    if (answer) return decided(call, answer, { ...note, via: 'input_required', requested_in: r.request_id });
    // The state came back without a usable answer: ask again below, with a new state.
  }
  if (client?.era === '2026-07-28') {
    if (client.capabilities.elicitation?.form !== true) return unsupported(call, note);
    const codec = deps.requestState ?? defaultRequestStateCodec();
    const { token } = codec.issue(
      'approval',
      { principal: call.principal, tool: call.tool, argsSha256: ac.argsSha256 },
      { requestId: call.context.requestId, ttlMs: ob.ttl_ms, approval: ob },
    );
    return {
      kind: 'input',
      inputRequired: { inputRequests: { [APPROVAL_INPUT_KEY]: approvalRequest(call, ob, ac.argsSha256) }, requestState: token },
      approval: { ...note, via: 'input_required' },
    };
  }
  if (client?.era === '2025-11-25' && client.ask && client.capabilities.elicitation?.form === true) return askInline(call, client.ask, note, ac, deps);
  return unsupported(call, note);
}

async function askInline(
  call: Authorised,
  ask: NonNullable<NonNullable<Authorised['context']['client']>['ask']>,
  note: CallApproval,
  ac: ApprovalContext,
  deps: GateDeps,
): Promise<ApprovalStep> {
  const requested: CallApproval = { ...note, via: 'elicitation' };
  const tool = authorisedTool(call);
  let requestSeq: number;
  try {
    // Evidence first: the human is asked only once the request to ask is durable.
    requestSeq = (await recordApprovalRequest(call, tool?.auditArgs?.(call.args), requested, deps)).seq;
  } catch (err) {
    deps.logger.error('approval request record failed; the client is not asked', { request_id: call.context.requestId, error: messageOf(err) });
    return {
      kind: 'deny',
      approval: { ...requested, status: 'failed' },
      denial: deny('audit_unavailable', 'The approval request could not be recorded, so the human was not asked and the call did not run.', [
        'audit.approval_request_failed',
      ]),
    };
  }
  const asked: CallApproval = { ...requested, request_seq: requestSeq };
  const resume = ac.deadline?.suspend();
  const started = Date.now();
  try {
    const result = await ask(approvalRequest(call, ac.obligation, ac.argsSha256), { signal: call.context.signal, timeoutMs: ac.obligation.ttl_ms });
    const answer = readAnswer(result);
    if (answer) return decided(call, answer, asked);
    return {
      kind: 'deny',
      approval: { ...asked, status: 'failed' },
      denial: deny('approval_required', `The client's answer to the approval of ${call.tool} was not an elicitation result; it did not run.`, [
        'approval.answer_malformed',
      ]),
    };
  } catch (err) {
    if (call.context.signal.aborted) {
      return {
        kind: 'deny',
        approval: { ...asked, status: 'failed' },
        denial: deny('cancelled', 'The client cancelled the call while its approval was being asked.', ['approval.cancelled_call']),
      };
    }
    const code = isObj(err) ? err.code : undefined;
    if (code === REQUEST_TIMEOUT || Date.now() - started >= ac.obligation.ttl_ms) {
      return {
        kind: 'deny',
        approval: { ...asked, status: 'expired' },
        denial: deny('approval_required', `Nobody approved ${call.tool} within ${Math.ceil(ac.obligation.ttl_ms / 1000)} s; it did not run.`, [
          'approval.timeout',
        ]),
      };
    }
    deps.logger.warn('asking the client for an approval failed', { request_id: call.context.requestId, tool: call.tool, error: messageOf(err) });
    return {
      kind: 'deny',
      approval: { ...asked, status: 'failed' },
      denial: deny('approval_required', `The client could not be asked to approve ${call.tool}; it did not run.`, ['approval.ask_failed']),
    };
  } finally {
    // The cap starts again in full once the human has answered (or the ask ended).
    resume?.();
  }
}
