// Evidence (issue 12): verify with witness cosignatures (chain + checkpoints + cosignatures),
// the witness's add-checkpoint round trip on loopback (signature check, consistency proof, durable
// state, cosignature), and what the writer's witness client pays to build a consistency proof (from
// the checkpoint at the old size and the records after it, against reading the whole log). Budgets: verify with witnesses ≥ 250k records/s; cosign round trip
// p50 ≤ 5 ms. Run alone: `node scripts/bench/evidence.mjs` (after `npm run build`).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dist, summarise } from './lib.mjs';

const { AuditLog } = await import(dist('src/audit/open-audit-log.js'));
const { verifyFile, fileSegments } = await import(dist('src/audit/verify.js'));
const { generateKey, openNote } = await import(dist('src/audit/note.js'));
const { buildConsistencyProof } = await import(dist('src/audit/proofs.js'));
const { logPaths } = await import(dist('src/audit/files.js'));
const { cosign, generateWitnessKey, parseWitnessVerifier } = await import(dist('src/audit/witness-cosignature.js'));
const { cosignaturesPath } = await import(dist('src/audit/witness-client.js'));
const { Witness, witnessHttpServer } = await import(dist('src/witness/server.js'));

export const EVIDENCE_BUDGETS = { verify_witnessed_per_s: 250_000, cosign_round_trip_p50_ms: 5 };

const ORIGIN = 'bulwark/audit/bench';

function fields(i) {
  return {
    request_id: `7f3c2a1e-0b9d-4c6e-8a5f-${String(i).padStart(12, '0')}`,
    transport: 'stdio',
    principal: { id: 'local-user', roles: ['developer'], auth: 'stdio' },
    tool: 'read_file',
    args: { path: 'reports/q3/summary.csv' },
    args_sha256: 'a3f1c9d2e4b5a6978812734651a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4',
    facts: { path: { canonical: '/srv/data/reports/q3/summary.csv', root: '/srv/data', kind: 'file', size: 18234 } },
    decision: { allow: true, reasons: [], policy_revision: '5e0c8a7b6d4f3e2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a' },
    outcome: {
      status: 'ok',
      code: null,
      reasons: [],
      duration_ms: 0.412,
      result_sha256: '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0',
      result_bytes: 18302,
    },
  };
}

async function writeLog(dir, records, everyRecords, key, durability = 'batch', callers = 32) {
  const file = path.join(dir, 'audit.jsonl');
  const log = await AuditLog.open({
    path: file,
    durability,
    batchMs: 10,
    genesis: true,
    checkpoint: { signer: key, everyRecords, everyMs: 60_000, origin: ORIGIN },
  });
  const per = Math.ceil(records / callers);
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let i = 0; i < per; i++) await log.append(fields(c * per + i));
    }),
  );
  await log.close();
  return file;
}

export async function benchEvidence({ quick = false } = {}) {
  const out = { budgets: EVIDENCE_BUDGETS };
  const key = generateKey('bench-log');
  const wkey = generateWitnessKey('bench.witness/w1');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bench-evidence-'));
  try {
    // 1. Verify with every checkpoint cosigned (cosignatures made offline: the verifier's work is the same).
    const records = quick ? 50_000 : 300_000;
    const file = await writeLog(path.join(dir, 'v'), records, 1000, key);
    const p = logPaths(file);
    const cps = fs
      .readFileSync(p.checkpoints, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    fs.writeFileSync(
      cosignaturesPath(p),
      cps.map((c) => `${JSON.stringify({ note: c.note, size: c.size, witness: 'w1', cosignature: cosign(openNote(c.note, []).text, wkey) })}\n`).join(''),
    );
    const runs = [];
    for (const witnesses of [false, true, false, true, false, true]) {
      const t0 = performance.now();
      const r = await verifyFile(file, {
        publicKeys: [key],
        signatures: 'require',
        ...(witnesses ? { witnessKeys: [parseWitnessVerifier(wkey.encoded)] } : {}),
      });
      const s = (performance.now() - t0) / 1000;
      if (!r.ok) throw new Error(`bench log does not verify: ${JSON.stringify(r.problem)}`);
      runs.push({ witnesses, records: r.records, checkpoints: r.checkpoints.total, per_s: Math.round(r.records / s), witnessed: r.witnessed?.size ?? null });
    }
    const best = (w) => Math.max(...runs.filter((r) => r.witnesses === w).map((r) => r.per_s));
    out.verify = {
      records: runs[0].records,
      checkpoints_and_cosigned: runs[1].checkpoints,
      per_s_without_witnesses: best(false),
      per_s_with_witnesses: best(true),
      runs,
    };

    // 2. add-checkpoint round trips on loopback: sequential checkpoints of one log, proofs precomputed.
    // One caller in fsync mode: a checkpoint every 50 records.
    const small = await writeLog(path.join(dir, 'w'), quick ? 2000 : 5000, 50, key, 'fsync', 1);
    const notes = fs
      .readFileSync(logPaths(small).checkpoints, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const segs = fileSegments(small).segments;
    const bodies = [];
    let old = 0;
    for (const c of notes) {
      if (c.size <= old) continue;
      const proof = old ? (await buildConsistencyProof(segs, old, c.size, null, null)).proof : [];
      bodies.push(`old ${old}\n${proof.map((h) => `${h}\n`).join('')}\n${c.note}`);
      old = c.size;
    }
    const witness = new Witness({ signer: wkey, stateDir: path.join(dir, 'state'), logs: new Map([[ORIGIN, [key]]]) });
    const server = witnessHttpServer(witness);
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${server.address().port}/add-checkpoint`;
    const ms = [];
    for (const body of bodies) {
      const t0 = performance.now();
      const res = await fetch(url, { method: 'POST', body });
      await res.text();
      ms.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`witness answered ${res.status}`);
    }
    server.close();
    witness.close();
    out.cosign_round_trip = summarise(ms);

    // 3. The client's proof for the last checkpoint from one near the middle: from the old
    // checkpoint's frontier plus the records after it, against one built from the whole log.
    const { WitnessClient } = await import(dist('src/audit/witness-client.js'));
    const mid = cps[Math.floor(cps.length / 2)];
    const last = cps[cps.length - 1];
    let t0 = performance.now();
    await new WitnessClient(p, []).consistencyProof(mid.size, last.size, last.note);
    const fastMs = performance.now() - t0;
    t0 = performance.now();
    await buildConsistencyProof(fileSegments(file).segments, mid.size, last.size, null, null);
    out.client_proof = { old_size: mid.size, new_size: last.size, from_checkpoint_ms: Math.round(fastMs), whole_log_ms: Math.round(performance.now() - t0) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${JSON.stringify(await benchEvidence({ quick: process.env.BENCH_QUICK === '1' }), null, 2)}\n`);
}
