import { DenialError } from '../../core/denial.js';
import type { EmbeddedDatabasePool } from '../../execution/embedded-database-pool.js';
import { planDenialAsGiven } from '../../../sandbox/db/plan-gate.js';
import type { DatabaseExecutor, QueryCaps, QueryResult, QueryRun } from './pg-executor.js';

/**
 * The zero-setup database as the database tools see it: the call's caps and deadline become a
 * task for the embedded database's worker (src/execution/embedded-database-pool.ts), which
 * starts on first use and is killed when a query overruns. The cost gate's limits go with the
 * task: the worker EXPLAINs and judges the plan as PgExecutor does (sandbox/db/plan-gate.ts).
 */
export class EmbeddedExecutor implements DatabaseExecutor {
  constructor(
    private readonly pool: EmbeddedDatabasePool,
    private readonly searchPath: string,
  ) {}

  /** For /ready: false while the embedded database's worker pool is in a crash loop. */
  get healthy(): boolean {
    return this.pool.healthy;
  }

  async query(text: string, params: readonly (string | number | boolean | null)[], caps: QueryCaps, run: QueryRun = {}): Promise<QueryResult> {
    const payload = { text, params, maxRows: caps.maxRows, maxBytes: caps.maxBytes, searchPath: this.searchPath, ...(caps.plan ? { plan: caps.plan } : {}) };
    try {
      const r = await this.pool.run<QueryResult>('query', payload, {
        timeoutMs: run.deadline?.remainingMs() ?? caps.timeoutMs,
        runMs: caps.timeoutMs,
        signal: run.signal,
      });
      return r.value;
    } catch (err) {
      // A cost-gate refusal reads as the real server's: the pool's worker metrics stay out of its
      // detail, which becomes the record's facts.sql.plan.
      if (!(err instanceof DenialError)) throw err;
      const given = planDenialAsGiven(err.denial);
      throw given === err.denial ? err : new DenialError(given);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
