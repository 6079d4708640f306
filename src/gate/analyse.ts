import { DenialError, deny, fail, messageOf, pass, type Verdict } from '../core/denial.js';
import type { DenialCode } from '../core/codes.js';
import type { ToolDefinition, ToolFamily } from '../tools/types.js';
import type { GateDeps } from './deps.js';
import type { Analysed, Validated } from '../core/call.js';

const FAMILY_REJECTION: Record<ToolFamily, DenialCode> = {
  filesystem: 'path_rejected',
  database: 'sql_rejected',
  api: 'url_rejected',
  javascript: 'invalid_input',
  conformance: 'invalid_input',
};

/**
 * Raw arguments become facts here, once. An analyser that throws something other than a
 * DenialError could not decide, so the call is refused with the family's rejection code.
 */
export async function analyse(call: Validated, tool: ToolDefinition, deps: GateDeps): Promise<Verdict<Analysed>> {
  try {
    const { facts, pinned } = await tool.analyse(call, deps.toolEnv);
    return pass({ ...call, facts, pinned });
  } catch (err) {
    if (err instanceof DenialError) return fail(err.denial);
    deps.logger.error('analyser failed', { request_id: call.context.requestId, tool: call.tool, error: messageOf(err) });
    return fail(deny(FAMILY_REJECTION[tool.family], 'The arguments could not be analysed.', ['analysis.failed']));
  }
}
