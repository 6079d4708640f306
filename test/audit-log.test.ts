import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import type { AuditLogOptions } from '../src/audit/audit-log.js';
import { FileAuditLog } from '../src/audit/file-log.js';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { canonicalJson } from '../src/audit/canonical-json.js';
import { chainHash, GENESIS_PREV, unsealLine } from '../src/audit/chain.js';
import { LockError } from '../src/audit/files.js';
import { generateKey, parseVerifierKey, type NoteSigner } from '../src/audit/note.js';
import { verifyFile } from '../src/audit/verify.js';
import { BIN, makeSandbox, ROOT } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

const KEY: NoteSigner = generateKey('bulwark-test-2025');
const PUB = KEY.encoded;

function opts(file: string, extra: Partial<AuditLogOptions> = {}): AuditLogOptions {
  return {
    path: file,
    durability: 'fsync',
    batchMs: 5,
    checkpoint: {
      signer: KEY,
      everyRecords: 5,
      everyMs: 60_000,
      origin: 'bulwark/audit/test',
      mirrorPath: path.join(path.dirname(file), '..', 'mirror', 'checkpoints.jsonl'),
    },
    rotation: { maxBytes: 4096 },
    ...extra,
  };
}

const pad = 'p'.repeat(300);

/** n records, one at a time (so checkpoints land at every 5th), in segments of ~10. */
async function writeRecords(file: string, n: number, extra: Partial<AuditLogOptions> = {}): Promise<void> {
  const log = await AuditLog.open(opts(file, extra));
  for (let i = 0; i < n; i++) await log.append({ request_id: `r${i}`, tool: 'read_file', pad, outcome: { status: 'ok' } });
  await log.close();
}

function readLines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
}
function writeLines(file: string, ls: string[]): void {
  fs.writeFileSync(file, ls.map((l) => `${l}\n`).join(''));
}
function reseal(rec: Record<string, unknown>): { line: string; hash: string } {
  const body = canonicalJson(rec);
  const hash = chainHash(rec.prev as string, body);
  return { line: `${body.slice(0, -1)},"hash":"${hash}"}`, hash };
}
function manifestOf(dir: string): {
  segments: { file: string; first_seq: number; last_seq: number; prev: string; last_hash: string }[];
  active_first_seq: number;
  active_prev: string;
} {
  return JSON.parse(fs.readFileSync(path.join(dir, 'audit.manifest.json'), 'utf8'));
}
function cli(args: string[]) {
  return spawnSync(process.execPath, [BIN, 'audit', ...args], { encoding: 'utf8' });
}

/** A fresh log of 40 records in 4+ segments with checkpoints every 5 and a mirror. */
async function fixture(t: Test, n = 40, extra: Partial<AuditLogOptions> = {}) {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const dir = path.join(sb.dir, 'log');
  const file = path.join(dir, 'audit.jsonl');
  await writeRecords(file, n, extra);
  const mirror = path.join(sb.dir, 'mirror', 'checkpoints.jsonl');
  return { sb, dir, file, mirror };
}

