import path from 'node:path';
import { PACKAGE_ROOT } from '../../config/package-paths.js';
import type { Logger } from '../../observability/logger.js';
import { refuse } from '../../core/denial.js';
import { ProcessPool } from '../../../sandbox/pool/process-pool.js';
import { codeReadFlags } from '../../execution/pools.js';
import type { DatabaseExecutor, QueryCaps, QueryResult, QueryRun } from './pg-executor.js';

/**
 * The zero-setup database: PGlite with demo data in one disposable worker, started on first use
 * (it takes seconds to boot, and most sessions never query). A query that overruns is stopped by
 * killing the worker; the next call gets a fresh, freshly seeded one.
 */
export class EmbeddedExecutor implements DatabaseExecutor {
  private pool: ProcessPool | undefined;
  private starting: Promise<ProcessPool> | undefined;

  constructor(private readonly logger: Logger, private readonly searchPath: string, private readonly heapMb = 512) {}

  private ensure(): Promise<ProcessPool> {
    if (this.pool) return Promise.resolve(this.pool);
    this.starting ??= (async () => {
      const pool = new ProcessPool({
        name: 'embedded-database',
        entry: path.join(PACKAGE_ROOT, 'dist', 'sandbox', 'db', 'pglite-worker.js'),
        execArgv: ['--experimental-permission', ...codeReadFlags(), `--max-old-space-size=${this.heapMb}`],
        size: 1,
        maxQueue: 32,
        onChildLog: (line) => this.logger.warn('worker stderr', { pool: 'embedded-database', line: line.slice(0, 500) }),
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

  /** For /ready: false while the embedded database's worker pool is in a crash loop. */
  get healthy(): boolean {
    return this.pool?.healthy ?? true;
  }

  async query(text: string, params: readonly (string | number | boolean | null)[], caps: QueryCaps, run: QueryRun = {}): Promise<QueryResult> {
    const pool = await this.ensure().catch((err: Error) =>
      refuse('unavailable', 'The embedded database cannot start now; retry shortly.', ['db.embedded_unavailable'], { error: err.message.slice(0, 200) }),
    );
    const r = await pool.run<QueryResult>('query', { text, params, maxRows: caps.maxRows, maxBytes: caps.maxBytes, searchPath: this.searchPath }, { timeoutMs: run.deadline?.remainingMs() ?? caps.timeoutMs, runMs: caps.timeoutMs, signal: run.signal });
    return r.value;
  }

  async close(): Promise<void> {
    const p = this.pool ?? (this.starting ? await this.starting.catch(() => undefined) : undefined);
    await p?.close();
  }
}
