import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import type { CodeFacts, PathFacts, SqlFacts, UrlFacts } from '../src/core/facts.js';
import type { Decision } from '../src/core/decision.js';
import type { Denial } from '../src/core/denial.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { BIN, makeSandbox } from './helpers/fixtures.js';

// `bulwark policy eval` is how a policy author asks what the gate would decide. It runs the gate's
// own stages up to `decide` (gate/run.ts dryRun) in a real child process, so each tool family's
// analyser must be ready there as in a server: SQL included (its parser is loaded at start-up).

interface EvalAnswer {
  allow: boolean;
  principal?: { id: string; roles: string[]; tier: string; attributes?: Record<string, string | string[]> };
  facts?: { path?: PathFacts; sql?: SqlFacts; url?: UrlFacts; code?: CodeFacts };
  decision?: Decision;
  denial?: Denial;
  policy_revision?: string;
}

// An upstream that counts what reaches it: a dry run must never send a request.
let upstreamHits = 0;
const upstream = http.createServer((_req, res) => {
  upstreamHits++;
  res.end('{}');
});
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
t.teardown(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
const listening = upstream.address();
if (listening === null || typeof listening === 'string') throw new Error('the upstream has no TCP port');
const port = listening.port;

const sb = makeSandbox({
  apis: {
    // 'httpbin' is an upstream the shipped policy data grants to developers (with /redirect-to denied).
    httpbin: { base_url: `http://localhost:${port}/`, internal: true },
    outside: { base_url: `http://localhost:${port}/` },
  },
});
t.teardown(sb.cleanup);
fs.writeFileSync(path.join(sb.root, '.env'), 'TOKEN=x\n');

function policyEval(tool: string, args: unknown, ...options: string[]): { status: number | null; answer: EvalAnswer; stdout: string } {
  const argv = [BIN, 'policy', 'eval', '--tool', tool, '--args', JSON.stringify(args), '--config', sb.configPath, ...options, '--json'];
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', env: cleanChildEnv() });
  if (r.stderr) t.comment(r.stderr);
  const answer: EvalAnswer = JSON.parse(r.stdout);
  return { status: r.status, answer, stdout: r.stdout };
}

const isLoopback = (a: string) => /^127\./.test(a) || a === '::1';

t.test('filesystem: the path facts come from the configured root', async (t) => {
  const read = policyEval('read_file', { path: 'hello.txt' });
  t.equal(read.status, 0, 'allow exits 0');
  t.equal(read.answer.allow, true);
  t.same(read.answer.facts?.path, { canonical: path.join(sb.root, 'hello.txt'), root: sb.root, kind: 'file', size: 13, nlink: 1, extension: '.txt' });
  t.equal(read.answer.decision?.allow, true);
  t.match(read.answer.policy_revision, /^[0-9a-f]{64}$/);
  t.same(read.answer.principal?.roles, ['developer'], 'the stdio principal of the config');

  const list = policyEval('list_directory', { path: 'sub' });
  t.equal(list.answer.allow, true);
  t.match(list.answer.facts?.path, { canonical: path.join(sb.root, 'sub'), kind: 'directory' });

  const info = policyEval('file_info', { path: 'sub/notes.md' }, '--roles', 'reader');
  t.equal(info.answer.allow, true, 'reader may ask file_info');
  t.match(info.answer.facts?.path, { canonical: path.join(sb.root, 'sub', 'notes.md'), kind: 'file', extension: '.md' });
  t.equal(info.answer.decision?.obligations.max_bytes, 1048576, "the reader role's obligations");

  const search = policyEval('search_files', { path: 'sub', query: 'needle' });
  t.equal(search.answer.allow, true);
  t.match(search.answer.facts?.path, { canonical: path.join(sb.root, 'sub'), kind: 'directory' });

  // --root replaces the config's roots, as for serve.
  const other = fs.realpathSync(fs.mkdtempSync(path.join(sb.dir, 'other-')));
  fs.writeFileSync(path.join(other, 'x.csv'), 'a,b\n');
  const rooted = policyEval('read_file', { path: 'x.csv' }, '--root', other);
  t.equal(rooted.answer.allow, true);
  t.match(rooted.answer.facts?.path, { canonical: path.join(other, 'x.csv'), root: other });

  const escape = policyEval('read_file', { path: '../outside/secret.txt' });
  t.equal(escape.status, 1, 'deny exits 1');
  t.match(escape.answer, { allow: false, denial: { code: 'path_rejected', reasons: ['path.outside_root'] } });
  t.notOk(escape.answer.decision, 'refused by analysis: the policy is not asked');

  const blocked = policyEval('read_file', { path: '.env' });
  t.match(blocked.answer, { allow: false, denial: { code: 'policy_denied' }, decision: { allow: false } });
  t.ok(blocked.answer.denial?.reasons.includes('path.blocked_name'), 'the policy says why');
  t.match(blocked.answer.facts?.path, { canonical: path.join(sb.root, '.env') }, 'the facts the policy decided on');

  const noArgs = policyEval('search_files', { path: 'sub' });
  t.match(noArgs.answer, { allow: false, denial: { code: 'invalid_input', reasons: ['input.schema'] } });
});

t.test('database: SQL is parsed and decided, as in a server', async (t) => {
  const select = policyEval('query_database', { sql: 'SELECT 1' }, '--roles', 'analyst');
  t.notMatch(select.stdout, /SQL parser is not loaded/);
  t.equal(select.status, 0, select.stdout);
  t.equal(select.answer.allow, true);
  t.notOk(select.answer.denial);
  t.match(select.answer.facts?.sql, {
    statements: 1,
    kind: 'select',
    tables: [],
    functions: [],
    params: 0,
    agreement: 'both',
    fingerprint: /^sqlt1:[0-9a-f]{64}$/,
  });
  t.match(select.answer.decision, { allow: true, obligations: { max_rows: 1000 } });
  t.ok(select.answer.decision?.obligations.redact_columns?.includes('ssn'), "the analyst's masked columns");

  const bound = policyEval('query_database', { sql: 'SELECT name FROM customers WHERE id = $1', params: [1] }, '--roles', 'analyst');
  t.equal(bound.answer.allow, true);
  t.match(bound.answer.facts?.sql, { tables: ['public.customers'], columns: ['id', 'name'], params: 1 });

  const write = policyEval('query_database', { sql: 'DELETE FROM customers' }, '--roles', 'analyst');
  t.equal(write.status, 1);
  t.match(write.answer, { allow: false, denial: { code: 'sql_rejected', reasons: ['sql.not_select'], detail: { statement: 'DeleteStmt' } } });
  t.notOk(write.answer.decision, 'refused by the analyser before the policy');

  const hidden = policyEval('query_database', { sql: 'SELECT * FROM hr.salaries' }, '--roles', 'analyst');
  t.match(hidden.answer, { allow: false, denial: { code: 'policy_denied', reasons: ['sql.table_not_allowed'] }, facts: { sql: { tables: ['hr.salaries'] } } });

  const noRole = policyEval('query_database', { sql: 'SELECT 1' }, '--roles', 'reader', '--principal', 'rita');
  t.match(noRole.answer, {
    allow: false,
    principal: { id: 'rita', roles: ['reader'] },
    denial: { code: 'policy_denied', reasons: ['policy.no_role_grants_tool'] },
  });

  // Principal attributes, as a key made with --attr would carry them; malformed ones are a usage error.
  const regional = policyEval('query_database', { sql: 'SELECT 1' }, '--roles', 'analyst', '--attr', 'region=north', '--attr', 'teams=a', '--attr', 'teams=b');
  t.equal(regional.status, 0, regional.stdout);
  t.same(regional.answer.principal?.attributes, { region: 'north', teams: ['a', 'b'] });
  const badAttr = spawnSync(
    process.execPath,
    [BIN, 'policy', 'eval', '--tool', 'query_database', '--args', '{"sql":"SELECT 1"}', '--config', sb.configPath, '--attr', 'Region=north', '--json'],
    { encoding: 'utf8', env: cleanChildEnv() },
  );
  t.equal(badAttr.status, 2, 'an attribute name must be lower-case');
  t.match(badAttr.stderr, /--attr/);

  const describe = policyEval('describe_table', { table: 'customers' }, '--roles', 'analyst');
  t.equal(describe.answer.allow, true);
  t.same(describe.answer.facts?.sql, { statements: 1, kind: 'describe', tables: ['public.customers'], functions: [] });
});

t.test('api: the URL facts name the upstream and the addresses its host resolves to', async (t) => {
  const get = policyEval('call_api', { api: 'httpbin', path: '/get', query: { a: '1' } }, '--principal', 'alice');
  t.equal(get.status, 0, get.stdout);
  t.match(get.answer, { allow: true, principal: { id: 'alice', roles: ['developer'] }, decision: { allow: true } });
  const url = get.answer.facts?.url;
  t.match(url, { upstream: 'httpbin', method: 'GET', path: '/get', query: 'a=1', host: 'localhost', port, scheme: 'http', internal: true });
  t.ok(url && url.addresses.length > 0 && url.addresses.every(isLoopback), `localhost resolved to loopback: ${url?.addresses.join(', ')}`);
  t.equal(url?.address_count, url?.addresses.length);

  const deniedPath = policyEval('call_api', { api: 'httpbin', path: '/redirect-to' });
  t.match(deniedPath.answer, { allow: false, denial: { code: 'policy_denied', reasons: ['url.path_denied'] }, facts: { url: { path: '/redirect-to' } } });

  const post = policyEval('call_api', { api: 'httpbin', path: '/post', method: 'POST' });
  t.match(post.answer, { allow: false, denial: { code: 'url_rejected', reasons: ['url.method_not_configured'] } });

  const notInternal = policyEval('call_api', { api: 'outside', path: '/get' });
  t.match(notInternal.answer, { allow: false, denial: { code: 'url_rejected' } });
  t.ok(notInternal.answer.denial?.reasons.includes('url.address_loopback'), 'a loopback address needs internal: true');

  const unknown = policyEval('call_api', { api: 'nowhere', path: '/' });
  t.match(unknown.answer, { allow: false, denial: { code: 'url_rejected', reasons: ['url.unknown_upstream'] } });

  t.equal(upstreamHits, 0, 'nothing was sent upstream');
});

t.test('javascript: the code facts, and the roles that may run it', async (t) => {
  const code = 'const x = 6; x * 7';
  const run = policyEval('run_javascript', { code });
  t.equal(run.status, 0, run.stdout);
  t.same(run.answer.facts?.code, { language: 'javascript', bytes: Buffer.byteLength(code), sha256: crypto.createHash('sha256').update(code).digest('hex') });
  t.match(run.answer.decision, { allow: true, obligations: { memory_mb: 64 } });

  const reader = policyEval('run_javascript', { code }, '--roles', 'reader');
  t.match(reader.answer, {
    allow: false,
    denial: { code: 'policy_denied', reasons: ['policy.no_role_grants_tool'] },
    facts: { code: { bytes: Buffer.byteLength(code) } },
  });
});

t.test('nothing is executed or recorded, and the text form says ALLOW or DENY first', async (t) => {
  t.notOk(fs.existsSync(sb.auditPath), 'no audit log was written by any eval');
  const r = spawnSync(process.execPath, [BIN, 'policy', 'eval', '--tool', 'read_file', '--args', '{"path":"hello.txt"}', '--config', sb.configPath], {
    encoding: 'utf8',
    env: cleanChildEnv(),
  });
  t.equal(r.status, 0);
  t.equal(r.stdout.split('\n')[0], 'ALLOW');
  const denied = spawnSync(process.execPath, [BIN, 'policy', 'eval', '--tool', 'no_such_tool', '--config', sb.configPath], {
    encoding: 'utf8',
    env: cleanChildEnv(),
  });
  t.equal(denied.status, 1);
  t.equal(denied.stdout.split('\n')[0], 'DENY');
  t.match(denied.stdout, /"code": "invalid_input"/);
  t.match(denied.stdout, /"tool\.unknown"/);
});
