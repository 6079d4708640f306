// query_database end to end through the gate against the same query run directly with
// postgres.js (interleaved, same run), and throughput with 16 concurrent callers. Uses PGURL when
// set; otherwise starts a throwaway PostgreSQL with scripts/services.sh and stops it afterwards.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { stringify } from 'yaml';
import { ROOT, dist, summarise, workspace } from './lib.mjs';

const { loadConfig } = await import(dist('src/config/loader.js'));
const { createApp } = await import(dist('src/app.js'));
const { createLogger } = await import(dist('src/observability/logger.js'));
const { runGate } = await import(dist('src/gate/run.js'));
const { createTestDatabase } = await import(dist('test/helpers/database.js'));

function ctx() {
  return { transport: 'stdio', requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal };
}

export async function benchDatabase({ quick = false } = {}) {
  let servicesDir;
  if (!process.env.PGURL) {
    servicesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bench-services-'));
    const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'start', servicesDir], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) return { skipped: 'could not start PostgreSQL' };
    for (const line of fs.readFileSync(path.join(servicesDir, 'env'), 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) process.env[m[1]] = m[2];
    }
  }
  const db = await createTestDatabase();
  const ws = workspace('batch');
  const cfg = loadConfig({ file: ws.config }).config;
  fs.writeFileSync(
    ws.config,
    stringify({
      ...JSON.parse(
        JSON.stringify({
          filesystem: { roots: cfg.filesystem.roots },
          audit: { path: cfg.audit.path, durability: 'batch' },
          limits: { tiers: { local: { capacity: 1e6, refill_per_s: 1e6 } }, default_tier: 'local' },
          observability: { log_level: 'error' },
          database: { url: db.readerUrl },
        }),
      ),
    }),
  );
  const app = await createApp(loadConfig({ file: ws.config }), createLogger('error'));
  const direct = postgres(db.readerUrl, { max: 4, prepare: false, onnotice: () => undefined });
  const text = 'SELECT id, name FROM users WHERE id = $1';
  const n = quick ? 200 : 2000;
  const gated = [];
  const raw = [];
  const analysis = [];
  for (let i = 0; i < 100; i++) {
    await runGate({ tool: 'query_database', args: { sql: text, params: [7] }, context: ctx() }, app.deps);
    await direct.unsafe(text, [7]);
  }
  for (let i = 0; i < n; i++) {
    const o = await runGate({ tool: 'query_database', args: { sql: text, params: [1 + (i % 40)] }, context: ctx() }, app.deps);
    if (o.status !== 'ok') throw new Error(JSON.stringify(o.denial));
    gated.push(o.durationMs);
    analysis.push(o.stageMs.analyse ?? 0);
    const t0 = performance.now();
    await direct.unsafe(text, [1 + (i % 40)]);
    raw.push(performance.now() - t0);
  }
  let next = 0;
  const total = quick ? 400 : 4000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < total) {
        next++;
        const o = await runGate({ tool: 'query_database', args: { sql: text, params: [3] }, context: ctx() }, app.deps);
        if (o.status !== 'ok') throw new Error(JSON.stringify(o.denial));
      }
    }),
  );
  const tput = Math.round(total / ((performance.now() - t0) / 1000));
  await direct.end();
  await app.close();
  await db.drop();
  ws.cleanup();
  if (servicesDir) spawnSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'stop', servicesDir], { stdio: 'ignore' });
  const g = summarise(gated);
  const d = summarise(raw);
  return {
    query: text,
    gated_ms: g,
    direct_postgres_js_ms: d,
    overhead_p50_ms: Math.round((g.p50 - d.p50) * 1000) / 1000,
    gated_analysis_stage_ms: summarise(analysis),
    throughput_16_concurrent_calls_per_s: tput,
    note: 'gated: BEGIN READ ONLY, SET LOCAL x3, cursor, ROLLBACK, DISCARD ALL on a reserved connection, plus the gate and a batch-mode audit append; direct: one extended-protocol query',
  };
}