t.test('a healthy log: segments, manifest, checkpoints, mirror; verify with the public key passes', async (t) => {
  const { dir, file, mirror } = await fixture(t);
  const m = manifestOf(dir);
  t.ok(m.segments.length >= 3, `rotated into ${m.segments.length + 1} segments`);
  t.equal(m.segments[0]!.first_seq, 1);
  t.equal(m.segments[0]!.prev, GENESIS_PREV);
  for (let i = 1; i < m.segments.length; i++) {
    t.equal(m.segments[i]!.first_seq, m.segments[i - 1]!.last_seq + 1);
    t.equal(m.segments[i]!.prev, m.segments[i - 1]!.last_hash, 'a rotated segment starts from the previous last hash');
  }
  t.equal(m.active_prev, m.segments.at(-1)!.last_hash);
  const firstOfSecond = JSON.parse(unsealLine(readLines(path.join(dir, m.segments[1]!.file))[0]!)!.body);
  t.equal(firstOfSecond.prev, m.segments[0]!.last_hash, 'the chain continues across segments');
  const cps = readLines(path.join(dir, 'audit.checkpoints.jsonl'));
  t.ok(cps.length >= 8, `${cps.length} checkpoints`);
  t.same(readLines(mirror), cps, 'every checkpoint is mirrored');
  const note = JSON.parse(cps.at(-1)!).note as string;
  t.match(
    note,
    /^bulwark\/audit\/test\n40\n[A-Za-z0-9+/]{43}=\nchain [0-9a-f]{64}\ntime \S+\n\n\u2014 bulwark-test-2025 [A-Za-z0-9+/]+=*\n$/,
    'a C2SP checkpoint note',
  );
  const r = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)], mirrors: [mirror], merkle: true });
  t.equal(r.ok, true, JSON.stringify(r.problem));
  t.equal(r.records, 40);
  t.equal(r.checkpoints.matched, r.checkpoints.total);
  t.equal(r.checkpoints.signatures, 'verified');
  t.equal(r.merkle_root, note.split('\n')[2], 'the Merkle root of all records is the signed root');
  const c = cli(['verify', file, '--public-key', PUB, '--mirror', mirror]);
  t.equal(c.status, 0, c.stdout + c.stderr);
  t.match(c.stdout, /OK: 40 records in \d+ segment\(s\)/);
  t.equal((fs.statSync(path.join(dir, 'audit.checkpoints.jsonl')).mode & 0o777).toString(8), '600');
});

interface Tamper {
  readonly label: string;
  readonly kind: string;
  /** Returns the segment file name and line the verifier must name. */
  apply(f: {
    dir: string;
    file: string;
    mirror: string;
  }): Promise<{ segment: string; line: number; seq?: number }> | { segment: string; line: number; seq?: number };
  readonly mirror?: boolean;
}

const seg = (dir: string, i: number) => manifestOf(dir).segments[i]!.file;
/** The file holding the last record: the active segment, or the last sealed one right after a rotation. */
const lastFile = (dir: string) => (readLines(path.join(dir, 'audit.jsonl')).length ? 'audit.jsonl' : manifestOf(dir).segments.at(-1)!.file);

