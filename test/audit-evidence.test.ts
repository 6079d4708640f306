import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import type { AuditLogOptions } from '../src/audit/audit-log.js';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { canonicalJson } from '../src/audit/canonical-json.js';
import { chainHash, unsealLine } from '../src/audit/chain.js';
import { generateKey, type NoteSigner } from '../src/audit/note.js';
import { verifyFile } from '../src/audit/verify.js';
import { BIN, makeSandbox } from './helpers/fixtures.js';

// Issue 12: a log is complete from its genesis, and verify needs trusted keys by default.

const KEY: NoteSigner = generateKey('evidence-test');
const PUB = KEY.encoded;

function opts(file: string, extra: Partial<AuditLogOptions> = {}): AuditLogOptions {
  return {
    path: file,
    durability: 'fsync',
    batchMs: 5,
    genesis: true,
    checkpoint: {
      signer: KEY,
      everyRecords: 5,
      everyMs: 60_000,
      origin: 'bulwark/audit/evidence',
      mirrorPath: path.join(path.dirname(file), '..', 'mirror', 'checkpoints.jsonl'),
    },
    ...extra,
  };
}

async function writeRecords(file: string, n: number, extra: Partial<AuditLogOptions> = {}, gapMs = 0): Promise<void> {
  const log = await AuditLog.open(opts(file, extra));
  for (let i = 0; i < n; i++) {
    await log.append({ request_id: `r${i}`, tool: 'read_file', pad: 'p'.repeat(300), outcome: { status: 'ok' } });
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  await log.close();
}

const readLines = (file: string): string[] => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
const writeLines = (file: string, ls: string[]): void => fs.writeFileSync(file, ls.map((l) => `${l}\n`).join(''));
const manifestFile = (dir: string): string => path.join(dir, 'audit.manifest.json');
const readManifest = (dir: string) =>
  JSON.parse(fs.readFileSync(manifestFile(dir), 'utf8')) as {
    segments: { file: string; first_seq: number; last_seq: number; prev: string; last_hash: string }[];
    active_first_seq: number;
    active_prev: string;
  };
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, 'audit', ...args], { encoding: 'utf8' });

function setup(t: Test): { dir: string; file: string; mirror: string; sbDir: string } {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const dir = path.join(sb.dir, 'log');
  return { dir, file: path.join(dir, 'audit.jsonl'), mirror: path.join(sb.dir, 'mirror', 'checkpoints.jsonl'), sbDir: sb.dir };
}

function verdict(r: ReturnType<typeof cli>): {
  ok: boolean;
  problem?: { kind: string; message: string; range?: { from: number; to: number } };
  start: { kind: string; size?: number };
} {
  return JSON.parse(r.stdout);
}

t.test('a signed log starts with a genesis record naming its stream, keys and checkpoint interval', async (t) => {
  const { file } = setup(t);
  await writeRecords(file, 7);
  const first = JSON.parse(unsealLine(readLines(file)[0]!)!.body);
  t.equal(first.seq, 1);
  t.equal(first.event, 'audit.genesis');
  t.same(first.genesis.keys, [PUB], 'the key that signs the checkpoints');
  t.same(first.genesis.checkpoint, { every_records: 5, every_ms: 60_000 });
  t.match(first.genesis.created_at, /^\d{4}-\d\d-\d\dT/);
  // A restart does not write a second one.
  await writeRecords(file, 2);
  t.equal(readLines(file).filter((l) => l.includes('"event":"audit.genesis"')).length, 1, 'one genesis record per log');
  const v = cli(['verify', file, '--public-key', PUB, '--json', '--require-genesis']);
  t.equal(v.status, 0, v.stdout + v.stderr);
  t.equal(verdict(v).start.kind, 'genesis');
});

