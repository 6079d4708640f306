// Audit log throughput: append per durability mode (with and without checkpoints), verify, and
// the cost of a signed checkpoint. Budgets from DESIGN.md §8. Run alone: `node scripts/bench/audit.mjs`
// (after `npm run build`); BENCH_QUICK=1 shrinks the loops.
//
// This machine is shared and its disk latency swings by 2-3x from one second to the next, so a
// number alone says little. `fdatasync_floor_per_s` is a bare write + fdatasync loop of 1 KiB
// records in the same folder, measured between the append runs: the ceiling for `fsync` with one
// caller. To compare two builds, keep a copy of the other one's dist and run both alternately in
// one process: `node scripts/bench/audit.mjs --against /tmp/old` (a folder holding dist/, or
// BENCH_AUDIT_AGAINST); `compare` then lists each run's rounds for both and the median ratio.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dist } from './lib.mjs';

const { AuditLog } = await import(dist('src/audit/open-audit-log.js'));
const { verifyFile } = await import(dist('src/audit/verify.js'));
const { generateKey, parseVerifierKey, readCheckpointNote } = await import(dist('src/audit/note.js'));
const { makeCheckpointLine } = await import(dist('src/audit/checkpoint.js'));
const { Frontier, leafHash } = await import(dist('src/audit/merkle.js'));

export const AUDIT_BUDGETS = { append_batch_per_s: 100_000, append_fsync_32_per_s: 20_000, append_fsync_1_per_s: 3_000, verify_per_s: 300_000 };

/** The fields of a typical gate record (read_file allowed), as record.ts shapes them. */
function fields(i) {
  return {
    request_id: `7f3c2a1e-0b9d-4c6e-8a5f-${String(i).padStart(12, '0')}`,
    transport: 'stdio',
    client_ip: null,
    principal: { id: 'local-user', roles: ['developer'], auth: 'stdio' },
    tool: 'read_file',
    args: { path: 'reports/q3/summary.csv' },
    args_sha256: 'a3f1c9d2e4b5a6978812734651a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4',
    args_bytes: 34,
    masked: [],
    facts: { path: { canonical: '/srv/data/reports/q3/summary.csv', root: '/srv/data', kind: 'file', size: 18234 } },
    decision: { allow: true, reasons: [], policy_revision: '5e0c8a7b6d4f3e2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a' },
    policy_revision: '5e0c8a7b6d4f3e2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a',
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

function tmp() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bench-audit-'));
}

async function appendRun({ durability, callers, records, checkpoint, key, impl = AuditLog }) {
  const dir = tmp();
  const file = path.join(dir, 'audit.jsonl');
  const log = await impl.open({
    path: file,
    durability,
    batchMs: 10,
    ...(checkpoint ? { checkpoint: { signer: key, everyRecords: 1000, everyMs: 1000, origin: 'bulwark/audit/bench' } } : {}),
  });
  // Warm-up.
  for (let i = 0; i < 200; i++) await log.append(fields(i));
  const per = Math.ceil(records / callers);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let i = 0; i < per; i++) await log.append(fields(c * per + i));
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  await log.close();
  const bytes = fs.statSync(file).size;
  const total = per * callers;
  return {
    dir,
    file,
    result: {
      durability,
      callers,
      checkpoints: !!checkpoint,
      records: total,
      seconds: round(elapsed),
      per_s: Math.round(total / elapsed),
      per_cpu_s: Math.round(total / ((cpu.user + cpu.system) / 1e6)),
      avg_line_bytes: Math.round(bytes / (total + 200)),
    },
  };
}

function round(x) {
  return Math.round(x * 1000) / 1000;
}

