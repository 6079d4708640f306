import { refuse } from '../../src/core/denial.js';

/**
 * Errors that say the connection, not the query, failed: socket and client codes from Node and
 * postgres.js, and the SQLSTATEs a server sends when it drops or refuses a session
 * (08xxx connection exception; 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect
 * now, 57P04 database dropped, 57P05 idle session timeout; 53300 too many connections; 25P03 our
 * own idle-in-transaction timeout, which ends the session).
 */
const CLIENT_CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'ERR_STREAM_DESTROYED',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);
const SERVER_CONNECTION_STATES = new Set(['57P01', '57P02', '57P03', '57P04', '57P05', '53300', '25P03']);

export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return CLIENT_CONNECTION_CODES.has(code) || SERVER_CONNECTION_STATES.has(code) || /^08[0-9A-Z]{3}$/.test(code);
}

/** The server refused who we are or where we connect (class 28, 3D000): retrying cannot help. */
export function isConfigurationError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (/^28[0-9A-Z]{3}$/.test(code) || code === '3D000');
}

/** Why the database is unreachable, as a reason word for the denial and the audit record. */
export function unavailableReason(err: unknown): string {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  if (code === '57P01' || code === '57P02' || code === '57P03') return 'db.shutting_down';
  if (code === '53300') return 'db.too_many_connections';
  if (code === 'CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return 'db.connect_timeout';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EAI_AGAIN') return 'db.unreachable';
  return 'db.connection_lost';
}

/**
 * SQLSTATE classes to denials, the same for the real server and the embedded one. Connection
 * failures are `unavailable` (the database, not the query, is at fault); anything not listed is
 * rethrown (the gate reports it as tool_error).
 */
export function mapDatabaseError(err: unknown, timeoutMs: number): void {
  const code = (err as { code?: string }).code;
  const message = String((err as Error)?.message ?? err);
  if (isConnectionError(err)) {
    const reason = unavailableReason(err);
    refuse('unavailable', 'The database connection failed; try again shortly.', reason === 'db.unreachable' ? [reason] : ['db.unreachable', reason], {
      cause: String(code),
    });
  }
  if (isConfigurationError(err)) {
    refuse('unavailable', 'The database refused Bulwark’s connection (role, password or database name).', ['db.unreachable', 'db.connect_refused'], {
      sqlstate: String(code),
    });
  }
  if (code === '57014')
    refuse('timeout', `The query exceeded its ${timeoutMs} ms statement timeout and was cancelled on the server.`, ['db.statement_timeout']);
  if (code === '55P03') refuse('timeout', 'The query waited too long for a lock.', ['db.lock_timeout']);
  if (code === '42501') refuse('policy_denied', 'The database role may not read that (permission denied).', ['db.permission_denied']);
  if (code === '25006') refuse('sql_rejected', 'The database refused a write in a read-only transaction.', ['db.read_only_violation']);
  if (code && /^(42|22|0A|2F|38|39|3F|44|21|23|2B|40|53|54)/.test(code)) {
    refuse('tool_error', `The database rejected the query: ${message.slice(0, 300)}`, ['db.query_error'], { sqlstate: code });
  }
}
