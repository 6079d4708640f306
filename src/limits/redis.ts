import { Redis } from 'ioredis';
import { redactUrl } from '../config/redact-url.js';
import type { Logger } from '../observability/logger.js';

/** A command gets this long on a live connection; past it the caller fails closed. Loopback answers in well under 1 ms. */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;
/** While a (re)connect is in progress, a command waits this long for it before failing. */
export const REDIS_CONNECT_WAIT_MS = 300;

/**
 * One Redis connection for the shared limits and caches of this process. Nothing waits for
 * Redis for long: a rate limit that waits would stall every call, so a command is refused at once
 * while the connection is down (no offline queue: queued commands would wait until the call's
 * deadline and then run late), and times out after REDIS_COMMAND_TIMEOUT_MS on a connection that
 * hangs. Callers fail closed (rate buckets) or skip the shared cache (see cache.ts).
 * ioredis reconnects on its own with a doubling, capped back-off, so the limits come back within
 * about two seconds of Redis returning, without a restart.
 * The URL carries a password: it is never logged, and errors are logged by message only.
 */
export function createRedis(url: string, logger: Logger, name = 'bulwark'): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    // Commands in flight when the connection drops are failed at the first failed reconnect, not resent later.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    lazyConnect: false,
    // 50 ms doubling to 2 s, with jitter so replicas do not reconnect in step; never gives up.
    retryStrategy: (attempt) => Math.round(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() * 0.25)),
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
    if (lastError) logger.warn('redis connection restored');
    lastError = '';
  });
  return redis;
}

/** One wait per connection attempt, shared by every caller (no listener per call). */
const connecting = new WeakMap<Redis, Promise<boolean>>();

/**
 * Whether a command can be sent now. While a connect or its handshake is under way (at boot, or a
 * reconnect attempt) wait up to `waitMs` for it; while disconnected between attempts, answer no at once.
 */
export async function redisUsable(redis: Redis, waitMs = REDIS_CONNECT_WAIT_MS): Promise<boolean> {
  if (redis.status === 'ready') return true;
  if (redis.status !== 'wait' && redis.status !== 'connecting' && redis.status !== 'connect') return false;
  const pending = connecting.get(redis);
  if (pending) return pending;
  if (redis.status === 'wait') redis.connect().catch(() => undefined);
  const wait = new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('close', onClose);
      connecting.delete(redis);
      resolve(ok);
    };
    const onReady = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), waitMs);
    redis.once('ready', onReady);
    redis.once('close', onClose);
  });
  connecting.set(redis, wait);
  return wait;
}

/** For /ready: connected, and a PING answered within the command timeout. */
export async function redisHealthy(redis: Redis): Promise<boolean> {
  if (!(await redisUsable(redis))) return false;
  try {
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  }
}
