/**
 * Start-up checks of `serve`: what the environment must give before anything is built, each
 * failure one line naming the path or the holder (exit 2), never a stack trace.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AuditUnavailableError } from '../audit/audit-log.js';
import { acquireLock, LockError, logPaths } from '../audit/files.js';
import type { Config } from '../config/schema.js';

/**
 * A start-up failure the operator fixes in the environment (a folder that cannot be made, a log
 * another server holds): one line and exit 2, like a config error, not a stack trace.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}

const ERRNO_TEXT: Record<string, string> = {
  EEXIST: 'a file is in the way',
  ENOTDIR: 'a file is in the way',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or folder',
  ELOOP: 'too many symbolic links',
  EISDIR: 'a folder is in the way',
};

function errnoText(err: NodeJS.ErrnoException): string {
  const code = err.code ?? 'error';
  return ERRNO_TEXT[code] ? `${code}: ${ERRNO_TEXT[code]}` : code;
}

function isFsError(err: unknown): err is NodeJS.ErrnoException & { path: string } {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).path === 'string';
}

/** Errors the environment causes at start-up, as one line; anything else stays a bug (exit 70). */
export function asStartupError(err: unknown): StartupError | undefined {
  if (err instanceof StartupError) return err;
  if (err instanceof LockError || err instanceof AuditUnavailableError) return new StartupError(err.message);
  if (isFsError(err)) return new StartupError(`cannot use ${err.path} (${errnoText(err)})`);
  return undefined;
}

/**
 * Node's recursive mkdir answers ENOENT for some failures (on a read-only file system, for one):
 * the first missing level, made on its own, says what is really wrong.
 */
function mkdirFailure(dir: string, err: NodeJS.ErrnoException): NodeJS.ErrnoException {
  if (err.code !== 'ENOENT') return err;
  let missing = dir;
  while (!fs.existsSync(path.dirname(missing)) && path.dirname(missing) !== missing) missing = path.dirname(missing);
  try {
    fs.mkdirSync(missing, { mode: 0o700 });
    fs.rmdirSync(missing);
    return err;
  } catch (real) {
    return real as NodeJS.ErrnoException;
  }
}

/**
 * The audit log's folder and lock, checked before anything is built or logged, so that the
 * operator reads one line naming the path or the process holding the log. The lock is taken and
 * given back with the writer's own code; if another server wins the moment between, the
 * writer's refusal is reported the same way.
 */
export function preflightAudit(config: Config): void {
  if (config.audit.backend !== 'file') return;
  const p = logPaths(config.audit.path);
  try {
    fs.mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    fs.accessSync(p.dir, fs.constants.W_OK);
  } catch (err) {
    const e = mkdirFailure(p.dir, err as NodeJS.ErrnoException);
    const at = e.path && e.path !== p.dir ? ` at ${e.path}` : '';
    throw new StartupError(`cannot create or write the audit log folder ${p.dir} (${errnoText(e)}${at}); set audit.path or serve from a writable folder`);
  }
  try {
    acquireLock(p.lock)();
  } catch (err) {
    throw asStartupError(err) ?? err;
  }
}

export function listenError(config: Config, err: unknown): StartupError | undefined {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (!['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES'].includes(code)) return undefined;
  const { host, port } = config.server.http;
  return new StartupError(
    `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port} (${code}${code === 'EADDRINUSE' ? ': another process is listening there' : ''})`,
  );
}
