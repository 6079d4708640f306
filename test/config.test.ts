import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config/loader.js';
import { BIN, ROOT, makeSandbox } from './helpers/fixtures.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

t.test('embedded defaults', async (t) => {
  const { config, source } = loadConfig({});
  t.equal(source, 'embedded defaults');
  t.equal(config.server.http.host, '127.0.0.1', 'HTTP binds to loopback only by default');
  t.same(config.filesystem.roots, [fs.realpathSync(path.join(ROOT, 'demo', 'workspace'))]);
  t.equal(config.audit.durability, 'fsync');
  t.ok(Object.isFrozen(config.filesystem), 'config is frozen');
  t.equal(config.policy.wasm, path.join(ROOT, 'policies', 'policy.wasm'));
});

t.test('every error names the key path', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'bad.yaml');
  fs.writeFileSync(
    file,
    [
      'server:',
      '  transport: carrier-pigeon',
      '  http:',
      '    port: "eighty"',
      'filesystem:',
      '  roots: [/definitely/not/here]',
      '  max_file_bytes: -5',
      'audit:',
      '  durability: sometimes',
      'surprise: true',
    ].join('\n'),
  );
  const problems = problemsOf(() => loadConfig({ file }));
  const text = problems.join('\n');
  for (const key of ['server.transport', 'server.http.port', 'filesystem.max_file_bytes', 'audit.durability', 'surprise']) {
    t.match(text, key, `names ${key}`);
  }
  const dup = path.join(sb.dir, 'dup.yaml');
  fs.writeFileSync(dup, 'audit:\n  path: a\naudit:\n  path: b\n');
  t.match(problemsOf(() => loadConfig({ file: dup })).join('\n'), /unique|duplicate/i, 'duplicate keys are errors');
  const missingRoot = path.join(sb.dir, 'root.yaml');
  fs.writeFileSync(missingRoot, 'filesystem:\n  roots: [/definitely/not/here]\n');
  t.match(problemsOf(() => loadConfig({ file: missingRoot })).join('\n'), 'filesystem.roots[0]');
});

t.test('${ENV} references are substituted, and a missing one is an error naming the key', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'env.yaml');
  fs.writeFileSync(file, 'audit:\n  path: ${AUDIT_DIR}/log.jsonl\nfilesystem:\n  roots: ["${ROOT_DIR}"]\n');
  const { config } = loadConfig({ file, env: { AUDIT_DIR: sb.dir, ROOT_DIR: sb.root } });
  t.equal(config.audit.path, path.join(sb.dir, 'log.jsonl'));
  t.same(config.filesystem.roots, [sb.root]);
  const problems = problemsOf(() => loadConfig({ file, env: { ROOT_DIR: sb.root } }));
  t.match(problems.join('\n'), /audit\.path: environment variable AUDIT_DIR is not set/);
});

t.test('CLI flags: --root replaces roots, --http sets the transport', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const { config } = loadConfig({ file: sb.configPath, roots: [sb.outside], http: '127.0.0.1:9999' });
  t.same(config.filesystem.roots, [sb.outside]);
  t.equal(config.server.transport, 'http');
  t.equal(config.server.http.port, 9999);
  t.match(problemsOf(() => loadConfig({ http: 'not a port' })).join(''), '--http');
});

t.test('serve exits non-zero before serving anything on a bad config', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'bad.yaml');
  fs.writeFileSync(file, 'limits:\n  max_args_bytes: "lots"\n');
  const r = spawnSync(process.execPath, [BIN, 'serve', '--config', file], { encoding: 'utf8', input: '' });
  t.equal(r.status, 2);
  t.match(r.stderr, 'limits.max_args_bytes');
  t.equal(r.stdout, '', 'nothing on stdout');
  const help = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, '--root DIR');
  const unknown = spawnSync(process.execPath, [BIN, 'frobnicate'], { encoding: 'utf8' });
  t.equal(unknown.status, 2);
});

t.test('the example config in the repo is valid', async (t) => {
  const file = path.join(ROOT, 'bulwark.example.yaml');
  const { config } = loadConfig({ file, env: { ...process.env, BULWARK_DATA: path.join(ROOT, 'demo', 'workspace') } });
  t.ok(config.filesystem.roots.length > 0);
});

t.test('doctor reports each check', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const ok = spawnSync(process.execPath, [BIN, 'doctor', '--config', sb.configPath, '--json'], { encoding: 'utf8' });
  t.equal(ok.status, 0, ok.stdout + ok.stderr);
  t.equal(JSON.parse(ok.stdout).ok, true);
  const badWasm = makeSandbox({ policy: { wasm: '/nonexistent/policy.wasm' } });
  t.teardown(badWasm.cleanup);
  const bad = spawnSync(process.execPath, [BIN, 'doctor', '--config', badWasm.configPath, '--json'], { encoding: 'utf8' });
  t.equal(bad.status, 1);
  const policyCheck = JSON.parse(bad.stdout).checks.find((c: { check: string }) => c.check === 'policy');
  t.equal(policyCheck.ok, false);
  t.match(policyCheck.detail, /cannot read/);
});