t.test('attack: cut the head segments and rewrite the manifest to start later → head truncated', async (t) => {
  const { dir, file } = setup(t);
  await writeRecords(file, 40, { rotation: { maxBytes: 4096 } });
  const m = readManifest(dir);
  t.ok(m.segments.length >= 3, 'several segments');
  // The attacker deletes the two oldest segments and writes a manifest that starts at the third.
  const [a, b] = m.segments;
  fs.rmSync(path.join(dir, a!.file));
  fs.rmSync(path.join(dir, b!.file));
  fs.writeFileSync(manifestFile(dir), JSON.stringify({ ...m, segments: m.segments.slice(2) }));
  const gone = b!.last_seq;
  for (const args of [['--public-key', PUB], ['--no-signatures']]) {
    const v = cli(['verify', file, '--json', ...args]);
    t.equal(v.status, 1, `exit 1 (${args.join(' ')})`);
    const r = verdict(v);
    t.equal(r.problem?.kind, 'head_truncated');
    t.equal(r.problem?.message.startsWith(`head truncated: records 1..${gone} missing`), true, r.problem?.message ?? '');
    t.same(r.problem?.range, { from: 1, to: gone });
  }
  const human = cli(['verify', file, '--public-key', PUB]);
  t.match(human.stdout, new RegExp(`DAMAGED: .*head_truncated: head truncated: records 1\\.\\.${gone} missing`));
});

t.test('attack: cut the first 10 of 30 records of an unrotated log → head truncated (with or without a rewritten manifest)', async (t) => {
  for (const signed of [false, true]) {
    const { dir, file } = setup(t);
    await writeRecords(file, 30, signed ? {} : { checkpoint: undefined, genesis: false });
    const ls = readLines(file);
    t.equal(ls.length, signed ? 31 : 30);
    const cutAt = signed ? 11 : 10; // the first 10 call records (and the genesis record of a signed log)
    const tenth = unsealLine(ls[cutAt - 1]!)!.hash;
    writeLines(file, ls.slice(cutAt));
    const keyArgs = signed ? ['--public-key', PUB] : [];
    // The bare cut: the first line holds seq cutAt+1.
    let v = cli(['verify', file, '--json', ...keyArgs]);
    t.equal(v.status, 1, `${signed ? 'signed' : 'unsigned'}: the bare cut fails`);
    t.equal(verdict(v).problem?.kind, 'head_truncated', verdict(v).problem?.message ?? '');
    t.match(verdict(v).problem?.message, `records 1..${cutAt} missing`);
    // The manifest rewritten to start where the cut leaves the log (this passed before issue 12).
    const m = readManifest(dir);
    fs.writeFileSync(manifestFile(dir), JSON.stringify({ ...m, active_first_seq: cutAt + 1, active_prev: tenth }));
    v = cli(['verify', file, '--json', ...keyArgs]);
    t.equal(v.status, 1, `${signed ? 'signed' : 'unsigned'}: the cut with a rewritten manifest fails`);
    t.equal(verdict(v).problem?.kind, 'head_truncated');
    t.same(verdict(v).problem?.range, { from: 1, to: cutAt });
    const lib = await verifyFile(file, signed ? { publicKeys: [KEY] } : {});
    t.equal(lib.ok, false, 'the library verify agrees');
  }
});

