/**
 * Issue 7: "/metrics exposes the series above after a run of calls, with counts that match the
 * calls made."
 *
 * A fresh `bulwark serve --http` process with `auth.http: api_key`. The calls are raw stateless
 * JSON-RPC POSTs (one HTTP request, one bearer check, one gated call each), so every counter has
 * an exact expected value: allowed calls, an analyser refusal, policy denials, a tool failure,
 * rate-limited calls and refused bearers. The scrape is parsed as Prometheus text and each series
 * is compared with what was sent, and with the audit log the counters are observed from.
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { JSON_HEADERS, request } from './helpers/http.js';
import { parseMetrics, samples, valueOf, type Sample } from './helpers/bearer.js';
import { createKey } from '../src/auth/api-keys.js';

t.setTimeout(120_000);

const sb = makeSandbox({
  auth: { http: 'api_key', keys_file: 'keys.json' },
  limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 }, tiny: { capacity: 2, refill_per_s: 0.001 } }, default_tier: 'local' },
});
let server: HttpServerProcess;
const token: Record<'dev' | 'reader' | 'tiny', string> = { dev: '', reader: '', tiny: '' };

t.before(async () => {
  const keys = path.join(sb.dir, 'keys.json');
  // `metrics`: /metrics needs it (issue 17); it grants no tool, so the policy outcomes below are unchanged.
  token.dev = (await createKey(keys, { principal: 'dev', roles: ['developer', 'metrics'], tier: 'local' })).token;
  token.reader = (await createKey(keys, { principal: 'reader', roles: ['reader'], tier: 'local' })).token;
  token.tiny = (await createKey(keys, { principal: 'tiny', roles: ['developer'], tier: 'tiny' })).token;
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server?.stop();
  sb.cleanup();
});

let nextId = 1;
interface Outcome {
  readonly status: number;
  readonly code: string | undefined;
}
/** One tools/call as one POST; the denial code of the result (undefined when it succeeded). */
async function call(bearer: string | undefined, name: string, args: Record<string, unknown>): Promise<Outcome> {
  const res = await request(server.url, {
    headers: { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25', ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) },
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: args } }),
  });
  if (res.status !== 200) return { status: res.status, code: undefined };
  const result = JSON.parse(res.body).result as { isError?: boolean; structuredContent?: { error?: { code: string } } };
  return { status: 200, code: result.isError ? (result.structuredContent?.error?.code ?? 'missing-error') : undefined };
}

async function scrape(): Promise<Sample[]> {
  const m = await request(`${server.base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${token.dev}` } });
  if (m.status !== 200) throw new Error(`/metrics answered ${m.status}: ${m.body}`);
  return parseMetrics(m.body);
}

/** The samples of one series as {labels as JSON: value}, for exact comparison. */
function series(all: readonly Sample[], name: string, labelOrder: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples(all, name)) out[labelOrder.map((k) => `${k}=${s.labels[k] ?? ''}`).join(',')] = s.value;
  return out;
}

function histogramConsistent(t: Test, all: readonly Sample[], name: string, labels: Record<string, string>, positiveSum = true): void {
  const buckets = samples(all, `${name}_bucket`, labels).sort(
    (a, b) => Number(a.labels.le === '+Inf' ? Infinity : a.labels.le) - Number(b.labels.le === '+Inf' ? Infinity : b.labels.le),
  );
  const count = valueOf(all, `${name}_count`, labels);
  t.equal(buckets.at(-1)?.labels.le, '+Inf', `${name} ${JSON.stringify(labels)}: has a +Inf bucket`);
  t.equal(buckets.at(-1)?.value, count, `${name} ${JSON.stringify(labels)}: +Inf bucket = count`);
  t.ok(
    buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value),
    `${name} ${JSON.stringify(labels)}: cumulative buckets`,
  );
  if (positiveSum) t.ok(valueOf(all, `${name}_sum`, labels) > 0, `${name} ${JSON.stringify(labels)}: a positive sum`);
}

