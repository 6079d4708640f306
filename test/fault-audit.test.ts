/**
 * Fault injection on the audit log, against a real server process over HTTP with real SDK clients:
 *  - the log's disk fills up (a 1 MiB tmpfs) while call_api POSTs are in flight, then space is
 *    freed: no side effect reaches the upstream before its intent record is on disk, every call is
 *    answered, the log resumes by itself (recovery record) and verifies;
 *  - the server is killed with SIGKILL in fsync mode, again and again, rotating every few KiB:
 *    `bulwark audit verify` on the log exactly as each crash left it passes, every acknowledged
 *    call has its record, and intents cut short are reported as "outcome unknown".
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { makeSandbox, type Sandbox } from './helpers/fixtures.js';
import { httpClient, startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { startUpstream, writePolicyData, type TestUpstream } from './helpers/upstreams.js';
import { checkAnswered, fileRecords, outcomesByRequest, runLoad, summarise, verifyCli, type Answer } from './helpers/faults.js';

const DEADLINE_MS = 10_000;
/** Executor grace + the record's bound + client/HTTP overhead on a loaded 2-core machine. */
const BOUND_MS = 3_000;

function mountTmpfs(dir: string, size: string): string | undefined {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
  }
}

/** Fill a filesystem to the last byte; returns the filler file. */
function fill(dir: string): string {
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  try {
    for (let size = chunk.length; size >= 1;) {
      try {
        fs.writeSync(fd, chunk, 0, size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        size = Math.floor(size / 2);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return filler;
}

interface World {
  readonly sb: Sandbox;
  readonly up: TestUpstream;
  readonly auditPath: string;
  server: HttpServerProcess;
  clients: Client[];
  start(): Promise<void>;
}

async function world(t: Test, auditDir: string, audit: Record<string, unknown> = {}): Promise<World> {
  const up = await startUpstream();
  const auditPath = path.join(auditDir, 'audit.jsonl');
  const sb = makeSandbox({
    audit: { path: auditPath, durability: 'fsync', ...audit },
    apis: { svc: { base_url: `${up.origin}/v1/`, internal: true, retries: 0, methods: ['GET', 'POST'] } },
    policy: { data: 'policy-data.json' },
    principals: { loopback: { id: 'bob', roles: ['developer'], tier: 'local' } },
    observability: { log_level: 'error' },
  });
  writePolicyData(sb.dir, ['svc']);
  const w: World = {
    sb,
    up,
    auditPath,
    server: undefined as unknown as HttpServerProcess,
    clients: [],
    async start() {
      w.server = await startHttpServer(['--config', sb.configPath]);
      w.clients = await Promise.all([0, 1, 2, 3].map(() => httpClient(w.server.url)));
    },
  };
  t.teardown(async () => {
    await Promise.all(w.clients.map((c) => c.close().catch(() => undefined)));
    await w.server?.stop();
    await up.close();
    sb.cleanup();
  });
  return w;
}

/** A POST whose query names it, so the upstream and the intent record can be matched. */
const post = (n: number) => ({ tool: 'call_api', args: { api: 'svc', method: 'POST', path: '/echo', query: { n: String(n) }, body: { n } } });
const read = () => ({ tool: 'read_file', args: { path: 'hello.txt' } });

t.test(
  'audit disk full with call_api POSTs in flight, then freed: no side effect before its intent, every call answered, the log resumes by itself',
  async (t) => {
    if (process.getuid?.() !== 0) {
      t.plan(0, 'SKIPPED: this scenario mounts a tmpfs and needs root (CI runs as root)');
      return;
    }
    const scratch = makeSandbox();
    t.teardown(scratch.cleanup);
    const mnt = path.join(scratch.dir, 'auditfs');
    // Room for the log itself once the filler is gone: up to 3,000 calls of ~1.7 records of ~2.2 KB
    // each. With 1 MiB a fast run filled the disk again with its own records after the resume,
    // and the test then saw a second outage it had not made.
    const mountError = mountTmpfs(mnt, '32M');
    if (mountError) {
      t.plan(0, `SKIPPED: cannot mount a tmpfs here: ${mountError}`);
      return;
    }
    t.teardown(() => {
      try {
        execFileSync('umount', ['-l', mnt]);
      } catch {
        /* already gone */
      }
    });
    const w = await world(t, mnt);
    // The upstream checks, at the moment each POST arrives, that its intent is already on disk.
    const arrivedWithoutIntent: string[] = [];
    const arrived: string[] = [];
    w.up.route('/v1/echo', async (req, res) => {
      const n = new URL(req.url, 'http://x').searchParams.get('n') ?? '?';
      arrived.push(n);
      const recs = await fileRecords(w.auditPath);
      if (!recs.some((r) => r.event === 'intent' && r.args?.query?.n === n)) arrivedWithoutIntent.push(n);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ n }));
    });
    await w.start();

    let i = 0;
    const next = (k: number) => (k % 3 === 2 ? read() : post(i++));
    const warm = await runLoad(w.clients, next, () => false, 8);
    t.same([...new Set(warm.map((a) => a.code))], ['ok'], 'calls succeed before the disk fills');

    const filler = fill(mnt);
    let phase: 'full' | 'freed' = 'full';
    let firstOkAfterFree = 0;
    let freedAt = 0;
    const load = runLoad(
      w.clients,
      next,
      () => (phase === 'freed' && firstOkAfterFree > 0 && Date.now() - firstOkAfterFree > 1000) || (freedAt > 0 && Date.now() - freedAt > 15_000),
      3000,
      30_000,
    );
    // Let the refusals pile up, look at /ready, then free the space.
    await new Promise((r) => setTimeout(r, 1500));
    const readyDuringOutage = await fetch(`${w.server.base}/ready`).then(async (r) => ({ status: r.status, body: await r.json() }));
    fs.rmSync(filler);
    phase = 'freed';
    freedAt = Date.now();
    const answers: Answer[] = [];
    // Note when calls succeed again (the load's stop condition needs it).
    const poll = setInterval(() => {
      if (!firstOkAfterFree && w.server.child.exitCode === null) {
        void fetch(`${w.server.base}/ready`).then(
          (r) => {
            if (r.status === 200 && !firstOkAfterFree) firstOkAfterFree = Date.now();
          },
          () => undefined,
        );
      }
    }, 100);
    answers.push(...(await load));
    clearInterval(poll);
    const recoveredMs = firstOkAfterFree ? firstOkAfterFree - freedAt : -1;
    const readyAfter = await fetch(`${w.server.base}/ready`).then(async (r) => ({ status: r.status, body: await r.json() }));
    const after = await runLoad(w.clients, next, () => false, 8);
    t.same([...new Set(after.map((a) => a.code))], ['ok'], 'calls succeed again without a restart');
    t.equal(w.server.child.exitCode, null, 'the server process is alive');
    await Promise.all(w.clients.map((c) => c.close()));
    w.clients = [];
    await w.server.stop();

    const all = [...warm, ...answers, ...after];
    const records = await fileRecords(w.auditPath);
    const summary = { scenario: 'audit_disk_full_then_freed', ...summarise(all, records), upstream_posts: arrived.length, recovered_ms: recoveredMs };
    t.comment(JSON.stringify(summary));
    t.ok((summary.codes.audit_unavailable ?? 0) > 0, 'calls were refused audit_unavailable while the disk was full');
    checkAnswered(t, all, records, { deadlineMs: DEADLINE_MS, boundMs: BOUND_MS, allowed: ['ok', 'audit_unavailable'] });
    t.same(arrivedWithoutIntent, [], `every POST that reached the upstream (${arrived.length}) had its intent record on disk first`);
    t.match(readyDuringOutage, { status: 503, body: { checks: { audit: false } } }, '/ready said not ready during the outage');
    t.match(readyAfter, { status: 200, body: { checks: { audit: true } } }, '/ready says ready again');
    t.ok(recoveredMs >= 0 && recoveredMs < 10_000, `the log resumed ${recoveredMs} ms after space was freed`);

    const recoveries = records.filter((r) => r.event === 'audit.recovery');
    t.ok(recoveries.length >= 1, 'a recovery record continues the chain');
    t.ok(
      recoveries.some((r) => r.recovery?.action === 'resumed' && r.recovery?.code === 'ENOSPC'),
      'it names the failure (ENOSPC)',
    );
    // Refusals happen only while the log is down: each refused call is counted in a recovery record.
    const refusedCount = recoveries.reduce((n, r) => n + (r.recovery?.refused_appends?.count ?? 0), 0);
    t.ok(refusedCount >= (summary.codes.audit_unavailable ?? 0), `recovery records count ${refusedCount} refused appends`);
    // Every intent whose call was answered ok is followed by its outcome naming it.
    const byReq = outcomesByRequest(records);
    const intents = records.filter((r) => r.event === 'intent');
    const okIds = new Set(all.filter((a) => a.code === 'ok').map((a) => a.requestId));
    let unnamed = 0;
    for (const it of intents) {
      if (!okIds.has(it.request_id)) continue;
      const out = byReq.get(it.request_id)?.[0];
      if (!out || out.intent_seq !== it.seq) unnamed++;
    }
    t.equal(unnamed, 0, `each of ${intents.length} intents of an answered call is named by its outcome record`);
    const v = verifyCli(w.auditPath);
    t.equal(v.status, 0, `audit verify passes after the outage: ${v.out.slice(0, 300)}`);
  },
);

t.test('SIGKILL of the server in fsync mode, rotating every 8 KiB: the log verifies exactly as each crash left it', async (t) => {
  const scratch = makeSandbox();
  t.teardown(scratch.cleanup);
  const w = await world(t, path.join(scratch.dir, 'log'), { rotation: { max_bytes: 8192 } });
  const arrived: string[] = [];
  w.up.route('/v1/echo', (req, res) => {
    arrived.push(new URL(req.url, 'http://x').searchParams.get('n') ?? '?');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  const acknowledged: Answer[] = [];
  let i = 0;
  let unknownTotal = 0;
  const KILLS = 5;
  for (let k = 0; k < KILLS; k++) {
    await w.start();
    let stop = false;
    const load = runLoad(
      w.clients,
      (c) => (c % 2 ? read() : post(i++)),
      () => stop,
      2000,
      20_000,
    );
    await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * 700)));
    w.server.child.kill('SIGKILL');
    stop = true;
    const answers = await load;
    await Promise.all(w.clients.map((c) => c.close().catch(() => undefined)));
    w.clients = [];
    acknowledged.push(...answers.filter((a) => a.code === 'ok'));

    const v = verifyCli(w.auditPath);
    let report: { ok?: boolean; outcome_unknown?: unknown[]; warnings?: string[] } = {};
    try {
      report = JSON.parse(v.out.slice(v.out.indexOf('{'))) as typeof report;
    } catch {
      /* shown below */
    }
    t.equal(v.status, 0, `kill ${k}: audit verify on the log as the crash left it passes${v.status ? `: ${v.out.slice(0, 400)}` : ''}`);
    unknownTotal = report.outcome_unknown?.length ?? 0;
    const records = await fileRecords(w.auditPath);
    const byReq = outcomesByRequest(records);
    const lost = acknowledged.filter((a) => (byReq.get(a.requestId ?? '')?.length ?? 0) !== 1);
    t.equal(lost.length, 0, `kill ${k}: all ${acknowledged.length} acknowledged calls have exactly one record`);
    const intentNs = new Set(records.filter((r) => r.event === 'intent').map((r) => r.args?.query?.n as string));
    t.same(
      arrived.filter((n) => !intentNs.has(n)),
      [],
      `kill ${k}: every POST the upstream saw (${arrived.length}) has an intent record`,
    );
    t.comment(
      JSON.stringify({
        scenario: 'server_sigkill_fsync_rotation',
        kill: k,
        ...summarise(answers, records),
        outcome_unknown: unknownTotal,
        segments: fs.readdirSync(path.dirname(w.auditPath)).filter((f) => /^audit\.\d+/.test(f) || f === 'audit.jsonl').length,
      }),
    );
  }
  // A restarted server finishes what a crash left (a pending rename, a torn tail) and goes on.
  await w.start();
  const fine = await runLoad(
    w.clients,
    (c) => (c % 2 ? read() : post(i++)),
    () => false,
    8,
  );
  t.same([...new Set(fine.map((a) => a.code))], ['ok'], 'the restarted server serves');
  await Promise.all(w.clients.map((c) => c.close()));
  w.clients = [];
  await w.server.stop();
  const v = verifyCli(w.auditPath);
  t.equal(v.status, 0, 'and the log verifies');
  t.ok(
    acknowledged.length > 0,
    `${acknowledged.length} calls acknowledged across ${KILLS} kills; ${unknownTotal} intent(s) with outcome unknown at the last kill`,
  );
});
