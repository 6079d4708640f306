import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import postgres from 'postgres';
import type { AuditLogOptions } from '../src/audit/audit-log.js';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { installPostgresSchema } from '../src/audit/postgres-log.js';
import { generateKey, openNote } from '../src/audit/note.js';
import { checkCosignatures, generateWitnessKey, parseWitnessVerifier, type WitnessVerifier } from '../src/audit/witness-cosignature.js';
import { BIN, makeSandbox } from './helpers/fixtures.js';

// Issue 12 (3) on the PostgreSQL backend: the writer sends each checkpoint it signs, with its
// consistency proof, to a real `bulwark witness serve`, and stores the cosignatures in
// bulwark_audit_cosignature; `audit verify --witness-key` holds the stream to them. The attack a
// witness exists for: the database owner AND the log's signing key rewrite the stream and re-sign
// it. Real PostgreSQL (scripts/run-tests.mjs starts it; without PGURL this test fails, never skips).

const PGURL = process.env.PGURL;
const LOG_KEY = generateKey('bulwark-pg-log');

async function startWitness(t: Test, keyFile: string, stateDir: string, origin: string): Promise<string> {
  const child = spawn(
    process.execPath,
    [BIN, 'witness', 'serve', '--key', keyFile, '--state', stateDir, '--log', `${origin}=${LOG_KEY.encoded}`, '--listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  t.teardown(async () => {
    if (child.exitCode !== null) return;
    const done = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await done;
  });
  return new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`witness exited ${code}: ${err}`)));
  });
}

