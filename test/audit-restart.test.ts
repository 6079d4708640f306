/**
 * Issue 12 (bug found by helper HD): a signed file log whose writer is SIGKILLed with records not
 * yet checkpointed, and restarted more than 2 × every_ms + 2 s later, must verify: the new writer
 * marks its start with a `restarted` recovery record and signs at once, and verify ends the dead
 * writer's unsigned span there. A forged restart record (no key to sign after it) and a long
 * unsigned stretch inside one writer's life still fail with unsigned_gap.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import type { AuditLogOptions } from '../src/audit/audit-log.js';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { loadSigner, loadVerifier } from '../src/audit/note.js';
import { verifyFile } from '../src/audit/verify.js';
import { BIN, ROOT, makeSandbox, readAuditWithGenesis } from './helpers/fixtures.js';

const EVERY_MS = 500;
const DOWN_MS = 4000; // longer than 2 × EVERY_MS + 2 s, as any real restart is

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Setup {
  readonly dir: string;
  readonly file: string;
  readonly key: string;
  readonly pub: string;
}

function setup(t: Test): Setup {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const keys = path.join(sb.dir, 'keys');
  const r = spawnSync(process.execPath, [BIN, 'audit', 'keygen', '--out', keys, '--name', 'restart'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`keygen failed: ${r.stderr}`);
  return { dir: sb.dir, file: path.join(sb.dir, 'log', 'audit.jsonl'), key: path.join(keys, 'restart.key'), pub: path.join(keys, 'restart.pub') };
}

function opts(s: Setup, signed = true): AuditLogOptions {
  return {
    path: s.file,
    durability: 'fsync',
    batchMs: 5,
    genesis: true,
    ...(signed ? { checkpoint: { signer: loadSigner(s.key), everyRecords: 100_000, everyMs: EVERY_MS, origin: 'bulwark/audit/restart' } } : {}),
  };
}

/**
 * A writer in its own process: three records that get checkpointed, two that do not, then
 * SIGKILL (no close, so no final checkpoint). It kills itself in the same turn as the last
 * append is acknowledged: a parent's kill after a "ready" line left a window in which the
 * checkpoint timer could sign the last record, and the test then had nothing unsigned to recover.
 */
