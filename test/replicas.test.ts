/**
 * Issue 15 item 5: three replicas, proven on this machine.
 *
 * Three `bulwark serve --http` processes on fixed loopback ports behind HAProxy (Debian's package;
 * the configuration is test/helpers/haproxy.ts), one PostgreSQL holding the API keys
 * (auth.store: postgres), one Redis holding the rate buckets (limits.store: redis), each replica
 * its own signed audit log (one writer per file; checkpoints signed with one key, an origin per
 * replica). Every call is made by a real MCP SDK client over HTTP through HAProxy, which balances
 * each request round robin; the per-replica audit logs say which replica answered which call.
 *
 * In this order: (a) the rate limit is global; (b) a revoked key is refused by every replica within
 * auth.reload_check_ms; (e) a rolling restart (SIGTERM each in turn) under load fails no call;
 * (d) a replica killed (SIGKILL) under load loses no acknowledged call and HAProxy moves its
 * traffic, and the killed replica, restarted seconds later, signs what it left unsigned; (c) at the end every replica's log verifies with the checkpoint key and holds exactly
 * one outcome record per answered call (and one per refused authentication). Without PGURL/REDIS_URL (scripts/run-tests.mjs sets them) the
 * file starts its own PostgreSQL and Redis with scripts/services.sh and stops them at the end.
 */
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import postgres from 'postgres';
import { Redis } from 'ioredis';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { BIN, ROOT, makeSandbox, readAudit } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { bearerClient, errorOf } from './helpers/bearer.js';
import { INIT, JSON_HEADERS, request } from './helpers/http.js';
import { startHaproxy, type HaproxyProcess } from './helpers/haproxy.js';
import { Replica, callOnce, freePort, startLoad, type CallSeen } from './helpers/replicas.js';
import { mintKey } from '../src/auth/api-keys.js';
import { PostgresKeyStore, installKeysSchema } from '../src/auth/postgres-key-store.js';

t.setTimeout(300_000);

/** The documented revocation bound (README: "within auth.reload_check_ms plus one request"). */
const RELOAD_CHECK_MS = 1000;
/** What a loaded 2-core machine adds to it: process scheduling, the poll's own request. */
const REVOKE_SLACK_MS = 1500;
/** The principal bucket of (a); refills one token per 1000 s, so nothing refills during the test. */
const TINY_CAPACITY = 9;

const work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-replicas-')));
const sandbox = makeSandbox(); // the filesystem root every replica serves (hello.txt)

// ------------------------------------------------------------------ services

let pgUrl = process.env.PGURL;
let redisUrl = process.env.REDIS_URL;
let ownServices: string | undefined;
if (!pgUrl || !redisUrl) {
  ownServices = path.join(work, 'services');
  const r = spawnSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'start', ownServices], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/services.sh start failed: ${r.stderr}`);
  const env = Object.fromEntries(
    fs
      .readFileSync(path.join(ownServices, 'env'), 'utf8')
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  ) as Record<string, string>;
  pgUrl = env.PGURL;
  redisUrl = env.REDIS_URL;
}
const PGURL = pgUrl!;
const REDIS_URL = redisUrl!;

const suffix = crypto.randomBytes(4).toString('hex');
const dbName = `bulwark_replicas_${suffix}`;
const redisPrefix = `bulwark-test-replicas-${suffix}:`;
const logins = { server: `bwk_rserver_${suffix}`, operator: `bwk_roperator_${suffix}` };
const passwords = { server: crypto.randomBytes(12).toString('hex'), operator: crypto.randomBytes(12).toString('hex') };
const urlFor = (user?: string, password?: string): string => {
  const u = new URL(PGURL);
  if (user) u.username = user;
  if (password) u.password = password;
  u.pathname = `/${dbName}`;
  return u.toString();
};
const serverUrl = urlFor(logins.server, passwords.server);
const operatorUrl = urlFor(logins.operator, passwords.operator);
const cluster = postgres(PGURL, { max: 1, onnotice: () => undefined });

const keysCli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'keys', ...args], { encoding: 'utf8', env: cleanChildEnv() });
/** `bulwark audit ...` without blocking the event loop (the replicas' clients keep running). */
function auditCliAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'audit', ...args], { env: cleanChildEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
/** An operator's `keys create` (CLI), checked against the replicas' configuration (its tiers). */
function createKeyCli(principal: string, tier: string): { key: string; id: string } {
  const r = keysCli(
    'create',
    '--principal',
    principal,
    '--roles',
    'developer',
    '--tier',
    tier,
    '--store',
    operatorUrl,
    '--config',
    replicas[0]!.configPath,
    '--json',
  );
  if (r.status !== 0) throw new Error(`keys create failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { key: string; id: string };
}

