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

interface QueryPayload {
  readonly text: string;
  readonly params: readonly (string | number | boolean | null)[];
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly searchPath: string;
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
      let r: Awaited<ReturnType<typeof pg.query<Record<string, unknown>>>>;
      try {
        r = await pg.query<Record<string, unknown>>(p.text, [...p.params], { rowMode: 'object' });
      } catch (err) {
        mapDatabaseError(err, 0);
        throw err;
      }
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
      };
      return truncated ? { ...base, truncated: true, truncated_reason: truncated } : { ...base, truncated: false };
    } finally {
      await pg.exec('ROLLBACK');
    }
  },
});