if (!PGURL) {
  t.fail('PGURL is not set: run with scripts/run-tests.mjs');
} else {
  const admin = postgres(PGURL, { max: 1, onnotice: () => undefined });
  t.before(async () => {
    await installPostgresSchema(PGURL);
  });
  t.teardown(() => admin.end({ timeout: 5 }));

  const verify = (stream: string, wkey: WitnessVerifier) =>
    spawnSync(process.execPath, [BIN, 'audit', 'verify', PGURL, '--stream', stream, '--public-key', LOG_KEY.encoded, '--witness-key', wkey.encoded, '--json'], {
      encoding: 'utf8',
    });

  t.test('PostgreSQL writer: checkpoints cosigned by a real witness, stored in the table, verify --witness-key; a re-signed rewrite fails', async (t) => {
    const stream = `wit-${crypto.randomUUID().slice(0, 8)}`;
    const origin = `bulwark/audit/${stream}`;
    const sb = makeSandbox();
    t.teardown(sb.cleanup);
    const wkey = generateWitnessKey('witness.test/pg1');
    const keyFile = path.join(sb.dir, 'w.key');
    fs.writeFileSync(keyFile, `${wkey.encodedPrivate}\n`, { mode: 0o600 });
    const stateDir = path.join(sb.dir, 'witness-state');
    const url = await startWitness(t, keyFile, stateDir, origin);
    const verifier = parseWitnessVerifier(wkey.encoded);
    const warnings: string[] = [];
    const opts = (everyRecords: number): AuditLogOptions => ({
      path: '',
      durability: 'fsync',
      batchMs: 5,
      backend: 'postgres',
      postgresUrl: PGURL,
      stream,
      genesis: true,
      checkpoint: { signer: LOG_KEY, everyRecords, everyMs: 60_000, origin },
      witnesses: [{ name: 'pg1', url, key: verifier }],
      onWarning: (m, d) => warnings.push(`${m} ${JSON.stringify(d)}`),
    });

    // The genuine stream: genesis + 23 records, a checkpoint every 5 and one at close.
    const log = await AuditLog.open(opts(5));
    for (let i = 0; i < 23; i++) await log.append({ request_id: `r${i}`, tool: 'read_file', outcome: { status: 'ok' } });
    await log.close();
    t.same(warnings, [], 'no witness trouble');

    const rows = await admin`SELECT size, witness, note, cosignature FROM bulwark_audit_cosignature WHERE stream = ${stream} ORDER BY size`;
    t.ok(rows.length >= 2, `${rows.length} cosignatures stored in bulwark_audit_cosignature (sizes ${rows.map((r) => r.size).join(', ')})`);
    t.equal(Number(rows[rows.length - 1]!.size), 24, 'the last one covers the whole stream');
    for (const r of rows) {
      t.equal(r.witness, 'pg1');
      t.equal(
        checkCosignatures(openNote(String(r.note), []).text, [String(r.cosignature)], [verifier]).length,
        1,
        `size ${r.size}: a cosignature/v1 by the witness key`,
      );
    }
    // Beyond the first, each went with a consistency proof the witness checked (it cosigned them in turn).
    const state = fs.readdirSync(stateDir);
    t.ok(state.length > 0, `the witness kept its state (${state.join(', ')})`);

    let v = verify(stream, verifier);
    t.equal(v.status, 0, `verify --witness-key exits 0: ${v.stdout}${v.stderr}`);
    const ok = JSON.parse(v.stdout) as { witnessed: { size: number }; checkpoints: { sources: string[] } };
    t.equal(ok.witnessed.size, 24, 'witnessed up to the last record');
    t.ok(ok.checkpoints.sources.includes(`postgres:bulwark_audit_cosignature#${stream}`), 'names the cosignature table as a source');

    // The attack: the database owner, holding the log's signing key too, rewrites the stream
    // (every record re-sealed with other content, every checkpoint re-signed).
    await admin.unsafe('ALTER TABLE bulwark_audit DISABLE TRIGGER USER');
    await admin.unsafe('ALTER TABLE bulwark_audit_checkpoint DISABLE TRIGGER USER');
    try {
      await admin`DELETE FROM bulwark_audit WHERE stream = ${stream}`;
      await admin`DELETE FROM bulwark_audit_checkpoint WHERE stream = ${stream}`;
    } finally {
      await admin.unsafe('ALTER TABLE bulwark_audit ENABLE TRIGGER USER');
      await admin.unsafe('ALTER TABLE bulwark_audit_checkpoint ENABLE TRIGGER USER');
    }
    // The forged history: as long as the genuine one, then more, through the real writer (with the witness configured).
    const forged = await AuditLog.open(opts(1_000_000));
    for (let i = 0; i < 23; i++) await forged.append({ request_id: `forged-${i}`, tool: 'read_file', outcome: { status: 'ok' } });
    await forged.close();
    const more = await AuditLog.open(opts(1_000_000));
    for (let i = 0; i < 5; i++) await more.append({ request_id: `forged-more-${i}`, tool: 'read_file', outcome: { status: 'ok' } });
    await more.close();
    t.ok(
      warnings.some((w) => /did not cosign/.test(w) && /answered (409|422)/.test(w)),
      `the witness refused the forked checkpoint: ${warnings.join(' | ')}`,
    );
    const forgedRows = await admin`SELECT size FROM bulwark_audit_cosignature WHERE stream = ${stream} AND size > 24`;
    t.same(forgedRows, [], 'no cosignature for any size of the forged stream');

    v = verify(stream, verifier);
    t.equal(v.status, 1, 'verify --witness-key fails on the re-signed rewrite');
    const bad = JSON.parse(v.stdout) as { problem: { kind: string; message: string } };
    t.match(
      bad.problem.kind,
      /^(modified|truncated|rollback)$/,
      `the stream does not match the cosigned checkpoints: ${bad.problem.kind} ${bad.problem.message}`,
    );
    // The owner deletes the cosignatures too: nothing is witnessed, and verify says so.
    await admin.unsafe('ALTER TABLE bulwark_audit_cosignature DISABLE TRIGGER USER');
    try {
      await admin`DELETE FROM bulwark_audit_cosignature WHERE stream = ${stream}`;
    } finally {
      await admin.unsafe('ALTER TABLE bulwark_audit_cosignature ENABLE TRIGGER USER');
    }
    // Without the witness key the forgery now passes: that is the hole witnesses close.
    const noWitness = spawnSync(process.execPath, [BIN, 'audit', 'verify', PGURL, '--stream', stream, '--public-key', LOG_KEY.encoded], { encoding: 'utf8' });
    t.equal(noWitness.status, 0, `re-signed with the log key, cosignatures gone: it verifies without a witness key: ${noWitness.stdout.trim()}`);
    v = verify(stream, verifier);
    t.equal(v.status, 1, 'with the witness key it does not');
    t.equal((JSON.parse(v.stdout) as { problem: { kind: string } }).problem.kind, 'unwitnessed');
  });

  t.test('the cosignature table is append-only', async (t) => {
    const stream = `wit-ro-${crypto.randomUUID().slice(0, 8)}`;
    await admin`INSERT INTO bulwark_audit_cosignature (stream, size, witness, note, cosignature) VALUES (${stream}, 1, 'w', 'n', 'c')`;
    await t.rejects(admin`UPDATE bulwark_audit_cosignature SET witness = 'x' WHERE stream = ${stream}`, /append-only/);
    await t.rejects(admin`DELETE FROM bulwark_audit_cosignature WHERE stream = ${stream}`, /append-only/);
  });
}