t.test('a signed prune statement lets a pruned log verify; without it, or forged, it does not', async (t) => {
  const { dir, file, sbDir } = setup(t);
  const keyFile = path.join(sbDir, 'k.key');
  fs.writeFileSync(keyFile, `${KEY.encodedPrivate}\n`, { mode: 0o600 });
  const configPath = path.join(sbDir, 'prune.yaml');
  fs.writeFileSync(
    configPath,
    stringify({ audit: { path: file, checkpoint: { private_key: keyFile, public_keys: [PUB], origin: 'bulwark/audit/evidence' } } }),
  );
  await writeRecords(file, 40, { rotation: { maxBytes: 4096 } });
  const m = readManifest(dir);
  const cutSeg = m.segments[1]!;
  const p = cli(['prune', '--before', String(cutSeg.last_seq + 1), file, '--config', configPath]);
  t.equal(p.status, 0, p.stdout + p.stderr);
  t.notOk(fs.existsSync(path.join(dir, m.segments[0]!.file)), 'the oldest segment is gone');
  t.notOk(fs.existsSync(path.join(dir, cutSeg.file)), 'so is the second');
  const stmtFile = path.join(dir, 'audit.prune.json');
  const stmt = JSON.parse(fs.readFileSync(stmtFile, 'utf8'));
  t.equal(stmt.size, cutSeg.last_seq);
  t.match(stmt.note, /\nprune\n\n— evidence-test /, 'a signed note with the prune line');
  let v = cli(['verify', file, '--public-key', PUB, '--json', '--merkle']);
  t.equal(v.status, 0, v.stdout + v.stderr);
  t.equal(verdict(v).start.kind, 'pruned');
  // Without a key the statement cannot be trusted.
  v = cli(['verify', file, '--no-signatures', '--json']);
  t.equal(v.status, 1, 'an unchecked prune statement is no anchor');
  // A statement that claims a larger cut (to hide more) breaks its signature.
  const forged = { ...stmt, note: stmt.note.replace(`\n${stmt.size}\n`, `\n${stmt.size + 3}\n`) };
  fs.writeFileSync(stmtFile, JSON.stringify(forged));
  v = cli(['verify', file, '--public-key', PUB, '--json']);
  t.equal(v.status, 1);
  t.equal(verdict(v).problem?.kind, 'bad_signature');
  // An ordinary checkpoint is not a prune statement.
  const cpLine = readLines(path.join(dir, 'audit.checkpoints.jsonl'))
    .map((l) => JSON.parse(l))
    .find((c) => c.size === cutSeg.last_seq);
  if (cpLine) {
    fs.writeFileSync(stmtFile, JSON.stringify({ v: 1, note: cpLine.note, size: cpLine.size, frontier: cpLine.frontier }));
    v = cli(['verify', file, '--public-key', PUB, '--json']);
    t.equal(v.status, 1, 'a checkpoint without the prune line is refused');
    t.match(verdict(v).problem?.message, /no "prune" line/);
    // But the auditor may start from that checkpoint explicitly.
    fs.rmSync(stmtFile);
    const note = path.join(sbDir, 'trusted.note');
    fs.writeFileSync(note, cpLine.note);
    v = cli(['verify', file, '--public-key', PUB, '--json', '--from-checkpoint', note]);
    t.equal(v.status, 0, v.stdout + v.stderr);
    t.equal(verdict(v).start.kind, 'from_checkpoint');
  } else {
    fs.rmSync(stmtFile);
  }
  // No statement at all: the head is simply gone.
  if (fs.existsSync(stmtFile)) fs.rmSync(stmtFile);
  v = cli(['verify', file, '--public-key', PUB, '--json']);
  t.equal(v.status, 1);
  t.equal(verdict(v).problem?.kind, 'head_truncated');
});