// ------------------------------------------------------------------ topology

const replicas: Replica[] = [];
let lb: HaproxyProcess;
let lbPort = 0;
const keyDir = path.join(work, 'audit-keys');
let verifierKey = '';
/** Every tool call any client made, in every subtest: what (c) counts against. */
const allCalls: CallSeen[] = [];
/** 401 answers to a revoked key (b): each has an outcome record of its own (tool `http:authenticate`). */
let authRefusals = 0;
const clients: Client[] = [];

async function connect(token: string): Promise<Client> {
  const c = await bearerClient(lb.url, token);
  clients.push(c);
  return c;
}

/** The outcome records each replica has written so far, by request id (a live log: an unfinished last line is left). */
function servedBy(): Map<string, string> {
  const by = new Map<string, string>();
  for (const r of replicas) {
    if (!fs.existsSync(r.auditPath)) continue;
    const lines = fs.readFileSync(r.auditPath, 'utf8').split('\n');
    lines.pop();
    for (const l of lines) {
      const rec = JSON.parse(l) as { event?: string; outcome?: unknown; request_id?: string };
      if (rec.event === undefined && rec.outcome && rec.request_id) by.set(rec.request_id, r.name);
    }
  }
  return by;
}

async function waitBalancer(name: string, up: boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const s = (await lb.stats()).find((x) => x.name === name);
    if (s && s.status.startsWith('UP') === up) return;
    if (Date.now() > end) throw new Error(`HAProxy did not mark ${name} ${up ? 'UP' : 'DOWN'}: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const record = (seen: CallSeen[]): CallSeen[] => {
  allCalls.push(...seen);
  return seen;
};
const failuresOf = (seen: readonly CallSeen[]) => seen.filter((s) => s.failure !== undefined);

/** HAProxy's log lines that tell what happened to failed calls: 5xx answers, aborted exchanges, servers going DOWN or UP. */
function haproxyTrouble(): string {
  const odd = lb
    .log()
    .split('\n')
    .filter((l) => / is (DOWN|UP),/.test(l) || (l.includes('replicas/') && (/ 5\d\d \d+ /.test(l) || !/ - - ---- /.test(l))));
  return `HAProxy: ${odd.length} line(s) of note:\n${odd.slice(-30).join('\n')}`;
}

/** The keys of the subtests, minted in before(): the operator's CLI for one, the store API for the rest. */
const keys = { tiny: '', load: '', revokee: '', revokeeId: '' };

t.before(async () => {
  // The key store (schema and logins) and the checkpoint key pair, at once.
  const storeReady = (async () => {
    await cluster.unsafe(`CREATE DATABASE ${dbName}`);
    await installKeysSchema(urlFor()); // what `bulwark keys install-schema ADMIN_URL` applies
    for (const who of ['server', 'operator'] as const) await cluster.unsafe(`CREATE ROLE ${logins[who]} LOGIN PASSWORD '${passwords[who]}'`);
    const admin = postgres(urlFor(), { max: 1, onnotice: () => undefined });
    await admin.unsafe(`GRANT bulwark_keys_reader TO ${logins.server}`);
    await admin.unsafe(`GRANT bulwark_keys_admin TO ${logins.operator}`);
    await admin.end({ timeout: 5 });
  })();
  const kg = await auditCliAsync('keygen', '--out', keyDir, '--name', 'replicas');
  if (kg.status !== 0) throw new Error(`audit keygen: ${kg.stderr}`);
  verifierKey = fs.readFileSync(path.join(keyDir, 'replicas.pub'), 'utf8').trim();
  await storeReady;

  lbPort = await freePort();
  for (const name of ['r1', 'r2', 'r3']) replicas.push(new Replica(name, await freePort(), path.join(work, name)));
  for (const r of replicas) {
    r.writeConfig({
      // HAProxy passes the client's Host (the balancer's address) through; direct probes use the replica's own.
      server: { http: { allowed_hosts: [`127.0.0.1:${lbPort}`, `127.0.0.1:${r.port}`] } },
      auth: { http: 'api_key', store: 'postgres', postgres_url: serverUrl, reload_check_ms: RELOAD_CHECK_MS },
      limits: {
        store: 'redis',
        redis_url: REDIS_URL,
        redis_prefix: redisPrefix,
        tiers: { local: { capacity: 100_000, refill_per_s: 100_000 }, tiny: { capacity: TINY_CAPACITY, refill_per_s: 0.001 } },
        default_tier: 'local',
      },
      audit: {
        path: r.auditPath,
        checkpoint: {
          private_key: path.join(keyDir, 'replicas.key'),
          public_keys: [path.join(keyDir, 'replicas.pub')],
          origin: `bulwark.test/replicas/${r.name}`,
          every_ms: 500,
        },
      },
      filesystem: { roots: [sandbox.root] },
      observability: { log_level: 'warn' },
      // Three replicas on two shared cores: the smallest pools the calls here need.
      execution: { filesystem_pool: { size: 1, max_queue: 64, heap_mb: 128 }, javascript_pool: { size: 1, max_queue: 4, heap_mb: 128 } },
    });
  }
  const started = Promise.all(replicas.map((r) => r.start()));
  // While the replicas start: the keys (argon2 hashing costs a core each).
  const store = new PostgresKeyStore(operatorUrl);
  try {
    for (const [name, principal, tier] of [
      ['tiny', 'spread', 'tiny'],
      ['load', 'load', 'local'],
    ] as const) {
      const { token, record } = await mintKey({ principal, roles: ['developer'], tier });
      await store.add(record);
      keys[name] = token;
    }
  } finally {
    await store.close();
  }
  const cli = createKeyCli('revokee', 'local');
  keys.revokee = cli.key;
  keys.revokeeId = cli.id;
  await started;
  await Promise.all(replicas.map((r) => r.waitReady()));
  lb = await startHaproxy(work, {
    port: lbPort,
    servers: replicas.map((r) => ({ name: r.name, port: r.port })),
    statsSocket: path.join(work, 'haproxy.sock'),
    checkHost: `127.0.0.1:${lbPort}`,
  });
  for (const r of replicas) await waitBalancer(r.name, true);
});

t.teardown(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await lb?.stop();
  await Promise.allSettled(replicas.map((r) => r.stop()));
  await cluster.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
  for (const login of Object.values(logins)) await cluster.unsafe(`DROP ROLE IF EXISTS ${login}`).catch(() => undefined);
  await cluster.end({ timeout: 5 });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const buckets = await redis.keys(`${redisPrefix}*`);
  if (buckets.length) await redis.del(...buckets);
  await redis.quit();
  if (ownServices) spawnSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'stop', ownServices], { stdio: 'ignore' });
  sandbox.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
});

// ------------------------------------------------------------------ (a)

t.test("(a) a principal's rate limit is global: the bucket's capacity across all three replicas, then refused by each", async (t) => {
  const three = [await connect(keys.tiny), await connect(keys.tiny), await connect(keys.tiny)];
  // Three clients at once, five calls each: the balancer spreads the 15 calls over the replicas.
  const seen = record(
    (
      await Promise.all(
        three.map(async (c, i) => {
          const out: CallSeen[] = [];
          for (let n = 0; n < 5; n++) out.push(await callOnce(c, i, 'file_info', { path: 'hello.txt' }));
          return out;
        }),
      )
    ).flat(),
  );
  t.same(failuresOf(seen), [], 'every call was answered');
  const allowed = seen.filter((s) => s.requestId && !s.code);
  const limited = seen.filter((s) => s.code === 'rate_limited');
  t.equal(allowed.length, TINY_CAPACITY, `exactly the bucket's ${TINY_CAPACITY} allowed in all (a bucket per replica would allow all 15)`);
  t.equal(limited.length, seen.length - TINY_CAPACITY, 'the rest refused rate_limited');

  const by = servedBy();
  const replicaOf = (s: CallSeen) => by.get(s.requestId!);
  t.ok(
    seen.every((s) => replicaOf(s) !== undefined),
    'every answered call has its outcome record in some replica',
  );
  const allowedBy = new Set(allowed.map(replicaOf));
  const limitedBy = new Set(limited.map(replicaOf));
  t.same([...new Set(seen.map(replicaOf))].sort(), ['r1', 'r2', 'r3'], 'the calls reached all three replicas');
  t.ok(allowedBy.size >= 2 && limitedBy.size >= 2, `allowed by ${[...allowedBy].sort().join(',')}; refused by ${[...limitedBy].sort().join(',')}`);
  for (const r of replicas) t.ok(allowed.filter((s) => replicaOf(s) === r.name).length < TINY_CAPACITY, `${r.name} allowed only its share`);

  // A fresh client on the balancer, another tool: the same (empty) bucket, with its wait.
  const late = await connect(keys.tiny);
  const again = record([await callOnce(late, 9, 'read_file', { path: 'hello.txt' })])[0]!;
  t.equal(again.code, 'rate_limited', 'a fresh client, another tool: still refused');
  const refusal = errorOf(await late.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } }));
  t.same(refusal?.reasons, ['rate.principal']);
  t.ok((refusal?.retry_after_s ?? 0) > 900, `retry_after_s ${refusal?.retry_after_s} (one token per 1000 s)`);
  allCalls.push({ client: 9, started: 0, ended: 0, requestId: refusal!.request_id, code: refusal!.code });
  const stats = await lb.stats();
  t.ok(
    stats.every((s) => s.sessions > 0),
    `HAProxy sent requests to each: ${stats.map((s) => `${s.name}=${s.sessions}`).join(' ')}`,
  );
});

