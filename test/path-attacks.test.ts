/**
 * Path attacks against the four filesystem tools, through the real gate (policy wasm, audit log),
 * and against the executors directly for the check-then-use races the gate cannot stage on demand.
 *
 * Every attack must be refused with `path_rejected` (or `policy_denied` for hard links) and the
 * canary must appear nowhere: not in the GateOutcome, not in the MCP result, not in the audit log.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import t, { type Test } from 'tap';
import { makeSandbox, readAudit, SECRET, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { outcomeToResult } from '../src/server/surface.js';
import { analysePath } from '../src/analysis/path.js';
import { DenialError } from '../src/core/denial.js';
import type { GateOutcome } from '../src/core/call.js';
import { readPinnedFile } from '../sandbox/fs/read-file.js';
import { listPinnedDirectory } from '../sandbox/fs/list-directory.js';
import { searchPinned } from '../sandbox/fs/search-files.js';
import { infoPinned } from '../sandbox/fs/file-info.js';

// Three racing tests run for seconds each, and executors run in worker processes: give the file room.
t.setTimeout(240_000);

type Tool = 'read_file' | 'list_directory' | 'search_files' | 'file_info';
const TOOLS: readonly Tool[] = ['read_file', 'list_directory', 'search_files', 'file_info'];

/** Strings that must never reach a client: the canary, and the first line of /etc/passwd. */
const FORBIDDEN = [SECRET, 'root:x:0:0'];

function argsFor(tool: Tool, p: string): Record<string, unknown> {
  switch (tool) {
    case 'search_files':
      return { path: p, query: 'CANARY', include_hidden: true };
    case 'list_directory':
      return { path: p, recursive: true };
    default:
      return { path: p };
  }
}

function leaksOf(o: GateOutcome): string[] {
  const texts = [JSON.stringify(o), JSON.stringify(outcomeToResult(o))];
  return FORBIDDEN.filter((f) => texts.some((x) => x.includes(f)));
}

function expectDenied(t: Test, o: GateOutcome, code: string, reasons: readonly string[], label: string): void {
  t.equal(o.status, 'denied', `${label}: denied`);
  t.equal(o.denial?.code, code, `${label}: code ${code}`);
  for (const r of reasons) t.ok(o.denial?.reasons.includes(r), `${label}: reason ${r} in ${JSON.stringify(o.denial?.reasons)}`);
  t.notOk(o.result, `${label}: no result`);
  t.same(leaksOf(o), [], `${label}: nothing leaks`);
  const mcp = outcomeToResult(o);
  t.equal(mcp.isError, true, `${label}: MCP result is an error`);
  t.equal((mcp.structuredContent as { error: { code: string } }).error.code, code, `${label}: MCP error code`);
}

/** All four tools on one path: each is refused with the same code and reasons. */
async function denyAll(t: Test, gate: InProcessGate, p: string, code: string, reasons: readonly string[], tools: readonly Tool[] = TOOLS): Promise<void> {
  for (const tool of tools) {
    const o = await gate.call(tool, argsFor(tool, p));
    expectDenied(t, o, code, reasons, `${tool} ${JSON.stringify(p).slice(0, 80)}`);
  }
}

function auditHasNoSecret(t: Test, sb: Sandbox): void {
  const raw = fs.existsSync(sb.auditPath) ? fs.readFileSync(sb.auditPath, 'utf8') : '';
  t.ok(raw.length > 0, 'the audit log has records');
  for (const f of FORBIDDEN) t.notOk(raw.includes(f), `the audit log does not contain ${f}`);
}

async function setup(t: Test, extra: Record<string, unknown> = {}): Promise<{ sb: Sandbox; gate: InProcessGate }> {
  const sb = makeSandbox(extra);
  let gate: InProcessGate | undefined;
  t.teardown(async () => {
    await gate?.close();
    sb.cleanup();
  });
  gate = await inProcessGate(sb.configPath);
  return { sb, gate };
}

function secretPath(sb: Sandbox): string {
  return path.join(sb.outside, 'secret.txt');
}

/** Run fn, expect a DenialError path_rejected / path.changed_after_check and no secret. */
function expectChanged(t: Test, fn: () => unknown, label: string, reason = 'path.changed_after_check'): void {
  let returned: unknown;
  try {
    returned = fn();
  } catch (err) {
    t.ok(err instanceof DenialError, `${label}: a DenialError (${(err as Error).message})`);
    if (err instanceof DenialError) {
      t.equal(err.denial.code, 'path_rejected', `${label}: path_rejected`);
      t.same(err.denial.reasons, [reason], `${label}: ${reason}`);
      t.notOk(JSON.stringify(err.denial).includes(SECRET), `${label}: the denial holds no secret`);
    }
    return;
  }
  t.fail(`${label}: the executor returned instead of refusing`);
  t.notOk(JSON.stringify(returned).includes(SECRET), `${label}: and at least the secret did not leak`);
}

/**
 * Should a tool block opening a FIFO (the main thread stuck in open(2)), this writer releases every
 * blocked reader after 3 s, with the secret, so the test fails on the timing and the leak instead
 * of hanging until tap's timeout.
 */
function fifoReleaser(t: Test, fifo: string): void {
  // Opened without O_CREAT: once the FIFO is gone, the writer exits instead of spinning.
  const release = `const fs = require('node:fs');
setTimeout(() => {
  for (;;) {
    let fd;
    try { fd = fs.openSync(${JSON.stringify(fifo)}, fs.constants.O_WRONLY); } catch { process.exit(0); }
    try { fs.writeSync(fd, ${JSON.stringify(SECRET)}); } catch {}
    fs.closeSync(fd);
  }
}, 3000);`;
  const writer = spawn(process.execPath, ['-e', release], { stdio: 'ignore' });
  // SIGKILL: a Node process blocked in open(2) on a FIFO does not act on SIGTERM.
  t.teardown(() => {
    if (writer.exitCode === null && writer.signalCode === null) writer.kill('SIGKILL');
  });
}

// ---------------------------------------------------------------------------------------------
// Traversal and absolute paths
// ---------------------------------------------------------------------------------------------