const TAMPERS: Tamper[] = [
  {
    label: 'a modified byte',
    kind: 'modified',
    apply: ({ dir }) => {
      const s = seg(dir, 1);
      const ls = readLines(path.join(dir, s));
      ls[3] = ls[3]!.replace('"read_file"', '"read_filf"');
      writeLines(path.join(dir, s), ls);
      return { segment: s, line: 4 };
    },
  },
  {
    label: 'a deleted record',
    kind: 'deleted',
    apply: ({ dir }) => {
      const s = seg(dir, 1);
      const ls = readLines(path.join(dir, s));
      ls.splice(2, 1);
      writeLines(path.join(dir, s), ls);
      return { segment: s, line: 3 };
    },
  },
  {
    label: 'an inserted record (forged, correctly chained)',
    kind: 'inserted',
    apply: ({ dir }) => {
      const s = seg(dir, 1);
      const ls = readLines(path.join(dir, s));
      const before = JSON.parse(unsealLine(ls[4]!)!.body);
      const forged = reseal({ ...before, request_id: 'forged', seq: before.seq + 1, prev: unsealLine(ls[4]!)!.hash });
      ls.splice(5, 0, forged.line);
      writeLines(path.join(dir, s), ls);
      return { segment: s, line: 6, seq: before.seq + 1 };
    },
  },
  {
    label: 'reordered records',
    kind: 'reordered',
    apply: ({ dir }) => {
      const s = seg(dir, 2);
      const ls = readLines(path.join(dir, s));
      [ls[1], ls[2]] = [ls[2]!, ls[1]!];
      writeLines(path.join(dir, s), ls);
      return { segment: s, line: 2 };
    },
  },
  {
    label: 'a truncated tail (cut mid-record)',
    kind: 'truncated',
    apply: ({ dir }) => {
      const f = lastFile(dir);
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      fs.writeFileSync(path.join(dir, f), text.slice(0, -40));
      return { segment: f, line: text.split('\n').length - 1 };
    },
  },
  {
    label: 'a truncated tail (whole records cut, the checkpoint beside the log still covers them)',
    kind: 'truncated',
    apply: ({ dir }) => {
      const f = lastFile(dir);
      const ls = readLines(path.join(dir, f));
      writeLines(path.join(dir, f), ls.slice(0, ls.length - 3));
      return { segment: f, line: ls.length - 2 };
    },
  },
  {
    label: 'a segment missing from the manifest',
    kind: 'missing_segment',
    apply: ({ dir }) => {
      const mp = path.join(dir, 'audit.manifest.json');
      const m = JSON.parse(fs.readFileSync(mp, 'utf8'));
      const [gone] = m.segments.splice(1, 1);
      fs.rmSync(path.join(dir, gone.file));
      fs.writeFileSync(mp, JSON.stringify(m));
      return { segment: m.segments[1].file, line: 1 };
    },
  },
  {
    label: 'a segment file deleted (still in the manifest)',
    kind: 'missing_segment',
    apply: ({ dir }) => {
      const s = seg(dir, 2);
      fs.rmSync(path.join(dir, s));
      return { segment: s, line: 0 };
    },
  },
  {
    label: 'a checkpoint with a bad signature',
    kind: 'bad_signature',
    apply: ({ dir }) => {
      const cpFile = path.join(dir, 'audit.checkpoints.jsonl');
      const ls = readLines(cpFile);
      const cp = JSON.parse(ls[2]!);
      // Claim a bigger tree with the old signature.
      cp.note = cp.note.replace(/\n(\d+)\n/, (_m: string, n: string) => `\n${Number(n) + 1}\n`);
      ls[2] = JSON.stringify(cp);
      writeLines(cpFile, ls);
      return { segment: 'audit.checkpoints.jsonl', line: 3 };
    },
  },
  {
    label: 'a record rewritten with the chain after it recomputed, not re-signed',
    kind: 'modified',
    apply: ({ dir }) => {
      // Rewrite seq 23 and re-chain everything after it, across segments and in the manifest.
      const m = manifestOf(dir);
      const files = [...m.segments.map((s) => s.file), 'audit.jsonl'];
      let prev: string | undefined;
      const newSegs = [];
      for (const [i, f] of files.entries()) {
        const ls = readLines(path.join(dir, f));
        if (!ls.length) continue;
        const first = JSON.parse(unsealLine(ls[0]!)!.body);
        const segPrev = prev ?? first.prev;
        for (let j = 0; j < ls.length; j++) {
          const rec = JSON.parse(unsealLine(ls[j]!)!.body);
          if (rec.seq === 23) rec.tool = 'delete_everything';
          if (rec.seq < 23) {
            prev = unsealLine(ls[j]!)!.hash;
            continue;
          }
          rec.prev = prev;
          const r = reseal(rec);
          ls[j] = r.line;
          prev = r.hash;
        }
        writeLines(path.join(dir, f), ls);
        if (i < m.segments.length) newSegs.push({ ...m.segments[i]!, prev: segPrev, last_hash: prev });
      }
      fs.writeFileSync(path.join(dir, 'audit.manifest.json'), JSON.stringify({ ...m, segments: newSegs, active_prev: newSegs.at(-1)!.last_hash }));
      // The last checkpoint below 23 still matches; the first at or above it does not: the doubt
      // starts right after the last one that matched.
      const sizes = readLines(path.join(dir, 'audit.checkpoints.jsonl')).map((l) => JSON.parse(l).size as number);
      const from = Math.max(...sizes.filter((n) => n < 23)) + 1;
      const pos = files
        .filter((f) => readLines(path.join(dir, f)).length)
        .map((f) => ({ f, first: JSON.parse(unsealLine(readLines(path.join(dir, f))[0]!)!.body).seq as number }))
        .filter((x) => x.first <= from)
        .at(-1)!;
      return { segment: pos.f, line: from - pos.first + 1, seq: from };
    },
  },
  {
    label: 'a whole-log rollback to an earlier, internally consistent state (shows only against the mirror)',
    kind: 'rollback',
    mirror: true,
    apply: async ({ dir, file, mirror }) => {
      // Snapshot at 20 records, then 20 more; then put the old state (log, manifest, checkpoints) back.
      const snap = `${dir}-snap`;
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(mirror, { force: true });
      await writeRecords(file, 20);
      fs.cpSync(dir, snap, { recursive: true });
      await writeRecords(file, 20);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(snap, dir, { recursive: true });
      // Named at the end of the log: the line where record 21 should have been.
      return { segment: 'audit.jsonl', line: 21 - manifestOf(dir).active_first_seq + 1, seq: 21 };
    },
  },
];

