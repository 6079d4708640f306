/** Opens the configured audit backend; the PostgreSQL driver is loaded only when that backend is asked for. */
import type { AuditLog as Log, AuditLogOptions } from './audit-log.js';
import { FileAuditLog } from './file-log.js';

export async function openAuditLog(opts: AuditLogOptions): Promise<Log> {
  if (opts.backend === 'postgres') {
    const { PostgresAuditLog } = await import('./postgres-log.js');
    return PostgresAuditLog.open(opts);
  }
  return FileAuditLog.open(opts);
}

/** `AuditLog.open(opts)` and the AuditLog type from one import, as callers have always written it. */
export type AuditLog = Log;
export const AuditLog = { open: openAuditLog };
