#!/usr/bin/env node
// `npm run bench`: one JSON document on stdout. BENCH_QUICK=1 shrinks every loop for a smoke run.
// BENCH_AGAINST=DIR (a folder holding another build's dist/) adds this build against that one,
// alternating rounds in one process: the gate without its audit append, and the audit log.
import os from 'node:os';
import { benchGate, benchGateAgainst } from './gate.mjs';
import { benchPolicy } from './policy.mjs';
import { benchStdioRead } from './stdio-read.mjs';
import { benchSandbox } from './sandbox.mjs';
import { benchSql } from './sql.mjs';
import { benchRowFilters } from './row-filters.mjs';
import { benchSqlViews } from './sql-views.mjs';
import { benchAudit } from './audit.mjs';
import { benchDatabase } from './database.mjs';
import { benchPlanGateEmbedded } from './plan-gate-embedded.mjs';
import { benchApi } from './api.mjs';
import { benchAuth } from './auth.mjs';
import { benchAuthBurst } from './auth-burst.mjs';
import { benchHttpLoad } from './http-load.mjs';
import { benchEvidence } from './evidence.mjs';
import { benchReplay } from './replay.mjs';
import { benchProtocolEras } from './protocol-eras.mjs';
import { benchSessionToken } from './session-token.mjs';

const quick = process.env.BENCH_QUICK === '1';
const out = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, quick },
  budgets: {
    gate_overhead_ms: { p50: 0.3, p99: 1.5 },
    policy_decide_us: { p50: 20, p99: 100 },
    read_file_stdio_median_ratio: 1.5,
    run_javascript_warm_ms: { p50: 2 },
    worker_round_trip_ms: { p50: 0.2 },
    auth: { fast_path_added_us_p50: 50, lockout_cpu_us: 100 },
    auth_burst: { cached_proof_call_p99_ms: 50 },
    http_64_clients: { calls_per_s: 3000, p99_ms: 25 },
  },
};
out.policy = await benchPolicy(quick ? { samples: 2000, soak: 20000 } : {});
out.gate = [];
for (const durability of ['batch', 'fsync', 'async']) out.gate.push(await benchGate({ durability, calls: quick ? 500 : 5000 }));
if (process.env.BENCH_AGAINST) out.gate_against = await benchGateAgainst(process.env.BENCH_AGAINST, quick ? { rounds: 2, calls: 500 } : {});
out.stdio_read_file = await benchStdioRead({ rounds: quick ? 200 : 2000 });
out.sandbox = await benchSandbox({ quick });
out.sql = await benchSql({ quick });
out.row_filters = await benchRowFilters({ quick });
out.sql_views = await benchSqlViews({ quick });
out.audit = await benchAudit({ quick, ...(process.env.BENCH_AGAINST ? { against: process.env.BENCH_AGAINST } : {}) });
out.database = await benchDatabase({ quick });
out.plan_gate_embedded = await benchPlanGateEmbedded({ quick });
out.api = await benchApi({ quick });
out.auth = await benchAuth({ quick });
out.auth_burst = await benchAuthBurst({ quick });
out.http_load = await benchHttpLoad({ quick });
out.evidence = await benchEvidence({ quick });
out.replay = await benchReplay({ quick });
out.protocol_eras = await benchProtocolEras({ quick });
out.session_token = await benchSessionToken({ quick });
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
