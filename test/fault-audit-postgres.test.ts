import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import postgres from 'postgres';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { AuditUnavailableError } from '../src/audit/audit-log.js';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { installPostgresSchema, verifyPostgres } from '../src/audit/postgres-log.js';
import { BIN, makeSandbox } from './helpers/fixtures.js';
import { httpClient, startHttpServer } from './helpers/clients.js';
import { startPgCluster, type PgCluster } from './helpers/pg-cluster.js';

// The PostgreSQL audit backend when its PostgreSQL restarts: appends are refused while it is
// failed, it resumes on its own with a recovery record that continues the chain, nothing written
// before changes, and the stream verifies. Against a cluster of this test's own.

let cluster: PgCluster;
let admin: postgres.Sql;
let writerUrl: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.before(async () => {
  cluster = startPgCluster();
  await installPostgresSchema(cluster.url);
  admin = postgres(cluster.url, { max: 1, onnotice: () => undefined, backoff: () => 0.1 });
  const pass = crypto.randomBytes(12).toString('hex');
  await admin.unsafe(`CREATE ROLE bulwark_app_fault LOGIN PASSWORD '${pass}'`);
  await admin.unsafe('GRANT bulwark_audit_writer TO bulwark_app_fault');
  const u = new URL(cluster.url);
  u.username = 'bulwark_app_fault';
  u.password = pass;
  writerUrl = u.toString();
});
t.teardown(async () => {
  await admin?.end({ timeout: 1 }).catch(() => undefined);
  cluster?.close();
});

const stream = () => `fault-${crypto.randomUUID().slice(0, 8)}`;

async function rows(s: string): Promise<Map<number, string>> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await admin`SELECT seq, hash FROM bulwark_audit WHERE stream = ${s} ORDER BY seq`;
      return new Map(r.map((x) => [Number(x.seq), String(x.hash)]));
    } catch {
      await sleep(100);
    }
  }
  throw new Error('PostgreSQL did not come back');
}

t.test('the log refuses appends while failed, resumes by itself with a recovery record, and verifies', async (t) => {
  const s = stream();
  const warnings: { message: string; detail: Record<string, unknown> }[] = [];
  const log = await AuditLog.open({
    path: '',
    durability: 'fsync',
    batchMs: 5,
    backend: 'postgres',
    postgresUrl: writerUrl,
    stream: s,
    onWarning: (message, detail) => warnings.push({ message, detail }),
  });
  t.teardown(() => log.close());
  for (let i = 0; i < 20; i++) await log.append({ request_id: `before-${i}`, i });
  const before = await rows(s);
  t.equal(before.size, 20);

  let ok = 0;
  let refused = 0;
  let sawUnwritable = false;
  const otherErrors: string[] = [];
  let stop = false;
  const writers = Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      try {
        await log.append({ request_id: `w${w}-${i}`, w, i });
        ok++;
      } catch (err) {
        if (!(err instanceof AuditUnavailableError)) otherErrors.push(String(err));
        refused++;
        if (!log.writable) sawUnwritable = true;
        await sleep(20);
      }
    }
  });
  await sleep(300);
  await cluster.restart('fast');
  const back = performance.now();
  let writableAgain: number | undefined;
  while (writableAgain === undefined && performance.now() - back < 10_000) {
    await sleep(50);
    if (log.writable && refused > 0) writableAgain = performance.now() - back;
  }
  const okAtResume = ok;
  await sleep(500);
  stop = true;
  await Promise.all(writers);

  t.ok(refused > 0 && sawUnwritable, `appends were refused while the log was failed (${refused})`);
  t.same(otherErrors, [], 'every refusal is an AuditUnavailableError');
  t.ok(
    writableAgain !== undefined && writableAgain < 3000,
    `writable again ${Math.round(writableAgain ?? -1)} ms after PostgreSQL was back, without a restart`,
  );
  t.ok(ok > okAtResume, 'and appends succeed again');

  const after = await rows(s);
  t.same(
    [...before].filter(([seq, hash]) => after.get(seq) !== hash),
    [],
    'nothing written before the failure changed',
  );
  const recs = await admin`SELECT seq, line FROM bulwark_audit WHERE stream = ${s} AND line LIKE '%"audit.recovery"%' ORDER BY seq`;
  t.ok(recs.length >= 1, `${recs.length} recovery record(s)`);
  let counted = 0;
  for (const r of recs) {
    const rec = JSON.parse(String(r.line)) as { event: string; recovery: Record<string, any> };
    t.equal(rec.event, 'audit.recovery');
    t.equal(rec.recovery.backend, 'postgres');
    t.equal(rec.recovery.stream, s);
    t.ok(
      Date.parse(rec.recovery.failed_at) <= Date.parse(rec.recovery.resumed_at),
      `failed at ${rec.recovery.failed_at}, resumed at ${rec.recovery.resumed_at}`,
    );
    t.type(rec.recovery.reason, 'string');
    counted += Number(rec.recovery.refused_appends.count);
  }
  const refusedRecs = await admin`SELECT line FROM bulwark_audit WHERE stream = ${s} AND line LIKE '%"audit.refused"%'`;
  const meanwhile = refusedRecs.reduce(
    (n, r) => n + Number((JSON.parse(String(r.line)) as { refused: { refused_appends: { count: number } } }).refused.refused_appends.count),
    0,
  );
  t.equal(counted + meanwhile, refused, `every refused append is counted in the chain: ${counted} in recovery records, ${meanwhile} refused while it resumed`);
  t.ok(
    warnings.some((w) => w.message.startsWith('audit log write failed')) && warnings.some((w) => w.message.startsWith('audit log resumed')),
    'the failure and the resume were logged',
  );

  // Every acknowledged append is in the stream exactly once.
  const lines = await admin`SELECT line FROM bulwark_audit WHERE stream = ${s}`;
  const ids = new Map<string, number>();
  for (const l of lines) {
    const id = (JSON.parse(String(l.line)) as { request_id?: string }).request_id;
    if (id) ids.set(id, (ids.get(id) ?? 0) + 1);
  }
  t.same(
    [...ids].filter(([, n]) => n !== 1),
    [],
    'no request id written twice',
  );
  t.equal(lines.length - recs.length - refusedRecs.length, [...ids.keys()].length, 'every row besides the recovery records is one append');

  const v = await verifyPostgres(writerUrl, s);
  t.equal(v.ok, true, JSON.stringify(v.problem));
  const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', writerUrl, '--stream', s], { encoding: 'utf8', timeout: 60_000 });
  t.equal(cli.status, 0, `bulwark audit verify postgres://… passes: ${cli.stdout}${cli.stderr}`);
});