async function killedWriter(s: Setup): Promise<void> {
  const script = `
    import { AuditLog } from ${JSON.stringify(path.join(ROOT, 'dist', 'src', 'audit', 'open-audit-log.js'))};
    import { loadSigner } from ${JSON.stringify(path.join(ROOT, 'dist', 'src', 'audit', 'note.js'))};
    const log = await AuditLog.open({ path: ${JSON.stringify(s.file)}, durability: 'fsync', batchMs: 5, genesis: true,
      checkpoint: { signer: loadSigner(${JSON.stringify(s.key)}), everyRecords: 100000, everyMs: ${EVERY_MS}, origin: 'bulwark/audit/restart' } });
    for (let i = 0; i < 3; i++) await log.append({ request_id: 'a' + i, tool: 'file_info', outcome: { status: 'ok' } });
    await new Promise((r) => setTimeout(r, ${EVERY_MS * 3}));
    await log.append({ request_id: 'b0', tool: 'file_info', outcome: { status: 'ok' } });
    await log.append({ request_id: 'b1', tool: 'file_info', outcome: { status: 'ok' } });
    process.kill(process.pid, 'SIGKILL');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('close', (c, sig) => r([c, sig])));
  if (signal !== 'SIGKILL') throw new Error(`the writer was not killed (exit ${code}): ${err}`);
}

const checkpointSizes = (s: Setup): number[] =>
  fs
    .readFileSync(path.join(path.dirname(s.file), 'audit.checkpoints.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { size: number }).size);

t.test('a writer SIGKILLed with unsigned records and restarted much later: the log verifies', async (t) => {
  const s = setup(t);
  await killedWriter(s);
  const before = checkpointSizes(s);
  t.ok(Math.max(...before) < 6, `the killed writer left records 1..6 with checkpoints only up to ${Math.max(...before)}`);
  await sleep(DOWN_MS);
  const log = await AuditLog.open(opts(s));
  await log.append({ request_id: 'c0', tool: 'file_info', outcome: { status: 'ok' } });
  await log.close();

  const recs = readAuditWithGenesis(s.file);
  const restart = recs.find((r) => r.event === 'audit.recovery' && r.recovery?.action === 'restarted');
  t.ok(restart, 'the new writer wrote a restarted recovery record');
  t.equal(restart?.seq, 7, 'right after the dead writer’s last record (seq 6)');
  t.same(restart?.recovery, { action: 'restarted', last_checkpoint_size: Math.max(...before), unsigned_from: Math.max(...before) + 1, unsigned_to: 6 });
  t.ok(checkpointSizes(s).includes(7), 'and signed a checkpoint over it at once');

  const v = await verifyFile(s.file, { publicKeys: [loadVerifier(s.pub)], signatures: 'require' });
  t.ok(v.ok, `verify passes${v.problem ? `: ${v.problem.kind} ${v.problem.message}` : ''}`);
  const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', s.file, '--public-key', s.pub], { encoding: 'utf8' });
  t.equal(cli.status, 0, `bulwark audit verify exits 0: ${cli.stdout}${cli.stderr}`);
});

t.test('a forged restart record (no key to sign after it) does not end the unsigned span', async (t) => {
  const s = setup(t);
  await killedWriter(s);
  await sleep(DOWN_MS);
  // The attacker holds the log folder, not the key: appends a restart record and a record, unsigned.
  const log = await AuditLog.open(opts(s, false));
  await log.append({ event: 'audit.recovery', recovery: { action: 'restarted', last_checkpoint_size: 4, unsigned_from: 5, unsigned_to: 6 } });
  await log.append({ request_id: 'forged', tool: 'file_info', outcome: { status: 'ok' } });
  await log.close();
  const v = await verifyFile(s.file, { publicKeys: [loadVerifier(s.pub)], signatures: 'require' });
  t.notOk(v.ok, 'verify fails');
  t.equal(v.problem?.kind, 'unsigned_gap', v.problem?.message ?? 'no problem');
});

t.test('after a restart, a long unsigned stretch in the new writer’s life still fails', async (t) => {
  const s = setup(t);
  await killedWriter(s);
  await sleep(DOWN_MS);
  const log = await AuditLog.open(opts(s));
  const t0 = Date.now();
  for (let i = 0; Date.now() - t0 < DOWN_MS; i++) {
    await log.append({ request_id: `d${i}`, tool: 'file_info', outcome: { status: 'ok' } });
    await sleep(200);
  }
  await log.close();
  const cpFile = path.join(path.dirname(s.file), 'audit.checkpoints.jsonl');
  const lines = fs.readFileSync(cpFile, 'utf8').split('\n').filter(Boolean);
  const ok = await verifyFile(s.file, { publicKeys: [loadVerifier(s.pub)], signatures: 'require' });
  t.ok(ok.ok, `as written it verifies${ok.problem ? `: ${ok.problem.kind} ${ok.problem.message}` : ''}`);
  // Remove every checkpoint after the restart's own (size 7) but the last.
  const kept = lines.filter((l, i) => (JSON.parse(l) as { size: number }).size <= 7 || i === lines.length - 1);
  t.ok(kept.length < lines.length - 1, `${lines.length - kept.length} checkpoint(s) removed`);
  fs.writeFileSync(cpFile, kept.map((l) => `${l}\n`).join(''));
  const v = await verifyFile(s.file, { publicKeys: [loadVerifier(s.pub)], signatures: 'require' });
  t.notOk(v.ok, 'verify fails');
  t.equal(v.problem?.kind, 'unsigned_gap', v.problem?.message ?? 'no problem');
});
