/**
 * Slow-call monitoring (observability.slow_call_ms, slow_call_ms_by_tool) through a spawned
 * `bulwark serve --http` process and real MCP clients: a call slower than its threshold logs one
 * warn line on stderr with the stage timings and what it touched (SQL fingerprint, upstream and
 * path, code hash) but none of its argument text, and counts in mcp_slow_calls_total on /metrics;
 * a fast call logs and counts nothing. The database is a real PostgreSQL (started by the test runner).
 */
import http from 'node:http';
import t from 'tap';
import { makeSandbox } from './helpers/fixtures.js';
import { httpClient, startHttpServer } from './helpers/clients.js';
import { startUpstream, writePolicyData } from './helpers/upstreams.js';
import { createTestDatabase } from './helpers/database.js';
import { loadConfig } from '../src/config/loader.js';
import { slowCallThresholdMs, slowCallSubject } from '../src/observability/slow-calls.js';
import { STAGES } from '../src/core/stages.js';

t.setTimeout(240_000);

/** Looks like a credential; it is in every call's arguments and must be in no log line. */
const SECRET = 'sk_live_SlowCallCanary7e1d2c9b';

interface ToolReply {
  isError?: boolean;
  structuredContent?: Record<string, any>;
  content?: unknown;
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function slowLines(stderr: string): Record<string, any>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>)
    .filter((l) => l.message === 'slow call');
}

t.test('slow calls log one line each with stage timings and no argument text, and count on /metrics; fast calls do neither', async (t) => {
  const up = await startUpstream();
  const db = await createTestDatabase();
  const sb = makeSandbox({
    apis: { svc: { base_url: `${up.origin}/v1/`, internal: true, retries: 0 } },
    database: { url: db.readerUrl },
    policy: { data: 'policy-data.json' },
    observability: {
      log_level: 'warn',
      // Globally generous: read_file stays under it.
      slow_call_ms: 5000,
      // Tighter for these tools; query_database at 1 ms makes every query a slow one.
      slow_call_ms_by_tool: { run_javascript: 300, call_api: 300, query_database: 1 },
    },
  });
  writePolicyData(sb.dir, ['svc']);
  const server = await startHttpServer(['--config', sb.configPath]);
  const client = await httpClient(server.url);
  t.teardown(async () => {
    await client.close();
    await server.stop();
    await up.close();
    await db.drop();
    sb.cleanup();
  });
  const call = async (name: string, args: Record<string, unknown>) => (await client.callTool({ name, arguments: args })) as ToolReply;

  // Fast: under the global threshold.
  const fast = await call('read_file', { path: 'hello.txt' });
  t.notOk(fast.isError, JSON.stringify(fast.content));

  // Slow by a busy loop in the sandbox (700 ms > 300 ms for run_javascript, well under the global 5000 ms).
  const busy = await call('run_javascript', { code: `const key = "${SECRET}"; const end = Date.now() + 700; while (Date.now() < end) {} return key.length;` });
  t.notOk(busy.isError, JSON.stringify(busy.content));
  // Slow and failed: the sandbox's own time limit ends it.
  const runaway = await call('run_javascript', { code: `const key = "${SECRET}"; while (key) {}` });
  t.equal(runaway.structuredContent?.error?.code, 'timeout');
  // Slow upstream, the secret in the query string and the body.
  const api = await call('call_api', { api: 'svc', path: '/slow', query: { ms: 700, token: SECRET } });
  t.notOk(api.isError, JSON.stringify(api.content));
  // Every query is slow at 1 ms; the secret as a literal and as a parameter.
  const sql = await call('query_database', { sql: `SELECT name FROM customers WHERE region = $1 OR name = '${SECRET}'`, params: [SECRET] });
  t.notOk(sql.isError, JSON.stringify(sql.content));

  await new Promise((r) => setTimeout(r, 300));
  const stderr = server.stderr();
  t.notOk(stderr.includes(SECRET), 'no argument text on stderr');
  t.notOk(stderr.includes('sk_live_'), 'not even part of it');
  const lines = slowLines(stderr);
  t.same(
    lines.map((l) => l.tool),
    ['run_javascript', 'run_javascript', 'call_api', 'query_database'],
    'one line per slow call, none for the fast one',
  );
  t.equal(new Set(lines.map((l) => l.request_id)).size, 4, 'each names its own request');
  for (const l of lines) {
    t.equal(l.level, 'warn');
    t.type(l.request_id, 'string');
    t.equal(l.principal, 'loopback');
    t.ok(l.duration_ms > l.threshold_ms, `${l.tool}: ${l.duration_ms} ms over ${l.threshold_ms} ms`);
    t.same(Object.keys(l.stages_ms).sort(), [...STAGES].sort(), `${l.tool}: every stage timed`);
    t.ok(
      Object.values(l.stages_ms).every((ms) => typeof ms === 'number' && ms >= 0),
      'as numbers of milliseconds',
    );
  }
  const [jsOk, jsTimeout, apiLine, sqlLine] = lines as [Record<string, any>, Record<string, any>, Record<string, any>, Record<string, any>];
  t.equal(jsOk.threshold_ms, 300, 'the per-tool threshold, not the global one');
  t.equal(jsOk.status, 'ok');
  t.equal(jsOk.code, null);
  t.ok(jsOk.stages_ms.execute >= 600, `the time was in execute (${jsOk.stages_ms.execute} ms)`);
  t.match(jsOk.code_sha256, /^[0-9a-f]{64}$/, 'the code by its hash');
  t.equal(jsTimeout.status, 'error');
  t.equal(jsTimeout.code, 'timeout', 'the outcome code');
  t.equal(apiLine.upstream, 'svc');
  t.equal(apiLine.method, 'GET');
  t.match(apiLine.upstream_path, /\/slow$/, 'the upstream path, without its query');
  t.equal(sqlLine.threshold_ms, 1);
  t.match(sqlLine.sql_fingerprint, /^sqlt1:[0-9a-f]{64}$/, 'the query by its fingerprint');
  t.same(sqlLine.sql_tables, ['public.customers']);

  const metrics = await get(`${server.base}/metrics`);
  t.match(metrics, /mcp_slow_calls_total\{tool="run_javascript"\} 2\n/);
  t.match(metrics, /mcp_slow_calls_total\{tool="call_api"\} 1\n/);
  t.match(metrics, /mcp_slow_calls_total\{tool="query_database"\} 1\n/);
  t.notMatch(metrics, /mcp_slow_calls_total\{tool="read_file"\}/, 'the fast call is not counted');
});