t.test('after a known run of calls, every series counts exactly those calls', async (t) => {
  const outcomes: Outcome[] = [];
  // 5 allowed reads.
  for (let i = 0; i < 5; i++) outcomes.push(await call(token.dev, 'read_file', { path: 'hello.txt' }));
  // 1 refused by the path analyser (no policy decision is made).
  outcomes.push(await call(token.dev, 'read_file', { path: '../outside/secret.txt' }));
  // 3 refused by the policy: the reader role does not grant run_javascript.
  for (let i = 0; i < 3; i++) outcomes.push(await call(token.reader, 'run_javascript', { code: 'return 1' }));
  // 1 allowed by the policy that then fails in the tool.
  outcomes.push(await call(token.dev, 'run_javascript', { code: 'throw new Error("boom")' }));
  // 4 calls on a tier of 2 tokens that refills once in 1000 s: 2 allowed, 2 rate-limited.
  for (let i = 0; i < 4; i++) outcomes.push(await call(token.tiny, 'file_info', { path: 'hello.txt' }));
  // 2 refused bearers: none at all, and an unknown key.
  outcomes.push(await call(undefined, 'read_file', { path: 'hello.txt' }));
  outcomes.push(await call(`bwk_0123456789abcdef_${'x'.repeat(43)}`, 'read_file', { path: 'hello.txt' }));

  // The premise: each call ended as intended.
  t.same(
    outcomes.map((o) => o.code ?? o.status),
    [
      200,
      200,
      200,
      200,
      200,
      'path_rejected',
      'policy_denied',
      'policy_denied',
      'policy_denied',
      'tool_error',
      200,
      200,
      'rate_limited',
      'rate_limited',
      401,
      401,
    ],
  );

  const m = await scrape();
  t.same(
    series(m, 'mcp_requests_total', ['tool', 'status']),
    {
      'tool=read_file,status=ok': 5,
      'tool=read_file,status=denied': 1,
      'tool=run_javascript,status=denied': 3,
      'tool=run_javascript,status=error': 1,
      'tool=file_info,status=ok': 2,
      'tool=file_info,status=denied': 2,
      'tool=http:authenticate,status=denied': 2,
    },
    'mcp_requests_total{tool,status}: one per call, by how it ended',
  );

  const perTool = { read_file: 6, run_javascript: 4, file_info: 4, 'http:authenticate': 2 };
  t.same(
    series(m, 'mcp_request_duration_seconds_count', ['tool']),
    Object.fromEntries(Object.entries(perTool).map(([k, v]) => [`tool=${k}`, v])),
    'mcp_request_duration_seconds_count{tool}',
  );
  // (A refused bearer is audited with duration_ms 0, so only the gated tools have a positive sum.)
  for (const tool of Object.keys(perTool)) histogramConsistent(t, m, 'mcp_request_duration_seconds', { tool }, tool !== 'http:authenticate');

  t.same(
    series(m, 'mcp_policy_decisions_total', ['decision', 'code']),
    {
      'decision=allow,code=none': 7,
      'decision=deny,code=policy_denied': 3,
      'decision=allow,code=tool_error': 1,
    },
    'mcp_policy_decisions_total: only calls that reached the policy (not the analyser refusal, the rate-limited calls or the 401s)',
  );

  t.same(series(m, 'mcp_rate_limited_total', ['scope']), { 'scope=principal': 2 }, 'mcp_rate_limited_total{scope}');

  const records = readAudit(sb.auditPath);
  t.equal(records.length, 16, 'the audit log holds one record per call, 401s included');
  t.equal(valueOf(m, 'mcp_audit_append_duration_seconds_count'), 16, 'mcp_audit_append_duration_seconds_count: one append per record');
  histogramConsistent(t, m, 'mcp_audit_append_duration_seconds', {});

  // The counters are observed from the audit records: they must tell the same story.
  const fromAudit: Record<string, number> = {};
  for (const r of records) {
    const k = `tool=${r.tool},status=${r.outcome.status}`;
    fromAudit[k] = (fromAudit[k] ?? 0) + 1;
  }
  t.same(series(m, 'mcp_requests_total', ['tool', 'status']), fromAudit, 'the same counts as the audit log');
  for (const tool of Object.keys(perTool)) {
    const sum = records.filter((r) => r.tool === tool).reduce((a, r) => a + r.outcome.duration_ms / 1000, 0);
    t.ok(Math.abs(valueOf(m, 'mcp_request_duration_seconds_sum', { tool }) - sum) < 1e-4, `${tool}: the duration sum is the audited durations' sum`);
  }

  // Bearer checks: 14 accepted tool-call POSTs plus this scrape; the two refusals by reason.
  t.same(
    series(m, 'mcp_auth_total', ['outcome', 'reason']),
    {
      'outcome=ok,reason=api_key': 15,
      'outcome=refused,reason=auth.missing': 1,
      'outcome=refused,reason=auth.unknown_key': 1,
    },
    'mcp_auth_total{outcome,reason}',
  );

  t.same(
    series(m, 'mcp_gate_stage_total', ['stage', 'outcome']),
    {
      'stage=authenticate,outcome=pass': 14,
      'stage=rate_limit,outcome=pass': 12,
      'stage=rate_limit,outcome=deny': 2,
      'stage=validate,outcome=pass': 12,
      'stage=analyse,outcome=pass': 11,
      'stage=analyse,outcome=deny': 1,
      'stage=decide,outcome=pass': 8,
      'stage=decide,outcome=deny': 3,
      'stage=execute,outcome=pass': 7,
      'stage=execute,outcome=deny': 1,
      'stage=record,outcome=pass': 14,
    },
    'mcp_gate_stage_total{stage,outcome}: every stage of every gated call',
  );

  // One more call moves each of its series by exactly one; a scrape is not a call.
  t.equal((await call(token.dev, 'read_file', { path: 'hello.txt' })).code, undefined);
  const after = await scrape();
  t.equal(valueOf(after, 'mcp_requests_total', { tool: 'read_file', status: 'ok' }), 6);
  t.equal(valueOf(after, 'mcp_request_duration_seconds_count', { tool: 'read_file' }), 7);
  t.equal(valueOf(after, 'mcp_policy_decisions_total', { decision: 'allow', code: 'none' }), 8);
  t.equal(valueOf(after, 'mcp_audit_append_duration_seconds_count'), 17);
  t.equal(valueOf(after, 'mcp_auth_total', { outcome: 'ok', reason: 'api_key' }), 17, 'the previous scrape, the call and this scrape');
  t.equal(valueOf(after, 'mcp_rate_limited_total', { scope: 'principal' }), 2, 'unchanged');
  t.equal(readAudit(sb.auditPath).length, 17);
});