for (const tamper of TAMPERS) {
  t.test(`verify names ${tamper.label}: ${tamper.kind}`, async (t) => {
    const sb = makeSandbox();
    t.teardown(sb.cleanup);
    const dir = path.join(sb.dir, 'log');
    const file = path.join(dir, 'audit.jsonl');
    const mirror = path.join(sb.dir, 'mirror', 'checkpoints.jsonl');
    await writeRecords(file, 40);
    const before = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)], mirrors: [mirror] });
    t.equal(before.ok, true, 'intact before');
    const where = await tamper.apply({ dir, file, mirror });
    const r = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)], mirrors: [mirror] });
    t.equal(r.ok, false);
    t.equal(r.problem?.kind, tamper.kind, r.problem?.message ?? 'no problem found');
    t.equal(r.problem?.segment, where.segment, 'names the segment');
    t.equal(r.problem?.line, where.line, 'and the line');
    if (where.seq !== undefined) t.equal(r.problem?.seq, where.seq, 'and the seq');
    const c = cli(['verify', file, '--public-key', PUB, '--mirror', mirror, '--json']);
    t.equal(c.status, 1, 'the CLI exits 1');
    const j = JSON.parse(c.stdout);
    t.equal(j.problem.kind, tamper.kind);
    t.equal(j.problem.line, where.line);
    if (tamper.mirror) {
      const local = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)] });
      t.equal(local.ok, true, 'without the mirror the rolled-back log looks intact: that is why the mirror exists');
    }
  });
}

t.test('checkpoints signed by a retired key still verify when its public key stays listed', async (t) => {
  const { file } = await fixture(t, 12);
  const next = generateKey('bulwark-test-2026');
  const log = await AuditLog.open(opts(file, { checkpoint: { signer: next, everyRecords: 5, everyMs: 60_000, origin: 'bulwark/audit/test' } }));
  for (let i = 0; i < 8; i++) await log.append({ tool: 'read_file', i });
  await log.close();
  const both = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB), parseVerifierKey(next.encoded)], merkle: true });
  t.equal(both.ok, true, JSON.stringify(both.problem));
  t.ok(both.checkpoints.total >= 4);
  const onlyNew = await verifyFile(file, { publicKeys: [parseVerifierKey(next.encoded)] });
  t.equal(onlyNew.problem?.kind, 'bad_signature', 'a checkpoint by a key that is not listed is not trusted');
});

t.test('restart: the frontier resumes from the last checkpoint and later checkpoints still match', async (t) => {
  const { file } = await fixture(t, 13);
  await writeRecords(file, 9);
  await writeRecords(file, 1);
  const r = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)], merkle: true });
  t.equal(r.ok, true, JSON.stringify(r.problem));
  t.equal(r.records, 23);
  t.equal(r.checkpoints.matched, r.checkpoints.total);
  t.ok(r.checkpoints.latest_size === 23, 'close signs the final size');
});