t.test('a server on audit.backend postgres survives a PostgreSQL restart, answers audit_unavailable meanwhile and recovers', async (t) => {
  const s = stream();
  const sb = makeSandbox({ audit: { backend: 'postgres', postgres_url: writerUrl, stream: s } });
  t.teardown(() => sb.cleanup());
  const server = await startHttpServer(['--config', sb.configPath]);
  t.teardown(() => server.stop());
  let exited: string | undefined;
  server.child.once('exit', (code, signal) => (exited = `exit ${code} ${signal ?? ''}`));
  const clients: Client[] = await Promise.all(Array.from({ length: 4 }, () => httpClient(server.url)));
  t.teardown(() => Promise.all(clients.map((c) => c.close().catch(() => undefined))));

  const answers: { code: string; id?: string; at: number; ms: number }[] = [];
  let stop = false;
  const load = Promise.all(
    clients.map(async (c) => {
      while (!stop) {
        const t0 = performance.now();
        try {
          const r = await c.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } }, undefined, { timeout: 15_000 });
          const sc = r.structuredContent as { error?: { code?: string; request_id?: string } } | undefined;
          answers.push(
            r.isError
              ? { code: String(sc?.error?.code), id: sc?.error?.request_id, at: t0, ms: performance.now() - t0 }
              : { code: 'ok', id: (r._meta as Record<string, string> | undefined)?.['bulwark/request_id'], at: t0, ms: performance.now() - t0 },
          );
        } catch (err) {
          answers.push({ code: `no_answer: ${(err as Error).message.slice(0, 80)}`, at: t0, ms: performance.now() - t0 });
          await sleep(200);
        }
        await sleep(10);
      }
    }),
  );
  await sleep(800);
  await cluster.restart('fast');
  const back = performance.now();
  let recoveredAt: number | undefined;
  while (recoveredAt === undefined && performance.now() - back < 10_000) {
    await sleep(100);
    recoveredAt = answers.find((a) => a.at >= back && a.code === 'ok')?.at;
  }
  const ready = await fetch(`${server.base}/ready`).then((r) => r.status);
  await sleep(500);
  stop = true;
  await load;

  t.equal(exited, undefined, 'the server process is alive');
  if (exited) t.comment(server.stderr().slice(-3000));
  const codes = [...new Set(answers.map((a) => a.code))].sort();
  t.same(
    codes.filter((c) => c !== 'ok' && c !== 'audit_unavailable'),
    [],
    `answers are ok or audit_unavailable: ${codes.join(', ')}`,
  );
  const recoveryMs = recoveredAt === undefined ? undefined : Math.round(recoveredAt - back);
  t.ok(recoveryMs !== undefined && recoveryMs < 5000, `calls succeed again ${recoveryMs} ms after PostgreSQL is back`);
  t.equal(ready, 200, '/ready says ready again');

  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await server.stop();
  const lines = await admin`SELECT line FROM bulwark_audit WHERE stream = ${s}`;
  const byId = new Map<string, number>();
  let recoveries = 0;
  for (const l of lines) {
    const rec = JSON.parse(String(l.line)) as { request_id?: string; event?: string };
    if (rec.event === 'audit.recovery') recoveries++;
    if (rec.request_id) byId.set(rec.request_id, (byId.get(rec.request_id) ?? 0) + 1);
  }
  const oks = answers.filter((a) => a.code === 'ok');
  t.same(
    oks.filter((a) => byId.get(a.id ?? '') !== 1).map((a) => a.id),
    [],
    'every ok answer has exactly one record',
  );
  t.ok(recoveries >= 1, `${recoveries} recovery record(s) in the stream`);
  const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', writerUrl, '--stream', s], { encoding: 'utf8', timeout: 60_000 });
  t.equal(cli.status, 0, `bulwark audit verify postgres://… passes: ${cli.stdout}${cli.stderr}`);
  t.comment(
    JSON.stringify({
      scenario: 'audit-postgres-restart',
      calls: answers.length,
      ok: oks.length,
      audit_unavailable: answers.filter((a) => a.code === 'audit_unavailable').length,
      other: answers.filter((a) => a.code !== 'ok' && a.code !== 'audit_unavailable').length,
      max_answer_ms: Math.round(Math.max(...answers.map((a) => a.ms))),
      records: lines.length,
      recovery_records: recoveries,
      recovery_ms: recoveryMs,
    }),
  );
});