t.test('an append retried without unhashable arguments counts once; per-tool refusals carry their scope; fsyncs are timed', async (t) => {
  const before = await scrape();
  const okBefore = valueOf(before, 'mcp_requests_total', { tool: 'read_file', status: 'denied' });
  const appendsBefore = valueOf(before, 'mcp_audit_append_duration_seconds_count');
  const recordsBefore = readAudit(sb.auditPath).length;
  // An integer past 2^53 passes the schema but cannot be canonicalised: the first append fails,
  // the gate records the call again without its arguments. One call, one record, one count.
  const lone = await call(token.dev, 'read_file', { path: 'x.txt', offset: 2 ** 60 });
  t.equal(lone.code, 'path_rejected');
  const m = await scrape();
  t.equal(readAudit(sb.auditPath).length, recordsBefore + 1, 'one record');
  t.equal(valueOf(m, 'mcp_requests_total', { tool: 'read_file', status: 'denied' }), okBefore + 1, 'counted once, not per append attempt');
  t.equal(valueOf(m, 'mcp_audit_append_failures_total'), 1, 'the failed attempt is counted as a failure');
  t.equal(valueOf(m, 'mcp_audit_append_duration_seconds_count'), appendsBefore + 2, 'both attempts were timed');
  // The default durability is fsync: each record waited for an fdatasync (group commit may share one).
  const syncs = valueOf(m, 'mcp_audit_fsync_duration_seconds_count');
  t.ok(syncs >= 1 && syncs <= recordsBefore + 1, `${syncs} fdatasyncs for ${recordsBefore + 1} records`);
  histogramConsistent(t, m, 'mcp_audit_fsync_duration_seconds', {});
});

t.test('a per-tool bucket refusal is labelled with its scope', async (t) => {
  const sb2 = makeSandbox({
    auth: { http: 'api_key', keys_file: 'keys.json' },
    limits: { per_tool: { file_info: { capacity: 1, refill_per_s: 0.001 } } },
  });
  t.teardown(sb2.cleanup);
  const key = (await createKey(path.join(sb2.dir, 'keys.json'), { principal: 'p', roles: ['developer', 'metrics'], tier: 'local' })).token;
  const s2 = await startHttpServer(['--config', sb2.configPath]);
  t.teardown(() => s2.stop());
  const post = (id: number) =>
    request(s2.url, {
      headers: { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25', authorization: `Bearer ${key}` },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'file_info', arguments: { path: 'hello.txt' } } }),
    });
  t.notOk(JSON.parse((await post(1)).body).result.isError);
  t.match(JSON.parse((await post(2)).body).result.structuredContent.error, { code: 'rate_limited', reasons: ['rate.principal_tool'] });
  const m = parseMetrics((await request(`${s2.base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${key}` } })).body);
  t.same(series(m, 'mcp_rate_limited_total', ['scope']), { 'scope=principal_tool': 1 });
});