t.test('crash recovery: a torn last line is set aside, the chain resumes, verify passes', async (t) => {
  const { dir, file } = await fixture(t, 14, { rotation: undefined });
  const ls = readLines(file);
  // A crash mid-write of record 15: only part of it reached the disk (never durable, never signed).
  const half = ls.at(-1)!.replace('"seq":14', '"seq":15').slice(0, 100);
  fs.appendFileSync(file, half);
  const warnings: string[] = [];
  const log = await AuditLog.open(opts(file, { rotation: undefined, onWarning: (m) => warnings.push(m) }));
  const a = await log.append({ tool: 'after_crash' });
  await log.close();
  t.equal(warnings.length, 1);
  const aside = fs.readdirSync(dir).filter((f) => f.startsWith('audit.jsonl.torn-'));
  t.equal(aside.length, 1, 'set aside, not dropped');
  t.equal(fs.readFileSync(path.join(dir, aside[0]!), 'utf8'), half, 'byte for byte');
  const recs = readLines(file).map((l) => JSON.parse(unsealLine(l)!.body));
  const recovery = recs.find((r) => r.event === 'audit.recovery')!;
  t.equal(recovery.seq, 15, 'the recovery record takes the torn record’s place in the chain');
  t.equal(recovery.recovery.set_aside, aside[0]);
  t.equal(recovery.recovery.bytes, Buffer.byteLength(half));
  t.equal(a.seq, 16);
  // The torn record was never durable (its caller was never answered), so no checkpoint covers it.
  const r = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)], merkle: true });
  t.equal(r.ok, true, JSON.stringify(r.problem));
  t.match(r.warnings.join('\n'), /torn/, 'verify mentions the set-aside bytes');
});

t.test('crash recovery: a complete last record missing only its newline is completed, not set aside', async (t) => {
  const { dir, file } = await fixture(t, 7, { rotation: undefined });
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, -1));
  const log = await AuditLog.open(opts(file, { rotation: undefined }));
  const a = await log.append({ tool: 'after' });
  await log.close();
  t.equal(a.seq, 9, 'seq 8 is the recovery record; record 7 kept');
  t.equal(fs.readdirSync(dir).filter((f) => f.includes('.torn-')).length, 0);
  const rec = JSON.parse(unsealLine(readLines(file)[7]!)!.body);
  t.equal(rec.recovery.action, 'completed');
  t.equal((await verifyFile(file)).ok, true);
});

t.test('crash during rotation (manifest written, rename not done) is completed at start-up', async (t) => {
  const { dir, file } = await fixture(t, 12, { rotation: undefined });
  // The state a crash leaves between the two steps of a rotation: the manifest already lists the
  // active segment as sealed and names the next one, but the file was not renamed yet.
  const ls = readLines(file);
  const m = manifestOf(dir);
  const last = unsealLine(ls.at(-1)!)!;
  const name = 'audit.000000000001.jsonl';
  fs.writeFileSync(
    path.join(dir, 'audit.manifest.json'),
    JSON.stringify({
      ...m,
      active_first_seq: 13,
      active_prev: last.hash,
      segments: [{ file: name, first_seq: 1, last_seq: 12, prev: GENESIS_PREV, last_hash: last.hash, bytes: fs.statSync(file).size }],
    }),
  );
  const log = await AuditLog.open(opts(file, { rotation: undefined }));
  const a = await log.append({ tool: 'after' });
  await log.close();
  t.equal(a.seq, 13);
  t.ok(fs.existsSync(path.join(dir, name)), 'the rename was completed');
  t.equal(readLines(file).length, 1, 'the new active segment holds only the new record');
  const r = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)], merkle: true });
  t.equal(r.ok, true, JSON.stringify(r.problem));
});