t.test('.. chains and absolute paths outside the root are refused by every tool', async (t) => {
  const { sb, gate } = await setup(t);
  const attacks = [
    '../outside/secret.txt',
    'sub/../../outside/secret.txt',
    'sub/deeper/../../../outside/secret.txt',
    './sub/./../.././outside/secret.txt',
    `${sb.root}/../outside/secret.txt`,
    `${sb.root}/sub/../../outside/secret.txt`,
    `${sb.root}//..//outside//secret.txt`,
    '../../../../../../etc/passwd',
    '../../../../../../../../../../../../../../etc/shadow',
    '/etc/passwd',
    '/etc/shadow',
    '/',
    '..',
    '../',
    sb.outside,
    secretPath(sb),
    `${sb.dir}/outside/../outside/secret.txt`,
  ];
  for (const p of attacks) await denyAll(t, gate, p, 'path_rejected', ['path.outside_root']);
  // Backslashes are ordinary name characters on Linux: no traversal, just a name that is not there.
  await denyAll(t, gate, '..\\outside\\secret.txt', 'path_rejected', ['path.not_found']);
  await denyAll(t, gate, '..\\..\\..\\etc\\passwd', 'path_rejected', ['path.not_found']);
  auditHasNoSecret(t, sb);
});

t.test('a sibling folder whose name extends the root name is not inside the root', async (t) => {
  const { sb, gate } = await setup(t);
  const evil = `${sb.root}_evil`;
  fs.mkdirSync(evil);
  fs.writeFileSync(path.join(evil, 'x'), `${SECRET}\n`);
  await denyAll(t, gate, `${sb.root}_evil/x`, 'path_rejected', ['path.outside_root']);
  await denyAll(t, gate, evil, 'path_rejected', ['path.outside_root']);
  await denyAll(t, gate, '../data_evil/x', 'path_rejected', ['path.outside_root']);
  await denyAll(t, gate, `${sb.root}/../data_evil/x`, 'path_rejected', ['path.outside_root']);
  // A link inside the root to the sibling is an escape, too.
  fs.symlinkSync(path.join(evil, 'x'), path.join(sb.root, 'to-evil'));
  await denyAll(t, gate, 'to-evil', 'path_rejected', ['path.outside_root', 'path.symlink_escape']);
  // But a name inside the root that merely starts with ".." is inside.
  fs.writeFileSync(path.join(sb.root, '..dots.txt'), 'dots are a name\n');
  const ok = await gate.call('read_file', { path: '..dots.txt' });
  t.equal(ok.status, 'ok', `..dots.txt is inside the root: ${JSON.stringify(ok.denial)}`);
  t.equal(ok.result?.text, 'dots are a name\n');
});

t.test('empty, dot and root paths', async (t) => {
  const { sb, gate } = await setup(t);
  await denyAll(t, gate, '', 'path_rejected', ['path.empty']);
  const dot = await gate.call('list_directory', { path: '.' });
  t.equal(dot.status, 'ok', 'the root itself can be listed');
  const rf = await gate.call('read_file', { path: '.' });
  expectDenied(t, rf, 'path_rejected', ['path.is_directory'], 'read_file .');
  const slash = await gate.call('list_directory', { path: `${sb.root}/` });
  t.equal(slash.status, 'ok', 'the root with a trailing slash can be listed');
});

// ---------------------------------------------------------------------------------------------
// Symbolic links
// ---------------------------------------------------------------------------------------------

