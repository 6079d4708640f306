import { deny, fail, pass, type Verdict } from '../errors/denial.js';
import type { GateDeps } from './deps.js';
import type { Authenticated, Validated } from './types.js';

export const UNKNOWN_TOOL_REASON = 'tool.unknown';

/** Byte length of the JSON form, stopping early once past the cap. */
function argsBytes(args: unknown): number {
  const json = JSON.stringify(args);
  return json === undefined ? 0 : Buffer.byteLength(json);
}

export function validate(call: Authenticated, deps: GateDeps): Verdict<Validated> {
  const tool = deps.tools.get(call.tool);
  if (!tool) return fail(deny('invalid_input', `Unknown tool: ${JSON.stringify(call.tool).slice(0, 80)}`, [UNKNOWN_TOOL_REASON]));
  const raw = call.args === undefined ? {} : call.args;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return fail(deny('invalid_input', 'Tool arguments must be a JSON object.', ['input.not_object']));
  }
  const bytes = argsBytes(raw);
  const cap = deps.config.limits.max_args_bytes;
  if (bytes > cap) return fail(deny('invalid_input', `Arguments are ${bytes} bytes; the cap is ${cap}.`, ['input.too_large']));
  const parsed = tool.input.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 10).map((i) => `${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`);
    return fail(deny('invalid_input', `Invalid arguments for ${tool.name}: ${problems.join('; ')}`, ['input.schema']));
  }
  return pass({ ...call, args: parsed.data, argsBytes: bytes });
}
