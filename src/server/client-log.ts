import type { ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import type { CallContext } from '../core/call.js';

/** RFC 5424 severities, least severe first (MCP §utilities/logging). */
const LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'] as const;

/**
 * `CallContext.log` for a call whose notifications can reach its client: `notifications/message`
 * at `minLevel` and above (2026-07-28: the request's `_meta` logLevel; 2025-11-25: everything, the
 * client filters). An unknown level name sends nothing rather than everything.
 */
export function clientLog(send: (n: ServerNotification) => Promise<void>, minLevel: unknown = 'debug'): CallContext['log'] {
  const min = LEVELS.indexOf(minLevel as (typeof LEVELS)[number]);
  if (min < 0) return undefined;
  return (level, data) => {
    if (LEVELS.indexOf(level) < min) return;
    void send({ method: 'notifications/message', params: { level, logger: 'bulwark', data } }).catch(() => undefined);
  };
}
