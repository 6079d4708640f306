import { refuse } from '../../errors/denial.js';

/**
 * SQLSTATE classes to denials, the same for the real server and the embedded one. Anything not
 * listed is rethrown (the gate reports it as tool_error).
 */
export function mapDatabaseError(err: unknown, timeoutMs: number): void {
  const code = (err as { code?: string }).code;
  const message = String((err as Error)?.message ?? err);
  if (code === '57014') refuse('timeout', `The query exceeded its ${timeoutMs} ms statement timeout and was cancelled on the server.`, ['db.statement_timeout']);
  if (code === '55P03') refuse('timeout', 'The query waited too long for a lock.', ['db.lock_timeout']);
  if (code === '42501') refuse('policy_denied', 'The database role may not read that (permission denied).', ['db.permission_denied']);
  if (code === '25006') refuse('sql_rejected', 'The database refused a write in a read-only transaction.', ['db.read_only_violation']);
  if (code && /^(42|22|0A|2F|38|39|3F|44|21|23|2B|40|53|54)/.test(code)) {
    refuse('tool_error', `The database rejected the query: ${message.slice(0, 300)}`, ['db.query_error'], { sqlstate: code });
  }
}
