import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { parseDecision, readPolicyData, UnavailablePolicy, WasmPolicyEngine } from '../src/policy/engine.js';
import { PolicyError } from '../src/policy/types.js';
import { policyInput } from '../src/policy/input.js';
import { policyQuestions } from '../src/policy/questions.js';
import type { Analysed } from '../src/core/call.js';
import type { Facts, UrlFacts } from '../src/core/facts.js';
import { ROOT, makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { stdioClient } from './helpers/clients.js';

const WASM = path.join(ROOT, 'policies', 'policy.wasm');
const DATA = readPolicyData(path.join(ROOT, 'policies', 'data.json'));

interface Case {
  name: string;
  input: unknown;
  expect: { allow: boolean; reasons_include?: string[]; obligations?: Record<string, unknown> };
}

// The same declarative cases `opa test` runs (policies/cases_test.rego): the engine we ship is
// the engine we tested.
t.test('shared cases through the compiled wasm', async (t) => {
  const engine = await WasmPolicyEngine.load(WASM, DATA, 64 * 1024);
  const cases = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'testdata', 'cases', 'cases.json'), 'utf8')) as Case[];
  t.ok(cases.length >= 25, `${cases.length} shared cases`);
  for (const c of cases) {
    const d = engine.decide(c.input);
    t.equal(d.allow, c.expect.allow, `${c.name}: allow`);
    for (const r of c.expect.reasons_include ?? []) t.ok(d.reasons.includes(r), `${c.name}: reason ${r} in ${JSON.stringify(d.reasons)}`);
    if (c.expect.obligations) t.same(d.obligations, c.expect.obligations, `${c.name}: obligations`);
  }
});

t.test('visible_tools cases through the compiled wasm', async (t) => {
  const engine = await WasmPolicyEngine.load(WASM, DATA, 64 * 1024);
  const cases = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'testdata', 'visible_tools', 'cases.json'), 'utf8')) as {
    name: string;
    input: unknown;
    expect: string[];
  }[];
  t.ok(cases.length > 0);
  for (const c of cases) t.same(engine.visibleTools(c.input), c.expect, c.name);
});

t.test('the engine fails closed', async (t) => {
  await t.rejects(WasmPolicyEngine.load('/nonexistent/policy.wasm', DATA, 1024), { reason: 'policy.wasm_missing' } as unknown as Error);
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const corrupt = path.join(sb.dir, 'corrupt.wasm');
  fs.writeFileSync(corrupt, Buffer.concat([fs.readFileSync(WASM).subarray(0, 200), Buffer.from('garbage')]));
  await t.rejects(WasmPolicyEngine.load(corrupt, DATA, 1024), { reason: 'policy.wasm_invalid' } as unknown as Error);

  const engine = await WasmPolicyEngine.load(WASM, DATA, 2048);
  t.throws(() => engine.decide({ principal: { id: 'x', roles: ['reader'], auth: 'stdio' }, tool: 'read_file', args: { pad: 'x'.repeat(4096) } }), {
    reason: 'policy.input_too_large',
  } as unknown as Error);

  // Whatever the wasm returns that is not a well-formed decision is an error, never an allow.
  for (const bad of [
    [],
    [{}],
    [{ result: null }],
    [{ result: { allow: 'true' } }],
    [{ result: { allow: true, reasons: [1] } }],
    [{ result: { allow: true, obligations: { max_bytes: -1 } } }],
    [{ result: true }],
    [{ result: { allow: true } }, { result: { allow: true } }],
  ]) {
    t.throws(() => parseDecision(bad), PolicyError, JSON.stringify(bad));
  }
  t.same(parseDecision([{ result: { allow: false, reasons: ['x'] } }]), { allow: false, reasons: ['x'], obligations: {} });
});

for (const [label, mutate] of [
  ['missing', (p: string) => fs.rmSync(p)],
  ['corrupt', (p: string) => fs.writeFileSync(p, 'not wasm at all')],
  ['truncated', (p: string) => fs.writeFileSync(p, fs.readFileSync(WASM).subarray(0, 1000))],
] as const) {
  t.test(`a ${label} policy.wasm makes every call deny with policy_error`, async (t) => {
    const wasmCopy = path.join(makeSandbox().dir, 'policy.wasm');
    fs.copyFileSync(WASM, wasmCopy);
    mutate(wasmCopy);
    const sb = makeSandbox({ policy: { wasm: wasmCopy } });
    t.teardown(sb.cleanup);
    const gate = await inProcessGate(sb.configPath);
    t.teardown(() => gate.close());
    t.equal(gate.app.deps.policy.ready, false);
    for (const [tool, args] of [
      ['read_file', { path: 'hello.txt' }],
      ['list_directory', { path: '.' }],
      ['file_info', { path: 'hello.txt' }],
      ['search_files', { path: '.', query: 'a' }],
    ] as const) {
      const o = await gate.call(tool, args);
      t.equal(o.denial?.code, 'policy_error', `${tool} denied`);
      t.equal(o.result, undefined);
    }
    // Over stdio too, and nothing is listed (one writer per audit log: close ours first).
    await gate.close();
    const { client, close } = await stdioClient(['--config', sb.configPath]);
    t.teardown(close);
    t.same((await client.listTools()).tools, []);
    const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
    t.equal((r.structuredContent as { error: { code: string } }).error.code, 'policy_error');
  });
}

