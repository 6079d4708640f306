/**
 * The one registry of denial codes. Clients, dashboards and the policy's tests depend on these
 * strings: renaming one is a breaking change, so test/errors-codes.test.ts pins the table and
 * SECURITY.md lists every code with its meaning.
 */
export const DENIAL_CODES = {
  unauthenticated: 'The caller could not be identified.',
  rate_limited: 'The caller exceeded its rate limit; retry later.',
  invalid_input: 'The arguments do not match the tool schema, or the tool does not exist.',
  sql_rejected: 'The SQL text was refused by the analyser.',
  path_rejected: 'The path was refused by the analyser (outside a root, a link escape, a special file, too large).',
  url_rejected: 'The URL or upstream was refused by the analyser.',
  policy_denied: 'The policy evaluated and refused the call.',
  policy_error: 'The policy could not be evaluated (missing, corrupt, trapped, undefined result, oversized input).',
  timeout: 'The call exceeded its time budget and was stopped.',
  resource_exceeded: 'The call exceeded a memory or output cap and was stopped.',
  tool_error: 'The tool failed while executing an authorised call.',
  unavailable: 'The server cannot take the call now (overloaded, shutting down, a dependency is down).',
  audit_unavailable: 'The audit record could not be written, so the result is withheld.',
  cancelled: 'The client cancelled the call.',
  internal_error: 'A stage failed unexpectedly; the call was denied (fail closed).',
  approval_required:
    'The policy requires a human to approve this call and no approval was given: the client cannot be asked, or the approval window passed unanswered.',
  approval_declined: 'The human asked to approve this call declined or cancelled it.',
  request_state_invalid:
    'The requestState sent back could not be trusted for this call (malformed, tampered, expired, already used, or bound to another principal, tool or arguments).',
} as const;

export type DenialCode = keyof typeof DENIAL_CODES;

export const DENIAL_CODE_LIST = Object.keys(DENIAL_CODES) as DenialCode[];

export function isDenialCode(value: unknown): value is DenialCode {
  return typeof value === 'string' && Object.hasOwn(DENIAL_CODES, value);
}