t.test('chained prunes: a second prune names the first with a consistency proof and the log still verifies; cut heads still fail', async (t) => {
  const { dir, file, sbDir } = setup(t);
  const keyFile = path.join(sbDir, 'k.key');
  fs.writeFileSync(keyFile, `${KEY.encodedPrivate}\n`, { mode: 0o600 });
  const configPath = path.join(sbDir, 'prune.yaml');
  fs.writeFileSync(
    configPath,
    stringify({ audit: { path: file, checkpoint: { private_key: keyFile, public_keys: [PUB], origin: 'bulwark/audit/evidence' } } }),
  );
  await writeRecords(file, 80, { rotation: { maxBytes: 4096 } });
  const m = readManifest(dir);
  t.ok(m.segments.length >= 6, `${m.segments.length} rotated segments`);
  const first = cli(['prune', '--before', String(m.segments[1]!.last_seq + 1), file, '--config', configPath]);
  t.equal(first.status, 0, first.stdout + first.stderr);
  const stmtFile = path.join(dir, 'audit.prune.json');
  const firstStmt = JSON.parse(fs.readFileSync(stmtFile, 'utf8'));
  t.equal(firstStmt.previous, undefined, 'the first prune names no earlier one');

  const second = cli(['prune', '--before', String(m.segments[3]!.last_seq + 1), file, '--config', configPath]);
  t.equal(second.status, 0, second.stdout + second.stderr);
  t.match(second.stdout, `pruned records ${m.segments[1]!.last_seq + 1}..${m.segments[3]!.last_seq} (2 segment(s)), after 1 earlier prune(s)`);
  for (const seg of m.segments.slice(0, 4)) t.notOk(fs.existsSync(path.join(dir, seg.file)), `${seg.file} is gone`);
  const stmt = JSON.parse(fs.readFileSync(stmtFile, 'utf8'));
  t.equal(stmt.size, m.segments[3]!.last_seq);
  t.equal(stmt.previous.length, 1, 'the second statement names the first');
  t.equal(stmt.previous[0].note, firstStmt.note, 'with its signed note');
  t.equal(stmt.previous[0].size, firstStmt.size);
  t.ok(stmt.previous[0].consistency.length > 0, 'and a consistency proof from its tree to the new one');
  let v = cli(['verify', file, '--public-key', PUB, '--json', '--merkle']);
  t.equal(v.status, 0, `the twice-pruned log verifies: ${v.stdout}${v.stderr}`);
  t.equal(verdict(v).start.kind, 'pruned');
  t.equal(verdict(v).start.size, m.segments[3]!.last_seq);

  // A third prune chains on.
  const third = cli(['prune', '--before', String(m.segments[4]!.last_seq + 1), file, '--config', configPath]);
  t.equal(third.status, 0, third.stdout + third.stderr);
  const stmt3 = JSON.parse(fs.readFileSync(stmtFile, 'utf8'));
  t.same(
    stmt3.previous.map((l: { size: number }) => l.size),
    [firstStmt.size, stmt.size],
    'the third names both earlier prunes, oldest first',
  );
  v = cli(['verify', file, '--public-key', PUB, '--json', '--merkle']);
  t.equal(v.status, 0, v.stdout + v.stderr);

  // An earlier prune's proof altered: the chain of prunes no longer describes one log.
  const bad = { ...stmt3, previous: [{ ...stmt3.previous[0], consistency: [...stmt3.previous[0].consistency].reverse() }, stmt3.previous[1]] };
  if (stmt3.previous[0].consistency.length > 1) {
    fs.writeFileSync(stmtFile, JSON.stringify(bad));
    v = cli(['verify', file, '--public-key', PUB, '--json']);
    t.equal(v.status, 1, 'a broken consistency proof between prunes fails');
    t.match(verdict(v).problem?.message, /is not a prefix of the tree/);
  }
  // An earlier prune's note replaced by an ordinary checkpoint: refused.
  const cpNote = readLines(path.join(dir, 'audit.checkpoints.jsonl')).map((l) => JSON.parse(l))[0].note;
  fs.writeFileSync(stmtFile, JSON.stringify({ ...stmt3, previous: [{ ...stmt3.previous[0], note: cpNote }, stmt3.previous[1]] }));
  v = cli(['verify', file, '--public-key', PUB, '--json']);
  t.equal(v.status, 1);
  t.match(verdict(v).problem?.message, /earlier prune 1: the note has no "prune" line/);
  fs.writeFileSync(stmtFile, JSON.stringify(stmt3));

  // The head cut beyond the last prune, without a statement: still head truncated.
  fs.rmSync(path.join(dir, m.segments[5]!.file));
  v = cli(['verify', file, '--public-key', PUB, '--json']);
  t.equal(v.status, 1, 'a segment deleted after the last prune fails');
  t.equal(verdict(v).problem?.kind, 'head_truncated', verdict(v).problem?.message ?? 'no problem');
});