t.test('roles decide what is listed and what may be called', async (t) => {
  const sb = makeSandbox({ principals: { stdio: { id: 'nobody', roles: ['no-such-role'], tier: 'local' } } });
  t.teardown(sb.cleanup);
  const { client, close } = await stdioClient(['--config', sb.configPath]);
  t.teardown(close);
  t.same((await client.listTools()).tools, [], 'a principal without grants sees no tools');
  // Hiding is not the enforcement: calling anyway is denied by the same policy.
  const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  t.equal(r.isError, true);
  const err = (r.structuredContent as { error: { code: string; reasons: string[] } }).error;
  t.equal(err.code, 'policy_denied');
  t.ok(err.reasons.length > 0, `reasons: ${err.reasons.join(',')}`);
});

t.test('policy data from the config changes decisions (blocked extensions)', async (t) => {
  const sb = makeSandbox({ filesystem: { roots: [], blocked_extensions: ['.txt'] } });
  t.teardown(sb.cleanup);
  fs.writeFileSync(
    sb.configPath,
    stringify({ ...JSON.parse(JSON.stringify({ filesystem: { roots: [sb.root], blocked_extensions: ['.txt'] }, audit: { path: sb.auditPath } })) }),
  );
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const o = await gate.call('read_file', { path: 'hello.txt' });
  t.equal(o.denial?.code, 'policy_denied');
  t.ok(o.denial?.reasons.includes('path.blocked_extension'));
  const ok = await gate.call('read_file', { path: 'sub/notes.md' });
  t.equal(ok.status, 'ok');
});

t.test('the questions tools ask after a decision: shaped like a call, answered by the same policy, failing closed', async (t) => {
  const engine = await WasmPolicyEngine.load(WASM, DATA, 64 * 1024);
  const asked: unknown[] = [];
  const q = policyQuestions({ revision: engine.revision, ready: true, decide: (input) => (asked.push(input), engine.decide(input)), visibleTools: () => [] });
  const context = { transport: 'stdio' as const, requestId: 'r-1', receivedAt: new Date('2026-01-01T00:00:00Z'), signal: new AbortController().signal };
  const call = (roles: string[], tool: string, facts: Facts): Analysed => ({
    tool,
    args: {},
    argsBytes: 2,
    context,
    principal: { id: 'u', roles, auth: 'stdio', tier: 'local' },
    facts,
    pinned: {},
  });
  const describing = (table: string): Facts => ({ sql: { statements: 1, kind: 'describe', tables: [table], functions: [] } });

  // list_tables asks describe_table's question: the answer is the one describe_table would get.
  const listing = call(['analyst'], 'list_tables', {});
  for (const [table, allow] of [
    ['public.orders', true],
    ['analytics.events', false],
    ['hr.salaries', false],
  ] as const) {
    const answer = q.mayReadTable(listing, table);
    const direct = engine.decide(policyInput(call(['analyst'], 'describe_table', describing(table))));
    t.equal(answer.allow, allow, `${table}: ${allow ? 'shown' : 'hidden'}`);
    t.same(answer, { allow: direct.allow, reasons: direct.reasons }, `${table}: the answer describe_table gets`);
  }
  t.ok(q.mayReadTable(listing, 'hr.salaries').reasons.includes('sql.table_not_allowed'));
  const expected = { tool: 'describe_table', args: { table: 'hr.salaries' }, principal: { id: 'u', roles: ['analyst'] }, facts: describing('hr.salaries') };
  t.match(asked.at(-1), expected, 'asked as describe_table, as the caller');

  // A redirect hop: the call's question with the hop's url facts, without the answers to earlier hops.
  const url: UrlFacts = {
    upstream: 'github',
    method: 'GET',
    path: '/repos/x',
    query: '',
    host: 'api.github.com',
    port: 443,
    scheme: 'https',
    internal: false,
    addresses: ['192.0.2.1'],
    address_count: 1,
  };
  const first = call(['developer'], 'call_api', { url });
  const earlier = [{ redirect: 1, method: 'GET' as const, path: '/repos/y', allow: true, reasons: [] }];
  t.same(q.mayFollowHop(first, { ...url, path: '/repos/y', redirect: 2, hops: earlier }), { allow: true, reasons: [] }, 'a hop under an allowed path');
  t.same(asked.at(-1), policyInput({ ...first, facts: { url: { ...url, path: '/repos/y', redirect: 2 } } }), 'the earlier hops are not part of the question');
  const denied = q.mayFollowHop(first, { ...url, path: '/user/keys', redirect: 1 });
  t.equal(denied.allow, false, 'a hop to a denied path');
  t.ok(denied.reasons.includes('url.path_denied'), denied.reasons.join(','));

  // A policy that cannot answer: every answer is a refusal that says why, and nothing throws.
  const broken = policyQuestions(new UnavailablePolicy(new PolicyError('policy.wasm_missing', 'gone')));
  t.same(broken.mayReadTable(listing, 'public.orders'), { allow: false, reasons: [], error: 'policy.wasm_missing' });
  t.same(broken.mayFollowHop(first, { ...url, redirect: 1 }), { allow: false, reasons: [], error: 'policy.wasm_missing' });
  const throwing = policyQuestions({
    revision: 'x',
    ready: true,
    decide: () => {
      throw new Error('trap');
    },
    visibleTools: () => [],
  });
  t.same(throwing.mayReadTable(listing, 'public.orders'), { allow: false, reasons: [], error: 'policy.evaluation_failed' });
});
