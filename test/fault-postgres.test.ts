import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import postgres from 'postgres';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { BIN, ROOT, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { httpClient, startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';
import { PgExecutor, type QueryCaps } from '../src/tools/database/pg-executor.js';
import { isConnectionError, mapDatabaseError } from '../sandbox/db/errors.js';
import { sqlSessionSettings } from '../src/analysis/sql.js';
import { DenialError } from '../src/core/denial.js';
import type { CallDeadline } from '../src/core/call.js';

// PostgreSQL faults against a cluster of this test's own (it is terminated, restarted and
// stopped here), a real Bulwark server process over HTTP and real MCP SDK clients.

const CAP_MS = 10_000; // execution.timeout_ms (the default): each call's deadline
const BOUND_MS = 1500; // answered within the deadline plus this
const POOL_MAX = 4;
const CLIENTS = 12;

let cluster: PgCluster;
let db: TestDatabase;
let admin: postgres.Sql;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.before(async () => {
  cluster = startPgCluster();
  // createTestDatabase builds on PGURL: point it at this test's own cluster.
  process.env.PGURL = cluster.url;
  db = await createTestDatabase();
  admin = postgres(db.adminUrl, { max: 1, onnotice: () => undefined, backoff: () => 0.1 });
});
t.teardown(async () => {
  await admin?.end({ timeout: 1 }).catch(() => undefined);
  cluster?.close();
});

/** Sessions Bulwark holds on the test database. */
async function bulwarkSessions(): Promise<number> {
  const [r] = await admin`select count(*)::int as n from pg_stat_activity where application_name = 'bulwark' and datname = ${db.name}`;
  return r!.n as number;
}

async function terminateBulwark(): Promise<number> {
  const rows = await admin`select pg_terminate_backend(pid) as t from pg_stat_activity where application_name = 'bulwark' and datname = ${db.name}`;
  return rows.length;
}

/** Wait until the admin connection works again (after a restart or start). */
async function adminReady(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await admin`select 1`;
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error('PostgreSQL did not come back');
}

t.test('connection-class errors are unavailable; query errors are not', async (t) => {
  for (const code of [
    '57P01',
    '57P02',
    '57P03',
    '08006',
    '08001',
    '53300',
    'ECONNREFUSED',
    'ECONNRESET',
    'CONNECTION_CLOSED',
    'CONNECTION_DESTROYED',
    'CONNECT_TIMEOUT',
  ]) {
    t.ok(isConnectionError({ code }), `${code} is a connection error`);
    try {
      mapDatabaseError(Object.assign(new Error('x'), { code }), 1000);
      t.fail(`${code} was not mapped`);
    } catch (err) {
      t.equal((err as DenialError).denial?.code, 'unavailable', `${code} → unavailable`);
    }
  }
  for (const code of ['57014', '42P01', '53100', '22012']) t.notOk(isConnectionError({ code }), `${code} is not a connection error`);
});

/**
 * The postgres.js patch, in a child process so that a regression shows as a failed assertion with
 * the stack, not as this test process dying: a reserved connection whose backend is terminated
 * rejects its queries (3.4.9 and 3.4.10 die with "Cannot read properties of null (reading
 * 'write')" in nextWrite), release() after that does not break the pool (#1199), and a reserve
 * given up on (signal) strands no connection.
 */
t.test('postgres.js (patched): a terminated reserved connection neither kills the process nor breaks the pool', async (t) => {
  const lib = pathToFileURL(path.join(ROOT, 'node_modules', 'postgres', 'src', 'index.js')).href;
  const script = `
    const { default: postgres } = await import(${JSON.stringify(lib)});
    const fail = (what) => (e) => { console.log(JSON.stringify({ [what]: String(e && e.stack || e).slice(0, 400) })); process.exit(3); };
    process.on('uncaughtException', fail('uncaught'));
    process.on('unhandledRejection', fail('unhandled'));
    const sql = postgres(process.env.URL, { max: 2, onnotice() {}, backoff: () => 0.05, connection: { application_name: 'patch-check' } });
    const admin = postgres(process.env.URL, { max: 1, onnotice() {} });
    const within = (p, ms) => Promise.race([p, new Promise((_, j) => setTimeout(() => j(new Error('HANG')), ms))]);
    const out = { rounds: 0, inflight: {}, after: {}, pool_ok: 0 };
    for (let i = 0; i < 15; i++) {
      const r = await within(sql.reserve(), 5000);
      const [{ pid }] = await r\`select pg_backend_pid() as pid\`;
      const inflight = r\`select pg_sleep(5)\`.then(() => 'ok', (e) => e.code);
      await new Promise((res) => setTimeout(res, 30));
      await admin\`select pg_terminate_backend(\${pid})\`;
      const c1 = await within(inflight, 3000);
      out.inflight[c1] = (out.inflight[c1] || 0) + 1;
      // The query that killed the process before the patch.
      const c2 = await within(r\`select 1\`.then(() => 'ok', (e) => e.code), 3000);
      out.after[c2] = (out.after[c2] || 0) + 1;
      r.release();
      // The pool still serves (it hung after such a release before the patch).
      const [{ one }] = await within(sql\`select 1 as one\`, 5000);
      if (one === 1) out.pool_ok++;
      out.rounds++;
    }
    // A reserve given up on leaves the queue: both connections stay usable.
    const a = await sql.reserve(), b = await sql.reserve();
    const ac = new AbortController();
    const waiting = sql.reserve({ signal: ac.signal }).then(() => 'got one', (e) => String(e && e.name || e));
    setTimeout(() => ac.abort(new Error('gave up')), 50);
    out.abandoned = await within(waiting, 3000);
    a.release(); b.release();
    const both = await within(Promise.all([sql.reserve(), sql.reserve()]), 3000);
    out.both = both.length;
    both.forEach((c) => c.release());
    const [{ n }] = await admin\`select count(*)::int as n from pg_stat_activity where application_name = 'patch-check'\`;
    out.sessions = n;
    await sql.end({ timeout: 1 }); await admin.end({ timeout: 1 });
    console.log(JSON.stringify(out));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, URL: cluster.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 0, `the child survived: ${stdout}${stderr}`);
  const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, any>;
  t.equal(out.rounds, 15, '15 terminated reserved connections');
  t.same(
    Object.keys(out.inflight)
      .sort()
      .filter((c) => !['57P01', 'CONNECTION_CLOSED', 'ECONNRESET'].includes(c)),
    [],
    `the query in flight was rejected as a connection failure: ${JSON.stringify(out.inflight)}`,
  );
  t.same(out.after, { CONNECTION_CLOSED: 15 }, 'a later query on the dead reserved connection is rejected, not written into a missing socket');
  t.equal(out.pool_ok, 15, 'after release() of the dead connection the pool serves a fresh one each time');
  t.equal(out.abandoned, 'Error', 'a reserve given up on rejects with the reason');
  t.equal(out.both, 2, 'and strands no connection: both can be reserved again');
  t.ok(out.sessions <= 2, `at most max sessions: ${out.sessions}`);
});

/**
 * Two dropped promises in postgres.js that end a Node process as unhandled rejections, made
 * deterministic with a TCP proxy in front of PostgreSQL: a connection that drops while it fetches
 * the array types after connecting (a reserve() after a restart; this killed the server under
 * repeated pg_terminate_backend), and a cancel request that cannot be delivered (the server
 * refuses new connections). Unpatched 3.4.10 dies with "read ECONNRESET" and "connect
 * ECONNREFUSED" respectively.
 */
t.test('postgres.js (patched): a connection lost while fetching types, or an undeliverable cancel, is no unhandled rejection', async (t) => {
  const lib = pathToFileURL(path.join(ROOT, 'node_modules', 'postgres', 'src', 'index.js')).href;
  const script = `
    import net from 'node:net';
    const { default: postgres } = await import(${JSON.stringify(lib)});
    const fail = (what) => (e) => { console.log(JSON.stringify({ [what]: String(e && e.stack || e).slice(0, 400) })); process.exit(3); };
    process.on('uncaughtException', fail('uncaught'));
    process.on('unhandledRejection', fail('unhandled'));
    const target = new URL(process.env.URL);
    let drops = 3;
    const proxy = net.createServer((client) => {
      const server = net.connect(Number(target.port), target.hostname);
      client.on('error', () => {}); server.on('error', () => {});
      server.pipe(client);
      client.on('data', (d) => {
        if (drops > 0 && d.includes('typarray')) { drops--; client.resetAndDestroy(); server.destroy(); return; }
        server.write(d);
      });
      client.on('close', () => server.destroy()); server.on('close', () => client.destroy());
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    const url = new URL(process.env.URL); url.port = String(proxy.address().port);
    const sql = postgres(url.toString(), { max: 1, onnotice() {}, backoff: () => 0.05 });
    const within = (p, ms) => Promise.race([p, new Promise((r) => setTimeout(() => r('HANG'), ms))]);
    const out = { reserves: [] };
    for (let i = 0; i < 4; i++) out.reserves.push(await within(sql.reserve().then((c) => (c.release(), 'reserved'), (e) => 'rejected ' + e.code), 5000));
    out.drops_left = drops;
    const r = await sql.reserve();
    const q = r\`select pg_sleep(0.5)\`;
    const done = q.then(() => 'ok', (e) => e.code);
    await new Promise((res) => setTimeout(res, 100));
    proxy.close();
    q.cancel();
    out.cancelled = await within(done, 5000);
    await new Promise((res) => setTimeout(res, 300));
    console.log(JSON.stringify(out));
    process.exit(0);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, URL: cluster.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 0, `the child survived: ${stdout}${stderr}`);
  const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, any>;
  t.equal(out.drops_left, 0, 'three connections were cut while fetching types');
  t.ok(
    Array.isArray(out.reserves) && out.reserves.every((r: string) => r === 'reserved' || r.startsWith('rejected')),
    `every reserve settled: ${JSON.stringify(out.reserves)}`,
  );
  t.equal(out.reserves?.[3], 'reserved', 'and the pool connects again');
  t.ok(['ok', '57014'].includes(out.cancelled), `the query whose cancel could not be delivered still settled: ${out.cancelled}`);
});

/** A deadline like the gate's, for calling the executor directly. */
function deadlineIn(ms: number): CallDeadline & { marks: string[]; open: Set<number> } {
  const at = performance.now() + ms;
  const marks: string[] = [];
  const open = new Set<number>();
  let id = 0;
  return {
    at,
    marks,
    open,
    remainingMs: () => Math.max(1, Math.floor(at - performance.now())),
    waitingOn(dep: string) {
      const me = ++id;
      marks.push(dep);
      open.add(me);
      return () => open.delete(me);
    },
  };
}

const CAPS: QueryCaps = { maxRows: 100, maxBytes: 1 << 20, timeoutMs: 8000, lockTimeoutMs: 1000 };
const HEAVY = 'select count(*) as n from generate_series(1, 3000000000) g';

async function denialOf(p: Promise<unknown>): Promise<{ code: string; reasons: readonly string[]; ms: number }> {
  const t0 = performance.now();
  try {
    await p;
    return { code: 'ok', reasons: [], ms: performance.now() - t0 };
  } catch (err) {
    if (!(err instanceof DenialError)) throw err;
    return { code: err.denial.code, reasons: err.denial.reasons, ms: performance.now() - t0 };
  }
}

t.test('executor: a query whose backend is terminated answers unavailable at once; a cancelled one stops on the server', async (t) => {
  const ex = new PgExecutor({ url: db.readerUrl, maxConnections: 2, idleTimeoutS: 30, maxLifetimeS: 600, connectTimeoutS: 5, session: sqlSessionSettings() });
  t.teardown(() => ex.close());
  t.same((await ex.query('select 1 as one', [], CAPS)).rows, [{ one: 1 }]);

  const inflight = denialOf(ex.query(HEAVY, [], CAPS, { deadline: deadlineIn(9000) }));
  await sleep(300);
  t.ok((await terminateBulwark()) >= 1, 'its backend was terminated');
  const d = await inflight;
  t.equal(d.code, 'unavailable', JSON.stringify(d));
  t.ok(d.reasons.includes('db.unreachable'), String(d.reasons));
  t.ok(d.ms < 3000, `answered ${Math.round(d.ms)} ms after it started (terminated at 300 ms, deadline 9000)`);
  t.same((await ex.query('select 2 as two', [], CAPS)).rows, [{ two: 2 }], 'the next query runs on a fresh connection');

  const ac = new AbortController();
  const cancelled = denialOf(ex.query(HEAVY, [], CAPS, { signal: ac.signal }));
  await sleep(300);
  const abortAt = performance.now();
  ac.abort();
  const c = await cancelled;
  const afterAbort = performance.now() - abortAt;
  t.equal(c.code, 'cancelled');
  t.ok(afterAbort < 1500, `settled ${Math.round(afterAbort)} ms after the abort (the query alone runs for minutes)`);
  let active = -1;
  for (let i = 0; i < 20 && active !== 0; i++) {
    await sleep(100);
    const [r] =
      await admin`select count(*)::int as n from pg_stat_activity where datname = ${db.name} and state = 'active' and query like '%generate_series(1, 3000000000)%' and pid <> pg_backend_pid()`;
    active = r!.n as number;
  }
  t.equal(active, 0, 'the cancelled query no longer runs on the server');
  t.same((await ex.query('select 3 as three', [], CAPS)).rows, [{ three: 3 }]);
  t.ok((await bulwarkSessions()) <= 2, 'no more sessions than the pool holds');
});

t.test(
  'executor: with PostgreSQL stopped and a warm pool, calls answer unavailable within a second or two, marked as waiting on the database; then it recovers',
  async (t) => {
    const ex = new PgExecutor({ url: db.readerUrl, maxConnections: 2, idleTimeoutS: 30, maxLifetimeS: 600, connectTimeoutS: 5, session: sqlSessionSettings() });
    t.teardown(() => ex.close());
    await Promise.all([ex.query('select 1', [], CAPS), ex.query('select 1', [], CAPS)]);
    await cluster.stop('fast');
    const results = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const dl = deadlineIn(CAP_MS);
        const d = await denialOf(ex.query('select 1 as one', [], CAPS, { deadline: dl }));
        return { ...d, marked: dl.marks.includes('database'), stillMarked: dl.open.size };
      }),
    );
    t.same([...new Set(results.map((r) => r.code))], ['unavailable'], JSON.stringify(results.map((r) => r.reasons)));
    const slowest = Math.max(...results.map((r) => r.ms));
    t.ok(slowest < 3000, `slowest answer ${Math.round(slowest)} ms (cap ${CAP_MS} ms)`);
    t.ok(
      results.every((r) => r.marked && r.stillMarked === 0),
      'each waited under a database mark, cleared when it answered',
    );
    t.equal(ex.reachable, false);
    await cluster.start();
    const back = performance.now();
    let ok = false;
    while (!ok && performance.now() - back < 10_000) {
      ok = (await denialOf(ex.query('select 1 as one', [], CAPS, { deadline: deadlineIn(CAP_MS) }))).code === 'ok';
      if (!ok) await sleep(100);
    }
    t.ok(ok, `queries succeed again ${Math.round(performance.now() - back)} ms after PostgreSQL is back`);
    t.ok(performance.now() - back < 5000, 'within seconds');
    t.equal(ex.reachable, true);
    await adminReady();
  },
);

interface Answer {
  readonly tool: string;
  readonly ms: number;
  readonly code: string;
  readonly requestId?: string | undefined;
  readonly at: number;
}

const CALLS: [string, Record<string, unknown>][] = [
  ['query_database', { sql: 'SELECT id, name FROM users WHERE id = $1', params: [7] }],
  ['query_database', { sql: 'SELECT count(*) AS n FROM generate_series(1, $1::int) g', params: [300_000] }],
  ['list_tables', {}],
  ['describe_table', { table: 'public.orders' }],
];

async function callOnce(client: Client, k: number): Promise<Answer> {
  const [tool, args] = CALLS[k % CALLS.length]!;
  const t0 = performance.now();
  try {
    const r = await client.callTool({ name: tool, arguments: args }, undefined, { timeout: CAP_MS + 8000 });
    const sc = r.structuredContent as { error?: { code?: string; request_id?: string } } | undefined;
    if (r.isError) return { tool, ms: performance.now() - t0, code: String(sc?.error?.code ?? 'unknown'), requestId: sc?.error?.request_id, at: t0 };
    return {
      tool,
      ms: performance.now() - t0,
      code: 'ok',
      requestId: (r._meta as Record<string, unknown> | undefined)?.['bulwark/request_id'] as string | undefined,
      at: t0,
    };
  } catch (err) {
    return { tool, ms: performance.now() - t0, code: `no_answer: ${(err as Error).message.slice(0, 100)}`, at: t0 };
  }
}

/** CLIENTS clients calling in a loop until `stop()`; every answer is kept. */
async function load(clients: Client[], stop: () => boolean, answers: Answer[]): Promise<void> {
  await Promise.all(
    clients.map(async (c, i) => {
      for (let k = i; !stop(); k++) {
        const a = await callOnce(c, k);
        answers.push(a);
        if (a.code.startsWith('no_answer')) await sleep(250);
        else if (a.code !== 'ok') await sleep(25);
      }
    }),
  );
}

/** Set by a fault that keeps PostgreSQL down for a while: calls started then must answer fast. */
const outage = { from: 0, to: 0 };

interface Scenario {
  readonly name: string;
  /** The fault, run while the load runs; resolves when PostgreSQL is serving again. */
  fault(): Promise<void>;
}

async function runScenario(t: Test, s: Scenario): Promise<void> {
  const sb: Sandbox = makeSandbox({ database: { url: db.readerUrl, pool: { max: POOL_MAX, connect_timeout_s: 2 } } });
  t.teardown(() => sb.cleanup());
  const server: HttpServerProcess = await startHttpServer(['--config', sb.configPath]);
  t.teardown(() => server.stop());
  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => httpClient(server.url)));
  t.teardown(() => Promise.all(clients.map((c) => c.close().catch(() => undefined))));
  let exited: string | undefined;
  server.child.once('exit', (code, signal) => (exited = `exit ${code} ${signal ?? ''}`));

  // Warm: every pool connection open.
  const warm = await Promise.all(clients.map((c, i) => callOnce(c, i * 4)));
  t.same([...new Set(warm.map((a) => a.code))], ['ok'], 'warm-up calls succeed');

  outage.from = outage.to = 0;
  const answers: Answer[] = [];
  let stopLoad = false;
  const loading = load(clients, () => stopLoad, answers);
  await sleep(800);
  await s.fault();
  const back = performance.now();
  // Recovery: the first call started after PostgreSQL is back that succeeds; the load goes on.
  let recoveredAt: number | undefined;
  while (recoveredAt === undefined && performance.now() - back < 15_000) {
    await sleep(100);
    recoveredAt = answers.find((a) => a.at >= back && a.code === 'ok')?.at;
  }
  await sleep(1500);
  stopLoad = true;
  await loading;
  const recoveryMs = recoveredAt === undefined ? undefined : Math.round(recoveredAt - back);

  t.equal(exited, undefined, 'the server process is alive');
  if (exited) t.comment(`server stderr (tail): ${server.stderr().slice(-4000)}`);
  t.ok(recoveryMs !== undefined && recoveryMs < 5000, `queries succeed again ${recoveryMs} ms after PostgreSQL is back, without a restart`);
  const after = answers.filter((a) => a.at >= back + (recoveryMs ?? 0) + 500);
  const afterFailed = after.filter((a) => a.code !== 'ok');
  t.ok(
    after.length > 0 && afterFailed.length === 0,
    `every call started after recovery succeeds (${afterFailed.length} did not: ${[...new Set(afterFailed.map((a) => a.code))].join(', ').slice(0, 300)})`,
  );

  const codes = new Map<string, number>();
  for (const a of answers) codes.set(a.code, (codes.get(a.code) ?? 0) + 1);
  const unexpected = [...codes.keys()].filter((c) => !['ok', 'unavailable', 'timeout'].includes(c));
  t.same(unexpected, [], `answers are only ok, unavailable or timeout: ${JSON.stringify(Object.fromEntries(codes)).slice(0, 500)}`);
  const maxMs = Math.max(...answers.map((a) => a.ms));
  t.ok(maxMs <= CAP_MS + BOUND_MS, `every call answered within its deadline + ${BOUND_MS} ms (slowest ${Math.round(maxMs)} ms)`);
  const during = answers.filter((a) => outage.to > 0 && a.at >= outage.from && a.at < outage.to);
  const outageMaxMs = during.length ? Math.max(...during.map((a) => a.ms)) : undefined;
  if (outage.to > 0) {
    // (one started just before the start may still get its answer from the server that came back)
    t.ok(
      during.some((a) => a.code === 'unavailable') && during.every((a) => a.code === 'unavailable' || a.code === 'ok'),
      `calls while PostgreSQL is down are unavailable (${during.length})`,
    );
    t.ok(outageMaxMs !== undefined && outageMaxMs < 3000, `and answered well within the ${CAP_MS} ms cap (slowest ${Math.round(outageMaxMs ?? -1)} ms)`);
  }

  // Sessions: no more than the pool holds, once the load is over.
  let sessions = -1;
  for (let i = 0; i < 30; i++) {
    sessions = await bulwarkSessions();
    if (sessions <= POOL_MAX) break;
    await sleep(100);
  }
  t.ok(sessions <= POOL_MAX, `${sessions} bulwark session(s) after recovery (pool max ${POOL_MAX})`);

  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await server.stop();
  const records = readAudit(sb.auditPath).filter((r) => r.outcome);
  const byId = new Map<string, number>();
  for (const r of records) byId.set(String(r.request_id), (byId.get(String(r.request_id)) ?? 0) + 1);
  const answered = answers.filter((a) => a.requestId);
  t.equal(answered.length, answers.length, 'every answer names its request id');
  const notOne = answered.filter((a) => byId.get(a.requestId as string) !== 1);
  t.same(
    notOne.map((a) => `${a.requestId}:${byId.get(a.requestId as string) ?? 0}`),
    [],
    'every answered call has exactly one outcome record',
  );
  const verify = spawnSync(process.execPath, [BIN, 'audit', 'verify', sb.auditPath], { encoding: 'utf8', timeout: 60_000 });
  t.equal(verify.status, 0, `bulwark audit verify passes: ${verify.stdout}${verify.stderr}`.slice(0, 600));

  t.comment(
    JSON.stringify({
      scenario: s.name,
      calls: answers.length,
      ok: codes.get('ok') ?? 0,
      unavailable: codes.get('unavailable') ?? 0,
      timeouts: codes.get('timeout') ?? 0,
      other: answers.length - (codes.get('ok') ?? 0) - (codes.get('unavailable') ?? 0) - (codes.get('timeout') ?? 0),
      max_answer_ms: Math.round(maxMs),
      ...(outageMaxMs === undefined ? {} : { outage_calls: during.length, outage_max_answer_ms: Math.round(outageMaxMs) }),
      records: answered.filter((a) => byId.get(a.requestId as string) === 1).length,
      recovery_ms: recoveryMs,
      sessions_after: sessions,
    }),
  );
}

t.test('scenario a: bulwark backends terminated again and again under load', (t) =>
  runScenario(t, {
    name: 'terminate-backends',
    async fault() {
      let killed = 0;
      for (let i = 0; i < 16; i++) {
        killed += await terminateBulwark();
        await sleep(250);
      }
      t.ok(killed >= 8, `${killed} backends terminated`);
    },
  }),
);

t.test('scenario b: pg_ctl restart -m fast under load', (t) =>
  runScenario(t, {
    name: 'restart-fast',
    async fault() {
      await cluster.restart('fast');
      await adminReady();
    },
  }),
);

t.test('scenario c: PostgreSQL stopped with a warm pool, then started again', (t) =>
  runScenario(t, {
    name: 'stopped-warm-pool',
    async fault() {
      await cluster.stop('fast');
      outage.from = performance.now();
      await sleep(3000);
      outage.to = performance.now();
      await cluster.start();
      await adminReady();
    },
  }),
);