t.test('links inside the root that point outside are refused; links that stay inside work', async (t) => {
  const { sb, gate } = await setup(t);
  const r = (n: string) => path.join(sb.root, n);
  const secret = secretPath(sb);
  fs.mkdirSync(path.join(sb.outside, 'nested'));
  fs.writeFileSync(path.join(sb.outside, 'nested', 'deep.txt'), `${SECRET}\n`);
  fs.symlinkSync(secret, r('link-abs'));
  fs.symlinkSync('../outside/secret.txt', r('link-rel'));
  fs.symlinkSync(sb.outside, r('link-dir'));
  fs.symlinkSync('../outside', r('link-dir-rel'));
  fs.symlinkSync('../../outside/secret.txt', r('sub/link-up'));
  // link → link → link → outside, and a hop through a link that lives outside.
  fs.symlinkSync('chain-b', r('chain-a'));
  fs.symlinkSync('sub/chain-c', r('chain-b'));
  fs.symlinkSync('../link-rel', r('sub/chain-c'));
  fs.symlinkSync('secret.txt', path.join(sb.outside, 'hop'));
  fs.symlinkSync(path.join(sb.outside, 'hop'), r('via-outside-hop'));
  fs.symlinkSync('link-dir', r('dir-chain'));
  fs.symlinkSync('/', r('link-slash'));
  fs.symlinkSync('/proc/self/root', r('link-proc-root'));
  fs.symlinkSync('/proc/self/cwd', r('link-proc-cwd'));
  fs.symlinkSync('/etc/passwd', r('link-passwd'));
  fs.symlinkSync('/dev/zero', r('link-zero'));

  const escapes = [
    'link-abs',
    'link-rel',
    'link-dir',
    'link-dir-rel',
    'link-dir/secret.txt',
    'link-dir-rel/secret.txt',
    'link-dir/nested/deep.txt',
    'link-dir/nested',
    'sub/link-up',
    'chain-a',
    'chain-b',
    'sub/chain-c',
    'via-outside-hop',
    'dir-chain',
    'dir-chain/secret.txt',
    'link-slash',
    'link-slash/etc/passwd',
    `link-slash${sb.outside}/secret.txt`,
    'link-proc-root',
    'link-proc-root/etc/passwd',
    `link-proc-root${secret}`,
    'link-proc-cwd',
    'link-passwd',
    'link-zero',
    r('link-abs'),
    r('link-dir/secret.txt'),
  ];
  for (const p of escapes) await denyAll(t, gate, p, 'path_rejected', ['path.outside_root', 'path.symlink_escape']);

  // Loops and dangling links are refused, never followed forever.
  fs.symlinkSync('loop-b', r('loop-a'));
  fs.symlinkSync('loop-a', r('loop-b'));
  await denyAll(t, gate, 'loop-a', 'path_rejected', ['path.symlink_loop']);
  fs.symlinkSync('nowhere.txt', r('dangling'));
  await denyAll(t, gate, 'dangling', 'path_rejected', ['path.not_found']);

  // Links that stay inside the root work, and report the canonical path (relative to the root: issue 17).
  fs.symlinkSync('hello.txt', r('good-rel'));
  fs.symlinkSync(r('sub/notes.md'), r('good-abs'));
  fs.symlinkSync('sub', r('good-dir'));
  fs.symlinkSync('good-rel', r('good-chain'));
  fs.symlinkSync('../data/hello.txt', r('out-and-back'));
  for (const [p, want, canonical] of [
    ['good-rel', 'hello, world\n', 'hello.txt'],
    ['good-chain', 'hello, world\n', 'hello.txt'],
    ['out-and-back', 'hello, world\n', 'hello.txt'],
    ['good-abs', '# Notes\nalpha\nbeta needle gamma\n', 'sub/notes.md'],
    ['good-dir/notes.md', '# Notes\nalpha\nbeta needle gamma\n', 'sub/notes.md'],
  ] as const) {
    const o = await gate.call('read_file', { path: p });
    t.equal(o.status, 'ok', `read through inside link ${p}: ${JSON.stringify(o.denial)}`);
    t.equal(o.result?.text, want, `${p} content`);
    t.equal(o.result?.structured.path, canonical, `${p} canonical path`);
  }
  const info = await gate.call('file_info', { path: 'good-rel' });
  t.equal(info.status, 'ok');
  t.equal(info.result?.structured.kind, 'file');
  const list = await gate.call('list_directory', { path: 'good-dir' });
  t.equal(list.status, 'ok');
  // sub also holds sub/link-up and sub/chain-c from above: reported as links.
  const subEntries = list.result?.structured.entries as { path: string; kind: string }[];
  t.same(
    subEntries.map((e) => `${e.kind}:${e.path}`),
    ['symlink:chain-c', 'directory:deeper', 'symlink:link-up', 'file:notes.md'],
  );
  const search = await gate.call('search_files', { path: 'good-dir', query: 'needle' });
  t.equal(search.status, 'ok');
  t.same(
    (search.result?.structured.matches as { path: string }[]).map((m) => m.path),
    ['notes.md'],
  );

  // Listing and searching the root never follow the escaping links.
  const all = await gate.call('list_directory', { path: '.', recursive: true, include_hidden: true });
  t.equal(all.status, 'ok');
  const entries = all.result?.structured.entries as { path: string; kind: string }[];
  t.notOk(
    entries.some((e) => e.path.startsWith('link-dir/') || e.path.startsWith('link-slash/') || e.path.startsWith('link-proc-root/')),
    'no entry below a link',
  );
  t.equal(entries.find((e) => e.path === 'link-dir')?.kind, 'symlink');
  const found = await gate.call('search_files', { path: '.', query: 'CANARY', include_hidden: true });
  t.equal(found.status, 'ok');
  t.same(found.result?.structured.matches, [], 'search does not follow links out');
  t.same(leaksOf(found), []);
  t.same(leaksOf(all), []);
  auditHasNoSecret(t, sb);
});

// ---------------------------------------------------------------------------------------------
// Check-then-use: the executors must find the very inode the analyser checked
// ---------------------------------------------------------------------------------------------

function freshSandbox(t: Test): Sandbox {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  return sb;
}

function readReq(pin: ReturnType<typeof analysePath>) {
  return { pin: pin.pin, canonical: pin.facts.canonical, maxFileBytes: 1 << 20, maxBytes: 1 << 20, offset: 0, encoding: 'auto' as const };
}

t.test('a file swapped for a link after the check is refused by the read executor', async (t) => {
  const variants: [string, (sb: Sandbox, target: string) => void][] = [
    [
      'absolute link to the secret',
      (sb, target) => {
        fs.rmSync(target);
        fs.symlinkSync(secretPath(sb), target);
      },
    ],
    [
      'relative link to the secret',
      (_sb, target) => {
        fs.rmSync(target);
        fs.symlinkSync('../outside/secret.txt', target);
      },
    ],
    [
      'link renamed atomically over the file',
      (sb, target) => {
        fs.symlinkSync(secretPath(sb), `${target}.tmp`);
        fs.renameSync(`${target}.tmp`, target);
      },
    ],
    [
      'a hard link to the secret renamed over the file',
      (sb, target) => {
        fs.linkSync(secretPath(sb), `${target}.tmp`);
        fs.renameSync(`${target}.tmp`, target);
      },
    ],
    [
      'a copy of the secret renamed over the file',
      (sb, target) => {
        fs.copyFileSync(secretPath(sb), `${target}.tmp`);
        fs.renameSync(`${target}.tmp`, target);
      },
    ],
    [
      'a link to another file inside the root',
      (sb, target) => {
        fs.writeFileSync(path.join(sb.root, 'other.txt'), `${SECRET} inside\n`);
        fs.rmSync(target);
        fs.symlinkSync('other.txt', target);
      },
    ],
  ];
  for (const [label, swap] of variants) {
    const sb = freshSandbox(t);
    const target = path.join(sb.root, 'hello.txt');
    const a = analysePath('hello.txt', { roots: [sb.root], maxFileBytes: 1 << 20 });
    t.equal(a.facts.kind, 'file');
    t.same(a.pin.components, ['hello.txt']);
    swap(sb, target);
    expectChanged(t, () => readPinnedFile(readReq(a)), `read_file, ${label}`);
    expectChanged(t, () => infoPinned(a.pin, a.facts.canonical, 1 << 20), `file_info, ${label}`);
    // And the control: without a swap the same pin reads.
  }
  const sb = freshSandbox(t);
  const a = analysePath('sub/notes.md', { roots: [sb.root] });
  const r = readPinnedFile(readReq(a));
  t.equal(r.content, '# Notes\nalpha\nbeta needle gamma\n', 'an unswapped pin reads');
});

