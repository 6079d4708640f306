import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { fileSegments } from '../src/audit/verify.js';
import { policyInputsPath } from '../src/audit/policy-inputs.js';
import { logPaths } from '../src/audit/files.js';
import { sha256Hex } from '../src/audit/chain.js';
import { canonicalJson } from '../src/audit/canonical-json.js';
import { openPolicyArchive, policyRevision, POLICY_ENGINE, type PolicyArchive, type PolicyFiles } from '../src/policy/archive.js';
import { readPolicyData } from '../src/policy/engine.js';
import { replayLog } from '../src/cli/audit-replay.js';
import { findOpa } from '../src/cli/opa.js';
import { BIN, ROOT, makeSandbox, readAudit } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { inProcessGate } from './helpers/gate.js';

/**
 * Decision replay (issue 12): records made under one policy replay the same with the archived
 * policy of their revision; an archive entry forged to another policy is refused; replaying with a
 * changed rule names exactly the records whose decision would now differ.
 */

const OPA = findOpa();
if (!OPA) throw new Error('opa is needed to build the two policies (scripts/toolchain.sh installs it)');

/** The rule the second policy drops: file_info may no longer look at a directory. */
const CHANGED_RULE = 'kind_allowed("file_info", "directory")\n';

function buildPolicy(dir: string, source: string): Uint8Array {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'authz.rego'), source);
  // The policy's other modules (not its tests) as they are: authz.rego calls into them.
  const modules = [path.join(dir, 'authz.rego')];
  for (const f of fs.readdirSync(path.join(ROOT, 'policies'))) {
    if (!f.endsWith('.rego') || f.endsWith('_test.rego') || f === 'authz.rego') continue;
    fs.copyFileSync(path.join(ROOT, 'policies', f), path.join(dir, f));
    modules.push(path.join(dir, f));
  }
  const bundle = path.join(dir, 'bundle.tar.gz');
  const built = spawnSync(
    OPA as string,
    [
      'build',
      '-t',
      'wasm',
      '-e',
      'bulwark/authz/decision',
      '-e',
      'bulwark/authz/visible_tools',
      '--capabilities',
      path.join(ROOT, 'policies', 'capabilities.json'),
      '-o',
      bundle,
      ...modules,
    ],
    { encoding: 'utf8' },
  );
  if (built.status !== 0) throw new Error(`opa build failed: ${built.stderr}`);
  const untar = spawnSync('tar', ['-xzf', bundle, '-C', dir, '/policy.wasm'], { encoding: 'utf8' });
  if (untar.status !== 0) spawnSync('tar', ['-xzf', bundle, '-C', dir, 'policy.wasm']);
  return new Uint8Array(fs.readFileSync(path.join(dir, 'policy.wasm')));
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-replay-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
const source = fs.readFileSync(path.join(ROOT, 'policies', 'authz.rego'), 'utf8');
if (!source.includes(CHANGED_RULE)) throw new Error('the policy no longer has the rule this test changes');
const oldWasm = buildPolicy(path.join(work, 'old'), source);
const newWasm = buildPolicy(path.join(work, 'new'), source.replace(CHANGED_RULE, ''));
const data = JSON.stringify(readPolicyData(path.join(ROOT, 'policies', 'data.json')));

const replayCli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'audit', 'replay', ...args], { encoding: 'utf8', env: cleanChildEnv() });

/** An archive that answers one policy for every revision, unchecked: "what if the new rule had decided?" */
function asIfArchive(files: PolicyFiles, dir: string): PolicyArchive {
  return { dir, put: () => Promise.resolve(), get: () => Promise.resolve(files) };
}

