import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import postgres from 'postgres';
import { canonicalJson } from '../src/audit/canonical-json.js';
import { sha256Hex } from '../src/audit/chain.js';
import { connect, installPostgresSchema, postgresPolicyInputs, postgresSegment } from '../src/audit/postgres-log.js';
import { policyRevision, type PolicyArchive, type PolicyFiles } from '../src/policy/archive.js';
import { readPolicyData } from '../src/policy/engine.js';
import { replayLog } from '../src/cli/audit-replay.js';
import { findOpa } from '../src/cli/opa.js';
import { BIN, ROOT, makeSandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { inProcessGate } from './helpers/gate.js';

/**
 * Decision replay on a PostgreSQL stream (issue 12): the exact policy inputs go to
 * bulwark_audit_policy_input in the transaction that inserts their records, so `audit replay`
 * works from any host that reaches the database (no file on the server's host is involved).
 * Real PostgreSQL (scripts/run-tests.mjs starts it; without PGURL this test fails, never skips), real opa.
 */

const PGURL = process.env.PGURL;
const OPA = findOpa();
if (!OPA) throw new Error('opa is needed to build the changed policy (scripts/toolchain.sh installs it)');

/** The rule the changed policy drops: file_info may no longer look at a directory. */
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
  if (built.status !== 0) throw new Error(`opa build failed (${built.status ?? built.signal} ${built.error?.message ?? ''}): ${built.stderr}${built.stdout}`);
  const untar = spawnSync('tar', ['-xzf', bundle, '-C', dir, '/policy.wasm'], { encoding: 'utf8' });
  if (untar.status !== 0) spawnSync('tar', ['-xzf', bundle, '-C', dir, 'policy.wasm']);
  return new Uint8Array(fs.readFileSync(path.join(dir, 'policy.wasm')));
}

