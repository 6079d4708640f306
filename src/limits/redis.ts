import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';

/**
 * One Redis connection for the shared limits and caches of this process. Commands time out fast
 * and are not queued for long while disconnected: a rate limit that waits for Redis would stall
 * every call, so the callers fail closed (rate buckets) or fall back to memory (cache) instead.
 * The URL carries a password: it is never logged, and errors are logged by message only.
 */
export function createRedis(url: string, logger: Logger, name = 'bulwark'): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    // Generous enough for a busy 2-core host; past it the call is refused (fail closed), never let through.
    commandTimeout: 3000,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    lazyConnect: false,
    retryStrategy: (attempt) => Math.min(2000, 50 * 2 ** Math.min(attempt, 6)),
  });
  let lastError = '';
  redis.on('error', (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt: log changes only.
    if (err.message !== lastError) {
      lastError = err.message;
      logger.warn('redis connection error', { error: redactUrl(err.message) });
    }
  });
  redis.on('ready', () => {
    if (lastError) logger.info('redis connection restored');
    lastError = '';
  });
  return redis;
}

/** Error messages may quote a URL: strip any userinfo from it. */
export function redactUrl(text: string): string {
  return text.replace(/(rediss?:\/\/)[^@/\s]*@/gi, '$1***@');
}
