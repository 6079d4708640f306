/**
 * The official MCP conformance suite (@modelcontextprotocol/conformance 0.2.0-alpha.12 under
 * Node 22, both from the npm registry, installed by scripts/conformance.sh into .toolchain/)
 * against the real server over real HTTP (issue 14, item 5):
 * - `bulwark serve --profile conformance`: every scored scenario of both requirement sets passes,
 *   and the fixtures went through the gate (an audit record per request, decided by the policy);
 * - the default profile: every scenario that applies to the configured tools passes;
 * - the profile is refused wherever a deployment could be (a config file, a non-loopback bind).
 */
import t, { type Test } from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BIN, makeSandbox, readAudit, ROOT } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer } from './helpers/clients.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { openPolicy } from '../src/app.js';
import { loadConfig } from '../src/config/loader.js';
import { createLogger } from '../src/observability/logger.js';

const run = promisify(execFile);

/** What one suite run found: the scored scenarios and, per scenario, its checks by status. */
interface ScenarioResult {
  readonly scenario: string;
  readonly checks: readonly { readonly id: string; readonly status: string; readonly errorMessage?: string }[];
}

let suiteNode = '';
let suiteBin = '';

t.before(async () => {
  // Installs the pinned suite when missing (a quick check when present): the test needs it, never skips it.
  const { stdout } = await run('bash', [path.join(ROOT, 'scripts', 'conformance.sh'), '--print'], { env: cleanChildEnv(), timeout: 600_000 });
  const dir = stdout.trim();
  suiteNode = path.join(dir, 'node_modules', '.bin', 'node');
  suiteBin = path.join(dir, 'node_modules', '.bin', 'conformance');
});

/** The suite's CLI under its own Node 22 (no tap hooks in NODE_OPTIONS: they are Node 20's). */
async function suite(args: string[], timeoutMs = 300_000): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await run(suiteNode, [suiteBin, ...args], { env: cleanChildEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; code?: unknown };
    if (typeof e.stdout !== 'string' || typeof e.code !== 'number') throw err;
    return { stdout: e.stdout, code: e.code };
  }
}

/** The server scenarios a requirement set scores, from the suite's own listing. */
async function scoredServerScenarios(requirements: string): Promise<string[]> {
  const { stdout } = await suite(['list', '--server', '--requirements', requirements]);
  const section = stdout.split(/Server scenarios[^\n]*\n/)[1]?.split(/\n\s*\n/)[0] ?? '';
  return section
    .split('\n')
    .map((l) => /^\s*-\s+(\S+)\s*$/.exec(l)?.[1])
    .filter((s): s is string => s !== undefined);
}

/** Every scenario's checks from an output folder (`server-<scenario>-<timestamp>/checks.json`). */
function readResults(dir: string): Map<string, ScenarioResult> {
  const out = new Map<string, ScenarioResult>();
  for (const entry of fs.readdirSync(dir)) {
    const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(entry);
    if (!m) continue;
    const checks = JSON.parse(fs.readFileSync(path.join(dir, entry, 'checks.json'), 'utf8')) as ScenarioResult['checks'];
    out.set(m[1] as string, { scenario: m[1] as string, checks });
  }
  return out;
}

/** "scenario: check (message)" for each failed check; a scored scenario that did not run counts too. */
function failuresOf(results: Map<string, ScenarioResult>, scenarios: readonly string[], exempt: ReadonlySet<string> = new Set()): string[] {
  const failures: string[] = [];
  for (const s of scenarios) {
    const r = results.get(s);
    if (!r) {
      failures.push(`${s}: did not run`);
      continue;
    }
    for (const c of r.checks) {
      if (c.status === 'FAILURE' && !exempt.has(`${s}/${c.id}`)) failures.push(`${s}: ${c.id} (${(c.errorMessage ?? '').slice(0, 200)})`);
    }
  }
  return failures;
}