if (!PGURL) {
  t.fail('PGURL is not set: run with scripts/run-tests.mjs');
} else {
  const admin = postgres(PGURL, { max: 1, onnotice: () => undefined });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-replay-pg-'));
  t.teardown(async () => {
    await admin.end({ timeout: 5 });
    fs.rmSync(work, { recursive: true, force: true });
  });
  t.before(async () => {
    await installPostgresSchema(PGURL);
  });

  t.test('replay a PostgreSQL stream from another host: inputs in bulwark_audit_policy_input, a changed rule named, a missing copy named', async (t) => {
    const stream = `replay-${crypto.randomUUID().slice(0, 8)}`;
    const source = fs.readFileSync(path.join(ROOT, 'policies', 'authz.rego'), 'utf8');
    if (!source.includes(CHANGED_RULE)) throw new Error('the policy no longer has the rule this test changes');
    const oldWasm = buildPolicy(path.join(work, 'old'), source);
    const newWasm = buildPolicy(path.join(work, 'new'), source.replace(CHANGED_RULE, ''));
    const data = JSON.stringify(readPolicyData(path.join(ROOT, 'policies', 'data.json')));

    const sb = makeSandbox({
      policy: { wasm: path.join(work, 'old', 'policy.wasm') },
      audit: { backend: 'postgres', postgres_url: PGURL, stream, path: path.join(work, 'server-host', 'audit.jsonl') },
    });
    t.teardown(sb.cleanup);
    const gate = await inProcessGate(sb.configPath);
    t.equal(gate.app.deps.policy.revision, policyRevision(oldWasm, data), 'the server runs the old policy');
    const calls: [string, Record<string, unknown>][] = [
      ['file_info', { path: 'sub' }], // a directory: allowed now, denied by the changed rule
      ['read_file', { path: 'hello.txt' }],
      ['file_info', { path: 'hello.txt' }],
      ['read_file', { path: '../outside/secret.txt' }], // denied by both
      ['file_info', { path: 'sub/deeper' }], // a directory again
      ['read_file', { path: 'hello.txt' }], // the same input as the second call's
    ];
    for (const [tool, args] of calls) await gate.call(tool, args);
    await gate.close();

    const rows = await admin`SELECT seq, line FROM bulwark_audit WHERE stream = ${stream} ORDER BY seq`;
    const records = rows.map((r) => JSON.parse(String(r.line)) as { seq: number; event?: string; tool?: string; policy_input_sha256?: string });
    const asked = records.filter((r) => r.event === undefined && r.policy_input_sha256);
    t.ok(asked.length >= 5, `${asked.length} decisions recorded in the stream`);
    const inputs = await admin`SELECT sha256, input FROM bulwark_audit_policy_input WHERE stream = ${stream}`;
    t.same(
      inputs.map((r) => String(r.sha256)).sort(),
      [...new Set(asked.map((r) => r.policy_input_sha256 as string))].sort(),
      'one row per distinct input the records name (content-addressed)',
    );
    for (const r of inputs) {
      t.equal(sha256Hex(String(r.input)), String(r.sha256), 'each row is named by the hash of its text');
      t.equal(canonicalJson(JSON.parse(String(r.input))), String(r.input), 'and is canonical JSON');
    }
    const serverHost = path.join(work, 'server-host');
    t.same(fs.existsSync(serverHost) ? fs.readdirSync(serverHost).filter((f) => f.includes('inputs')) : [], [], 'no input copy in a file on the server host');

    // Another host: only the database and the archived policy (copied over), no file of the server's.
    const archive = path.join(work, 'auditor-archive');
    fs.cpSync(path.join(serverHost, 'policies'), archive, { recursive: true });
    const replay = spawnSync(process.execPath, [BIN, 'audit', 'replay', PGURL, '--stream', stream, '--archive', archive, '--json'], {
      encoding: 'utf8',
      cwd: work,
      env: cleanChildEnv(),
    });
    t.equal(replay.status, 0, `replay of the stream exits 0: ${replay.stdout}${replay.stderr}`);
    const report = JSON.parse(replay.stdout) as { replayed: number; same: number; differ: unknown[]; cannot: unknown[] };
    t.equal(report.replayed, asked.length, 'every decision replayed');
    t.equal(report.same, asked.length, 'all the same');

    // What the changed rule would have decided: exactly the directory file_info calls differ.
    const asIf: PolicyArchive = { dir: work, put: () => Promise.resolve(), get: () => Promise.resolve({ wasm: newWasm, data } satisfies PolicyFiles) };
    const sql = connect(PGURL);
    try {
      const whatIf = await replayLog({
        segments: [postgresSegment(sql, stream)],
        archive: asIf,
        inputsFile: `postgres:bulwark_audit_policy_input#${stream}`,
        loadInputs: (wanted) => postgresPolicyInputs(PGURL, stream, wanted),
      });
      const dirs = records.filter((r) => r.tool === 'file_info' && asked.includes(r)).map((r) => r.seq);
      t.same(
        whatIf.differ.map((d) => d.seq),
        dirs.filter((_, i) => i !== 1),
        'replay names exactly the records whose decision differs (the directory calls)',
      );
    } finally {
      await sql.end({ timeout: 5 });
    }

    // The database owner removes one input row: its records are "cannot replay", by name.
    const victim = asked[0]!.policy_input_sha256 as string;
    await admin.unsafe('ALTER TABLE bulwark_audit_policy_input DISABLE TRIGGER USER');
    try {
      await admin`DELETE FROM bulwark_audit_policy_input WHERE stream = ${stream} AND sha256 = ${victim}`;
    } finally {
      await admin.unsafe('ALTER TABLE bulwark_audit_policy_input ENABLE TRIGGER USER');
    }
    const gone = spawnSync(process.execPath, [BIN, 'audit', 'replay', PGURL, '--stream', stream, '--archive', archive], {
      encoding: 'utf8',
      env: cleanChildEnv(),
    });
    t.equal(gone.status, 1, 'replay fails');
    t.match(
      gone.stdout,
      new RegExp(`CANNOT REPLAY seq ${asked[0]!.seq} .*no copy of policy input ${victim} \\(postgres:bulwark_audit_policy_input#${stream}\\)`),
    );
  });

  t.test('bulwark_audit_policy_input refuses a row whose text does not hash to its name, and changes', async (t) => {
    const stream = `replay-ro-${crypto.randomUUID().slice(0, 8)}`;
    await t.rejects(admin`INSERT INTO bulwark_audit_policy_input (stream, sha256, input) VALUES (${stream}, ${'0'.repeat(64)}, '{}')`, /check constraint/);
    await admin`INSERT INTO bulwark_audit_policy_input (stream, sha256, input) VALUES (${stream}, ${sha256Hex('{}')}, '{}')`;
    await t.rejects(admin`UPDATE bulwark_audit_policy_input SET input = '{"a":1}' WHERE stream = ${stream}`, /append-only/);
  });
}
