#!/usr/bin/env node
// `npm test`: the policy suite (opa), then every tap test file, then one closing line
// `N passed, M failed` that CI reads. tap's own closing line is not in a form CI reads.
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

function run(cmd, argv, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], ...opts });
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      process.stdout.write(c);
    });
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

/** What the formatter keeps in shape (package.json's `format` and `lint` use the same list). */
const LINTED = ['src/**/*.ts', 'sandbox/**/*.ts', 'test/**/*.ts', 'scripts/**/*.mjs', 'bin/*.js', 'eslint.config.js'];

let passed = 0;
let failed = 0;
/** Every failed assertion with where it sits, printed again just above the closing line: CI
 * keeps only the tail of a run, and a red run must say what failed there. */
const failures = [];

/** Collects each `not ok` of a TAP stream with its enclosing subtests and a few lines of its
 * diagnostics (tap nests subtests by four-space indent; `# Subtest: NAME` opens one). */
function collectFailures(out, label) {
  const lines = out.split('\n');
  const stack = [];
  for (let i = 0; i < lines.length; i++) {
    const sub = /^(\s*)# Subtest: (.*)$/.exec(lines[i]);
    if (sub) {
      const depth = sub[1].length / 4;
      stack.length = depth;
      stack[depth] = sub[2];
      continue;
    }
    const bad = /^(\s*)not ok \d+ - (.*?)(?: # time=.*)?$/.exec(lines[i]);
    if (!bad) continue;
    const depth = bad[1].length / 4;
    // The diagnostics minus where-in-the-source (`at`, `stack`, `source`): the file and test
    // name already say where; what was found, wanted, or how a child died is what helps.
    const diag = [];
    const open = /^(\s*)---\s*$/.exec(lines[i + 1] ?? '');
    if (open) {
      const keyIndent = open[1].length;
      let skipping = false;
      for (let j = i + 2; j < lines.length && !/^\s*\.\.\.\s*$/.test(lines[j]) && diag.length < 14; j++) {
        if (lines[j].trim() === '') continue;
        const indent = /^\s*/.exec(lines[j])[0].length;
        if (indent <= keyIndent) skipping = /^\s*(at|stack|source):/.test(lines[j]);
        if (!skipping) diag.push(lines[j].slice(keyIndent));
      }
    }
    failures.push({ label, where: [...stack.slice(0, depth), bad[2]].filter(Boolean).join(' > '), diag });
  }
}

// Real services for the tests that claim to test them: a throwaway PostgreSQL and Redis on
// loopback, started here and stopped at the end (only what we started).
const servicesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-services-'));
const started = await run('bash', ['scripts/services.sh', 'start', servicesDir], { stdio: ['ignore', 'pipe', 'inherit'] });
const serviceEnv = {};
if (started.code === 0) {
  for (const line of fs.readFileSync(path.join(servicesDir, 'env'), 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) serviceEnv[m[1]] = m[2];
  }
} else {
  console.error('could not start PostgreSQL/Redis for the tests (see above)');
  failed += 1;
}
const stopServices = () => spawnSync('bash', ['scripts/services.sh', 'stop', servicesDir], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
process.on('exit', () => {
  stopServices();
  fs.rmSync(servicesDir, { recursive: true, force: true });
});

if (!args.length || args.includes('--policy')) {
  const r = await run('bash', ['scripts/test-policy.sh']);
  const m = /opa-tests: (\d+) passed, (\d+) failed/.exec(r.out);
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  if (r.code !== 0)
    failures.push({
      label: 'policy',
      where: 'scripts/test-policy.sh',
      diag: r.out
        .split('\n')
        .filter((l) => /FAIL|fail/.test(l))
        .slice(0, 12),
    });
  if (r.code !== 0 && (!m || Number(m[2]) === 0)) failed += 1;
}

// The guard rails (ESLint, the formatter, the import-boundary check): one check each, counted
// like tests, so a style or layering slip turns CI red with the rest.
if (!args.length || args.includes('--lint')) {
  for (const [name, cmd, argv] of [
    ['eslint', path.join(root, 'node_modules', '.bin', 'eslint'), ['.']],
    ['prettier', path.join(root, 'node_modules', '.bin', 'prettier'), ['--check', '--log-level', 'warn', ...LINTED]],
    ['import boundaries', process.execPath, ['scripts/check-imports.mjs']],
  ]) {
    const r = await run(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.code === 0) passed += 1;
    else {
      failed += 1;
      failures.push({ label: 'lint', where: name, diag: [] });
      console.error(`lint: ${name} failed (run \`npm run lint\`)`);
    }
  }
}

function testFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? testFiles(path.join(dir, e.name)) : e.name.endsWith('.test.js') ? [path.join(dir, e.name)] : []));
}

