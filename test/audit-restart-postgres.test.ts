/**
 * Issue 12: the killed-writer case on the PostgreSQL backend. A stream whose writer is SIGKILLed
 * with records past its last checkpoint, and restarted more than 2 × every_ms + 2 s later, must
 * verify: the new writer marks its start with a `restarted` recovery record and signs at once, as
 * the file backend does (test/audit-restart.test.ts). Real PostgreSQL, a real killed process.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t from 'tap';
import postgres from 'postgres';
import type { AuditLogOptions } from '../src/audit/audit-log.js';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { installPostgresSchema, verifyPostgres } from '../src/audit/postgres-log.js';
import { generateKey, loadVerifier } from '../src/audit/note.js';
import { BIN, ROOT } from './helpers/fixtures.js';

const PGURL = process.env.PGURL;
const EVERY_MS = 500;
const DOWN_MS = 4000; // longer than 2 × EVERY_MS + 2 s
const KEY = generateKey('bulwark-pg-restart');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const opts = (url: string, stream: string): AuditLogOptions => ({
  path: '',
  durability: 'fsync',
  batchMs: 5,
  backend: 'postgres',
  postgresUrl: url,
  stream,
  genesis: true,
  checkpoint: { signer: KEY, everyRecords: 100_000, everyMs: EVERY_MS, origin: `bulwark/audit/${stream}` },
});

/** A writer in its own process: records, a checkpoint, two more records, then SIGKILL (no close, no last checkpoint). */
async function killedWriter(url: string, stream: string): Promise<void> {
  const script = `
    import { AuditLog } from ${JSON.stringify(path.join(ROOT, 'dist', 'src', 'audit', 'open-audit-log.js'))};
    import { loadSigner } from ${JSON.stringify(path.join(ROOT, 'dist', 'src', 'audit', 'note.js'))};
    const signer = loadSigner(${JSON.stringify(KEY.encodedPrivate)});
    const log = await AuditLog.open({ path: '', durability: 'fsync', batchMs: 5, backend: 'postgres', postgresUrl: ${JSON.stringify(url)},
      stream: ${JSON.stringify(stream)}, genesis: true,
      checkpoint: { signer, everyRecords: 4, everyMs: ${EVERY_MS}, origin: ${JSON.stringify(`bulwark/audit/${stream}`)} } });
    // Genesis + 3 records: a checkpoint at size 4 by count; then, well within every_ms, two more.
    for (let i = 0; i < 3; i++) await log.append({ request_id: 'a' + i, tool: 'file_info', outcome: { status: 'ok' } });
    await new Promise((r) => setTimeout(r, ${EVERY_MS / 2}));
    await log.append({ request_id: 'b0', tool: 'file_info', outcome: { status: 'ok' } });
    await log.append({ request_id: 'b1', tool: 'file_info', outcome: { status: 'ok' } });
    // Killed in the same turn as the last append is acknowledged: no checkpoint tick can run first.
    process.kill(process.pid, 'SIGKILL');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('close', (c, sig) => r([c, sig])));
  if (signal !== 'SIGKILL') throw new Error(`the writer was not killed (exit ${code}): ${err}`);
}

if (!PGURL) {
  t.fail('PGURL is not set: run with scripts/run-tests.mjs');
} else {
  const admin = postgres(PGURL, { max: 1, onnotice: () => undefined });
  t.before(async () => {
    await installPostgresSchema(PGURL);
  });
  t.teardown(() => admin.end({ timeout: 5 }));
  const sizes = async (stream: string): Promise<number[]> =>
    (await admin`SELECT size FROM bulwark_audit_checkpoint WHERE stream = ${stream} ORDER BY size`).map((r) => Number(r.size));

  t.test('PostgreSQL: a writer SIGKILLed with unsigned records and restarted much later: the stream verifies', async (t) => {
    const stream = `restart-${crypto.randomUUID().slice(0, 8)}`;
    await killedWriter(PGURL, stream);
    const before = await sizes(stream);
    t.ok(before.length > 0 && Math.max(...before) < 6, `the killed writer left records 1..6 with checkpoints only up to ${Math.max(...before, 0)}`);
    await sleep(DOWN_MS);
    const log = await AuditLog.open(opts(PGURL, stream));
    await log.append({ request_id: 'c0', tool: 'file_info', outcome: { status: 'ok' } });
    await log.close();

    const [restart] = await admin`SELECT seq FROM bulwark_audit WHERE stream = ${stream} AND line LIKE '%"restarted"%'`;
    t.ok(restart, 'the new writer wrote a restarted recovery record');
    t.equal(Number(restart?.seq), 7, 'right after the dead writer’s last record (seq 6)');
    t.ok((await sizes(stream)).includes(7), 'and signed a checkpoint over it at once');

    const pubFile = KEY.encoded;
    const v = await verifyPostgres(PGURL, stream, { publicKeys: [loadVerifier(pubFile)], signatures: 'require' });
    t.ok(v.ok, `verify passes${v.problem ? `: ${v.problem.kind} ${v.problem.message}` : ''}`);
    const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', PGURL, '--stream', stream, '--public-key', pubFile], { encoding: 'utf8' });
    t.equal(cli.status, 0, `bulwark audit verify exits 0: ${cli.stdout}${cli.stderr}`);
  });
}