// ------------------------------------------------------------------ (b)

t.test('(b) a key revoked with `keys revoke --store` is refused by every replica within auth.reload_check_ms', async (t) => {
  const c = await connect(keys.revokee);
  // Every replica verifies the key first (argon2 once, then its proof cache): the revocation
  // must reach keys each one already trusts.
  const before = record(await Promise.all([0, 1, 2, 3, 4, 5].map((i) => callOnce(c, i, 'file_info', { path: 'hello.txt' }))));
  t.ok(
    before.every((s) => s.requestId && !s.code),
    'the key works through the balancer',
  );
  const direct = (r: Replica, from: string) =>
    request(`${r.base}/mcp`, { headers: { ...JSON_HEADERS, authorization: `Bearer ${keys.revokee}` }, body: INIT, from });
  for (const [i, r] of replicas.entries()) t.equal((await direct(r, `127.0.0.${21 + i}`)).status, 200, `${r.name} accepts it directly`);

  const revoke = keysCli('revoke', keys.revokeeId, '--store', operatorUrl);
  t.equal(revoke.status, 0, revoke.stderr);
  // The revocation time the store holds (written by the CLI before its UPDATE, same clock): the bound starts there.
  const admin = postgres(urlFor(), { max: 1, onnotice: () => undefined });
  const [row] = await admin`SELECT revoked FROM bulwark_api_key WHERE id = ${keys.revokeeId}`;
  await admin.end({ timeout: 5 });
  const revokedAt = (row?.revoked as Date).getTime();

  // Each replica directly, from an address of its own (lockouts count per address).
  const refusedBy = async (r: Replica, from: string): Promise<number> => {
    for (;;) {
      const reply = await direct(r, from);
      if (reply.status === 401) {
        authRefusals += 1;
        t.equal(JSON.parse(reply.body).reason, 'auth.key_revoked', `${r.name}: auth.key_revoked`);
        return Date.now() - revokedAt;
      }
      if (Date.now() - revokedAt > 10_000) return Infinity;
      await new Promise((res) => setTimeout(res, 25));
    }
  };
  const took = await Promise.all(replicas.map((r, i) => refusedBy(r, `127.0.0.${31 + i}`)));
  for (const [i, ms] of took.entries())
    t.ok(
      ms <= RELOAD_CHECK_MS + REVOKE_SLACK_MS,
      `${replicas[i]!.name} refuses the revoked key ${ms} ms after the revocation (bound ${RELOAD_CHECK_MS} ms + ${REVOKE_SLACK_MS} ms slack)`,
    );
  t.comment(`revocation reached r1/r2/r3 after ${took.join(' / ')} ms`);

  // Through the balancer: three calls, round robin over the three replicas, all refused.
  const after = await Promise.all([0, 1, 2].map((i) => callOnce(c, i, 'file_info', { path: 'hello.txt' })));
  authRefusals += after.filter((s) => /auth\.key_revoked/.test(s.failure ?? '')).length;
  t.ok(
    after.every((s) => s.requestId === undefined && /auth\.key_revoked/.test(s.failure ?? '')),
    `refused through the balancer (401 auth.key_revoked): ${after.map((s) => s.failure?.slice(0, 120)).join(' | ')}`,
  );
});

