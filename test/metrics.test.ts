import http from 'node:http';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { BIN, makeSandbox, readAudit } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { httpClient, startHttpServer } from './helpers/clients.js';

t.setTimeout(240_000);

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

t.test('loopback-only: /metrics on a per-app registry, /health, /ready', async (t) => {
  const sb = makeSandbox();
  const server = await startHttpServer(['--config', sb.configPath]);
  t.teardown(async () => {
    await server.stop();
    sb.cleanup();
  });
  const client = await httpClient(server.url);
  await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  await client.callTool({ name: 'read_file', arguments: { path: '../outside/secret.txt' } });
  await client.close();
  const m = await get(`${server.base}/metrics`);
  t.equal(m.status, 200);
  t.match(m.body, /mcp_requests_total\{tool="read_file",status="ok"\} 1/);
  t.match(m.body, /mcp_requests_total\{tool="read_file",status="denied"\} 1/);
  t.match(m.body, /mcp_request_duration_seconds_count\{tool="read_file"\} 2/);
  t.match(m.body, /mcp_audit_append_duration_seconds_count 2/);
  t.match(m.body, /mcp_worker_pool_size\{pool="/);
  t.match(m.body, /bulwark_process_cpu_user_seconds_total/);
  t.same(JSON.parse((await get(`${server.base}/ready`)).body).checks, {
    policy: true,
    audit: true,
    filesystem_pool: true,
    javascript_pool: true,
    database: true,
  });
  t.equal((await get(`${server.base}/health`)).status, 200);
});

t.test('SIGTERM: the in-flight call finishes and is recorded, the process exits 0, the log verifies', async (t) => {
  const sb = makeSandbox({ javascript: { timeout_ms: 10_000 } });
  t.teardown(sb.cleanup);
  const server = await startHttpServer(['--config', sb.configPath]);
  const client = await httpClient(server.url);
  const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
  const started = Date.now();
  // SIGTERM once the script reports that it runs (a fixed delay may pass before a loaded
  // machine has even received the call, and a call that arrives after SIGTERM is refused).
  let running!: () => void;
  const inFlight = new Promise<void>((r) => (running = r));
  const call = client.callTool(
    { name: 'run_javascript', arguments: { code: 'progress(1, 2); const end = Date.now() + 1500; while (Date.now() < end) {} return 42;' } },
    undefined,
    { onprogress: () => running(), timeout: 60_000 },
  );
  await inFlight;
  server.child.kill('SIGTERM');
  const r = await call;
  t.notOk(r.isError, JSON.stringify(r.content));
  t.match(JSON.stringify(r.structuredContent), /42/);
  t.ok(Date.now() - started >= 1400, 'the call ran to completion');
  t.equal(await exited, 0, 'exit 0');
  await client.close().catch(() => undefined);
  const rec = readAudit(sb.auditPath).filter((x) => x.tool === 'run_javascript');
  t.equal(rec.length, 1);
  t.equal(rec[0]!.outcome.status, 'ok');
  const v = spawnSync(process.execPath, [BIN, 'audit', 'verify', sb.auditPath], { env: cleanChildEnv(), encoding: 'utf8' });
  t.equal(v.status, 0, v.stdout + v.stderr);
});

t.test('doctor checks the key store', async (t) => {
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json' } });
  t.teardown(sb.cleanup);
  const doctor = () => spawnSync(process.execPath, [BIN, 'doctor', '--config', sb.configPath, '--json'], { env: cleanChildEnv(), encoding: 'utf8' });
  const before = doctor();
  t.equal(before.status, 1);
  t.match(
    JSON.parse(before.stdout).checks.find((c: { check: string }) => c.check === 'keys'),
    { ok: false, detail: /no active key/ },
  );
  const c = spawnSync(process.execPath, [BIN, 'keys', 'create', '--principal', 'p', '--roles', 'developer', '--config', sb.configPath], {
    env: cleanChildEnv(),
    encoding: 'utf8',
  });
  t.equal(c.status, 0, c.stderr);
  const after = doctor();
  t.equal(after.status, 0, after.stdout);
  t.match(
    JSON.parse(after.stdout).checks.find((x: { check: string }) => x.check === 'keys'),
    { ok: true, detail: /1 active of 1/ },
  );
});
