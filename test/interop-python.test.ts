/**
 * The official MCP Python SDK 2.x (PyPI `mcp`, pinned in scripts/python-sdk.sh) against Bulwark,
 * over real HTTP (`bulwark serve --http 127.0.0.1:0` with `auth.http: api_key`, the client sending
 * its key as a bearer) and real stdio (the SDK spawns `bulwark serve`), in both protocol eras as
 * the SDK chooses them (issue 14, "Done when"):
 *
 * - `mode='legacy'`: the 2025-11-25 `initialize` handshake.
 * - `mode='auto'`, the SDK's default: it probes `server/discover` at 2026-07-28 and falls back to
 *   `initialize` only when the answer is not positive modern evidence. Against a server that
 *   serves 2026-07-28 the connection must come out modern; a fallback fails this test.
 * - `mode='2026-07-28'`: a version pin without the probe (the SDK adopts a discover result it
 *   makes up); the client script then sends `server/discover` itself and reports the server's
 *   answer. Over HTTP only: it differs from `auto` in the client alone.
 *
 * Each run lists the tools, reads a file and is refused a path outside the root with its typed
 * code, and the audit log holds one outcome record for each call. The client is
 * test/interop/python_client.py; it reports what the SDK parsed as JSON and decides nothing.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { BIN, ROOT, SECRET, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { createKey } from '../src/auth/api-keys.js';

const PYTHON = path.join(ROOT, '.toolchain', 'python-mcp', 'bin', 'python');
const CLIENT = path.join(ROOT, 'test', 'interop', 'python_client.py');

type Mode = 'legacy' | 'auto' | '2026-07-28';
interface CallReport {
  readonly is_error: boolean;
  readonly structured: Record<string, any> | null;
  readonly meta: Record<string, unknown> | null;
  readonly text: string[];
}
interface Report {
  readonly error?: string[];
  readonly protocol_version: string;
  readonly handshake: 'discover' | 'initialize';
  readonly supported_versions?: string[];
  readonly server_name: string | null;
  readonly tools: string[];
  readonly read_file: CallReport;
  readonly denied: CallReport;
}

/** Runs the Python client; resolves with its JSON report (or its error report) and stderr. */
function runClient(mode: Mode, target: string[], env: Record<string, string> = {}): Promise<{ report: Report; stderr: string }> {
  const args = [CLIENT, '--mode', mode, '--file', 'hello.txt', '--denied', '../outside/secret.txt', ...target];
  return new Promise((resolve, reject) => {
    execFile(PYTHON, args, { env: cleanChildEnv(env), timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      try {
        resolve({ report: JSON.parse(last) as Report, stderr });
      } catch {
        reject(new Error(`python client gave no JSON (${err?.message ?? 'exit 0'}): ${stdout.slice(-2000)}\n${stderr.slice(-4000)}`));
      }
    });
  });
}

