import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { BIN, makeSandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';

/**
 * Start-up failures an operator fixes in the environment: exit 2, one line on stderr naming the
 * path or the process holding the log, no stack trace, and no answer to `initialize`.
 */

const INIT =
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}\n';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `bulwark serve` over stdio, sent `initialize` at once; resolves when it exits (or is killed after 20 s). */
function serve(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'], env: cleanChildEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.on('error', () => undefined);
    child.stdin.write(INIT);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function assertOneLine(t: Test, run: Run, mustName: RegExp, label: string): void {
  t.equal(run.code, 2, `${label}: exit 2 (got ${run.code}; stderr: ${run.stderr.slice(0, 300)})`);
  const lines = run.stderr.split('\n').filter((l) => l.length > 0);
  t.equal(lines.length, 1, `${label}: one line on stderr (${lines.length})`);
  t.match(lines[0] ?? '', /^bulwark: /, `${label}: a bulwark message`);
  t.match(lines[0] ?? '', mustName, `${label}: it names ${mustName}`);
  t.notMatch(run.stderr, /\n\s+at |Error:/, `${label}: no stack trace`);
  t.equal(run.stdout, '', `${label}: initialize was not answered`);
}

t.test('a regular file named .bulwark where the audit folder should go', async (t) => {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-startup-')));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, '.bulwark'), 'not a folder\n');
  // Embedded defaults: the audit log is .bulwark/audit.jsonl under the working folder.
  const run = await serve([], dir);
  assertOneLine(t, run, new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/\\.bulwark`), 'file in the way');
  t.match(run.stderr, /a file is in the way/);
});

// As root, permissions do not stop a write; a read-only mount does.
const roDir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-ro-')));
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1M', 'tmpfs', roDir], { encoding: 'utf8' });
t.teardown(() => {
  if (mounted.status === 0) spawnSync('umount', [roDir]);
  fs.rmSync(roDir, { recursive: true, force: true });
});
const roSkip =
  mounted.status === 0
    ? false
    : `cannot mount a read-only tmpfs here (${(mounted.stderr || mounted.error?.message || '').trim()}); the file-in-the-way case covers the same path`;

t.test('a working folder on a read-only file system', { skip: roSkip }, async (t) => {
  const run = await serve([], roDir);
  assertOneLine(t, run, new RegExp(`${roDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/\\.bulwark`), 'read-only mount');
  t.match(run.stderr, /EROFS: read-only file system/);
});

t.test('a second server on the same audit log', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const first = spawn(process.execPath, [BIN, 'serve', '--config', sb.configPath], { stdio: ['pipe', 'pipe', 'pipe'], env: cleanChildEnv() });
  t.teardown(() => first.kill('SIGKILL'));
  let out = '';
  first.stdout.on('data', (c: Buffer) => (out += c.toString()));
  first.stdin.write(INIT);
  const until = Date.now() + 20_000;
  while (!out.includes('"id":1') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.match(out, /"id":1/, 'the first server is up and holds the log');

  const second = await serve(['--config', sb.configPath], sb.dir);
  assertOneLine(t, second, new RegExp(`process ${first.pid}\\b`), 'second server');
  t.match(second.stderr, new RegExp(`${sb.auditPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'and the log');

  // The first server was not disturbed.
  first.stdin.write('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"hello.txt"}}}\n');
  first.stdin.end();
  const code = await new Promise<number | null>((r) => first.once('exit', (c) => r(c)));
  t.equal(code, 0, 'the first server exits cleanly');
  t.match(out, /hello, world/, 'and answered its call');
});

t.test('a headers timeout longer than the request timeout is a config error: exit 2', async (t) => {
  const sb = makeSandbox({ server: { http: { headers_timeout_ms: 5000, request_timeout_ms: 1000 } } });
  t.teardown(sb.cleanup);
  const run = await serve(['--config', sb.configPath], sb.dir);
  t.equal(run.code, 2);
  t.match(run.stderr, /headers_timeout_ms must not exceed request_timeout_ms/);
  t.notMatch(run.stderr, /\n\s+at /);
});

t.test('an HTTP port another process listens on', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => squatter.close());
  const port = (squatter.address() as net.AddressInfo).port;
  const run = await serve(['--config', sb.configPath, '--http', `127.0.0.1:${port}`], sb.dir);
  t.equal(run.code, 2, `exit 2 (stderr: ${run.stderr.slice(0, 300)})`);
  const lines = run.stderr.split('\n').filter(Boolean);
  t.equal(lines.length, 1, 'one line on stderr');
  t.match(lines[0] ?? '', new RegExp(`^bulwark: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE`));
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
  // The audit log it opened was closed and its lock given back.
  t.notOk(fs.existsSync(`${sb.auditPath}.lock`), 'lock released');
});