interface ProfileServer {
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** `bulwark serve` with these arguments in `cwd` (the profile runs on embedded defaults: its audit log is `cwd/.bulwark`). */
async function startServe(cwd: string, args: string[]): Promise<ProfileServer> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: cleanChildEnv() });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /Bulwark is listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${err}`));
    });
  });
  return {
    url,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** `bulwark serve ...` expected to refuse before serving: its exit code and stderr. */
async function refusedServe(cwd: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: cleanChildEnv() });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stderr };
}

function tempDir(t: Test): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-conformance-')));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('--profile conformance: every scored scenario of both requirement sets passes, through the gate', async (t) => {
  const cwd = tempDir(t);
  const server = await startServe(cwd, ['--http', '127.0.0.1:0', '--profile', 'conformance']);
  t.teardown(() => server.stop());

  for (const requirements of ['2025-11-25', '2026-07-28']) {
    const scored = await scoredServerScenarios(requirements);
    t.ok(scored.length >= 20, `${requirements}: the suite lists its scored server scenarios (${scored.length})`);
    const out = path.join(cwd, `results-${requirements}`);
    await suite(['server', '--url', server.url, '--requirements', requirements, '-o', out]);
    const results = readResults(out);
    const failures = failuresOf(results, scored);
    const checks = scored.reduce((n, s) => n + (results.get(s)?.checks.length ?? 0), 0);
    t.same(failures, [], `${requirements}: ${scored.length} scored scenarios, ${checks} checks; failing:\n  ${failures.join('\n  ')}`);
  }

  await server.stop();
  // Through the full gate: each fixture request left its record, decided by the policy (allowed
  // only under the profile) and stamped with its revision; refusals are recorded too.
  const records = readAudit(path.join(cwd, '.bulwark', 'audit.jsonl'));
  const of = (tool: string) => records.filter((r) => r.tool === tool);
  for (const tool of [
    'test_simple_text',
    'test_image_content',
    'test_tool_with_progress',
    'test_elicitation',
    'test_input_required_result_elicitation',
    'conformance_resources_list',
    'conformance_resources_read',
    'conformance_prompts_get',
    'conformance_completion_complete',
  ]) {
    const mine = of(tool);
    t.ok(mine.length > 0, `${tool}: recorded`);
    t.ok(
      mine.every((r) => typeof r.policy_revision === 'string' && r.policy_revision.length === 64),
      `${tool}: every record names the policy revision`,
    );
    t.ok(
      mine.some((r) => r.decision?.allow === true && r.outcome.status !== 'denied'),
      `${tool}: allowed by the policy under the profile`,
    );
  }
  t.ok(
    of('test_error_handling').some((r) => r.outcome.status === 'error' && r.outcome.code === 'tool_error'),
    'the failing fixture is recorded as a tool_error',
  );
  t.ok(
    of('conformance_resources_read').some((r) => r.outcome.status === 'denied' && r.outcome.reasons?.includes('conformance.resource_not_found')),
    'a read of a resource no fixture serves (sep-2164) is refused and recorded',
  );
  t.ok(
    records.every((r) => r.principal?.id === 'loopback' || r.decision === null),
    'every decided call was made by the loopback principal (authenticated by the transport)',
  );
});

/**
 * The default profile serves Bulwark's own tools and no fixtures. What applies there: the
 * lifecycle, ping, tools/list, DNS-rebinding and concurrent streams in full; 2026-07-28's
 * server-stateless and caching except the checks that need a fixture tool or a method only the
 * profile serves (named below, each the suite's own "not testable"/-32601 for a missing fixture).
 */
const DEFAULT_APPLICABLE: Readonly<Record<string, readonly string[]>> = {
  '2025-11-25': ['server-initialize', 'ping', 'tools-list', 'dns-rebinding-protection', 'server-sse-multiple-streams'],
  '2026-07-28': ['tools-list', 'dns-rebinding-protection', 'server-sse-multiple-streams', 'server-stateless', 'caching'],
};
const DEFAULT_NEEDS_FIXTURES = new Set([
  'server-stateless/sep-2575-server-rejects-undeclared-capability', // test_missing_capability
  'server-stateless/sep-2575-missing-capability-http-400', // test_missing_capability
  'server-stateless/sep-2575-http-server-no-independent-requests-on-stream', // test_streaming_elicitation
  'server-stateless/sep-2575-server-no-log-without-loglevel', // test_logging_tool
  'caching/sep-2549-prompts-list-caching-hints', // prompts/list: the profile's
  'caching/sep-2549-resources-list-caching-hints', // resources/list: the profile's
  'caching/sep-2549-resources-templates-list-caching-hints', // resources/templates/list: the profile's
]);

t.test('the default profile: every scenario that applies to its tools passes, and no fixture is served', async (t) => {
  const sb = makeSandbox();
  const server = await startHttpServer(['--config', sb.configPath]);
  t.teardown(async () => {
    await server.stop();
    sb.cleanup();
  });
  for (const [version, scenarios] of Object.entries(DEFAULT_APPLICABLE)) {
    const out = path.join(sb.dir, `results-${version}`);
    for (const scenario of scenarios) await suite(['server', '--url', server.url, '--scenario', scenario, '--spec-version', version, '-o', out]);
    const results = readResults(out);
    const failures = failuresOf(results, scenarios, DEFAULT_NEEDS_FIXTURES);
    t.same(failures, [], `${version}: ${scenarios.join(', ')}; failing:\n  ${failures.join('\n  ')}`);
    // The exemptions are exactly what is missing: each exempt check still fails for want of a fixture.
    for (const id of DEFAULT_NEEDS_FIXTURES) {
      const [scenario, check] = id.split('/') as [string, string];
      const r = results.get(scenario);
      if (!r) continue;
      const c = r.checks.find((x) => x.id === check);
      t.ok(c === undefined || c.status !== 'SUCCESS' || scenario === 'caching', `${version} ${id}: needs a fixture the default profile does not serve`);
    }
    const listed = results.get('tools-list')?.checks.find((c) => c.id === 'tools-list') as { details?: { tools?: string[] } } | undefined;
    t.ok(listed?.details?.tools?.includes('read_file'), `${version}: Bulwark's own tools are listed`);
    t.notOk(
      listed?.details?.tools?.some((n) => n.startsWith('test_') || n.startsWith('conformance_')),
      `${version}: no conformance fixture is listed without the profile`,
    );
  }
});

