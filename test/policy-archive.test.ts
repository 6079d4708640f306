import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { openPolicyArchive, policyRevision, PolicyArchiveError } from '../src/policy/archive.js';
import { readPolicyData, WasmPolicyEngine } from '../src/policy/engine.js';
import { readAudit, ROOT, makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

const WASM = path.join(ROOT, 'policies', 'policy.wasm');
const DATA = readPolicyData(path.join(ROOT, 'policies', 'data.json'));

function shippedPolicy(): { wasm: Uint8Array; data: string } {
  return { wasm: new Uint8Array(fs.readFileSync(WASM)), data: JSON.stringify(DATA) };
}

t.test('the archive computes the revision the engine computes, and round-trips a policy', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const engine = await WasmPolicyEngine.load(WASM, DATA, 64 * 1024);
  const files = shippedPolicy();
  t.equal(policyRevision(files.wasm, files.data), engine.revision, 'same revision as the engine');
  const archive = openPolicyArchive(path.join(sb.dir, 'policies'));
  t.equal(await archive.get(engine.revision), null, 'nothing archived yet: null, not an error');
  await archive.put(engine.revision, files);
  await archive.put(engine.revision, files); // idempotent
  const back = await archive.get(engine.revision);
  t.ok(back, 'archived');
  t.same(Buffer.from(back!.wasm), Buffer.from(files.wasm), 'the wasm bytes');
  t.equal(back!.data, files.data, 'the data JSON');
  const entries = fs.readdirSync(archive.dir);
  t.same(entries, [engine.revision], 'one entry, no temporary folders left');
  t.same(fs.readdirSync(path.join(archive.dir, engine.revision)).sort(), ['data.json', 'policy.wasm'], 'the files opa eval reads');
});

t.test('a put whose files do not hash to the revision is refused', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const archive = openPolicyArchive(path.join(sb.dir, 'policies'));
  const files = shippedPolicy();
  const rev = policyRevision(files.wasm, files.data);
  const other = { wasm: files.wasm, data: JSON.stringify({ bulwark: { roles: {} } }) };
  await t.rejects(archive.put(rev, other), PolicyArchiveError, 'other data under this revision');
  t.equal(await archive.get(rev), null, 'nothing was written');
  await t.rejects(archive.put('../../etc', files), PolicyArchiveError, 'a path is not a revision');
  await t.rejects(archive.get('../x'), PolicyArchiveError, 'nor on read');
});

t.test('a forged or damaged entry is refused on read, and put does not paper over it', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const archive = openPolicyArchive(path.join(sb.dir, 'policies'));
  const files = shippedPolicy();
  const rev = policyRevision(files.wasm, files.data);
  await archive.put(rev, files);
  // The attacker swaps the data file for one that allows more, keeping the revision's folder name.
  const dataFile = path.join(archive.dir, rev, 'data.json');
  fs.writeFileSync(dataFile, JSON.stringify({ bulwark: { roles: { reader: { tools: ['*'] } } } }));
  await t.rejects(archive.get(rev), /does not hash to its revision/, 'forged data refused');
  await t.rejects(archive.put(rev, files), /does not hash to its revision/, 'a later put reports the damage rather than overwrite it');
  fs.rmSync(dataFile);
  await t.rejects(archive.get(rev), /incomplete/, 'a half entry is damage, not absence');
  // A wasm byte flipped.
  fs.writeFileSync(dataFile, files.data);
  const wasmFile = path.join(archive.dir, rev, 'policy.wasm');
  const bytes = fs.readFileSync(wasmFile);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
  fs.writeFileSync(wasmFile, bytes);
  await t.rejects(archive.get(rev), PolicyArchiveError, 'flipped wasm byte refused');
});

t.test('the server archives its policy before it writes the first record', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  const revision = gate.app.deps.policy.revision;
  const archiveDir = path.join(path.dirname(sb.auditPath), 'policies');
  const entry = await openPolicyArchive(archiveDir).get(revision);
  t.ok(entry, `the archive beside the log holds revision ${revision.slice(0, 12)}`);
  await gate.call('read_file', { path: 'hello.txt' });
  await gate.close();
  const records = readAudit(sb.auditPath).filter((r) => r.event !== 'audit.genesis');
  t.ok(records.length >= 1, 'the call was recorded');
  for (const r of records) if (r.policy_revision) t.equal(r.policy_revision, revision, 'records name the archived revision');
});

t.test('audit.policy_archive moves the archive', async (t) => {
  const sb = makeSandbox({ audit: { policy_archive: 'elsewhere/policies' } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  const revision = gate.app.deps.policy.revision;
  await gate.close();
  t.ok(await openPolicyArchive(path.join(sb.dir, 'elsewhere', 'policies')).get(revision), 'archived where the config says, relative to its folder');
  // The sandbox's audit section replaces the default one: the log is at the default path.
  t.ok(fs.existsSync(path.join(sb.dir, '.bulwark', 'audit.jsonl')), 'the log');
  t.notOk(fs.existsSync(path.join(sb.dir, '.bulwark', 'policies')), 'and no archive beside it');
});
