import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../src/config/loader.js';
import { createPools } from '../src/execution/pools.js';
import { createLogger } from '../src/observability/logger.js';
import { DenialError } from '../src/core/denial.js';
import { makeSandbox, readAudit, SECRET } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { startHttpServer, stdioClient } from './helpers/clients.js';

t.test('second wall: with path checks bypassed, the permission model still refuses reads outside the roots', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const { config } = loadConfig({ file: sb.configPath });
  const pools = await createPools(config, createLogger('error'));
  t.teardown(() => pools.close());
  // A forged pin is what a bug in canonicalisation would hand the executor.
  const forged = (root: string, components: string[]) => ({
    pin: { root, components, dev: 0, ino: 0, kind: 'file' },
    canonical: path.join(root, ...components),
    maxFileBytes: 1 << 20,
    maxBytes: 1 << 20,
    offset: 0,
    encoding: 'auto',
  });
  // Not "/" as a root: Node 20's permission tree sometimes lets "/" itself be opened when the
  // allow-list spans several top-level folders (seen here); the inode check is what refuses that.
  for (const [root, comps] of [
    ['/etc', ['passwd']],
    [sb.outside, ['secret.txt']],
    ['/proc/self', ['environ']],
    ['/root', ['.bashrc']],
  ] as const) {
    const err = await pools.filesystem.run('read', forged(root, [...comps]), { timeoutMs: 5000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof DenialError, `${root}: refused`);
    const d = (err as DenialError).denial;
    t.equal(d.code, 'tool_error');
    t.match(JSON.stringify(d), /ERR_ACCESS_DENIED/, `${root}/${comps.join('/')}: the permission model said no`);
    t.notMatch(JSON.stringify(d), SECRET);
  }
  // The same worker reads inside the root (the dev/ino check is what refuses a forged inode).
  const st = fs.statSync(path.join(sb.root, 'hello.txt'));
  const ok = await pools.filesystem.run<{ content: string }>(
    'read',
    { ...forged(sb.root, ['hello.txt']), pin: { root: sb.root, components: ['hello.txt'], dev: st.dev, ino: st.ino, kind: 'file' } },
    { timeoutMs: 5000 },
  );
  t.equal(ok.value.content, 'hello, world\n');
  // Workers have no child processes and no writes either.
  t.same(
    pools.stats().map((s) => s.ready),
    [2, 2],
  );
});

t.test('a worker killed mid-call fails that call alone; a new worker takes over; the failure is audited', async (t) => {
  const sb = makeSandbox({ javascript: { timeout_ms: 10000 } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const pool = gate.app.deps.toolEnv.pools.javascript;
  const before = pool.pids();
  const running = gate.call('run_javascript', { code: 'for (;;) {}' });
  await new Promise((r) => setTimeout(r, 300));
  const busy = pool.pids().filter((p) => before.includes(p));
  t.ok(busy.length > 0);
  for (const pid of busy) process.kill(pid, 'SIGKILL');
  const o = await running;
  t.equal(o.denial?.code, 'tool_error');
  t.ok(o.denial?.reasons.includes('worker.crashed'));
  t.ok(o.durationMs < 5000, 'failed at once, not at the time cap');
  const next = await gate.call('run_javascript', { code: 'return "still here"' });
  t.equal(next.result?.structured.result, 'still here');
  const read = await gate.call('read_file', { path: 'hello.txt' });
  t.equal(read.status, 'ok');
  await gate.close();
  const recs = readAudit(sb.auditPath);
  const failed = recs.find((r) => r.outcome.code === 'tool_error');
  t.ok(failed, 'the failed call is in the audit log');
  t.equal(failed?.outcome.status, 'error');
  t.same(failed?.outcome.reasons, ['worker.crashed']);
});

t.test('a full pool answers unavailable at once instead of piling up', async (t) => {
  const sb = makeSandbox({ javascript: { timeout_ms: 1500 }, execution: { javascript_pool: { size: 1, max_queue: 1, heap_mb: 128 } } });
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const first = gate.call('run_javascript', { code: 'for (;;) {}' });
  await new Promise((r) => setTimeout(r, 100));
  const second = gate.call('run_javascript', { code: 'return 2' });
  const t0 = performance.now();
  const third = await gate.call('run_javascript', { code: 'return 3' });
  t.equal(third.denial?.code, 'unavailable');
  t.ok(third.denial?.reasons.includes('pool.saturated'));
  t.ok(performance.now() - t0 < 500, 'refused quickly');
  t.equal((await first).denial?.code, 'timeout');
  t.equal((await second).result?.structured.result, 2, 'the queued call ran once a worker was free');
});

t.test('MCP cancellation stops a running call and is audited as cancelled', async (t) => {
  const sb = makeSandbox({ javascript: { timeout_ms: 20000 }, execution: { timeout_ms: 30000 } });
  t.teardown(sb.cleanup);
  const { client, close } = await stdioClient(['--config', sb.configPath]);
  const ac = new AbortController();
  const t0 = performance.now();
  const p = client
    .callTool({ name: 'run_javascript', arguments: { code: 'for (;;) {}' } }, undefined, { signal: ac.signal, timeout: 60000 })
    .catch((e: Error) => e);
  setTimeout(() => ac.abort('user pressed stop'), 400);
  const r = await p;
  t.ok(r instanceof Error, 'the client sees its own cancellation');
  const after = await client.callTool({ name: 'run_javascript', arguments: { code: 'return 5' } });
  t.same((after.structuredContent as { result: number }).result, 5, 'the server kept serving');
  t.ok(performance.now() - t0 < 15000, 'the loop did not run to its 20 s budget');
  await close();
  const cancelled = readAudit(sb.auditPath).find((x) => x.outcome.status === 'cancelled');
  t.ok(cancelled, 'a cancelled record exists');
  t.equal(cancelled?.outcome.code, 'cancelled');
  t.ok(cancelled!.outcome.duration_ms < 5000, `stopped ${cancelled!.outcome.duration_ms} ms in`);
});

t.test('an HTTP client that disconnects stops its work', async (t) => {
  const sb = makeSandbox({ javascript: { timeout_ms: 20000 }, execution: { timeout_ms: 30000 } });
  t.teardown(sb.cleanup);
  const server = await startHttpServer(['--config', sb.configPath]);
  t.teardown(() => server.stop());
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'run_javascript', arguments: { code: 'for (;;) {}' } } });
  await new Promise<void>((resolve) => {
    const req = http.request(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
    });
    req.on('error', () => resolve());
    req.end(body);
    setTimeout(() => {
      req.destroy();
      resolve();
    }, 400);
  });
  const deadline = Date.now() + 10000;
  let rec: Record<string, any> | undefined;
  while (!rec && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    rec = readAudit(sb.auditPath).find((x) => x.tool === 'run_javascript');
  }
  t.equal(rec?.outcome.status, 'cancelled');
  t.ok(rec!.outcome.duration_ms < 5000, `stopped ${rec!.outcome.duration_ms} ms in`);
});

