import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import t, { type Test } from 'tap';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { canonicalJson } from '../src/audit/canonical-json.js';
import { chainHash, unsealLine } from '../src/audit/chain.js';
import { logPaths } from '../src/audit/files.js';
import { Frontier, leafHash } from '../src/audit/merkle.js';
import { checkpointText, generateKey, openNote, signNote } from '../src/audit/note.js';
import { buildConsistencyProof } from '../src/audit/proofs.js';
import { fileSegments, verifyFile } from '../src/audit/verify.js';
import { WitnessClient, cosignaturesPath } from '../src/audit/witness-client.js';
import { checkCosignatures, cosign, cosignerKeyId, generateWitnessKey, parseWitnessVerifier } from '../src/audit/witness-cosignature.js';
import { BIN, makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

// Issue 12 (3): C2SP tlog-witness both ways, and the attack a witness exists for: the log host AND
// the log's signing key rewrite history and re-sign it.

const LOG_KEY = generateKey('bulwark-log');
const ORIGIN = 'bulwark/audit/witness-test';

interface Running {
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

async function startWitness(t: Test, keyFile: string, stateDir: string): Promise<Running> {
  const child = spawn(
    process.execPath,
    [BIN, 'witness', 'serve', '--key', keyFile, '--state', stateDir, '--log', `${ORIGIN}=${LOG_KEY.encoded}`, '--listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`witness exited ${code}: ${err}`)));
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    const done = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await done;
  };
  t.teardown(stop);
  return { url, child, stop };
}

function setup(t: Test) {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const wkey = generateWitnessKey('witness.test/w1');
  const keyFile = path.join(sb.dir, 'w1.key');
  fs.writeFileSync(keyFile, `${wkey.encodedPrivate}\n`, { mode: 0o600 });
  const dir = path.join(sb.dir, 'log');
  return { sb, wkey, keyFile, stateDir: path.join(sb.dir, 'witness-state'), dir, file: path.join(dir, 'audit.jsonl') };
}

/** A signed log whose checkpoints go to the witness; returns when every cosignature is stored. */
async function writeWitnessedLog(file: string, url: string, wkeyEncoded: string, n: number): Promise<void> {
  const client = new WitnessClient(logPaths(file), [{ name: 'w1', url, key: parseWitnessVerifier(wkeyEncoded) }], (m, d) =>
    process.stderr.write(`${m} ${JSON.stringify(d)}\n`),
  );
  const log = await AuditLog.open({
    path: file,
    durability: 'fsync',
    batchMs: 5,
    genesis: true,
    checkpoint: { signer: LOG_KEY, everyRecords: 5, everyMs: 60_000, origin: ORIGIN },
    onCheckpoint: (note, size) => client.submit(note, size),
  });
  for (let i = 0; i < n; i++) await log.append({ request_id: `r${i}`, tool: 'read_file', outcome: { status: 'ok' } });
  await log.close();
  await client.idle();
}

/**
 * A fresh connection per request (agent: false): the CLI runs between posts block this process's
 * event loop (spawnSync), so a pooled keep-alive socket the witness closed meanwhile would be reused
 * before its close is seen ("other side closed").
 */
function post(url: string, body: string): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/add-checkpoint`, { method: 'POST', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const readLines = (f: string): string[] => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean);
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, 'audit', ...args], { encoding: 'utf8' });

t.test('cosignature/v1: key id with 0x04, timestamped signature over the header, time line and checkpoint text', async (t) => {
  const w = generateWitnessKey('witness.example/w1');
  const text = `${ORIGIN}\n7\n${Buffer.alloc(32, 1).toString('base64')}\n`;
  const line = cosign(text, w, 1679315147);
  const blob = Buffer.from(line.trim().split(' ').at(-1)!, 'base64');
  t.equal(blob.length, 4 + 8 + 64, 'key id, u64 timestamp, Ed25519 signature');
  // NAME+KEYID+BASE64: the base64 may itself hold "+".
  const pub = Buffer.from(w.encoded.slice(w.encoded.indexOf('+', w.encoded.indexOf('+') + 1) + 1), 'base64');
  t.equal(pub[0], 0x04, 'the verifier key is type 0x04');
  t.same(
    blob.subarray(0, 4),
    crypto
      .createHash('sha256')
      .update('witness.example/w1\n')
      .update(Buffer.from([0x04]))
      .update(pub.subarray(1))
      .digest()
      .subarray(0, 4),
  );
  t.same(blob.subarray(0, 4), cosignerKeyId('witness.example/w1', pub.subarray(1)));
  t.equal(blob.readBigUInt64BE(4), 1679315147n);
  const msg = Buffer.from(`cosignature/v1\ntime 1679315147\n${text}`);
  t.ok(crypto.verify(null, msg, w.publicKey, blob.subarray(12)), "the signed message is exactly the spec's");
  t.equal(checkCosignatures(text, [line], [parseWitnessVerifier(w.encoded)]).length, 1);
  t.equal(checkCosignatures(text, [line], [parseWitnessVerifier(generateWitnessKey('other/w').encoded)]).length, 0, 'unknown keys are ignored');
  t.throws(() => checkCosignatures(text.replace('\n7\n', '\n8\n'), [line], [parseWitnessVerifier(w.encoded)]), 'a known key that does not verify is an error');
});

t.test('witness serve: cosigns checkpoints that extend what it saw; durable state; spec status codes', async (t) => {
  const { wkey, keyFile, stateDir, file } = setup(t);
  const w = await startWitness(t, keyFile, stateDir);
  await writeWitnessedLog(file, w.url, wkey.encoded, 23);
  const cos = readLines(cosignaturesPath(logPaths(file))).map((l) => JSON.parse(l));
  t.ok(cos.length >= 4, `cosignatures stored beside the log (${cos.length})`);
  const sizes = cos.map((c) => c.size as number);
  t.same(
    sizes,
    [...sizes].sort((a, b) => a - b),
    'in order',
  );
  t.equal(sizes.at(-1), 24, 'the final checkpoint (genesis + 23 records) is cosigned');
  const state = readLines(path.join(stateDir, 'state.jsonl'))
    .map((l) => JSON.parse(l))
    .filter((x) => x.origin === ORIGIN)
    .at(-1);
  t.equal(state.size, 24, 'the witness persisted the latest cosigned size');

  const last = cos.at(-1)!.note as string;
  // A stale old size: 409 with the witness's size, as text/x.tlog.size.
  let r = await post(w.url, `old 0\n\n${last}`);
  t.equal(r.status, 409);
  t.equal(r.type, 'text/x.tlog.size');
  t.equal(r.text, '24\n');
  // Unknown origin: 404. Not signed by a trusted key: 403. Old larger than the checkpoint: 400.
  const other = signNote(checkpointText({ origin: 'someone/else', size: 1, root: Buffer.alloc(32) }), [LOG_KEY]);
  t.equal((await post(w.url, `old 0\n\n${other}`)).status, 404);
  const forger = generateKey('bulwark-log');
  const unsigned = signNote(openNote(last, []).text, [forger]);
  t.equal((await post(w.url, `old 24\n\n${unsigned}`)).status, 403);
  t.equal((await post(w.url, `old 30\n\n${last}`)).status, 400);
  t.equal((await post(w.url, `garbage`)).status, 400);
  // The same checkpoint again: cosigned (same size, same root).
  r = await post(w.url, `old 24\n\n${last}`);
  t.equal(r.status, 200);
  t.match(r.text, /^— witness\.test\/w1 [A-Za-z0-9+/]+=*\n$/);

  // Restarted (after a torn write at the end of its state): the state survives, so a resubmission
  // from size 0 still conflicts.
  await w.stop();
  fs.appendFileSync(path.join(stateDir, 'state.jsonl'), '{"origin":"bulwark/au');
  const w2 = await startWitness(t, keyFile, stateDir);
  r = await post(w2.url, `old 0\n\n${last}`);
  t.equal(r.status, 409, 'after a restart the witness still knows size 24');
  t.equal(r.text, '24\n');
  await w2.stop();
  fs.writeFileSync(path.join(stateDir, 'state.jsonl'), 'garbage\n');
  const broken = spawnSync(
    process.execPath,
    [BIN, 'witness', 'serve', '--key', keyFile, '--state', stateDir, '--log', `${ORIGIN}=${LOG_KEY.encoded}`, '--listen', '127.0.0.1:0'],
    { encoding: 'utf8', timeout: 10_000 },
  );
  t.not(broken.status, 0, 'a witness whose state is unreadable refuses to start');
  t.match(broken.stderr, /must be retired, not restarted/);

  // Verify with the witness key: intact and witnessed up to 24.
  const v = cli(['verify', file, '--public-key', LOG_KEY.encoded, '--witness-key', wkey.encoded, '--json']);
  t.equal(v.status, 0, v.stdout + v.stderr);
  t.equal(JSON.parse(v.stdout).witnessed.size, 24);
  // The auditor's report shows the witness status.
  const html = path.join(path.dirname(file), '..', 'report.html');
  const rep = spawnSync(process.execPath, [BIN, 'audit', 'report', file, '--html', html, '--public-key', LOG_KEY.encoded, '--witness-key', wkey.encoded], {
    encoding: 'utf8',
  });
  t.equal(rep.status, 0, rep.stdout + rep.stderr);
  t.match(fs.readFileSync(html, 'utf8'), /witnessed up to size 24 by witness\.test\/w1 \(1 of 1 witness key\(s\) required\)/);
});

/**
 * The attacker holds the log host and the log's signing key: they rewrite record 5, recompute the
 * chain, and re-sign a checkpoint at every size that had one. Everything the log host holds is
 * consistent again.
 */
function rewriteAndResign(file: string): { lastNote: string; lines: string[] } {
  const p = logPaths(file);
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
  fs.writeFileSync(file, ls.map((l) => `${l}\n`).join(''));
  const m = JSON.parse(fs.readFileSync(p.manifest, 'utf8'));
  fs.writeFileSync(p.manifest, JSON.stringify(m));
  const sizes = readLines(p.checkpoints).map((l) => JSON.parse(l).size as number);
  const out: string[] = [];
  let lastNote = '';
  for (const size of sizes) {
    const f = new Frontier();
    for (let i = 0; i < size; i++) f.appendHash(leafHash(Buffer.from(ls[i]!)));
    const head = unsealLine(ls[size - 1]!)!.hash;
    lastNote = signNote(checkpointText({ origin: ORIGIN, size, root: f.root(), chainHead: head, time: new Date().toISOString() }), [LOG_KEY]);
    out.push(JSON.stringify({ note: lastNote, size, frontier: f.snapshot().map((b) => b.toString('base64')) }));
  }
  fs.writeFileSync(p.checkpoints, out.map((l) => `${l}\n`).join(''));
  return { lastNote, lines: ls };
}

t.test('attack: the log host AND the signing key rewrite history; the witness key rejects it, the witness refuses the fork', async (t) => {
  const { wkey, keyFile, stateDir, file } = setup(t);
  const w = await startWitness(t, keyFile, stateDir);
  await writeWitnessedLog(file, w.url, wkey.encoded, 23);
  const cosFile = cosignaturesPath(logPaths(file));
  const cosKept = fs.readFileSync(cosFile, 'utf8');
  const { lastNote, lines } = rewriteAndResign(file);

  // What the attacker achieves without witnesses: the re-signed log verifies under the log's key.
  fs.rmSync(cosFile);
  let v = cli(['verify', file, '--public-key', LOG_KEY.encoded, '--json']);
  t.equal(v.status, 0, 'without a witness key, a rewrite re-signed with the log key passes (the threat witnesses answer)');
  // With the witness key: no checkpoint of this history is cosigned.
  v = cli(['verify', file, '--public-key', LOG_KEY.encoded, '--witness-key', wkey.encoded, '--json']);
  t.equal(v.status, 1);
  t.equal(JSON.parse(v.stdout).problem.kind, 'unwitnessed');
  // Keeping the old cosignatures does not help: the log no longer matches the cosigned checkpoints.
  fs.writeFileSync(cosFile, cosKept);
  v = cli(['verify', file, '--public-key', LOG_KEY.encoded, '--witness-key', wkey.encoded, '--json']);
  t.equal(v.status, 1);
  t.equal(JSON.parse(v.stdout).problem.kind, 'modified', JSON.parse(v.stdout).problem.message);

  // The attacker asks the witness to cosign the forked checkpoint.
  let r = await post(w.url, `old 24\n\n${lastNote}`);
  t.equal(r.status, 409, 'same size, another root: refused');
  // Or a bigger fork, with the honest-looking consistency proof from their own history.
  const extra = JSON.parse(unsealLine(lines.at(-1)!)!.body);
  const next = { ...extra, seq: extra.seq + 1, prev: unsealLine(lines.at(-1)!)!.hash, request_id: 'forged' };
  const body = canonicalJson(next);
  const h = chainHash(next.prev, body);
  fs.appendFileSync(file, `${body.slice(0, -1)},"hash":"${h}"}\n`);
  const all = readLines(file);
  const f = new Frontier();
  for (const l of all) f.appendHash(leafHash(Buffer.from(l)));
  const bigger = signNote(checkpointText({ origin: ORIGIN, size: all.length, root: f.root(), chainHead: h }), [LOG_KEY]);
  const proof = await buildConsistencyProof(fileSegments(file).segments, 24, all.length, null, null);
  r = await post(w.url, `old 24\n${proof.proof.map((x) => `${x}\n`).join('')}\n${bigger}`);
  t.equal(r.status, 422, 'a checkpoint that does not extend what the witness cosigned: refused (422)');
  const refused = readLines(path.join(stateDir, 'refused.jsonl')).map((l) => JSON.parse(l));
  t.same(
    refused.map((x) => x.status),
    [409, 422],
    'the witness kept both forked checkpoints as evidence',
  );
  t.equal(
    readLines(path.join(stateDir, 'state.jsonl'))
      .map((l) => JSON.parse(l))
      .at(-1).size,
    24,
    'its state is unchanged',
  );
});

t.test('k of n: a quorum of witness keys', async (t) => {
  const { wkey, keyFile, stateDir, file } = setup(t);
  const w = await startWitness(t, keyFile, stateDir);
  await writeWitnessedLog(file, w.url, wkey.encoded, 6);
  const absent = generateWitnessKey('witness.test/w2');
  let r = await verifyFile(file, { publicKeys: [LOG_KEY], witnessKeys: [parseWitnessVerifier(wkey.encoded), parseWitnessVerifier(absent.encoded)] });
  t.equal(r.problem?.kind, 'unwitnessed', '2 of 2 required, 1 cosigned');
  r = await verifyFile(file, {
    publicKeys: [LOG_KEY],
    witnessKeys: [parseWitnessVerifier(wkey.encoded), parseWitnessVerifier(absent.encoded)],
    witnessQuorum: 1,
  });
  t.equal(r.ok, true, JSON.stringify(r.problem));
  t.same(r.witnessed?.by, ['witness.test/w1']);
});

t.test('the server with audit.witnesses configured: its checkpoints are cosigned and verify --config holds it to them', async (t) => {
  const { sb, wkey, keyFile, stateDir } = setup(t);
  const w = await startWitness(t, keyFile, stateDir);
  const logKeyFile = path.join(sb.dir, 'log.key');
  fs.writeFileSync(logKeyFile, `${LOG_KEY.encodedPrivate}\n`, { mode: 0o600 });
  const auditPath = path.join(sb.dir, 'gate-audit', 'audit.jsonl');
  const sb2 = makeSandbox({
    audit: {
      path: auditPath,
      checkpoint: { private_key: logKeyFile, public_keys: [LOG_KEY.encoded], every_records: 3, origin: ORIGIN },
      witnesses: [{ name: 'w1', url: w.url, key: wkey.encoded }],
    },
  });
  t.teardown(sb2.cleanup);
  const gate = await inProcessGate(sb2.configPath);
  for (let i = 0; i < 10; i++) await gate.call('read_file', { path: 'hello.txt' });
  await gate.close();
  // Cosignatures arrive off the call path: wait for the final checkpoint's.
  let r: { ok: boolean; records: number; witnessed?: { size: number } } = { ok: false, records: -1 };
  for (let i = 0; i < 100; i++) {
    const v = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--config', sb2.configPath, '--json'], { encoding: 'utf8' });
    r = JSON.parse(v.stdout);
    if (r.ok && r.witnessed?.size === r.records) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  t.equal(r.ok, true, JSON.stringify(r));
  t.equal(r.records, 11, 'the genesis record and 10 calls');
  t.equal(r.witnessed?.size, 11, 'the configured witness cosigned the final checkpoint; verify used the configured witness key');
  t.ok(readLines(cosignaturesPath(logPaths(auditPath))).length >= 3, 'a cosignature per checkpoint');
});

t.test('the client builds a consistency proof from the checkpoint at the old size and the records after it', async (t) => {
  const { dir, file } = setup(t);
  const log = await AuditLog.open({
    path: file,
    durability: 'fsync',
    batchMs: 5,
    genesis: true,
    rotation: { maxBytes: 2048 },
    checkpoint: { signer: LOG_KEY, everyRecords: 3, everyMs: 60_000, origin: ORIGIN },
  });
  for (let i = 0; i < 60; i++) await log.append({ request_id: `r${i}`, tool: 'read_file', pad: 'x'.repeat(100) });
  await log.close();
  const p = logPaths(file);
  const cps = readLines(p.checkpoints).map((l) => JSON.parse(l) as { note: string; size: number });
  t.ok(fs.readdirSync(dir).filter((f) => /audit\.\d{12}\.jsonl$/.test(f)).length >= 3, 'several segments');
  const client = new WitnessClient(p, []);
  const pairs: [(typeof cps)[number], (typeof cps)[number]][] = [];
  for (let i = 0; i < cps.length; i += 2) for (let j = i + 1; j < cps.length; j += 3) pairs.push([cps[i]!, cps[j]!]);
  let same = 0;
  for (const [a, b] of pairs) {
    if (a.size >= b.size) continue;
    const slow = await buildConsistencyProof(fileSegments(file).segments, a.size, b.size, null, null);
    const fast = await client.consistencyProof(a.size, b.size, b.note);
    if (JSON.stringify(fast) === JSON.stringify(slow.proof)) same++;
    else t.fail(`proof ${a.size} → ${b.size} differs`);
  }
  t.ok(same >= 10, `${same} proofs equal to the ones built from the whole log`);
  // With the oldest segment gone, a whole-log proof is impossible; the checkpoint-based one still works.
  const m = JSON.parse(fs.readFileSync(p.manifest, 'utf8'));
  const firstSeg = m.segments[0];
  const later = cps.filter((c) => c.size > firstSeg.last_seq);
  const [a, b] = [later[1]!, later.at(-1)!];
  const expect = (await buildConsistencyProof(fileSegments(file).segments, a.size, b.size, null, null)).proof;
  fs.rmSync(path.join(dir, firstSeg.file));
  t.same(await client.consistencyProof(a.size, b.size, b.note), expect, 'built from the checkpoint at the old size and the records after it only');
});