/** Appending 1 KiB records with one write(2) and one fdatasync each, nothing else. */
async function fdatasyncFloor(records) {
  const dir = tmp();
  const fh = await fs.promises.open(path.join(dir, 'floor'), fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
  const line = Buffer.alloc(1024, 0x61);
  line[1023] = 0x0a;
  const t0 = performance.now();
  for (let i = 0; i < records; i++) {
    fs.writeSync(fh.fd, line);
    await fh.datasync();
  }
  const perS = Math.round(records / ((performance.now() - t0) / 1000));
  await fh.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return perS;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function loadAgainst(against) {
  const root = fs.existsSync(path.join(against, 'dist')) ? path.join(against, 'dist') : against;
  // Builds before the audit log's factory got its own module keep it in audit-log.js.
  const factory = ['src/audit/open-audit-log.js', 'src/audit/audit-log.js'].map((f) => path.join(path.resolve(root), f)).find((f) => fs.existsSync(f));
  return (await import(factory)).AuditLog;
}

export async function benchAudit({ quick = process.env.BENCH_QUICK === '1', against = process.env.BENCH_AUDIT_AGAINST } = {}) {
  const key = generateKey('bulwark-bench');
  const out = { budgets: AUDIT_BUDGETS, append: [], verify: [], checkpoint: {} };
  const n = (full, small) => (quick ? small : full);
  const runs = [
    { durability: 'batch', callers: 32, records: n(200_000, 20_000), checkpoint: false },
    { durability: 'batch', callers: 32, records: n(200_000, 20_000), checkpoint: true },
    { durability: 'batch', callers: 1, records: n(50_000, 5_000), checkpoint: true },
    { durability: 'async', callers: 32, records: n(200_000, 20_000), checkpoint: true },
    { durability: 'fsync', callers: 32, records: n(100_000, 10_000), checkpoint: false },
    { durability: 'fsync', callers: 32, records: n(100_000, 10_000), checkpoint: true },
    { durability: 'fsync', callers: 1, records: n(10_000, 2_000), checkpoint: false },
    { durability: 'fsync', callers: 1, records: n(10_000, 2_000), checkpoint: true },
  ];
  let verifyTarget;
  const floor = [];
  for (const r of runs) {
    if (r.durability === 'fsync') floor.push(await fdatasyncFloor(n(1000, 200)));
    const { dir, file, result } = await appendRun({ ...r, key });
    out.append.push(result);
    if (r.durability === 'batch' && r.callers === 32 && r.checkpoint && !verifyTarget) verifyTarget = { dir, file };
    else fs.rmSync(dir, { recursive: true, force: true });
  }
  out.fdatasync_floor_per_s = floor;
  if (against) {
    // The same runs, this build and the other alternately, a few rounds each.
    const other = await loadAgainst(against);
    out.compare = { against, rounds: [] };
    for (const r of runs) {
      const row = { durability: r.durability, callers: r.callers, checkpoints: r.checkpoint, this: [], other: [], this_per_cpu: [], other_per_cpu: [] };
      for (let round = 0; round < n(3, 1); round++) {
        for (const [side, impl] of [
          ['other', other],
          ['this', AuditLog],
        ]) {
          const { dir, result } = await appendRun({ ...r, records: Math.ceil(r.records / 2), key, impl });
          fs.rmSync(dir, { recursive: true, force: true });
          row[side].push(result.per_s);
          row[`${side}_per_cpu`].push(result.per_cpu_s);
        }
      }
      row.median_ratio = round(median(row.this) / median(row.other));
      row.median_ratio_per_cpu = round(median(row.this_per_cpu) / median(row.other_per_cpu));
      out.compare.rounds.push(row);
    }
  }
  // Verify: the chain over the exact bytes, every checkpoint's signature and chain head; then
  // the same plus Merkle roots recomputed at every checkpoint.
  const keys = [parseVerifierKey(key.encoded)];
  for (const merkle of [false, true]) {
    const best = [];
    for (let i = 0; i < 3; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await verifyFile(verifyTarget.file, { publicKeys: keys, merkle });
      const s = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(c0);
      if (!r.ok) throw new Error(`bench log does not verify: ${JSON.stringify(r.problem)}`);
      best.push({ records: r.records, checkpoints: r.checkpoints.matched, seconds: s, cpu: (cpu.user + cpu.system) / 1e6 });
    }
    const b = best.sort((a, c) => a.seconds - c.seconds)[0];
    out.verify.push({
      merkle,
      records: b.records,
      checkpoints: b.checkpoints,
      seconds: round(b.seconds),
      per_s: Math.round(b.records / b.seconds),
      per_cpu_s: Math.round(b.records / b.cpu),
      mb_per_s: Math.round(fs.statSync(verifyTarget.file).size / b.seconds / 1e6),
    });
  }
  fs.rmSync(verifyTarget.dir, { recursive: true, force: true });
  // One checkpoint: fold the frontier, format, sign (Ed25519); and checking one.
  const f = new Frontier();
  for (let i = 0; i < 1_000_003; i += 1) if (i < 2000) f.appendHash(leafHash(Buffer.from(String(i))));
  const state = { size: f.size, head: 'ab'.repeat(32), frontier: f.snapshotLatin1() };
  const N = n(5000, 500);
  let t0 = performance.now();
  let line;
  for (let i = 0; i < N; i++) line = makeCheckpointLine({ signer: key, origin: 'bulwark/audit/bench' }, state);
  const signUs = ((performance.now() - t0) / N) * 1000;
  t0 = performance.now();
  for (let i = 0; i < N; i++) readCheckpointNote(line.note, keys);
  const verifyUs = ((performance.now() - t0) / N) * 1000;
  out.checkpoint = { sign_us: round(signUs), verify_us: round(verifyUs), note_bytes: Buffer.byteLength(line.note), per_1000_records_us: round(signUs / 1000) };
  const get = (d, c, cp) => out.append.find((a) => a.durability === d && a.callers === c && a.checkpoints === cp)?.per_s;
  out.machine = {
    cpus: os.cpus().length,
    loadavg: os.loadavg().map(round),
    note: "per_s is wall clock; per_cpu_s divides by this process's CPU time, which stays meaningful when the machine is shared",
  };
  out.summary = {
    append_batch_32_per_s: get('batch', 32, true),
    append_fsync_32_per_s: get('fsync', 32, true),
    append_fsync_1_per_s: get('fsync', 1, true),
    verify_per_s: out.verify.find((v) => !v.merkle).per_s,
    verify_merkle_per_s: out.verify.find((v) => v.merkle).per_s,
    fdatasync_floor_per_s: median(floor),
    checkpoint_sign_us: out.checkpoint.sign_us,
  };
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--against');
  process.stdout.write(`${JSON.stringify(await benchAudit(i > 0 ? { against: process.argv[i + 1] } : {}), null, 2)}\n`);
}
