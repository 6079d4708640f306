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
if ((!args.includes('--policy') && !args.includes('--lint')) || explicit.length) {
  if (!files.length) {
    console.error('no compiled tests under dist/test: run `npm run build` first');
    failed += 1;
  } else {
    // Coverage is off on purpose: tap's TS coverage needs its loader; we test the emitted JS.
    const r = await run(path.join(root, 'node_modules', '.bin', 'tap'), ['--disable-coverage', '--timeout=300', '--reporter=tap', ...files], {
      env: { ...process.env, ...serviceEnv, BULWARK_TEST_SERVICES: started.code === 0 ? '1' : '0' },
    });
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
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