t.test('one writer per log: a second open is refused, a stale lock is taken over', async (t) => {
  const { file } = await fixture(t, 3);
  const a = await AuditLog.open(opts(file));
  await t.rejects(AuditLog.open(opts(file)), { name: 'LockError' }, 'same process, second writer');
  t.ok(LockError);
  // Another process cannot open it either.
  const child = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    import { AuditLog } from ${JSON.stringify(path.join(ROOT, 'dist/src/audit/open-audit-log.js'))};
    try { await AuditLog.open({ path: ${JSON.stringify(file)}, durability: 'fsync', batchMs: 5 }); console.log('opened'); }
    catch (e) { console.log(e.name + ': ' + e.message); }`,
    ],
    { encoding: 'utf8' },
  );
  t.match(child.stdout, /locked by process \d+/, 'a second process is refused');
  await a.append({ tool: 'x' });
  await a.close();
  t.notOk(fs.existsSync(`${file}.lock`), 'close releases the lock');
  // A writer that died without releasing: its pid is gone, so the lock is stale.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: Number(dead.stdout), token: 'x' }));
  const b = await AuditLog.open(opts(file));
  await b.append({ tool: 'y' });
  await b.close();
  t.equal((await verifyFile(file)).ok, true);
});

t.test('a writer killed mid-run leaves a stale lock the next writer takes over', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'k', 'audit.jsonl');
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
    import { AuditLog } from ${JSON.stringify(path.join(ROOT, 'dist/src/audit/open-audit-log.js'))};
    const log = await AuditLog.open({ path: ${JSON.stringify(file)}, durability: 'fsync', batchMs: 5 });
    for (let i = 0; ; i++) { await log.append({ i }); if (i === 50) console.log('ready'); }`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  t.ok(fs.existsSync(`${file}.lock`), 'the lock outlived its writer');
  const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5 });
  const a = await log.append({ after: 'kill' });
  await log.close();
  t.ok(a.seq > 50);
  t.equal((await verifyFile(file)).ok, true, 'the chain resumed after the kill (torn tail, if any, set aside)');
});

t.test('32 concurrent appenders form one valid chain (fsync group commit, batch, async)', async (t) => {
  for (const durability of ['fsync', 'batch', 'async'] as const) {
    const sb = makeSandbox();
    t.teardown(sb.cleanup);
    const file = path.join(sb.dir, durability, 'audit.jsonl');
    const log = await AuditLog.open(opts(file, { durability, rotation: { maxBytes: 64 * 1024 } }));
    const results = await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        const seqs: number[] = [];
        for (let i = 0; i < 50; i++) seqs.push((await log.append({ worker: w, i, pad })).seq);
        return seqs;
      }),
    );
    await log.close();
    const all = results.flat().sort((a, b) => a - b);
    t.same(
      all,
      Array.from({ length: 1600 }, (_, i) => i + 1),
      `${durability}: every seq once`,
    );
    const r = await verifyFile(file, { publicKeys: [parseVerifierKey(PUB)], merkle: true });
    t.equal(r.ok, true, `${durability}: ${JSON.stringify(r.problem)}`);
    t.equal(r.records, 1600);
    t.ok(r.checkpoints.total > 0 && r.checkpoints.matched === r.checkpoints.total, `${durability}: ${r.checkpoints.total} checkpoints match`);
  }
});

t.test('the writer refuses what cannot be hashed reproducibly, and over-long lines', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'x', 'audit.jsonl');
  const log = await FileAuditLog.open({ path: file, durability: 'fsync', batchMs: 5 });
  await t.rejects(log.append({ s: 'a\ud800' }), { name: 'CanonicalJsonError', reason: 'lone_surrogate' });
  await t.rejects(log.append({ n: 2 ** 60 }), { name: 'CanonicalJsonError', reason: 'unsafe_integer' });
  await t.rejects(log.append({ big: 'x'.repeat(70_000) }), { name: 'CanonicalJsonError', reason: 'too_long' });
  const ok = await log.append({ fine: true });
  t.equal(ok.seq, 1, 'refused records consume no seq');
  t.equal(log.writable, true, 'and do not fail the log');
  await log.close();
  for (const l of readLines(file)) t.ok(Buffer.byteLength(l) <= 65536);
});

t.test('the gate: a record too long with its arguments is kept without them', async (t) => {
  const sb = makeSandbox({ limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 } }, default_tier: 'local', max_args_bytes: 1024 * 1024 } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  const o = await gate.call('read_file', { path: 'x'.repeat(80_000) });
  await gate.close();
  t.ok(o.auditSeq, 'recorded');
  const rec = JSON.parse(unsealLine(readLines(sb.auditPath).at(-1)!)!.body);
  t.equal(rec.args, null);
  t.ok(rec.masked.includes('args'));
  t.ok(rec.args_sha256, 'the hash of the arguments is kept');
});

