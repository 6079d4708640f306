import path from 'node:path';
import { PACKAGE_ROOT } from '../config/package-paths.js';
import type { Logger } from '../observability/logger.js';
import { refuse } from '../core/denial.js';
import { ProcessPool, type RunOptions, type RunResult } from './process-pool.js';
import { embeddedDatabaseWorkerFlags } from './worker-flags.js';

const NAME = 'embedded-database';
const ENTRY = path.join(PACKAGE_ROOT, 'dist', 'sandbox', 'db', 'pglite-worker.js');

/**
 * The embedded database's worker (PGlite with demo data, sandbox/db/pglite-worker.ts): one
 * disposable worker, started on first use (it takes seconds to boot, and most sessions never
 * query). A query that overruns is stopped by killing the worker; the next call gets a fresh,
 * freshly seeded one.
 */
export class EmbeddedDatabasePool {
  private pool: ProcessPool | undefined;
  private starting: Promise<ProcessPool> | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly heapMb = 512,
  ) {}

  private ensure(): Promise<ProcessPool> {
    if (this.pool) return Promise.resolve(this.pool);
    this.starting ??= (async () => {
      const pool = new ProcessPool({
        name: NAME,
        entry: ENTRY,
        execArgv: embeddedDatabaseWorkerFlags(this.heapMb),
        size: 1,
        maxQueue: 32,
        onChildLog: (line) => this.logger.warn('worker stderr', { pool: NAME, line: line.slice(0, 500) }),
      });
      await pool.start();
      this.pool = pool;
      return pool;
    })();
    // A start that failed is not kept: the next call tries again (the pool heals, so must its start).
    this.starting.catch(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  /** For /ready: false while the worker is in a crash loop (true before the first use). */
  get healthy(): boolean {
    return this.pool?.healthy ?? true;
  }

  /** Run `op` in the worker, starting it first if need be; a worker that cannot start is `unavailable`. */
  async run<T>(op: string, payload: unknown, opts: RunOptions): Promise<RunResult<T>> {
    const pool = await this.ensure().catch((err: Error) =>
      refuse('unavailable', 'The embedded database cannot start now; retry shortly.', ['db.embedded_unavailable'], { error: err.message.slice(0, 200) }),
    );
    return pool.run<T>(op, payload, opts);
  }

  async close(): Promise<void> {
    const p = this.pool ?? (this.starting ? await this.starting.catch(() => undefined) : undefined);
    await p?.close();
  }
}