t.test('a long search reports progress at a bounded rate when asked', async (t) => {
  const sb = makeSandbox({
    filesystem: { search: { max_results: 10, time_budget_ms: 20000, max_file_bytes: 1 << 20, max_files: 100000 } },
    execution: { timeout_ms: 30000 },
  });
  t.teardown(sb.cleanup);
  const dir = path.join(sb.root, 'many');
  fs.mkdirSync(dir);
  const line = 'lorem ipsum dolor sit amet consectetur adipiscing elit\n'.repeat(400);
  for (let i = 0; i < 1500; i++) fs.writeFileSync(path.join(dir, `f${i}.txt`), line);
  // Reloading the config picks up the roots; a stdio client asks for progress.
  const { client, close } = await stdioClient(['--config', sb.configPath]);
  t.teardown(close);
  const seen: { progress: number; at: number }[] = [];
  const r = await client.callTool({ name: 'search_files', arguments: { path: 'many', query: 'z+q+z', regex: true } }, undefined, {
    onprogress: (p) => seen.push({ progress: p.progress, at: performance.now() }),
    timeout: 60000,
  });
  t.notOk(r.isError, JSON.stringify(r.structuredContent).slice(0, 200));
  t.equal((r.structuredContent as { files_scanned: number }).files_scanned, 1500);
  t.ok(seen.length >= 1, `${seen.length} progress notifications`);
  for (let i = 1; i < seen.length; i++) t.ok(seen[i]!.progress > seen[i - 1]!.progress, 'progress increases');
  // The rate over the whole search, not gap by gap: the server spaces them ≥ 100 ms apart, but a
  // stall in this process delivers two back to back. The last update is flushed with the result,
  // however soon after the one before it, so it is left out.
  if (seen.length >= 3) {
    const spaced = seen.slice(0, -1);
    const span = spaced.at(-1)!.at - spaced[0]!.at;
    // Half the server's spacing on average: unthrottled, hundreds would arrive within milliseconds.
    t.ok(span >= (spaced.length - 1) * 50, `rate-limited: ${spaced.length} updates over ${Math.round(span)} ms`);
  }
});

t.test('a script that reports progress reaches the client as progress notifications', async (t) => {
  const sb = makeSandbox({ javascript: { timeout_ms: 10000 } });
  t.teardown(sb.cleanup);
  const { client, close } = await stdioClient(['--config', sb.configPath]);
  t.teardown(close);
  const seen: number[] = [];
  const code = 'for (let i = 1; i <= 6; i++) { progress(i, 6); const t0 = Date.now(); while (Date.now() - t0 < 150) {} } return "done"';
  const r = await client.callTool({ name: 'run_javascript', arguments: { code } }, undefined, { onprogress: (p) => seen.push(p.progress), timeout: 30000 });
  t.equal((r.structuredContent as { result: string }).result, 'done');
  t.ok(seen.length >= 2, `${seen.length} progress notifications: ${seen.join(',')}`);
  t.ok(
    seen.every((v, i) => i === 0 || v > seen[i - 1]!),
    'increasing',
  );
});