t.test('trusted keys by default: a replaced checkpoint signature without keys is exit 1, not a warning', async (t) => {
  const { dir, file } = setup(t);
  await writeRecords(file, 12);
  // The attacker re-signs a checkpoint with their own key of the same name.
  const evil = generateKey('evidence-test');
  const cpFile = path.join(dir, 'audit.checkpoints.jsonl');
  const ls = readLines(cpFile);
  const cp = JSON.parse(ls[0]!);
  const text = cp.note.slice(0, cp.note.lastIndexOf('\n\n') + 1);
  const { signNote } = await import('../src/audit/note.js');
  cp.note = signNote(text, [evil]);
  ls[0] = JSON.stringify(cp);
  writeLines(cpFile, ls);
  let v = cli(['verify', file, '--json']);
  t.equal(v.status, 1, 'no key given: exit 1');
  t.equal(verdict(v).problem?.kind, 'no_trusted_key');
  v = cli(['verify', file]);
  t.match(v.stdout, /no trusted public key was given: pass --public-key/);
  v = cli(['verify', file, '--json', '--public-key', PUB]);
  t.equal(v.status, 1);
  t.equal(verdict(v).problem?.kind, 'bad_signature', 'with the key: the replaced signature is named');
  v = cli(['verify', file, '--json', '--trust-genesis']);
  t.equal(v.status, 1, 'the key pinned by the genesis record does not sign it either');
  t.equal(verdict(v).problem?.kind, 'bad_signature');
  t.match(JSON.stringify((JSON.parse(v.stdout) as { warnings: string[] }).warnings), /--trust-genesis/, 'trusting the genesis key is said out loud');
  v = cli(['verify', file, '--no-signatures']);
  t.equal(v.status, 0, 'explicitly unchecked signatures: the chain alone is intact');
  t.match(v.stderr, /--no-signatures: checkpoint signatures are not checked/);
});

t.test('rewrite plus deleting the checkpoints fails: a signed log with a span longer than its interval and no checkpoint', async (t) => {
  const { dir, file, mirror } = setup(t);
  // 30 records over about 3 s, signed at least every 100 ms.
  await writeRecords(file, 30, { checkpoint: { signer: KEY, everyRecords: 1000, everyMs: 100, origin: 'bulwark/audit/evidence' } }, 100);
  const intact = await verifyFile(file, { publicKeys: [KEY], checkpointIntervalMs: 100 });
  t.equal(intact.ok, true, JSON.stringify(intact.problem));
  t.ok(intact.checkpoints.matched >= 10, `signed every ~100 ms (${intact.checkpoints.matched} checkpoints)`);
  // The attacker rewrites record 5, recomputes the chain, and removes the checkpoints.
  const ls = readLines(file);
  let prev = unsealLine(ls[3]!)!.hash;
  for (let j = 4; j < ls.length; j++) {
    const rec = JSON.parse(unsealLine(ls[j]!)!.body);
    if (rec.seq === 5) rec.tool = 'delete_everything';
    rec.prev = prev;
    const body = canonicalJson(rec);
    const hash = chainHash(prev, body);
    ls[j] = `${body.slice(0, -1)},"hash":"${hash}"}`;
    prev = hash;
  }
  writeLines(file, ls);
  fs.rmSync(path.join(dir, 'audit.checkpoints.jsonl'));
  fs.rmSync(mirror, { force: true });
  const r = await verifyFile(file, { publicKeys: [KEY], checkpointIntervalMs: 100 });
  t.equal(r.ok, false);
  t.equal(r.problem?.kind, 'unsigned_gap', r.problem?.message ?? '');
  t.match(r.problem?.message, /no checkpoint signed by a trusted key covers records 1\.\.31 /);
  // The same from the command line with the genesis key (an unsigned genesis is believed only below 1 s).
  const v = cli(['verify', file, '--json', '--trust-genesis']);
  t.equal(v.status, 1, v.stdout);
  t.equal(verdict(v).problem?.kind, 'unsigned_gap');
});

t.test('rollback: the report names every record that is gone, up to the largest signed size', async (t) => {
  const { dir, file, mirror } = setup(t);
  await writeRecords(file, 20);
  const snap = `${dir}-snap`;
  fs.cpSync(dir, snap, { recursive: true });
  await writeRecords(file, 100);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(snap, dir, { recursive: true });
  const r = await verifyFile(file, { publicKeys: [KEY], mirrors: [mirror] });
  t.equal(r.problem?.kind, 'rollback');
  const last = r.last_seq;
  t.same(r.problem?.range, { from: last + 1, to: 121 }, '100 records gone, not just up to the first checkpoint past the end');
  t.match(r.problem?.message, `records ${last + 1}..121 (${121 - last} record(s)) are gone`);
});
