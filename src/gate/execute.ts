import { DenialError, deny, fail, pass, type Verdict } from '../errors/denial.js';
import type { GateDeps } from './deps.js';
import { isAuthorised } from './decide.js';
import type { Authorised, ToolResult } from './types.js';

/** Slack for the JSON framing around capped content (names, numbers, escapes). */
const OUTPUT_FRAMING_SLACK = 64 * 1024;

export async function execute(call: Authorised, deps: GateDeps): Promise<Verdict<ToolResult>> {
  if (!isAuthorised(call)) return fail(deny('internal_error', 'Refusing to execute a call that carries no decision.', ['gate.not_authorised']));
  const tool = deps.tools.get(call.tool);
  if (!tool) return fail(deny('internal_error', 'Tool vanished after the decision.', ['gate.tool_missing']));
  if (call.context.signal.aborted) return fail(deny('cancelled', 'The client cancelled the call.', ['call.cancelled']));
  let result: ToolResult;
  try {
    result = await tool.execute(call, deps.toolEnv);
  } catch (err) {
    if (err instanceof DenialError) return fail(err.denial);
    deps.logger.warn('tool failed', { request_id: call.context.requestId, tool: call.tool, error: (err as Error).message, errno: (err as NodeJS.ErrnoException).code });
    const code = (err as NodeJS.ErrnoException).code;
    return fail(deny('tool_error', `${call.tool} failed${code ? ` (${code})` : ''}.`, ['tool.failed']));
  }
  // Tools honour caps themselves; this is the backstop that no result escapes them.
  const size = Buffer.byteLength(JSON.stringify(result.structured)) + Buffer.byteLength(result.text);
  const limit = 2 * (call.caps.maxBytes * 2 + OUTPUT_FRAMING_SLACK);
  if (size > limit) return fail(deny('resource_exceeded', 'The result exceeded the output cap.', ['output.too_large']));
  return pass(result);
}