t.test('the threshold: per tool when configured (higher, lower or 0 = never), else the global one', async (t) => {
  const sb = makeSandbox({ observability: { slow_call_ms: 250, slow_call_ms_by_tool: { query_database: 2000, read_file: 0 } } });
  t.teardown(sb.cleanup);
  const { config } = loadConfig({ file: sb.configPath });
  t.equal(slowCallThresholdMs(config, 'query_database'), 2000);
  t.equal(slowCallThresholdMs(config, 'read_file'), 0);
  t.equal(slowCallThresholdMs(config, 'call_api'), 250);
  t.equal(slowCallThresholdMs(config, 'constructor'), 250, "Object.prototype's names are not tool entries");
  const defaults = makeSandbox();
  t.teardown(defaults.cleanup);
  t.equal(slowCallThresholdMs(loadConfig({ file: defaults.configPath }).config, 'run_javascript'), 1000, 'default 1000 ms');
  const bad = makeSandbox({ observability: { slow_call_ms_by_tool: { read_file: -1 } } });
  t.teardown(bad.cleanup);
  t.throws(() => loadConfig({ file: bad.configPath }), /slow_call_ms_by_tool/, 'a negative threshold is refused at load');
  t.same(slowCallSubject(undefined), {}, 'a call that stopped before analysis names nothing');
  t.same(
    slowCallSubject({ path: { canonical: '/srv/data/a.csv', root: '/srv/data', kind: 'file', size: 1, nlink: 1, extension: '.csv' } }),
    { path: '/srv/data/a.csv' },
    'a filesystem call by its canonical path',
  );
});