t.test('proofs: prove SEQ, verify --inclusion, consistency between checkpoints', async (t) => {
  const { sb, file } = await fixture(t, 33);
  const out = path.join(sb.dir, 'proof.json');
  const sizes = readLines(path.join(path.dirname(file), 'audit.checkpoints.jsonl')).map((l) => JSON.parse(l).size as number);
  const covering = Math.min(...sizes.filter((n) => n >= 17));
  const [small, big] = [sizes[1]!, sizes.at(-2)!];
  const p = cli(['prove', '17', file]);
  t.equal(p.status, 0, p.stderr);
  fs.writeFileSync(out, p.stdout);
  const proof = JSON.parse(p.stdout);
  t.equal(proof.leaf_index, 16);
  t.equal(proof.tree_size, covering, 'against the first checkpoint that covers it');
  t.match(proof.checkpoint, new RegExp(`^bulwark/audit/test\\n${covering}\\n`));
  t.equal(JSON.parse(unsealLine(proof.leaf)!.body).seq, 17);
  const v = cli(['verify', '--inclusion', out, '--public-key', PUB]);
  t.equal(v.status, 0, v.stdout + v.stderr);
  t.match(v.stdout, new RegExp(`OK: record seq 17 is leaf 16 of the tree of size ${covering}, under a checkpoint signed`));
  // Each part of the proof is load-bearing.
  const bad = [
    { ...proof, leaf: proof.leaf.replace('read_file', 'read_filf'), leaf_hash: undefined },
    { ...proof, audit_path: [proof.audit_path[1], proof.audit_path[0], ...proof.audit_path.slice(2)] },
    { ...proof, leaf_index: 15 },
    { ...proof, checkpoint: proof.checkpoint.replace(`\n${covering}\n`, `\n${covering + 1}\n`) },
  ];
  for (const [i, b] of bad.entries()) {
    fs.writeFileSync(out, JSON.stringify(b));
    const r = cli(['verify', '--inclusion', out, '--public-key', PUB]);
    t.equal(r.status, 1, `tampered proof ${i} fails: ${r.stdout.trim()}`);
  }
  const wrongKey = generateKey('bulwark-test-2025').encoded;
  fs.writeFileSync(out, JSON.stringify(proof));
  t.equal(cli(['verify', '--inclusion', out, '--public-key', wrongKey]).status, 1, 'a key that did not sign it: bad signature');
  t.equal(cli(['prove', '17', file, '--checkpoint', String(big)]).status, 0);
  t.equal(cli(['prove', '17', file, '--checkpoint', '999']).status, 2, 'no such checkpoint');
  const pc = cli(['prove', '--consistency', String(small), String(big), file]);
  t.equal(pc.status, 0, pc.stderr);
  const cproof = path.join(sb.dir, 'consistency.json');
  fs.writeFileSync(cproof, pc.stdout);
  const vc = cli(['verify', '--consistency', cproof, '--public-key', PUB]);
  t.equal(vc.status, 0, vc.stdout + vc.stderr);
  const cps = readLines(path.join(path.dirname(file), 'audit.checkpoints.jsonl')).map((l) => JSON.parse(l).note as string);
  fs.writeFileSync(
    path.join(sb.dir, 'old.note'),
    cps.find((n) => n.includes(`\n${small}\n`))!,
  );
  fs.writeFileSync(
    path.join(sb.dir, 'new.note'),
    cps.find((n) => n.includes(`\n${big}\n`))!,
  );
  const vn = cli(['verify', '--consistency', path.join(sb.dir, 'old.note'), path.join(sb.dir, 'new.note'), file, '--public-key', PUB]);
  t.equal(vn.status, 0, vn.stdout + vn.stderr);
  const forged = JSON.parse(pc.stdout);
  forged.proof[0] = Buffer.alloc(32).toString('base64');
  fs.writeFileSync(cproof, JSON.stringify(forged));
  t.equal(cli(['verify', '--consistency', cproof, '--public-key', PUB]).status, 1, 'a forged consistency proof fails');
});