// ------------------------------------------------------------------ (e)

t.test('(e) a rolling restart (SIGTERM each in turn) under continuous load fails no call', async (t) => {
  const loadClients = [await connect(keys.load), await connect(keys.load), await connect(keys.load)];
  const load = startLoad(loadClients, 'file_info', { path: 'hello.txt' });
  await new Promise((r) => setTimeout(r, 300));
  const steps: string[] = [];
  for (const r of replicas) {
    const oldPid = r.pid;
    const exit = await r.signal('SIGTERM');
    t.equal(exit.code, 0, `${r.name} (pid ${oldPid}) drained and exited 0`);
    const down = Date.now();
    await r.start();
    await r.waitReady();
    await waitBalancer(r.name, true);
    steps.push(`${r.name}: drained in ${exit.ms.toFixed(0)} ms, back in rotation ${Date.now() - down} ms later`);
    // It takes traffic again before the next one goes.
    const served = servedBy().size;
    const until = Date.now() + 10_000;
    while (servedBy().size === served && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
  }
  await new Promise((r) => setTimeout(r, 300));
  const seen = record(await load.stop());
  const failed = failuresOf(seen);
  if (failed.length) t.comment(haproxyTrouble());
  t.ok(seen.length > 30, `${seen.length} calls during the rolling restart`);
  t.same(
    failed.map((f) => f.failure),
    [],
    'zero failed calls',
  );
  t.ok(
    seen.every((s) => s.requestId && !s.code),
    'every call allowed',
  );
  const by = servedBy();
  t.same([...new Set(seen.map((s) => by.get(s.requestId!) ?? 'none'))].sort(), ['r1', 'r2', 'r3'], 'all three replicas served during the restart');
  const stats = await lb.stats();
  t.comment(`rolling restart: ${seen.length} calls, ${failed.length} failed; ${steps.join('; ')}`);
  t.comment(`HAProxy retries/redispatches: ${stats.map((s) => `${s.name}=${s.retries}/${s.redispatches}`).join(' ')}`);
});

// ------------------------------------------------------------------ (d)

t.test('(d) SIGKILL one replica mid-load: no acknowledged call is lost, HAProxy moves the traffic, calls after the kill succeed', async (t) => {
  const loadClients = [await connect(keys.load), await connect(keys.load), await connect(keys.load)];
  // The victim comes back after longer than the checkpoint coverage bound (2 × every_ms + 2 s): its
  // new process signs what the killed one left unsigned, and (c) verifies its log.
  const victim = replicas[1]!;
  const load = startLoad(loadClients, 'file_info', { path: 'hello.txt' });
  await new Promise((r) => setTimeout(r, 1000));
  const killSent = Date.now();
  const exit = await victim.signal('SIGKILL');
  const killDone = Date.now();
  t.equal(exit.signal, 'SIGKILL', `${victim.name} killed by its pid`);
  await waitBalancer(victim.name, false);
  const downAfter = Date.now() - killSent;
  await new Promise((r) => setTimeout(r, 1000));
  const seen = record(await load.stop());

  // In flight: sent before the process was gone and answered (or not) after the signal.
  const inFlight = (s: CallSeen) => s.started <= killDone && s.ended >= killSent;
  const failed = failuresOf(seen);
  if (failed.length) t.comment(haproxyTrouble());
  t.ok(seen.length > 20, `${seen.length} calls under load`);
  t.ok(failed.every(inFlight), `only calls in flight at the kill may fail: ${failed.length} failed (${failed.map((f) => f.failure).join(' | ')})`);
  t.ok(failed.length <= loadClients.length, 'at most one per client');
  const afterKill = seen.filter((s) => s.started > killDone);
  t.ok(afterKill.length > 10, `${afterKill.length} calls started after the kill`);
  t.same(failuresOf(afterKill), [], 'every call started after the kill was answered');
  t.ok(
    afterKill.every((s) => s.requestId && !s.code),
    'and allowed',
  );

  const by = servedBy();
  const acked = seen.filter((s) => s.requestId);
  t.same(
    acked.filter((s) => !by.has(s.requestId!)),
    [],
    `every one of the ${acked.length} acknowledged calls has its outcome record in some replica's log`,
  );
  t.ok(
    acked.some((s) => s.ended < killSent && by.get(s.requestId!) === victim.name),
    `${victim.name} served calls before the kill (their records survive it)`,
  );
  t.same(
    [...new Set(afterKill.map((s) => by.get(s.requestId!)))].sort(),
    replicas.filter((r) => r !== victim).map((r) => r.name),
    'after the kill the other two replicas served everything',
  );
  t.comment(`kill: ${seen.length} calls, ${failed.length} in flight lost their answer, HAProxy marked ${victim.name} DOWN ${downAfter} ms after the signal`);

  // What the kill left: records after the last checkpoint (the writer signs every 500 ms under load).
  const cpFile = path.join(path.dirname(victim.auditPath), 'audit.checkpoints.jsonl');
  const signedUpTo = Math.max(
    0,
    ...fs
      .readFileSync(cpFile, 'utf8')
      .split('\n')
      .filter((l) => l.endsWith('}'))
      .map((l) => (JSON.parse(l) as { size: number }).size),
  );
  // Complete lines only: the kill may have torn the last one (the restart sets it aside).
  const complete = fs.readFileSync(victim.auditPath, 'utf8').split('\n').slice(0, -1);
  const lastSeq = Math.max(...complete.map((l) => (JSON.parse(l) as { seq: number }).seq));
  const down = 2 * 500 + 2000 + 1000 - (Date.now() - killSent);
  if (down > 0) await new Promise((r) => setTimeout(r, down));
  await victim.start();
  await victim.waitReady();
  await waitBalancer(victim.name, true);
  const back = await connect(keys.load);
  const served = servedBy();
  let servedAgain = false;
  for (let i = 0; i < 20 && !servedAgain; i++) {
    const c = record([await callOnce(back, 0, 'file_info', { path: 'hello.txt' })])[0]!;
    t.equal(c.failure, undefined, `call ${i} after the restart answered`);
    servedAgain = !served.has(c.requestId!) && servedBy().get(c.requestId!) === victim.name;
  }
  t.ok(servedAgain, `${victim.name} serves again after its restart ${Date.now() - killSent} ms after the kill`);
  const restarted = readAudit(victim.auditPath).filter((x) => x.event === 'audit.recovery' && x.recovery?.action === 'restarted');
  if (signedUpTo < lastSeq) {
    t.same(
      restarted.map((x) => x.recovery),
      [{ action: 'restarted', last_checkpoint_size: signedUpTo, unsigned_from: signedUpTo + 1, unsigned_to: lastSeq }],
      `the restarted writer recorded the ${lastSeq - signedUpTo} record(s) the killed one left unsigned`,
    );
  } else {
    t.same(restarted, [], 'the kill left nothing unsigned: no restart record');
  }
});

// ------------------------------------------------------------------ (c)

t.test("(c) every replica's audit log verifies with the checkpoint key and holds one outcome record per answered call", async (t) => {
  await Promise.all(replicas.map((r) => r.stop()));
  const answered = new Set(allCalls.filter((s) => s.requestId).map((s) => s.requestId!));
  const unanswered = allCalls.filter((s) => s.failure !== undefined && !/auth\.key_revoked/.test(s.failure)).length;
  const recordedIn = new Map<string, string[]>();
  const extras: string[] = [];
  let outcomes = 0;
  let authRecords = 0;
  const verified = await Promise.all(replicas.map((r) => auditCliAsync('verify', r.auditPath, '--public-key', verifierKey, '--require-genesis', '--json')));
  for (const [i, r] of replicas.entries()) {
    const v = verified[i]!;
    t.equal(v.status, 0, `${r.name}: audit verify exits 0${v.status === 0 ? '' : `: ${v.stdout}${v.stderr}`}`);
    const report = JSON.parse(v.stdout) as { records: number; checkpoints: { signatures: string; matched: number } };
    t.equal(report.checkpoints.signatures, 'verified', `${r.name}: checkpoints signed by the trusted key`);
    t.ok(report.checkpoints.matched >= 1, `${r.name}: ${report.checkpoints.matched} checkpoint(s) match`);
    const all = readAudit(r.auditPath).filter((x) => x.event === undefined && x.outcome);
    // A refused authentication is recorded too (no tool ran; its 401 names no request id).
    const refusedAuth = all.filter((x) => x.tool === 'http:authenticate');
    authRecords += refusedAuth.length;
    t.ok(
      refusedAuth.every((x) => x.outcome.code === 'unauthenticated' && x.outcome.reasons.includes('auth.key_revoked')),
      `${r.name}: ${refusedAuth.length} refused authentication(s), each auth.key_revoked`,
    );
    const records = all.filter((x) => x.tool !== 'http:authenticate');
    t.ok(records.length > 0, `${r.name}: ${records.length} tool-call outcome records (of ${report.records} records)`);
    outcomes += records.length;
    for (const x of records) {
      const id = x.request_id as string;
      recordedIn.set(id, [...(recordedIn.get(id) ?? []), r.name]);
      if (!answered.has(id)) extras.push(`${r.name} ${x.ts} ${x.tool} ${x.principal?.id} ${x.outcome.status}/${x.outcome.code}`);
    }
  }
  t.equal(authRecords, authRefusals, `one record per 401 answered to the revoked key (${authRefusals})`);
  t.same(
    [...answered].filter((id) => recordedIn.get(id)?.length !== 1),
    [],
    `each of the ${answered.size} answered calls has exactly one outcome record across the three logs`,
  );
  t.same(
    [...recordedIn].filter(([, at]) => at.length !== 1),
    [],
    'no request id recorded twice',
  );
  // A call that ran but whose answer never reached the client (it was in flight at the kill) has
  // a record and no answer: at most one per such call, nothing else.
  t.ok(
    extras.length <= unanswered,
    `${outcomes} outcome records for ${answered.size} answered calls; ${extras.length} without an answer (${unanswered} calls failed in flight)${extras.length ? `: ${extras.join('; ')}` : ''}`,
  );
});