// Only the filesystem tools are exercised: no embedded database, one worker per pool, so a
// stdio server the SDK spawns starts quickly.
const LEAN = {
  database: { embedded: false },
  execution: { filesystem_pool: { size: 1, max_queue: 64, heap_mb: 256 }, javascript_pool: { size: 1, max_queue: 16, heap_mb: 512 } },
};
// HTTP as deployed beyond loopback: every request carries an API key (the Inspector's test covers
// the loopback-only default).
const sbHttp = makeSandbox({ ...LEAN, auth: { http: 'api_key', keys_file: 'keys.json' } });
const PRINCIPAL = 'python-sdk';
let token = '';
// One per mode: the stdio runs go side by side, and a log has one writer.
const sbStdio = { legacy: makeSandbox(LEAN), auto: makeSandbox(LEAN) };
let server: HttpServerProcess;
t.before(async () => {
  if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run scripts/toolchain.sh (scripts/python-sdk.sh)`);
  token = (await createKey(path.join(sbHttp.dir, 'keys.json'), { principal: PRINCIPAL, roles: ['developer'], tier: 'local' })).token;
  server = await startHttpServer(['--config', sbHttp.configPath]);
});
t.teardown(async () => {
  await server?.stop();
  sbHttp.cleanup();
  for (const sb of Object.values(sbStdio)) sb.cleanup();
});

const EXPECTED: Record<Mode, { version: string; handshake: Report['handshake'] }> = {
  legacy: { version: '2025-11-25', handshake: 'initialize' },
  auto: { version: '2026-07-28', handshake: 'discover' },
  '2026-07-28': { version: '2026-07-28', handshake: 'discover' },
};

function check(t: Test, report: Report, stderr: string, mode: Mode, sb: Sandbox, transport: 'http' | 'stdio'): void {
  if (report.error) {
    t.fail(`the Python client failed: ${report.error.join('; ')}`, { stderr: stderr.slice(-3000) });
    return;
  }
  const want = EXPECTED[mode];
  t.equal(report.protocol_version, want.version, `mode=${mode} negotiated ${want.version}`);
  t.equal(report.handshake, want.handshake, `through ${want.handshake}`);
  if (want.handshake === 'discover')
    t.ok(report.supported_versions?.includes('2026-07-28'), `server/discover offers 2026-07-28: ${report.supported_versions?.join(',')}`);
  t.equal(report.server_name, 'bulwark', `${want.handshake} named the server`);
  for (const name of ['read_file', 'list_directory', 'search_files', 'file_info']) t.ok(report.tools.includes(name), `${name} is listed`);

  t.equal(report.read_file.is_error, false, 'read_file answered');
  t.equal(report.read_file.structured?.content, 'hello, world\n', 'with the file in structured content');
  t.same(report.read_file.text, ['hello, world\n'], 'and as text');

  t.equal(report.denied.is_error, true, 'the path outside the root is refused');
  t.equal(report.denied.structured?.error?.code, 'path_rejected', 'with its typed code');
  t.match(report.denied.structured?.error?.request_id, /^[0-9a-f-]{36}$/, 'naming its request');
  t.notOk(JSON.stringify(report.denied).includes(SECRET), 'and nothing of the file');

  // Every call the client made left one outcome record, on this transport.
  const records = readAudit(sb.auditPath).filter((r) => r.event === undefined);
  const okId = report.read_file.meta?.['bulwark/request_id'];
  const ok = records.filter((r) => r.request_id === okId);
  const denied = records.filter((r) => r.request_id === report.denied.structured?.error?.request_id);
  t.equal(ok.length, 1, `the read has exactly one outcome record (${String(okId)})`);
  t.match(ok[0], { transport, tool: 'read_file', outcome: { status: 'ok' } });
  t.match(ok[0]?.principal, transport === 'http' ? { auth: 'api_key', id: PRINCIPAL } : { auth: 'stdio' }, 'under the principal the transport verified');
  t.equal(denied.length, 1, 'the refusal has exactly one outcome record');
  t.match(denied[0], { transport, tool: 'read_file', outcome: { status: 'denied', code: 'path_rejected' } });
}

// Each stdio run starts a server, the slow part of this file: the HTTP runs (one server, many
// clients) and the stdio runs go side by side (t.jobs). The version pin differs from `auto` in the client
// alone (no probe; the script asks for discovery itself), so it runs over HTTP only.
t.jobs = 2;
t.test('HTTP', async (t) => {
  for (const mode of ['legacy', 'auto', '2026-07-28'] as const)
    await t.test(`mode=${mode}`, async (t) => {
      const { report, stderr } = await runClient(mode, ['--http', server.url], { PYTHON_CLIENT_BEARER: token });
      check(t, report, stderr, mode, sbHttp, 'http');
    });
});
t.test('stdio', { jobs: 2 }, async (t) => {
  for (const mode of ['legacy', 'auto'] as const)
    t.test(`mode=${mode}`, async (t) => {
      const { report, stderr } = await runClient(mode, ['--stdio', '--', process.execPath, BIN, 'serve', '--config', sbStdio[mode].configPath]);
      check(t, report, stderr, mode, sbStdio[mode], 'stdio');
    });
});