t.test('an intermediate directory swapped after the check is refused', async (t) => {
  const variants: [string, (sb: Sandbox) => void][] = [
    [
      'for a link to the outside folder',
      (sb) => {
        fs.renameSync(path.join(sb.root, 'sub'), path.join(sb.root, 'sub.old'));
        fs.symlinkSync(sb.outside, path.join(sb.root, 'sub'));
      },
    ],
    [
      'for a relative link to the outside folder',
      (sb) => {
        fs.renameSync(path.join(sb.root, 'sub'), path.join(sb.root, 'sub.old'));
        fs.symlinkSync('../outside', path.join(sb.root, 'sub'));
      },
    ],
    [
      'for the outside folder itself, moved in',
      (sb) => {
        fs.renameSync(path.join(sb.root, 'sub'), path.join(sb.root, 'sub.old'));
        fs.renameSync(sb.outside, path.join(sb.root, 'sub'));
      },
    ],
    [
      'for a file',
      (sb) => {
        fs.renameSync(path.join(sb.root, 'sub'), path.join(sb.root, 'sub.old'));
        fs.copyFileSync(secretPath(sb), path.join(sb.root, 'sub'));
      },
    ],
  ];
  for (const [label, swap] of variants) {
    const sb = freshSandbox(t);
    // The outside folder holds a file under the very name the pin expects.
    fs.writeFileSync(path.join(sb.outside, 'notes.md'), `${SECRET}\n`);
    fs.mkdirSync(path.join(sb.outside, 'deeper'));
    fs.writeFileSync(path.join(sb.outside, 'deeper', 'data.json'), `{"s":"${SECRET}"}\n`);
    const file = analysePath('sub/notes.md', { roots: [sb.root] });
    const deep = analysePath('sub/deeper/data.json', { roots: [sb.root] });
    const dir = analysePath('sub', { roots: [sb.root] });
    const deeperDir = analysePath('sub/deeper', { roots: [sb.root] });
    t.same(file.pin.components, ['sub', 'notes.md']);
    t.equal(dir.pin.kind, 'directory');
    swap(sb);
    expectChanged(t, () => readPinnedFile(readReq(file)), `read_file sub/notes.md, sub swapped ${label}`);
    expectChanged(t, () => readPinnedFile(readReq(deep)), `read_file sub/deeper/data.json, sub swapped ${label}`);
    expectChanged(t, () => infoPinned(file.pin, file.facts.canonical, 1 << 20), `file_info, sub swapped ${label}`);
    expectChanged(
      t,
      () => listPinnedDirectory({ pin: dir.pin, canonical: dir.facts.canonical, depth: 8, includeHidden: true, maxEntries: 1000, deadline: Date.now() + 5000 }),
      `list_directory sub, swapped ${label}`,
    );
    expectChanged(
      t,
      () =>
        listPinnedDirectory({
          pin: deeperDir.pin,
          canonical: deeperDir.facts.canonical,
          depth: 8,
          includeHidden: true,
          maxEntries: 1000,
          deadline: Date.now() + 5000,
        }),
      `list_directory sub/deeper, sub swapped ${label}`,
    );
    expectChanged(
      t,
      () =>
        searchPinned({
          pin: dir.pin,
          canonical: dir.facts.canonical,
          query: 'CANARY',
          regex: false,
          caseSensitive: false,
          includeHidden: true,
          maxDepth: 8,
          maxResults: 100,
          maxFileBytes: 1 << 20,
          maxFiles: 1000,
          maxBytes: 1 << 20,
          deadline: Date.now() + 5000,
          blockedExtensions: new Set(),
        }),
      `search_files sub, swapped ${label}`,
    );
  }
});

t.test('the root itself swapped for a link after the check is refused', async (t) => {
  const sb = freshSandbox(t);
  fs.writeFileSync(path.join(sb.outside, 'hello.txt'), `${SECRET}\n`);
  const a = analysePath('hello.txt', { roots: [sb.root] });
  const d = analysePath('.', { roots: [sb.root] });
  fs.renameSync(sb.root, `${sb.root}.old`);
  fs.symlinkSync(sb.outside, sb.root);
  expectChanged(t, () => readPinnedFile(readReq(a)), 'read_file with the root swapped');
  expectChanged(
    t,
    () => listPinnedDirectory({ pin: d.pin, canonical: d.facts.canonical, depth: 1, includeHidden: true, maxEntries: 100, deadline: Date.now() + 5000 }),
    'list_directory with the root swapped',
  );
});

t.test('a FIFO swapped in after the check is refused at once, without blocking', async (t) => {
  const sb = freshSandbox(t);
  const target = path.join(sb.root, 'hello.txt');
  const a = analysePath('hello.txt', { roots: [sb.root] });
  fs.rmSync(target);
  execFileSync('mkfifo', [target]);
  fifoReleaser(t, target);
  const started = performance.now();
  expectChanged(t, () => readPinnedFile(readReq(a)), 'read_file on a swapped-in FIFO');
  expectChanged(t, () => infoPinned(a.pin, a.facts.canonical, 1 << 20), 'file_info on a swapped-in FIFO');
  t.ok(performance.now() - started < 2000, 'refused without waiting for a writer');
});

t.test('a file that grows past the cap after the check is refused while it is read', async (t) => {
  const sb = freshSandbox(t);
  const target = path.join(sb.root, 'grow.txt');
  fs.writeFileSync(target, 'x'.repeat(100));
  const a = analysePath('grow.txt', { roots: [sb.root], maxFileBytes: 1024 });
  t.equal(a.facts.size, 100);
  fs.appendFileSync(target, 'y'.repeat(4000));
  expectChanged(t, () => readPinnedFile({ ...readReq(a), maxFileBytes: 1024 }), 'read_file of a grown file', 'path.too_large');
});