t.test('keygen, export (JSONL, CSV), tail, show across segments, verify --from/--to', async (t) => {
  const { sb, file } = await fixture(t, 25);
  const keys = path.join(sb.dir, 'keys');
  const k = cli(['keygen', '--out', keys, '--name', 'ops-2025']);
  t.equal(k.status, 0, k.stderr);
  t.equal((fs.statSync(path.join(keys, 'ops-2025.key')).mode & 0o777).toString(8), '600', 'the private key is 0600');
  t.match(fs.readFileSync(path.join(keys, 'ops-2025.pub'), 'utf8'), /^ops-2025\+[0-9a-f]{8}\+/);
  t.match(k.stdout, /verifier key: ops-2025\+/);
  t.equal(cli(['keygen', '--out', keys, '--name', 'ops-2025']).status !== 0, true, 'never overwrites a key');
  const j = cli(['export', file, '--since', '5', '--until', '12']);
  t.same(
    j.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).seq),
    [5, 6, 7, 8, 9, 10, 11, 12],
  );
  const csv = cli(['export', file, '--format', 'csv', '--since', '2020-01-01T00:00:00Z']);
  const rows = csv.stdout.trim().split('\n');
  t.equal(rows[0], 'seq,ts,request_id,transport,principal,tool,allow,status,code,duration_ms,args_sha256,result_sha256,policy_revision,hash');
  t.equal(rows.length, 26);
  t.equal(cli(['export', file, '--since', '2999-01-01T00:00:00Z']).stdout, '');
  t.same(
    cli(['tail', file, '-n', '2'])
      .stdout.trim()
      .split('\n')
      .map((l) => JSON.parse(l).seq),
    [24, 25],
  );
  t.equal(JSON.parse(cli(['show', '3', file]).stdout).seq, 3, 'show finds a record in a rotated segment');
  const strict = cli(['verify', file, '--strict', '--json', '--public-key', PUB]);
  t.equal(strict.status, 0, 'every record is canonical JSON with the expected seq and prev');
  const part = cli(['verify', file, '--from', '15', '--to', '18', '--json', '--public-key', PUB]);
  t.equal(part.status, 0);
  t.equal(JSON.parse(part.stdout).partial, true);
});

t.test('the gate with checkpoints from config: verify --config checks the signatures', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const keys = path.join(sb.dir, 'keys');
  t.equal(cli(['keygen', '--out', keys, '--name', 'gate']).status, 0);
  const sb2 = makeSandbox({
    audit: {
      path: path.join(sb.dir, 'gate-audit', 'audit.jsonl'),
      checkpoint: {
        private_key: path.join(keys, 'gate.key'),
        public_keys: [path.join(keys, 'gate.pub')],
        every_records: 3,
        mirror_path: path.join(sb.dir, 'gate-mirror.jsonl'),
      },
      rotation: { max_bytes: 8192 },
    },
  });
  t.teardown(sb2.cleanup);
  const gate = await inProcessGate(sb2.configPath);
  for (let i = 0; i < 20; i++) await gate.call('read_file', { path: 'hello.txt' });
  await gate.close();
  const v = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--config', sb2.configPath, '--json'], { encoding: 'utf8' });
  t.equal(v.status, 0, v.stdout + v.stderr);
  const r = JSON.parse(v.stdout);
  t.equal(r.records, 21, 'the genesis record and the 20 calls');
  t.equal(r.start.kind, 'genesis', 'a signed log from the config starts with its genesis record');
  t.equal(r.checkpoints.signatures, 'verified');
  t.ok(
    r.checkpoints.sources.some((s: string) => s.endsWith('gate-mirror.jsonl')),
    'the configured mirror is read too',
  );
  t.ok(r.checkpoints.matched >= 7);
});
