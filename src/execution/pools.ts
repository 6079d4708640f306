import path from 'node:path';
import type { Config } from '../config/schema.js';
import { PACKAGE_ROOT } from '../config/package-paths.js';
import type { Logger } from '../observability/logger.js';
import { ProcessPool, type PoolHealth, type PoolStats } from './process-pool.js';
import { filesystemWorkerFlags, javascriptWorkerFlags } from './worker-flags.js';

/**
 * The warm pools every server runs. The embedded database's pool (embedded-database-pool.ts) is
 * not among them: it starts on first use, and only when the embedded database is configured.
 */
export interface Pools {
  readonly filesystem: ProcessPool;
  readonly javascript: ProcessPool;
  stats(): PoolStats[];
  /** One entry per pool; `healthy` is false while that pool is in a crash loop (for /ready). */
  health(): PoolHealth[];
  close(): Promise<void>;
}

/** For `policy eval`: analysis and decision only; anything that tries to execute is refused. */
export const NO_POOLS: Pools = (() => {
  const refusing = {
    run: () => Promise.reject(new Error('execution is disabled here')),
    stats: () => undefined,
    healthy: true,
    close: async () => undefined,
  } as unknown as ProcessPool;
  return { filesystem: refusing, javascript: refusing, stats: () => [], health: () => [], close: async () => undefined };
})();

const SANDBOX_DIST = path.join(PACKAGE_ROOT, 'dist', 'sandbox');

export async function createPools(config: Readonly<Config>, logger: Logger): Promise<Pools> {
  const onChildLog = (pool: string) => (line: string) => logger.warn('worker stderr', { pool, line: line.slice(0, 500) });
  const filesystem = new ProcessPool({
    name: 'filesystem',
    entry: path.join(SANDBOX_DIST, 'fs', 'worker.js'),
    execArgv: filesystemWorkerFlags(config),
    size: config.execution.filesystem_pool.size,
    maxQueue: config.execution.filesystem_pool.max_queue,
    onChildLog: onChildLog('filesystem'),
  });
  const javascript = new ProcessPool({
    name: 'javascript',
    entry: path.join(SANDBOX_DIST, 'js', 'worker.js'),
    execArgv: javascriptWorkerFlags(config),
    size: config.execution.javascript_pool.size,
    maxQueue: config.execution.javascript_pool.max_queue,
    onChildLog: onChildLog('javascript'),
  });
  for (const [name, p] of [
    ['filesystem', filesystem],
    ['javascript', javascript],
  ] as const) {
    p.on('exit', (e: { pid: number; code: number | null; signal: string | null; reason: string }) => {
      if (e.reason === 'close') return;
      // In a crash loop every retry fails the same way: the two lines below say it once.
      if (p.healthy) logger.warn('worker replaced', { pool: name, ...e });
      else logger.debug('worker replaced', { pool: name, ...e });
    });
    p.on('crash_loop', (h: PoolHealth) =>
      logger.warn('worker pool in a crash loop: calls are refused until a worker starts', {
        pool: name,
        failures: h.failures,
        retry_in_ms: h.retryInMs,
        last_failure: h.lastFailure,
      }),
    );
    p.on('recovered', (h: PoolHealth) => logger.warn('worker pool recovered from its crash loop', { pool: name, ready: h.ready }));
  }
  const started = await Promise.allSettled([filesystem.start(), javascript.start()]);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // Neither pool may outlive a failed boot (their respawn timers would keep the process up).
    await Promise.all([filesystem.close(), javascript.close()]);
    throw failed.reason;
  }
  return {
    filesystem,
    javascript,
    stats: () => [filesystem.stats(), javascript.stats()],
    health: () => [filesystem.health(), javascript.health()],
    close: async () => {
      await Promise.all([filesystem.close(), javascript.close()]);
    },
  };
}