t.test('entries swapped for links during a walk are reported as links, never followed', async (t) => {
  const sb = freshSandbox(t);
  const r = (n: string) => path.join(sb.root, n);
  fs.writeFileSync(r('a.txt'), 'alpha\n');
  fs.writeFileSync(r('b.txt'), 'benign\n');
  fs.mkdirSync(r('zdir'));
  fs.writeFileSync(r('zdir/inner.txt'), 'inner\n');
  const d = analysePath('.', { roots: [sb.root] });
  let swapped = false;
  const res = searchPinned({
    pin: d.pin,
    canonical: d.facts.canonical,
    query: 'CANARY',
    regex: false,
    caseSensitive: false,
    includeHidden: true,
    maxDepth: 8,
    maxResults: 100,
    maxFileBytes: 1 << 20,
    maxFiles: 1000,
    maxBytes: 1 << 20,
    deadline: Date.now() + 5000,
    blockedExtensions: new Set(),
    onProgress: () => {
      if (swapped) return;
      swapped = true; // after a.txt: b.txt and zdir are swapped before the walk reaches them
      fs.rmSync(r('b.txt'));
      fs.symlinkSync(secretPath(sb), r('b.txt'));
      fs.renameSync(r('zdir'), r('zdir.old'));
      fs.symlinkSync(sb.outside, r('zdir'));
    },
  });
  t.ok(swapped, 'the swap ran mid-walk');
  t.same(res.matches, [], 'no match from the outside');
  t.notOk(JSON.stringify(res).includes(SECRET));
});

// ---------------------------------------------------------------------------------------------
// Races: a link swapped in and out while the gate reads
// ---------------------------------------------------------------------------------------------

/**
 * A separate process keeps swapping `target` between the legitimate object and a link to `linkTo`
 * (atomic renames for files; rename dance for directories). Bounded by time; killed when done.
 */
const SWAPPER = `
const fs = require('node:fs');
const { TARGET, LINK_TO, KIND, LEGIT, MAX_MS } = process.env;
const deadline = Date.now() + Number(MAX_MS);
const tmpL = TARGET + '.swap-link', tmpF = TARGET + '.swap-file', stash = TARGET + '.stash';
let i = 0;
// Hold each state a random moment so that both states are seen and the windows vary; the legitimate
// state a little longer, so that checks pass and the swap lands between check and use.
const hold = (maxNs) => { const until = process.hrtime.bigint() + BigInt(Math.floor(Math.random() * maxNs)); while (process.hrtime.bigint() < until); };
process.stdout.write('ready\\n');
while (Date.now() < deadline) {
  try {
    if (KIND === 'file') {
      // Prepare each replacement while the other state is in place, so both states last a while.
      if (i === 0) { fs.writeFileSync(tmpF, LEGIT); fs.symlinkSync(LINK_TO, tmpL); }
      fs.renameSync(tmpL, TARGET);
      fs.symlinkSync(LINK_TO, tmpL);
      hold(200_000);
      fs.renameSync(tmpF, TARGET);
      fs.writeFileSync(tmpF, LEGIT);
      hold(1_000_000);
    } else {
      fs.renameSync(TARGET, stash);
      fs.symlinkSync(LINK_TO, TARGET);
      hold(300_000);
      fs.unlinkSync(TARGET);
      fs.renameSync(stash, TARGET);
      hold(300_000);
    }
  } catch (err) { process.stderr.write(String(err) + '\\n'); }
  i++;
}
process.stdout.write('swaps ' + i + '\\n');
`;

async function startSwapper(
  t: Test,
  env: { TARGET: string; LINK_TO: string; KIND: 'file' | 'dir'; LEGIT?: string },
  maxMs = 5000,
): Promise<{ child: ChildProcess; stop: () => Promise<string> }> {
  const child = spawn(process.execPath, ['-e', SWAPPER], {
    env: { ...process.env, ...env, LEGIT: env.LEGIT ?? '', MAX_MS: String(maxMs) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    return out;
  };
  t.teardown(stop);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('swapper did not start')), 10_000);
    const check = () => {
      if (out.includes('ready')) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    check();
  });
  return { child, stop };
}

t.test('racing: 500 gated reads while a file flips between itself and a link to the secret', async (t) => {
  const { sb, gate } = await setup(t);
  const target = path.join(sb.root, 'race.txt');
  const LEGIT = 'legit content\n';
  fs.writeFileSync(target, LEGIT);
  const swapper = await startSwapper(t, { TARGET: target, LINK_TO: secretPath(sb), KIND: 'file', LEGIT });
  let leaks = 0;
  let ok = 0;
  const denials: Record<string, number> = {};
  let unexpected = 0;
  for (let i = 0; i < 500; i++) {
    const tool: Tool = i % 5 === 4 ? 'file_info' : 'read_file';
    const o = await gate.call(tool, { path: 'race.txt' });
    if (leaksOf(o).length) leaks++;
    if (o.status === 'ok') {
      ok++;
      if (tool === 'read_file' && o.result?.text !== LEGIT) unexpected++;
    } else {
      const key = `${o.denial?.code}:${o.denial?.reasons.join(',')}`;
      denials[key] = (denials[key] ?? 0) + 1;
      if (o.denial?.code !== 'path_rejected') unexpected++;
    }
  }
  await swapper.stop();
  t.comment(`ok ${ok}, denials ${JSON.stringify(denials)}`);
  t.equal(leaks, 0, 'no read returned the secret');
  t.equal(unexpected, 0, 'every outcome is the legitimate content or path_rejected');
  t.ok(ok > 0, 'some reads found the legitimate file');
  t.ok(Object.keys(denials).length > 0, 'some reads met the link (the race was real)');
  auditHasNoSecret(t, sb);
});

t.test('racing: the executor alone, 2000 check-then-read cycles against a flipping file', async (t) => {
  const sb = freshSandbox(t);
  const target = path.join(sb.root, 'race.txt');
  const LEGIT = 'legit content\n';
  fs.writeFileSync(target, LEGIT);
  const swapper = await startSwapper(t, { TARGET: target, LINK_TO: secretPath(sb), KIND: 'file', LEGIT }, 3000);
  let leaks = 0;
  let reads = 0;
  let changed = 0;
  let refusedAtCheck = 0;
  let other = 0;
  // 2,000 cycles; more (bounded) if none has yet found the legitimate file under load.
  for (let i = 0; i < 2000 || (reads === 0 && i < 20_000); i++) {
    let a: ReturnType<typeof analysePath>;
    try {
      a = analysePath('race.txt', { roots: [sb.root] });
    } catch (err) {
      if (err instanceof DenialError && err.denial.code === 'path_rejected') refusedAtCheck++;
      else other++;
      continue;
    }
    // Give the swapper a moment between the check and the use.
    for (let spin = 0; spin < 2000; spin++) Math.sqrt(spin);
    try {
      const r = readPinnedFile(readReq(a));
      if (r.content.includes(SECRET)) leaks++;
      else if (r.content === LEGIT) reads++;
      else other++;
    } catch (err) {
      if (err instanceof DenialError && err.denial.reasons.includes('path.changed_after_check')) changed++;
      else other++;
    }
  }
  await swapper.stop();
  t.comment(`reads ${reads}, refused at check ${refusedAtCheck}, changed after check ${changed}, other ${other}`);
  t.equal(leaks, 0, 'the executor never returned the secret');
  t.equal(other, 0, 'no unexpected outcome');
  t.ok(reads > 0, 'some cycles read the legitimate file');
});