t.test('--profile conformance is refused wherever a deployment could be', async (t) => {
  const cwd = tempDir(t);
  const sb = makeSandbox();
  t.teardown(() => sb.cleanup());
  const cases: [string[], RegExp][] = [
    [['--config', sb.configPath, '--http', '127.0.0.1:0', '--profile', 'conformance'], /refused with a config file/],
    [['--http', '0.0.0.0:0', '--profile', 'conformance'], /refused on a non-loopback address \(0\.0\.0\.0\)/],
    [['--http', '[::]:0', '--profile', 'conformance'], /refused on a non-loopback address/],
    [['--http', '127.0.0.1:0', '--profile', 'conformance-extra'], /--profile "conformance-extra": expected one of default, conformance/],
  ];
  for (const [args, message] of cases) {
    const r = await refusedServe(cwd, args);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2 before serving`);
    t.match(r.stderr, message, `${args.join(' ')}: says which rule`);
    t.notMatch(r.stderr, /Bulwark is listening/, `${args.join(' ')}: nothing was served`);
  }
  t.notOk(fs.existsSync(path.join(cwd, '.bulwark')), 'no audit log was opened by a refused start');
});

t.test('the compiled policy allows the family only under the profile, whatever a data file says', async (t) => {
  const dir = tempDir(t);
  const logger = createLogger('error');
  const input = (tool: string) => ({
    principal: { id: 'loopback', roles: ['developer'], auth: 'loopback' },
    tool,
    args: {},
    facts: { conformance: { fixture: tool } },
    context: { transport: 'http', client_ip: '127.0.0.1', time: '2026-01-01T00:00:00Z', request_id: 'r' },
  });
  const decide = async (loaded: ReturnType<typeof loadConfig>, profile: 'default' | 'conformance', tool: string) => {
    const reloader = await openPolicy(loaded, logger, undefined, profile);
    try {
      return reloader.live.decide(input(tool));
    } finally {
      await reloader.close();
    }
  };
  const embedded = loadConfig({});
  const on = await decide(embedded, 'conformance', 'test_simple_text');
  t.equal(on.allow, true, 'under the profile: allowed');
  t.equal((await decide(embedded, 'conformance', 'conformance_resources_read')).allow, true, 'a method pseudo-tool too');
  const off = await decide(embedded, 'default', 'test_simple_text');
  t.equal(off.allow, false, 'default profile: denied');
  t.ok(off.reasons.includes('policy.conformance_profile_off'), 'with the reason that names the profile');

  // A data file that claims the profile and grants a fixture to a role does not turn the family on.
  const data = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: Record<string, any> };
  data.bulwark.profile = 'conformance';
  data.bulwark.roles.developer.tools.push('test_simple_text');
  fs.writeFileSync(path.join(dir, 'data.json'), JSON.stringify(data));
  fs.writeFileSync(path.join(dir, 'bulwark.yaml'), 'policy:\n  data: data.json\n');
  const forged = await decide(loadConfig({ file: path.join(dir, 'bulwark.yaml') }), 'default', 'test_simple_text');
  t.equal(forged.allow, false, 'a data file cannot enable the profile');
  t.same(forged.reasons, ['policy.conformance_profile_off'], 'the overlay removed its profile claim');
});

t.test('over stdio the profile serves the same gated fixtures (the SDK client)', async (t) => {
  const cwd = tempDir(t);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'serve', '--profile', 'conformance'],
    cwd,
    env: cleanChildEnv(),
    stderr: 'pipe',
  });
  const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
  await client.connect(transport);
  t.teardown(() => client.close());
  const caps = client.getServerCapabilities();
  t.ok(caps?.resources && caps.prompts && caps.completions, 'initialize declares resources, prompts and completions');
  const image = await client.callTool({ name: 'test_image_content', arguments: {} });
  t.match(image.content, [{ type: 'image', mimeType: 'image/png' }], 'a fixture answers its content blocks');
  const read = await client.readResource({ uri: 'test://template/42/data' });
  t.match(read.contents, [{ uri: 'test://template/42/data', mimeType: 'application/json' }], 'resources/read fills the template');
  const first = read.contents[0];
  t.match(JSON.parse(first && 'text' in first ? first.text : '{}'), { id: '42', templateTest: true }, 'with the id substituted');
  await t.rejects(
    client.readResource({ uri: 'file:///etc/passwd' }),
    { code: -32602, data: { uri: 'file:///etc/passwd' } },
    'an unknown URI is -32602 with data.uri',
  );
  const prompt = await client.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'hello', arg2: 'world' } });
  t.match(prompt.messages, [{ role: 'user', content: { type: 'text', text: "Prompt with arguments: arg1='hello', arg2='world'" } }], 'prompts/get');
  await client.close();
  const records = readAudit(path.join(cwd, '.bulwark', 'audit.jsonl'));
  t.same(
    records.map((r) => [r.tool, r.transport, r.principal?.id, r.outcome.status]),
    [
      ['test_image_content', 'stdio', 'local-user', 'ok'],
      ['conformance_resources_read', 'stdio', 'local-user', 'ok'],
      ['conformance_resources_read', 'stdio', 'local-user', 'denied'],
      ['conformance_prompts_get', 'stdio', 'local-user', 'ok'],
    ],
    'one record per request, in order, for the stdio principal',
  );
});
