import { ConfigError } from '../config/loader.js';
import { StartupError } from './startup-checks.js';

/** Exit codes (documented in README): 0 ok, 1 check failed, 2 usage or config error, 70 internal. */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;

/**
 * What a command that threw tells the operator: the environment's and the operator's own mistakes
 * (a start-up check, the config, the options) are one line and exit 2; anything else is a bug, so
 * it keeps its stack and exits 70.
 */
export function failureOf(err: unknown): { message: string; code: number } {
  if (err instanceof StartupError) return { message: err.message.replace(/\s*\n\s*/g, ' '), code: EXIT.usage };
  if (err instanceof ConfigError) return { message: err.message, code: EXIT.usage };
  if (err instanceof TypeError && 'code' in err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS'))
    return { message: err.message, code: EXIT.usage };
  return { message: err instanceof Error ? (err.stack ?? String(err)) : String(err), code: EXIT.internal };
}