t.test('racing: listing and searching while a directory flips between itself and a link outside', async (t) => {
  const { sb, gate } = await setup(t);
  const target = path.join(sb.root, 'racedir');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'legit.txt'), 'legit\n');
  const swapper = await startSwapper(t, { TARGET: target, LINK_TO: sb.outside, KIND: 'dir' });
  let leaks = 0;
  let listedOutside = 0;
  let unexpected = 0;
  for (let i = 0; i < 300; i++) {
    const which = i % 3;
    const o =
      which === 0
        ? await gate.call('list_directory', { path: '.', recursive: true })
        : which === 1
          ? await gate.call('search_files', { path: '.', query: 'CANARY' })
          : await gate.call('read_file', { path: 'racedir/secret.txt' });
    if (leaksOf(o).length) leaks++;
    if (o.status === 'ok' && which === 0) {
      const entries = o.result?.structured.entries as { path: string }[];
      if (entries.some((e) => e.path.endsWith('secret.txt'))) listedOutside++;
    }
    if (o.status === 'ok' && which === 1 && (o.result?.structured.matches as unknown[]).length > 0) leaks++;
    if (o.status === 'ok' && which === 2) unexpected++;
    if (o.status !== 'ok' && o.denial?.code !== 'path_rejected') unexpected++;
  }
  await swapper.stop();
  t.equal(leaks, 0, 'nothing from outside was returned');
  t.equal(listedOutside, 0, 'no listing showed an entry of the outside folder');
  t.equal(unexpected, 0, 'reads through the flipping directory were all refused with path_rejected');
  auditHasNoSecret(t, sb);
});

// ---------------------------------------------------------------------------------------------
// Malformed strings, /proc and /dev
// ---------------------------------------------------------------------------------------------

t.test('NUL bytes and control characters are refused before any lookup', async (t) => {
  const { gate } = await setup(t);
  for (const p of ['hello.txt\u0000.png', '\u0000', '../outside/secret.txt\u0000', 'hello.txt\u0000']) {
    await denyAll(t, gate, p, 'path_rejected', ['path.nul_byte']);
  }
  for (const p of ['hello\n.txt', 'hello.txt\r', '\u001b[2Jhello.txt', 'hello\u007f.txt', 'hello\t.txt', 'sub\u0008/notes.md', '../outside/secret.txt\n']) {
    await denyAll(t, gate, p, 'path_rejected', ['path.control_character']);
  }
});

t.test('/proc and /dev paths outside the root are refused as outside', async (t) => {
  const { gate } = await setup(t);
  for (const p of [
    '/proc/self/root/etc/passwd',
    '/proc/self/cwd/package.json',
    '/proc/self/cwd',
    '/proc/self/environ',
    '/proc/self/fd/0',
    '/proc/1/root/etc/passwd',
    '/dev/zero',
    '/dev/random',
    '/dev/urandom',
    '/dev/stdin',
    '../../../../../../proc/self/environ',
  ]) {
    await denyAll(t, gate, p, 'path_rejected', ['path.outside_root']);
  }
});

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms);
    }),
  ]);
}

t.test('a FIFO inside the root is refused quickly and never blocks', async (t) => {
  const { sb, gate } = await setup(t);
  const fifo = path.join(sb.root, 'pipe');
  execFileSync('mkfifo', [fifo]);
  fs.symlinkSync('pipe', path.join(sb.root, 'pipe-link'));
  fifoReleaser(t, fifo);
  for (const tool of TOOLS) {
    for (const p of ['pipe', 'pipe-link']) {
      const started = performance.now();
      const o = await withTimeout(gate.call(tool, argsFor(tool, p)), 2000, `${tool} ${p}`);
      t.ok(performance.now() - started < 2000, `${tool} ${p} answered within 2 s`);
      expectDenied(t, o, 'path_rejected', ['path.special_file', 'path.fifo'], `${tool} ${p}`);
    }
  }
  // Listing and searching a folder that holds a FIFO skip it without opening it.
  const started = performance.now();
  const list = await withTimeout(gate.call('list_directory', { path: '.' }), 2000, 'list_directory .');
  t.equal(list.status, 'ok');
  t.equal((list.result?.structured.entries as { path: string; kind: string }[]).find((e) => e.path === 'pipe')?.kind, 'other');
  const search = await withTimeout(gate.call('search_files', { path: '.', query: 'CANARY', include_hidden: true }), 2000, 'search_files .');
  t.equal(search.status, 'ok');
  t.same(search.result?.structured.matches, []);
  t.ok(performance.now() - started < 2000, 'list and search answered within 2 s');
});

t.test('a unix socket inside the root is refused', async (t) => {
  const { sb, gate } = await setup(t);
  const sock = path.join(sb.root, 'sock');
  const server = net.createServer((c) => c.end(SECRET));
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  for (const tool of TOOLS) {
    const o = await withTimeout(gate.call(tool, argsFor(tool, 'sock')), 2000, `${tool} sock`);
    expectDenied(t, o, 'path_rejected', ['path.special_file', 'path.socket'], `${tool} sock`);
  }
});

