// The two runtimes (Node 20, the machine's; Node 24 LTS, the image's): `npm test` runs this file on
// both (scripts/run-tests.mjs, the node24 stage). What must hold on each: the permission flag the
// runtime accepts, the isolated-vm line built for its ABI, the one extra read isolated-vm 7 needs,
// and what the permission model does and does not stop there.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { loadConfig } from '../src/config/loader.js';
import { abiIsolatedVmDir } from '../src/core/isolated-vm-location.js';
import {
  embeddedDatabaseWorkerFlags,
  filesystemWorkerFlags,
  isolatedVmReadFlags,
  javascriptWorkerFlags,
  permissionFlag,
} from '../src/execution/worker-flags.js';
import { makeSandbox, ROOT, SECRET } from './helpers/fixtures.js';

const MAJOR = Number(process.versions.node.split('.')[0]);
const ALPINE = '--allow-fs-read=/etc/alpine-release';

/** Runs `code` (CommonJS, -e) on this runtime with `flags`; its stdout is one JSON line. */
function probe(flags: string[], code: string): { status: number | null; out: unknown; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...flags, '-e', code], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' }, timeout: 30000 });
  let out: unknown;
  try {
    out = JSON.parse(r.stdout);
  } catch {
    out = r.stdout;
  }
  return { status: r.status, out, stdout: r.stdout, stderr: r.stderr };
}

t.test(`the permission flag: --permission on 22+, --experimental-permission on 20; Node ${process.versions.node} refuses the other`, async (t) => {
  t.equal(permissionFlag(20), '--experimental-permission');
  t.equal(permissionFlag(22), '--permission');
  t.equal(permissionFlag(24), '--permission');
  const own = probe([permissionFlag()], 'console.log(JSON.stringify([process.permission.has("fs.read", "/etc/passwd"), process.permission.has("child")]))');
  t.equal(own.status, 0, 'starts', { stderr: own.stderr });
  t.same(own.out, [false, false], 'the permission model is on: no reads, no child processes');
  const other = MAJOR >= 22 ? '--experimental-permission' : '--permission';
  const refused = probe([other], 'console.log("started")');
  t.not(refused.status, 0, `${other} does not start Node ${process.versions.node}`);
  t.notMatch(String(refused.out), /started/);
});

t.test('/etc/alpine-release is readable by JavaScript workers on Node 24 only; every worker family uses the right flag', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const { config } = loadConfig({ file: sb.configPath });
  t.ok(isolatedVmReadFlags(24).includes(ALPINE), 'Node 24 (isolated-vm 7): allowed');
  t.notOk(isolatedVmReadFlags(20).includes(ALPINE), 'Node 20 (isolated-vm 5): not');
  const js = javascriptWorkerFlags(config);
  const fsw = filesystemWorkerFlags(config);
  const db = embeddedDatabaseWorkerFlags(64);
  t.equal(js.includes(ALPINE), MAJOR >= 24, `JavaScript workers on Node ${MAJOR}`);
  t.notOk(fsw.includes(ALPINE), 'never filesystem workers');
  t.notOk(db.includes(ALPINE), 'never database workers');
  for (const flags of [js, fsw, db]) {
    t.equal(flags[0], permissionFlag(), 'the permission flag of this runtime');
    t.notOk(flags.includes(MAJOR >= 22 ? '--experimental-permission' : '--permission'), 'and not the other');
  }
  // What the runtime itself answers under those flags (process.permission is the model's own view).
  const has = 'console.log(JSON.stringify(["/etc/alpine-release", "/etc/passwd"].map((p) => process.permission.has("fs.read", p))))';
  t.same(probe(js, has).out, [MAJOR >= 24, false], 'JavaScript worker flags');
  t.same(probe(fsw, has).out, [false, false], 'filesystem worker flags');
});