const explicit = args.filter((a) => !a.startsWith('--'));
const files = explicit.length
  ? explicit
  : testFiles(path.join(root, 'dist', 'test'))
      .map((f) => path.relative(root, f))
      .sort();

/** Runs tap over `files` on the Node binary `node` and counts its results. */
async function tapRun(files, node, label, extraEnv = {}) {
  // Coverage is off on purpose: tap's TS coverage needs its loader; we test the emitted JS.
  // tap starts each test file with its own runtime (process.execPath), so starting it with `node`
  // runs the files there; PATH leads to the same binary for anything that asks for plain `node`.
  const tap = fs.realpathSync(path.join(root, 'node_modules', '.bin', 'tap'));
  const r = await run(node, [tap, '--disable-coverage', '--timeout=300', '--reporter=tap', ...files], {
    env: { ...process.env, ...serviceEnv, ...extraEnv, BULWARK_TEST_SERVICES: started.code === 0 ? '1' : '0' },
  });
  collectFailures(r.out, label);
  const summary = [...r.out.matchAll(/^# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))?/gm)].pop();
  if (summary) {
    const total = Number(summary[1]);
    const pass = Number(summary[2] ?? 0);
    passed += pass;
    failed += total - pass;
  } else {
    failed += 1;
  }
  if (r.code !== 0 && (!summary || Number(summary[1]) === Number(summary[2] ?? 0))) failed += 1;
}

const node24Only = args.includes('--node24');
if ((!args.includes('--policy') && !args.includes('--lint') && !node24Only) || (explicit.length && !node24Only)) {
  if (!files.length) {
    console.error('no compiled tests under dist/test: run `npm run build` first');
    failed += 1;
  } else {
    await tapRun(files, process.execPath, `node ${process.versions.node}`);
  }
}

// BEGIN node24: the second runtime. `npm test` runs NODE24_FILES again on Node 24 LTS (the
// image's runtime; scripts/node24.sh installs it and isolated-vm 7 for it, a quick no-op when
// present); `--node24 FILE...` runs just those files there. The subset is every file that
// exercises what differs between the runtimes: the native addons and the per-ABI isolated-vm,
// the permission model around every kind of worker (flags, allow-lists, attacks on paths and
// links, start failures failing closed), the transports end to end through the built CLI, the
// audit log's crypto and files, and the runtime's crypto (argon2, JWT) and HTTP client (undici)
// under authentication and the API gateway. The rest is runtime-neutral TypeScript, and the
// whole suite twice would double CI's longest stage on a 2-core runner.
const NODE24_FILES = [
  'native-addons',
  'node24',
  'sandbox-js',
  'js-intrinsics',
  'workers',
  'fault-workers',
  'path-attacks',
  'filesystem-tools',
  'database-embedded',
  'e2e',
  'http-transport',
  'fault-stdio',
  'audit',
  'audit-log',
  'audit-crash',
  'cli',
  'config',
  'bad-input',
  'auth-http',
  'api-gateway',
].map((f) => path.join('dist', 'test', `${f}.test.js`));
if (!args.length || node24Only) {
  const n24 = spawnSync('bash', ['scripts/node24.sh', '--print'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const node24 = n24.status === 0 ? n24.stdout.trim() : '';
  const list = node24Only && explicit.length ? explicit : NODE24_FILES;
  if (!node24) {
    console.error('node24: no Node 24 to run on (scripts/node24.sh failed, see above)');
    failed += 1;
  } else if (list.some((f) => !fs.existsSync(path.join(root, f)))) {
    console.error(`node24: missing ${list.filter((f) => !fs.existsSync(path.join(root, f))).join(', ')}: run \`npm run build\` first`);
    failed += 1;
  } else {
    console.log(`# node24: ${list.length} files on ${node24}`);
    await tapRun(list, node24, 'node24', { PATH: `${path.dirname(node24)}${path.delimiter}${process.env.PATH ?? ''}` });
  }
}
// END node24

// A subtest's `not ok` repeats its children's; keep the leaves.
const leaves = failures.filter((f) => !failures.some((g) => g !== f && g.label === f.label && g.where.startsWith(`${f.where} > `)));
if (leaves.length) {
  console.log(`\n# what failed (${leaves.length}):`);
  for (const f of leaves.slice(0, 40)) {
    console.log(`# [${f.label}] ${f.where}`);
    for (const d of f.diag) console.log(`#     ${d}`);
  }
  if (leaves.length > 40) console.log(`# … and ${leaves.length - 40} more (search the log for "not ok")`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