t.test('a link inside the root to /dev/zero, and a device node inside the root, are refused', async (t) => {
  const { sb, gate } = await setup(t);
  fs.symlinkSync('/dev/zero', path.join(sb.root, 'zero-link'));
  fs.symlinkSync('/dev/random', path.join(sb.root, 'random-link'));
  for (const p of ['zero-link', 'random-link']) {
    for (const tool of TOOLS) {
      const o = await withTimeout(gate.call(tool, argsFor(tool, p)), 2000, `${tool} ${p}`);
      expectDenied(t, o, 'path_rejected', ['path.outside_root'], `${tool} ${p}`);
    }
  }
  let mknod = true;
  try {
    execFileSync('mknod', [path.join(sb.root, 'zero-dev'), 'c', '1', '5'], { stdio: 'ignore' });
  } catch {
    mknod = false;
  }
  if (!mknod) {
    t.comment('mknod is not permitted here: the device-node case is not exercised');
    return;
  }
  for (const tool of TOOLS) {
    const o = await withTimeout(gate.call(tool, argsFor(tool, 'zero-dev')), 2000, `${tool} zero-dev`);
    expectDenied(t, o, 'path_rejected', ['path.special_file', 'path.device'], `${tool} zero-dev`);
  }
});

// ---------------------------------------------------------------------------------------------
// Size and length caps
// ---------------------------------------------------------------------------------------------

t.test('a file over max_file_bytes is refused before it is read', async (t) => {
  const { sb, gate } = await setup(t, { filesystem: { roots: ['data'], max_file_bytes: 1024 } });
  t.equal(gate.app.deps.config.filesystem.roots[0], sb.root, 'the configured root is the sandbox root');
  fs.writeFileSync(path.join(sb.root, 'big.txt'), `${SECRET}\n`.padEnd(4096, 'x'));
  fs.writeFileSync(path.join(sb.root, 'edge.txt'), 'e'.repeat(1024));
  fs.writeFileSync(path.join(sb.root, 'over.txt'), 'o'.repeat(1025));
  const big = await gate.call('read_file', { path: 'big.txt' });
  expectDenied(t, big, 'path_rejected', ['path.too_large'], 'read_file big.txt');
  t.equal(big.denial?.detail?.size, 4096);
  t.equal(big.denial?.detail?.max_file_bytes, 1024);
  expectDenied(t, await gate.call('read_file', { path: 'over.txt' }), 'path_rejected', ['path.too_large'], 'read_file over.txt (1025 bytes)');
  expectDenied(
    t,
    await gate.call('read_file', { path: 'big.txt', offset: 0, length: 10 }),
    'path_rejected',
    ['path.too_large'],
    'paging does not get around the cap',
  );
  const edge = await gate.call('read_file', { path: 'edge.txt' });
  t.equal(edge.status, 'ok', 'a file of exactly max_file_bytes reads');
  t.equal(edge.result?.structured.size, 1024);
  // file_info answers metadata for a large file but does not hash it; the canary never shows.
  const info = await gate.call('file_info', { path: 'big.txt' });
  t.equal(info.status, 'ok');
  t.equal(info.result?.structured.size, 4096);
  t.notOk('sha256' in (info.result?.structured ?? {}), 'no hash of a file over the cap');
  t.same(leaksOf(info), []);
});

t.test('a 64 MiB file is refused under the default cap, quickly', async (t) => {
  const { sb, gate } = await setup(t);
  const fd = fs.openSync(path.join(sb.root, 'huge.bin'), 'w');
  fs.ftruncateSync(fd, 64 * 1024 * 1024);
  fs.closeSync(fd);
  const started = performance.now();
  const o = await gate.call('read_file', { path: 'huge.bin', encoding: 'base64' });
  expectDenied(t, o, 'path_rejected', ['path.too_large'], 'read_file huge.bin');
  t.ok(performance.now() - started < 2000, 'refused without reading it');
});

t.test('over-long paths and components are refused as too long', async (t) => {
  const { gate } = await setup(t);
  const deep = 'a/'.repeat(2100) + 'x.txt';
  t.ok(Buffer.byteLength(deep) > 4096);
  for (const p of [
    'a'.repeat(5000),
    `sub/${'b'.repeat(300)}`,
    `${'c'.repeat(256)}.txt`,
    deep,
    `${'../'.repeat(1400)}etc/passwd`,
    // 200 characters but 400 bytes: the component cap is in bytes.
    'é'.repeat(200),
    // 2,100 characters but 6,300 bytes.
    '€'.repeat(2100),
  ]) {
    await denyAll(t, gate, p, 'path_rejected', ['path.too_long']);
  }
  // Past the schema's own cap the arguments are invalid input, still without a leak.
  const huge = await gate.call('read_file', { path: 'a'.repeat(70_000) });
  expectDenied(t, huge, 'invalid_input', [], 'read_file 70,000-char path');
});

t.test('a name of exactly 255 bytes is allowed', async (t) => {
  const { sb, gate } = await setup(t);
  const name = `${'n'.repeat(251)}.txt`;
  t.equal(Buffer.byteLength(name), 255);
  fs.writeFileSync(path.join(sb.root, name), 'long name\n');
  const o = await gate.call('read_file', { path: name });
  t.equal(o.status, 'ok', JSON.stringify(o.denial));
  t.equal(o.result?.text, 'long name\n');
});

// ---------------------------------------------------------------------------------------------
// Whitespace, quotes, encodings
// ---------------------------------------------------------------------------------------------

t.test('whitespace and quotes are part of the name: never trimmed, never stripped', async (t) => {
  const { sb, gate } = await setup(t);
  // hello.txt exists; "hello.txt " does not, and must not be read as hello.txt.
  for (const p of ['hello.txt ', ' hello.txt', 'hello.txt\u00a0', '"hello.txt"', "'hello.txt'"]) {
    await denyAll(t, gate, p, 'path_rejected', ['path.not_found']);
  }
  for (const p of [
    '"../outside/secret.txt"',
    "'../outside/secret.txt'",
    '"../../outside/secret.txt"',
    '`../outside/secret.txt`',
    ` ${sb.root}/secret.txt`,
    ' ../outside/secret.txt',
  ]) {
    await denyAll(t, gate, p, 'path_rejected', []);
  }
  for (const p of ['../outside/secret.txt ', `"${secretPath(sb)}"`.slice(1), `${secretPath(sb)} `]) {
    await denyAll(t, gate, p, 'path_rejected', ['path.outside_root']);
  }
  // A secret beside the root under a whitespace name is still outside.
  fs.writeFileSync(path.join(sb.outside, 'secret.txt '), `${SECRET}\n`);
  await denyAll(t, gate, '../outside/secret.txt ', 'path_rejected', ['path.outside_root']);

  // A file whose real name ends in a space reads by that exact name, and only by it.
  fs.writeFileSync(path.join(sb.root, 'spaced.txt '), 'trailing space\n');
  const ok = await gate.call('read_file', { path: 'spaced.txt ' });
  t.equal(ok.status, 'ok', JSON.stringify(ok.denial));
  t.equal(ok.result?.text, 'trailing space\n');
  t.equal(ok.result?.structured.path, 'spaced.txt ');
  expectDenied(t, await gate.call('read_file', { path: 'spaced.txt' }), 'path_rejected', ['path.not_found'], 'read_file spaced.txt (trimmed)');
  const hello = await gate.call('read_file', { path: 'hello.txt' });
  t.equal(hello.result?.text, 'hello, world\n', 'the untrimmed neighbour is unaffected');
});