t.test('replay: same under the archived policy, forged entries refused, a changed rule names exactly the records it changes', async (t) => {
  t.not(policyRevision(oldWasm, data), policyRevision(newWasm, data), 'the two policies have different revisions');
  const sb = makeSandbox({ policy: { wasm: path.join(work, 'old', 'policy.wasm') } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  const oldRevision = gate.app.deps.policy.revision;
  t.equal(oldRevision, policyRevision(oldWasm, data), 'the server runs the old policy');
  const calls: [string, Record<string, unknown>][] = [
    ['file_info', { path: 'sub' }], // a directory: allowed now, denied by the changed rule
    ['read_file', { path: 'hello.txt' }],
    ['file_info', { path: 'hello.txt' }],
    ['list_directory', { path: '.' }],
    ['read_file', { path: '../outside/secret.txt' }], // denied by both
    ['file_info', { path: 'sub/deeper' }], // a directory again
    ['read_file', { nope: 1 }], // refused at validation: the policy is never asked
  ];
  const outcomes = [];
  for (const [tool, args] of calls) outcomes.push(await gate.call(tool, args));
  await gate.close();

  const records = readAudit(sb.auditPath).filter((r) => r.event === undefined && r.request_id);
  t.equal(records.length, calls.length, 'one outcome record per call');
  const asked = records.filter((r) => r.policy_input_sha256);
  t.ok(
    records.every((r) => (r.decision !== null) === Boolean(r.policy_input_sha256)),
    'every record with a decision carries its input hash, and only those',
  );
  t.ok(asked.length >= 5, `${asked.length} decisions`);
  t.notOk(records[records.length - 1]?.policy_input_sha256, 'the invalid call was never decided: no input');
  const undecided = records.length - asked.length;
  for (const r of asked) {
    t.equal(r.policy_revision, oldRevision);
    t.equal(r.policy_engine, POLICY_ENGINE, 'the engine is named');
    t.ok(r.decision?.obligations && typeof r.decision.obligations === 'object', 'the obligations are recorded');
  }
  const inputsFile = policyInputsPath(logPaths(sb.auditPath));
  const copies = fs.readFileSync(inputsFile, 'utf8').trim().split('\n');
  t.equal(copies.length, asked.length, 'one input copy per decision');
  for (const line of copies) {
    const [sha, ...rest] = line.split(' ');
    const text = rest.join(' ');
    t.equal(sha256Hex(text), sha, 'each copy is named by the hash of its text');
    t.equal(canonicalJson(JSON.parse(text)), text, 'and is canonical JSON');
  }
  const bytesPerCopy = Buffer.byteLength(copies.join('\n')) / copies.length;
  t.comment(`input copy: ${Math.round(bytesPerCopy)} bytes per decision`);
  const deniedNow = records.filter((r, i) => calls[i]?.[0] === 'file_info' && String(calls[i]?.[1].path).startsWith('sub')).map((r) => r.seq);
  t.equal(deniedNow.length, 2);
  t.ok(
    outcomes.filter((o, i) => calls[i]?.[0] === 'file_info' && String(calls[i]?.[1].path).startsWith('sub')).every((o) => o.status === 'ok'),
    'the old policy allowed file_info on directories',
  );

  // 1. The archive holds the old revision (the server put it there): every decision replays the same.
  const same = replayCli(sb.auditPath, '--json');
  t.equal(same.status, 0, `replay exits 0 when nothing differs: ${same.stdout}${same.stderr}`);
  const sameReport = JSON.parse(same.stdout) as { replayed: number; same: number; differ: unknown[]; cannot: unknown[]; undecided: number };
  t.equal(sameReport.replayed, asked.length, 'every decision replayed');
  t.equal(sameReport.differ.length, 0, 'none differs');
  t.equal(sameReport.cannot.length, 0);
  t.equal(sameReport.undecided, undecided, 'calls refused before the policy was asked are counted, not replayed');
  const text = replayCli(sb.auditPath);
  t.match(
    text.stdout,
    `${asked.length} decision(s) replayed: ${asked.length} same, 0 differ; 0 cannot be replayed; ${undecided} record(s) refused before the policy was asked`,
  );

  // 2. What the changed rule would have decided, replayed as if it were the old policy: exactly the directory file_info calls differ.
  const segments = fileSegments(sb.auditPath).segments;
  const whatIf = await replayLog({ segments, archive: asIfArchive({ wasm: newWasm, data }, work), inputsFile });
  t.same(
    whatIf.differ.map((d) => d.seq),
    deniedNow,
    'replay names exactly the records whose decision differs',
  );
  for (const d of whatIf.differ) {
    t.same(
      d.differences.map((f) => f.field),
      ['allow', 'reasons', 'obligations'],
      `seq ${d.seq}: allow, reasons and obligations differ`,
    );
    t.same(d.differences[0], { field: 'allow', recorded: true, replayed: false });
    t.same(d.differences[1]?.replayed, ['path.kind_not_allowed'], 'the new denial reason is named');
  }
  t.equal(whatIf.same, asked.length - 2);
  // --from/--to narrows the range.
  const narrowed = await replayLog({ segments, archive: asIfArchive({ wasm: newWasm, data }, work), inputsFile, from: (deniedNow[0] ?? 0) + 1 });
  t.same(
    narrowed.differ.map((d) => d.seq),
    deniedNow.slice(1),
    '--from leaves the earlier record out',
  );

  // 3. Forging the archive entry of the old revision to the new policy is refused, not replayed.
  const entry = path.join(path.dirname(sb.auditPath), 'policies', oldRevision);
  fs.writeFileSync(path.join(entry, 'policy.wasm'), newWasm);
  const forged = replayCli(sb.auditPath, '--json');
  t.equal(forged.status, 1, 'replay fails when the archive entry is forged');
  const forgedReport = JSON.parse(forged.stdout) as { replayed: number; differ: unknown[]; cannot: { seq: number; reason: string }[] };
  t.equal(forgedReport.replayed, 0, 'nothing was replayed with the forged policy');
  t.equal(forgedReport.differ.length, 0);
  t.equal(forgedReport.cannot.length, asked.length, 'every decision is "cannot replay"');
  t.match(forgedReport.cannot[0]?.reason, /does not hash to its revision/);
  const forgedText = replayCli(sb.auditPath);
  t.match(forgedText.stdout, /CANNOT REPLAY seq \d+ \(file_info, request [^)]+\): archive entry [0-9a-f]{64} does not hash to its revision/);
  fs.writeFileSync(path.join(entry, 'policy.wasm'), oldWasm);

  // 4. A missing archive entry and a missing or altered input copy are "cannot replay", by name.
  const empty = path.join(work, 'empty-archive');
  const missing = replayCli(sb.auditPath, '--archive', empty);
  t.equal(missing.status, 1);
  t.match(missing.stdout, new RegExp(`policy revision ${oldRevision} is not in the archive`));
  const original = fs.readFileSync(inputsFile, 'utf8');
  // The attacker makes the first input say the caller was an admin.
  fs.writeFileSync(inputsFile, original.replace('"roles":[', '"roles":["admin",'));
  const altered = JSON.parse(replayCli(sb.auditPath, '--json').stdout) as { cannot: { seq: number; reason: string }[]; same: number };
  t.ok(altered.cannot.length >= 1, 'the altered copy cannot be replayed');
  t.match(altered.cannot[0]?.reason, /does not match its hash/);
  t.equal(altered.same + altered.cannot.length, asked.length, 'the other copies still replay');
  fs.rmSync(inputsFile);
  const gone = replayCli(sb.auditPath);
  t.equal(gone.status, 1);
  t.match(gone.stdout, /no copy of policy input [0-9a-f]{64}/);
  t.match(gone.stdout, `0 decision(s) replayed: 0 same, 0 differ; ${asked.length} cannot be replayed`);
  // An archive given explicitly with an intact entry replays again once the copies are back.
  fs.writeFileSync(inputsFile, original);
  const back = await replayLog({ segments, archive: openPolicyArchive(path.dirname(entry)), inputsFile });
  t.equal(back.same, asked.length, 'restored: all the same again');
});

t.test('audit.replay_inputs: false keeps the hash only, and replay says it cannot replay', async (t) => {
  const sb = makeSandbox({ audit: { replay_inputs: false } });
  t.teardown(sb.cleanup);
  // A sandbox's audit section replaces the default one: the log is at the default path.
  const log = path.join(sb.dir, '.bulwark', 'audit.jsonl');
  const gate = await inProcessGate(sb.configPath);
  await gate.call('read_file', { path: 'hello.txt' });
  await gate.close();
  const rec = readAudit(log).find((r) => r.tool === 'read_file');
  t.match(rec?.policy_input_sha256, /^[0-9a-f]{64}$/, 'the hash is still recorded');
  t.notOk(fs.existsSync(policyInputsPath(logPaths(log))), 'no copy was written');
  const r = replayCli(log);
  t.equal(r.status, 1);
  t.match(r.stdout, /CANNOT REPLAY seq \d+ \(read_file.*no copy of policy input/);
});
