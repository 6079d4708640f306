import { DenialError, deny, errnoOf, fail, messageOf, pass, type Verdict } from '../core/denial.js';
import { recordIntent } from './record.js';
import type { GateDeps } from './deps.js';
import { authorisedTool } from './decide.js';
import type { GateDeadline } from './deadline.js';
import type { Authorised, ToolResult } from '../core/call.js';

/** Slack for the JSON framing around capped content (names, numbers, escapes). */
const OUTPUT_FRAMING_SLACK = 64 * 1024;

export interface ExecuteHooks {
  /** The gate's deadline: checked once more right before the tool starts. */
  readonly deadline?: GateDeadline | undefined;
  /** Told the sequence number of the intent record, so the outcome record can name it. */
  readonly onIntent?: ((seq: number) => void) | undefined;
}

export async function execute(call: Authorised, deps: GateDeps, hooks: ExecuteHooks = {}): Promise<Verdict<ToolResult>> {
  // The definition comes with the decision, not from the registry: what runs is what was decided on.
  const tool = authorisedTool(call);
  if (!tool) return fail(deny('internal_error', 'Refusing to execute a call that carries no decision.', ['gate.not_authorised']));
  // Evidence first: with the log unwritable nothing runs, since nothing it did could be recorded.
  if (!deps.audit.writable) return fail(deny('audit_unavailable', 'The audit log cannot be written now, so no call runs.', ['audit.unwritable']));
  if (tool.sideEffects?.(call.args)) {
    // No side effect before its record is durable: the intent is appended (and, in fsync mode,
    // fdatasynced) before the tool starts; if it cannot be, the tool does not run.
    try {
      const intent = await recordIntent(call, tool.auditArgs ? tool.auditArgs(call.args) : undefined, deps);
      hooks.onIntent?.(intent.seq);
    } catch (err) {
      deps.logger.error('intent record failed; the side-effecting tool does not run', {
        request_id: call.context.requestId,
        tool: call.tool,
        error: messageOf(err),
      });
      return fail(deny('audit_unavailable', 'The intent to call could not be recorded, so the call did not run.', ['audit.intent_failed']));
    }
  }
  if (hooks.deadline?.expired) return fail(hooks.deadline.denial ?? deny('timeout', 'The call exceeded its deadline.', ['deadline.exceeded']));
  if (call.context.signal.aborted) return fail(deny('cancelled', 'The client cancelled the call.', ['call.cancelled']));
  let result: ToolResult;
  try {
    result = await tool.execute(call, deps.toolEnv);
  } catch (err) {
    if (err instanceof DenialError) return fail(err.denial);
    deps.logger.warn('tool failed', { request_id: call.context.requestId, tool: call.tool, error: messageOf(err), errno: errnoOf(err) });
    const code = errnoOf(err);
    return fail(deny('tool_error', `${call.tool} failed${code ? ` (${code})` : ''}.`, ['tool.failed']));
  }
  // Tools honour caps themselves; this is the backstop that no result escapes them.
  const size =
    Buffer.byteLength(JSON.stringify(result.structured)) +
    Buffer.byteLength(result.text) +
    (result.content ? Buffer.byteLength(JSON.stringify(result.content)) : 0);
  const limit = 2 * (call.caps.maxBytes * 2 + OUTPUT_FRAMING_SLACK);
  if (size > limit) return fail(deny('resource_exceeded', 'The result exceeded the output cap.', ['output.too_large']));
  return pass(result);
}