t.test('URL-encoded and other encoded traversal is never decoded', async (t) => {
  const { sb, gate } = await setup(t);
  for (const p of [
    '..%2f..%2foutside%2fsecret.txt',
    '..%2Foutside%2Fsecret.txt',
    '%2e%2e/outside/secret.txt',
    '%2e%2e%2foutside%2fsecret.txt',
    '..%252f..%252foutside%252fsecret.txt',
    '%252e%252e/outside/secret.txt',
    '..%c0%af..%c0%afoutside%c0%afsecret.txt',
    'hello.txt%00.png',
    '\u2024\u2024/outside/secret.txt',
    '\uff0e\uff0e/outside/secret.txt',
    '..\u2215outside\u2215secret.txt',
    'file:///etc/passwd',
    `file://${secretPath(sb)}`,
  ]) {
    await denyAll(t, gate, p, 'path_rejected', ['path.not_found']);
  }
  // A literal percent name inside the root is just a name.
  fs.writeFileSync(path.join(sb.root, 'a%2fb.txt'), 'percent name\n');
  const o = await gate.call('read_file', { path: 'a%2fb.txt' });
  t.equal(o.status, 'ok', JSON.stringify(o.denial));
  t.equal(o.result?.text, 'percent name\n');
});

// ---------------------------------------------------------------------------------------------
// Hard links
// ---------------------------------------------------------------------------------------------

t.test('a hard link inside the root to the outside secret is refused by policy and skipped by search', async (t) => {
  const { sb, gate } = await setup(t);
  fs.linkSync(secretPath(sb), path.join(sb.root, 'hl.txt'));
  fs.linkSync(secretPath(sb), path.join(sb.root, 'sub', 'deeper', 'hl-deep.md'));
  for (const p of ['hl.txt', 'sub/deeper/hl-deep.md', path.join(sb.root, 'hl.txt')]) {
    for (const tool of ['read_file', 'file_info'] as const) {
      const o = await gate.call(tool, { path: p });
      expectDenied(t, o, 'policy_denied', ['path.hardlink'], `${tool} ${p}`);
      t.equal(o.decision?.allow, false, `${tool} ${p}: the policy decided`);
    }
  }
  for (const p of ['.', 'sub', 'sub/deeper']) {
    const s = await gate.call('search_files', { path: p, query: 'CANARY', include_hidden: true });
    t.equal(s.status, 'ok');
    t.same(s.result?.structured.matches, [], `search_files ${p}: no match through a hard link`);
    t.ok((s.result?.structured.skipped as { hardlinked: number }).hardlinked >= 1, `search_files ${p}: the hard link was skipped`);
    t.same(leaksOf(s), []);
    const rx = await gate.call('search_files', { path: p, query: '.', regex: true, include_hidden: true });
    t.same(leaksOf(rx), [], `search_files ${p} regex '.': nothing leaks`);
  }
  const list = await gate.call('list_directory', { path: '.', recursive: true });
  t.equal(list.status, 'ok', 'listing names is fine');
  t.same(leaksOf(list), []);
  const audit = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file');
  t.ok(
    audit.every((r) => r.outcome.status === 'denied' && r.outcome.code === 'policy_denied' && r.decision?.allow === false),
    'audited as policy denials',
  );
  auditHasNoSecret(t, sb);
});

// ---------------------------------------------------------------------------------------------
// Names that are odd but legitimate
// ---------------------------------------------------------------------------------------------

t.test('Unicode names and names with spaces work with every tool', async (t) => {
  const { sb, gate } = await setup(t);
  const dir = path.join(sb.root, 'dossier été');
  fs.mkdirSync(dir);
  const files: Record<string, string> = {
    'dossier été/日本語 ファイル.txt': 'konnichiwa needle\n',
    'dossier été/emoji 🎉 party.md': 'party needle\n',
    'naïve café.txt': 'café needle\n',
    'Ωmega name.txt': 'omega needle\n',
  };
  for (const [rel, content] of Object.entries(files)) fs.writeFileSync(path.join(sb.root, rel), content);
  for (const [rel, content] of Object.entries(files)) {
    const r = await gate.call('read_file', { path: rel });
    t.equal(r.status, 'ok', `read ${rel}: ${JSON.stringify(r.denial)}`);
    t.equal(r.result?.text, content);
    const abs = await gate.call('read_file', { path: path.join(sb.root, rel) });
    t.equal(abs.result?.text, content, `read ${rel} by absolute path`);
    const info = await gate.call('file_info', { path: rel });
    t.equal(info.status, 'ok');
    t.equal(info.result?.structured.size, Buffer.byteLength(content));
  }
  const list = await gate.call('list_directory', { path: 'dossier été' });
  t.equal(list.status, 'ok');
  t.same((list.result?.structured.entries as { path: string }[]).map((e) => e.path).sort(), ['emoji 🎉 party.md', '日本語 ファイル.txt'].sort());
  const search = await gate.call('search_files', { path: '.', query: 'NEEDLE' });
  t.equal(search.status, 'ok');
  const found = (search.result?.structured.matches as { path: string }[]).map((m) => m.path).sort();
  t.same(found, [...Object.keys(files), 'sub/notes.md'].sort());
  const dinfo = await gate.call('file_info', { path: 'dossier été' });
  t.equal(dinfo.result?.structured.kind, 'directory');
});
