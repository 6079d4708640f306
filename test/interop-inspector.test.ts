/**
 * The MCP Inspector's CLI (npm `@modelcontextprotocol/inspector`, pinned in scripts/inspector.sh,
 * on the Node 24 of scripts/node24.sh: it needs Node >= 22.19) against Bulwark over real HTTP
 * (`bulwark serve --http 127.0.0.1:0`) and real stdio (the Inspector spawns `bulwark serve`),
 * in both protocol eras (issue 14, "Done when"):
 *
 * - `--protocol-era legacy`: the 2025-11-25 `initialize` handshake (the CLI's default for an
 *   ad-hoc target).
 * - `--protocol-era modern`: a pin to 2026-07-28 with no fallback. The CLI refuses to go on unless
 *   the server's `server/discover` offers 2026-07-28, so a success here is a modern session.
 *
 * Each era: `--method tools/list`, `--method tools/call` reading a file, and a call refused with
 * its typed code (the CLI exits 5, "tool returned isError", and prints the result), each with its
 * outcome record in the audit log.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { BIN, ROOT, SECRET, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';

const NODE24 = path.join(ROOT, '.toolchain', 'node24', 'bin', 'node');
const INSPECTOR = path.join(ROOT, '.toolchain', 'inspector', 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');
/** The CLI's exit code for "the tool returned isError: true" (its EXIT_CODES.TOOL_ERROR). */
const EXIT_TOOL_ERROR = 5;

type Era = 'legacy' | 'modern';
const ERAS: readonly Era[] = ['legacy', 'modern'];

// The Inspector keeps a catalog and secrets under $HOME: a throwaway one, not the user's.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-inspector-home-'));
// Only the filesystem tools are exercised: no embedded database, one worker per pool, so each
// stdio server the Inspector spawns starts quickly.
const LEAN = {
  database: { embedded: false },
  execution: { filesystem_pool: { size: 1, max_queue: 64, heap_mb: 256 }, javascript_pool: { size: 1, max_queue: 16, heap_mb: 512 } },
};
const sbHttp = makeSandbox(LEAN);
// One per era: the two eras' stdio runs go side by side, and a log has one writer.
const sbStdio: Record<Era, Sandbox> = { legacy: makeSandbox(LEAN), modern: makeSandbox(LEAN) };
let server: HttpServerProcess;
t.before(async () => {
  for (const f of [NODE24, INSPECTOR]) if (!fs.existsSync(f)) throw new Error(`${f} is missing: run scripts/toolchain.sh (scripts/inspector.sh)`);
  server = await startHttpServer(['--config', sbHttp.configPath]);
});
t.teardown(async () => {
  await server?.stop();
  sbHttp.cleanup();
  for (const sb of Object.values(sbStdio)) sb.cleanup();
  fs.rmSync(home, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function inspector(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(NODE24, [INSPECTOR, '--cli', ...args], { env: cleanChildEnv({ HOME: home }), timeout: 45_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The target: the URL, or the stdio command after `--` (Bulwark's own `--config` must not reach the CLI's parser). */
function target(transport: 'http' | 'stdio', era: Era, method: string[]): string[] {
  const common = ['--protocol-era', era, ...method];
  return transport === 'http' ? [server.url, ...common] : [...common, '--', process.execPath, BIN, 'serve', '--config', sbStdio[era].configPath];
}

function json(t: Test, run: Run, label: string): Record<string, any> | undefined {
  try {
    return JSON.parse(run.stdout) as Record<string, any>;
  } catch {
    t.fail(`${label}: the Inspector printed no JSON (exit ${run.code})`, { stdout: run.stdout.slice(-2000), stderr: run.stderr.slice(-3000) });
    return undefined;
  }
}

/** The outcome record of a request, found by the id Bulwark put in the result or the denial. */
function recordOf(sb: Sandbox, requestId: unknown): Record<string, any>[] {
  return readAudit(sb.auditPath).filter((r) => r.event === undefined && r.request_id === requestId);
}

/** The three invocations of one transport and era, one after another (a stdio log has one writer). */
async function eraChecks(t: Test, transport: 'http' | 'stdio', era: Era): Promise<void> {
  const sb = transport === 'http' ? sbHttp : sbStdio[era];
  await t.test('tools/list', async (t) => {
    const run = await inspector(target(transport, era, ['--method', 'tools/list']));
    t.equal(run.code, 0, `exit 0 (stderr: ${run.stderr.slice(-500)})`);
    const out = json(t, run, 'tools/list');
    const names = ((out?.tools ?? []) as { name: string }[]).map((x) => x.name);
    for (const name of ['read_file', 'list_directory', 'search_files', 'file_info']) t.ok(names.includes(name), `${name} is listed`);
    const readFile = (out?.tools as { name: string; inputSchema?: Record<string, any> }[] | undefined)?.find((x) => x.name === 'read_file');
    t.equal(readFile?.inputSchema?.type, 'object', 'with its input schema');
  });

  await t.test('tools/call', async (t) => {
    const run = await inspector(target(transport, era, ['--method', 'tools/call', '--tool-name', 'read_file', '--tool-arg', 'path=hello.txt']));
    t.equal(run.code, 0, `exit 0 (stderr: ${run.stderr.slice(-500)})`);
    const out = json(t, run, 'tools/call');
    t.notOk(out?.isError, 'not an error');
    t.equal(out?.structuredContent?.content, 'hello, world\n', 'the file, structured');
    t.same(out?.content, [{ type: 'text', text: 'hello, world\n' }], 'and as text');
    const id = out?._meta?.['bulwark/request_id'];
    t.match(recordOf(sb, id), [{ transport, tool: 'read_file', outcome: { status: 'ok' } }], 'one ok outcome record');
    t.equal(recordOf(sb, id).length, 1);
  });

  await t.test('a refused call keeps its typed code', async (t) => {
    const run = await inspector(target(transport, era, ['--method', 'tools/call', '--tool-name', 'read_file', '--tool-arg', 'path=../outside/secret.txt']));
    t.equal(run.code, EXIT_TOOL_ERROR, `the CLI exits ${EXIT_TOOL_ERROR}: the tool returned isError (stderr: ${run.stderr.slice(-500)})`);
    const out = json(t, run, 'refused tools/call');
    t.equal(out?.isError, true);
    t.equal(out?.structuredContent?.error?.code, 'path_rejected', 'path_rejected');
    t.match(out?.content?.[0]?.text, /^path_rejected: /, 'the text leads with the code');
    t.notMatch(out?.content?.[0]?.text, /path_rejected:.*path_rejected:/, 'once');
    t.notOk(run.stdout.includes(SECRET) || run.stderr.includes(SECRET), 'nothing of the file');
    const id = out?.structuredContent?.error?.request_id;
    t.match(recordOf(sb, id), [{ transport, tool: 'read_file', outcome: { status: 'denied', code: 'path_rejected' } }], 'one denied outcome record');
    t.equal(recordOf(sb, id).length, 1);
  });
}

// Each stdio invocation starts a server, the slow part of this file: the eras run side by side.
for (const transport of ['http', 'stdio'] as const) {
  t.test(transport, { jobs: 2 }, async (t) => {
    for (const era of ERAS) t.test(`--protocol-era ${era}`, (t) => eraChecks(t, transport, era));
  });
}