t.test(`a process with the JavaScript worker flags loads the isolated-vm built for Node ${MAJOR} and reads nothing else`, async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const { config } = loadConfig({ file: sb.configPath });
  const loader = pathToFileURL(path.join(ROOT, 'dist', 'sandbox', 'js', 'isolated-vm.js')).href;
  const code = `
    const fs = require('node:fs');
    const tryRead = (p) => { try { return fs.readFileSync(p, 'utf8'); } catch (e) { return e.code; } };
    import(${JSON.stringify(loader)}).then(({ ivm, isolatedVmSource }) => {
      const isolate = new ivm.Isolate({ memoryLimit: 16 });
      const value = isolate.compileScriptSync('6 * 7').runSync(isolate.createContextSync());
      const version = JSON.parse(fs.readFileSync(isolatedVmSource + '/package.json', 'utf8')).version;
      console.log(JSON.stringify({ value, version, source: isolatedVmSource,
        passwd: tryRead('/etc/passwd'), secret: tryRead(${JSON.stringify(path.join(sb.outside, 'secret.txt'))}) }));
    });`;
  const r = probe(javascriptWorkerFlags(config), code);
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr });
  const out = r.out as { value: number; version: string; source: string; passwd: string; secret: string };
  t.equal(out.value, 42, 'an isolate runs');
  t.equal(out.version.split('.')[0], MAJOR >= 24 ? '7' : '5', `isolated-vm ${out.version} on Node ${process.versions.node}`);
  const abiDir = abiIsolatedVmDir(ROOT);
  t.equal(out.source, abiDir ?? path.join(ROOT, 'node_modules', 'isolated-vm'), 'the per-ABI build when there is one, else node_modules');
  if (MAJOR >= 24) t.ok(abiDir, 'scripts/node24.sh built isolated-vm for this ABI');
  t.equal(out.passwd, 'ERR_ACCESS_DENIED');
  t.equal(out.secret, 'ERR_ACCESS_DENIED');
  t.notMatch(r.stdout, SECRET);
});

t.test(`the permission model on Node ${process.versions.node}: plain paths outside are refused, links are followed (the documented limit)`, async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const secret = path.join(sb.outside, 'secret.txt');
  fs.symlinkSync(secret, path.join(sb.root, 'link-out'));
  fs.symlinkSync(sb.outside, path.join(sb.root, 'dir-out'));
  fs.linkSync(secret, path.join(sb.root, 'hard-out'));
  const paths = [
    path.join(sb.root, 'hello.txt'),
    secret,
    `${sb.root}/../outside/secret.txt`,
    '/etc/passwd',
    '/',
    path.join(sb.root, 'link-out'),
    path.join(sb.root, 'dir-out', 'secret.txt'),
    path.join(sb.root, 'hard-out'),
  ];
  const code = `const fs = require('node:fs');
    console.log(JSON.stringify(${JSON.stringify(paths)}.map((p) => {
      try { return fs.statSync(p).isDirectory() ? 'dir' : fs.readFileSync(p, 'utf8').trim(); } catch (e) { return e.code; }
    })));`;
  // A second root under another top-level folder too: Node 20 was once seen opening "/" then.
  const r = probe([permissionFlag(), `--allow-fs-read=${sb.root}/*`, '--allow-fs-read=/usr/share/*'], code);
  t.equal(r.status, 0, 'exits 0', { stderr: r.stderr });
  t.same(
    r.out,
    ['hello, world', 'ERR_ACCESS_DENIED', 'ERR_ACCESS_DENIED', 'ERR_ACCESS_DENIED', 'ERR_ACCESS_DENIED', SECRET, SECRET, SECRET],
    'inside: read; outside, `..`, /etc/passwd, "/": refused; a symbolic link (file or folder) or a hard link planted inside: followed',
  );
});

t.test('the Dockerfile and scripts/node24.sh pin the same Node 24 and isolated-vm 7', async (t) => {
  const df = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const sh = fs.readFileSync(path.join(ROOT, 'scripts', 'node24.sh'), 'utf8');
  const arg = (re: RegExp, text: string) => re.exec(text)?.[1];
  const node = arg(/^NODE24_VERSION=(\S+)$/m, sh);
  const ivm = arg(/^ISOLATED_VM_24=(\S+)$/m, sh);
  t.match(node, /^24\.\d+\.\d+$/);
  t.match(ivm, /^7\.\d+\.\d+$/);
  t.equal(arg(/^ARG NODE_VERSION=(\S+)$/m, df), node, 'Node');
  t.equal(arg(/^ARG ISOLATED_VM_VERSION=(\S+)$/m, df), ivm, 'isolated-vm');
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  t.match(lock.packages['node_modules/isolated-vm']?.version, /^5\./, 'the lock keeps the Node 20 line');
});
