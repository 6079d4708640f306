import crypto from 'node:crypto';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t from 'tap';
import postgres from 'postgres';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { installPostgresSchema, verifyPostgres } from '../src/audit/postgres-log.js';
import { generateKey, parseVerifierKey } from '../src/audit/note.js';
import { BIN, ROOT } from './helpers/fixtures.js';

// A real PostgreSQL, started by scripts/run-tests.mjs. Without it this test fails (never skips):
// a green run must mean the backend was exercised.
const PGURL = process.env.PGURL;
if (!PGURL) {
  t.fail('PGURL is not set: run the suite with `npm test` (scripts/run-tests.mjs starts PostgreSQL and sets PGURL)');
} else {
  const admin = postgres(PGURL, { max: 1, onnotice: () => undefined });
  const writerPass = crypto.randomBytes(12).toString('hex');
  const writerUrl = (() => {
    const u = new URL(PGURL);
    u.username = 'bulwark_app_test';
    u.password = writerPass;
    return u.toString();
  })();
  const KEY = generateKey('bulwark-pg-test');

  t.before(async () => {
    await installPostgresSchema(PGURL);
    await installPostgresSchema(PGURL); // idempotent
    await admin.unsafe(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bulwark_app_test') THEN CREATE ROLE bulwark_app_test LOGIN; END IF;
    END $$`);
    await admin.unsafe(`ALTER ROLE bulwark_app_test PASSWORD '${writerPass}'`);
    await admin.unsafe('GRANT bulwark_audit_writer TO bulwark_app_test');
  });
  t.teardown(() => admin.end({ timeout: 5 }));

  const stream = () => `test-${crypto.randomUUID().slice(0, 8)}`;

  t.test('the writer role appends a chain and verify passes; checkpoints are stored and signed', async (t) => {
    const s = stream();
    const log = await AuditLog.open({
      path: '',
      durability: 'fsync',
      batchMs: 5,
      backend: 'postgres',
      postgresUrl: writerUrl,
      stream: s,
      checkpoint: { signer: KEY, everyRecords: 10, everyMs: 60_000, origin: `bulwark/audit/${s}` },
    });
    const seqs = await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        const out: number[] = [];
        for (let i = 0; i < 10; i++) out.push((await log.append({ worker: w, i, tool: 'read_file' })).seq);
        return out;
      }),
    );
    await log.close();
    t.same(
      seqs.flat().sort((a, b) => a - b),
      Array.from({ length: 320 }, (_, i) => i + 1),
      '32 concurrent appenders: every seq once',
    );
    const r = await verifyPostgres(writerUrl, s, { publicKeys: [parseVerifierKey(KEY.encoded)], merkle: true });
    t.equal(r.ok, true, JSON.stringify(r.problem));
    t.equal(r.records, 320);
    t.ok(r.checkpoints.total >= 1 && r.checkpoints.matched === r.checkpoints.total, `${r.checkpoints.total} checkpoint(s) match`);
    t.notMatch(r.path, writerPass, 'the password is never printed');
    const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', writerUrl, '--stream', s, '--public-key', KEY.encoded], { encoding: 'utf8' });
    t.equal(cli.status, 0, cli.stdout + cli.stderr);
    t.notMatch(cli.stdout + cli.stderr, writerPass);
  });

  t.test('two processes appending to one stream at once form one valid chain', async (t) => {
    const s = stream();
    const child = () =>
      spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `
      import { AuditLog } from ${JSON.stringify(path.join(ROOT, 'dist/src/audit/open-audit-log.js'))};
      const log = await AuditLog.open({ path: '', durability: 'fsync', batchMs: 5, backend: 'postgres', postgresUrl: process.env.W, stream: process.env.S });
      await Promise.all(Array.from({ length: 8 }, async (_, w) => { for (let i = 0; i < 40; i++) await log.append({ pid: process.pid, w, i }); }));
      await log.close();
      console.log('done');`,
        ],
        { env: { ...process.env, W: writerUrl, S: s }, stdio: ['ignore', 'pipe', 'inherit'] },
      );
    const procs = [child(), child()];
    const outs = await Promise.all(
      procs.map(
        (p) =>
          new Promise<string>((resolve) => {
            let out = '';
            p.stdout.on('data', (d: Buffer) => (out += d));
            p.on('exit', () => resolve(out));
          }),
      ),
    );
    t.same(
      outs.map((o) => o.trim()),
      ['done', 'done'],
    );
    const rows =
      await admin`SELECT count(*)::int AS n, count(DISTINCT (substring(line from '"pid":([0-9]+)')))::int AS pids FROM bulwark_audit WHERE stream = ${s}`;
    t.equal(rows[0]!.n, 640);
    t.equal(rows[0]!.pids, 2, 'both processes wrote');
    const r = await verifyPostgres(writerUrl, s);
    t.equal(r.ok, true, JSON.stringify(r.problem));
    t.equal(r.records, 640);
  });

  t.test('the writer role cannot UPDATE, DELETE or TRUNCATE; the trigger refuses even the owner', async (t) => {
    const s = stream();
    const log = await AuditLog.open({ path: '', durability: 'fsync', batchMs: 5, backend: 'postgres', postgresUrl: writerUrl, stream: s });
    for (let i = 0; i < 5; i++) await log.append({ i });
    await log.close();
    const writer = postgres(writerUrl, { max: 1, onnotice: () => undefined });
    t.teardown(() => writer.end({ timeout: 5 }));
    await t.rejects(writer`UPDATE bulwark_audit SET line = line WHERE stream = ${s}`, /permission denied/, 'writer: no UPDATE grant');
    await t.rejects(writer`DELETE FROM bulwark_audit WHERE stream = ${s}`, /permission denied/, 'writer: no DELETE grant');
    await t.rejects(writer`TRUNCATE bulwark_audit`, /permission denied/, 'writer: no TRUNCATE grant');
    await t.rejects(admin`UPDATE bulwark_audit SET line = line WHERE stream = ${s}`, /append-only: UPDATE/, 'owner: the trigger refuses UPDATE');
    await t.rejects(admin`DELETE FROM bulwark_audit WHERE stream = ${s}`, /append-only: DELETE/, 'owner: the trigger refuses DELETE');
    await t.rejects(admin`TRUNCATE bulwark_audit`, /append-only: TRUNCATE/, 'owner: the trigger refuses TRUNCATE');
    // Inserts that do not extend the chain are refused by the database itself.
    const [last] = await writer`SELECT seq, line, hash FROM bulwark_audit WHERE stream = ${s} ORDER BY seq DESC LIMIT 1`;
    await t.rejects(
      writer`INSERT INTO bulwark_audit (stream, seq, line, prev, hash) VALUES (${s}, 9, ${String(last!.line)}, ${String(last!.hash)}, ${String(last!.hash)})`,
      /has no record 8/,
      'a gap is refused',
    );
    await t.rejects(
      writer`INSERT INTO bulwark_audit (stream, seq, line, prev, hash) VALUES (${s}, 6, ${String(last!.line)}, ${'0'.repeat(64)}, ${String(last!.hash)})`,
      /does not chain/,
      'a fork is refused',
    );
    await t.rejects(
      writer`INSERT INTO bulwark_audit (stream, seq, line, prev, hash) VALUES (${s}, 6, ${String(last!.line)}, ${String(last!.hash)}, ${String(last!.hash)})`,
      /does not match its hash/,
      'a record that does not hash is refused',
    );
    t.equal((await verifyPostgres(writerUrl, s)).ok, true, 'still intact');
  });

  t.test('verify finds a row an administrator rewrote with the trigger disabled', async (t) => {
    const s = stream();
    const log = await AuditLog.open({ path: '', durability: 'fsync', batchMs: 5, backend: 'postgres', postgresUrl: writerUrl, stream: s });
    for (let i = 0; i < 6; i++) await log.append({ i, tool: 'read_file' });
    await log.close();
    await admin.begin(async (tx) => {
      await tx.unsafe('ALTER TABLE bulwark_audit DISABLE TRIGGER bulwark_audit_no_change');
      await tx`UPDATE bulwark_audit SET line = replace(line, '"read_file"', '"read_filf"') WHERE stream = ${s} AND seq = 4`;
      await tx.unsafe('ALTER TABLE bulwark_audit ENABLE TRIGGER bulwark_audit_no_change');
    });
    const r = await verifyPostgres(writerUrl, s);
    t.equal(r.problem?.kind, 'modified');
    t.equal(r.problem?.seq, 4);
    t.equal(r.problem?.segment, `postgres:${s}`);
    const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', writerUrl, '--stream', s], { encoding: 'utf8' });
    t.equal(cli.status, 1);
    t.match(cli.stdout, /line 4 \(seq 4\): modified/);
  });

  t.test('audit.backend postgres through the gate config', async (t) => {
    const s = stream();
    const { makeSandbox } = await import('./helpers/fixtures.js');
    const { inProcessGate } = await import('./helpers/gate.js');
    const sb = makeSandbox({ audit: { backend: 'postgres', postgres_url: writerUrl, stream: s } });
    t.teardown(sb.cleanup);
    const gate = await inProcessGate(sb.configPath);
    const o = await gate.call('read_file', { path: 'hello.txt' });
    await gate.close();
    t.equal(o.auditSeq, 2, 'seq 1 is the genesis record');
    const v = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--config', sb.configPath, '--json', '--require-genesis'], { encoding: 'utf8' });
    t.equal(v.status, 0, v.stdout + v.stderr);
    t.equal(JSON.parse(v.stdout).records, 2);
    const [first] = await admin`SELECT line FROM bulwark_audit WHERE stream = ${s} AND seq = 1`;
    const genesis = JSON.parse(String(first?.line));
    t.equal(genesis.event, 'audit.genesis', 'a new PostgreSQL stream starts with its genesis record');
    t.equal(genesis.genesis.stream, s);
    t.equal(genesis.genesis.policy_revision, gate.app.deps.policy.revision, 'naming the policy revision');
    // A second writer on the same stream (another replica) does not write a second one.
    const again = await inProcessGate(sb.configPath);
    await again.call('read_file', { path: 'hello.txt' });
    await again.close();
    const geneses = await admin`SELECT seq FROM bulwark_audit WHERE stream = ${s} AND line LIKE '%"audit.genesis"%'`;
    t.same(
      geneses.map((g) => Number(g.seq)),
      [1],
      'one genesis record per stream',
    );
  });
}
