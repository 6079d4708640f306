/**
 * Entry point of the embedded-database worker: PGlite (PostgreSQL compiled to wasm) seeded with
 * the demo data, in a disposable child process under the permission model. PGlite runs as the
 * superuser and ignores statement_timeout, so the analyser, the policy and this wrapper are the
 * whole defence here, and the pool's wall-time kill is the only way to stop a runaway query.
 */
import { PGlite } from '@electric-sql/pglite';
import { serveTasks } from '../pool/child-runtime.js';
import { DEMO_SEED_SQL } from './demo-seed.js';
import { mapDatabaseError } from './errors.js';
import { jsonSafe } from './json-safe.js';
import { explainText, judgePlan, type PlanEstimate, type PlanLimits } from './plan-gate.js';

interface QueryPayload {
  readonly text: string;
  readonly params: readonly (string | number | boolean | null)[];
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly searchPath: string;
  /** The cost gate's limits (the policy's obligations); absent for a query the policy marks cheap. */
  readonly plan?: PlanLimits | undefined;
}

/** A database error as the real server's executor maps it (sandbox/db/errors.ts); anything else as it is. */
async function mapped<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    mapDatabaseError(err, 0);
    throw err;
  }
}

const pg = await PGlite.create();
await pg.exec(DEMO_SEED_SQL);

serveTasks({
  query: async (p: QueryPayload) => {
    const started = performance.now();
    // Our own fixed statements (no call data) go through exec; the call's text only through
    // query(), the extended protocol, which refuses a second statement.
    await pg.exec(`BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = ${p.searchPath}`);
    try {
      // The cost gate, as on the real server: EXPLAIN of the same text and parameters in this
      // same read-only transaction, judged by the same code (sandbox/db/plan-gate.ts).
      let plan: PlanEstimate | undefined;
      if (p.plan) {
        const t0 = performance.now();
        const explained = await mapped(() => pg.query<Record<string, unknown>>(explainText(p.text), [...p.params], { rowMode: 'object' }));
        plan = judgePlan(explained.rows, p.plan, t0);
      }
      const r = await mapped(() => pg.query<Record<string, unknown>>(p.text, [...p.params], { rowMode: 'object' }));
      const rows: Record<string, unknown>[] = [];
      let bytes = 0;
      let truncated: 'max_rows' | 'max_bytes' | undefined;
      for (const row of r.rows) {
        if (rows.length >= p.maxRows) {
          truncated = 'max_rows';
          break;
        }
        const safe: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(row)) safe[k] = jsonSafe(v);
        bytes += Buffer.byteLength(JSON.stringify(safe));
        if (bytes > p.maxBytes) {
          truncated = 'max_bytes';
          break;
        }
        rows.push(safe);
      }
      const base = {
        columns: r.fields.map((f) => ({ name: f.name, type: f.dataTypeID })),
        rows,
        row_count: rows.length,
        duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        ...(plan ? { plan } : {}),
      };
      return truncated ? { ...base, truncated: true, truncated_reason: truncated } : { ...base, truncated: false };
    } finally {
      await pg.exec('ROLLBACK');
    }
  },
});
