/**
 * Progress that reaches the client (issue 14, item 4). Over HTTP a call that asks for progress is
 * answered as an event stream once it reports some: the notifications, then the result, with the
 * gate's invariants intact (the record is written before the result, the deadline holds, a client
 * that leaves mid-stream leaves exactly one outcome record). Everywhere the throttle keeps the
 * last update of a burst. Real SDK clients over real HTTP and stdio.
 */
import t from 'tap';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BIN, makeSandbox, readAudit } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer, stdioClient, type HttpServerProcess } from './helpers/clients.js';
import { JSON_HEADERS } from './helpers/http.js';
import { throttledProgress, type ProgressParams } from '../src/server/progress.js';

/** Busy-waits between updates: the isolate has no timers. */
const STEPS = (n: number, ms: number) =>
  `for (let i = 1; i <= ${n}; i++) { progress(i, ${n}); const t0 = Date.now(); while (Date.now() - t0 < ${ms}) {} } return "done"`;
/** A burst: every update within a millisecond, far inside one throttle interval. */
const BURST = 'for (let i = 1; i <= 20; i++) progress(i, 20); return "burst"';

const sb = makeSandbox({ javascript: { timeout_ms: 10000 }, execution: { timeout_ms: 15000 } });
let server: HttpServerProcess;
t.before(async () => {
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server.stop();
  sb.cleanup();
});

/** An SDK client whose responses' content types are noted, so a test sees whether the answer streamed. */
async function watchedClient(url: string): Promise<{ client: Client; types: string[] }> {
  const types: string[] = [];
  const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      types.push(res.headers.get('content-type') ?? '');
      return res;
    },
  });
  await client.connect(transport);
  // The SDK client lists the tools before its first call (to check output schemas): not counted.
  await client.listTools();
  types.length = 0;
  return { client, types };
}

/** A result names its request in `_meta`, a denial in `structuredContent.error`. */
const requestIdOf = (r: { _meta?: Record<string, unknown>; structuredContent?: Record<string, unknown> }): string =>
  String(r._meta?.['bulwark/request_id'] ?? (r.structuredContent?.error as { request_id?: string } | undefined)?.request_id);
const outcomes = (tool: string) => readAudit(sb.auditPath).filter((r) => r.tool === tool && r.event === undefined);

t.test('HTTP: progress arrives as events, then the result, whose record was written first', async (t) => {
  const { client, types } = await watchedClient(server.url);
  t.teardown(() => client.close());
  const seen: number[] = [];
  const r = await client.callTool({ name: 'run_javascript', arguments: { code: STEPS(6, 150) } }, undefined, {
    onprogress: (p) => seen.push(p.progress),
    timeout: 30000,
  });
  // Read as soon as the answer is in: the gate writes (and, by default, fsyncs) before it answers.
  const rec = readAudit(sb.auditPath).find((x) => x.request_id === requestIdOf(r));
  t.equal((r.structuredContent as { result: string }).result, 'done');
  t.match(types, ['text/event-stream'], 'the answer was an event stream');
  t.ok(seen.length >= 2, `${seen.length} progress notifications: ${seen.join(',')}`);
  t.ok(
    seen.every((v, i) => i === 0 || v > seen[i - 1]!),
    'increasing',
  );
  t.equal(seen.at(-1), 6, 'the final update arrived');
  t.match(rec?.outcome, { status: 'ok' }, 'the outcome record was there when the result arrived');
});

t.test('HTTP: a burst of updates still delivers the last one', async (t) => {
  const { client, types } = await watchedClient(server.url);
  t.teardown(() => client.close());
  const seen: number[] = [];
  const r = await client.callTool({ name: 'run_javascript', arguments: { code: BURST } }, undefined, {
    onprogress: (p) => seen.push(p.progress),
    timeout: 30000,
  });
  t.equal((r.structuredContent as { result: string }).result, 'burst');
  t.match(types, ['text/event-stream']);
  t.equal(seen.at(-1), 20, `the last update arrived: ${seen.join(',')}`);
  t.ok(seen.length < 20, 'and the burst was throttled');
});

t.test('HTTP: without a progress token, or with nothing to report, the answer is JSON as before', async (t) => {
  const { client, types } = await watchedClient(server.url);
  t.teardown(() => client.close());
  const plain = await client.callTool({ name: 'run_javascript', arguments: { code: STEPS(2, 10) } });
  t.equal((plain.structuredContent as { result: string }).result, 'done');
  const quiet = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } }, undefined, { onprogress: () => undefined });
  t.notOk(quiet.isError);
  t.same(types, ['application/json', 'application/json']);
});

t.test('HTTP: the deadline holds while streaming, and the timeout arrives after the progress', async (t) => {
  const short = makeSandbox({ javascript: { timeout_ms: 20000 }, execution: { timeout_ms: 3000 } });
  const s = await startHttpServer(['--config', short.configPath]);
  t.teardown(async () => {
    await s.stop();
    short.cleanup();
  });
  const { client, types } = await watchedClient(s.url);
  t.teardown(() => client.close());
  const seen: number[] = [];
  const started = performance.now();
  const r = await client.callTool({ name: 'run_javascript', arguments: { code: STEPS(1000, 100) } }, undefined, {
    onprogress: (p) => seen.push(p.progress),
    timeout: 30000,
  });
  const ms = performance.now() - started;
  t.equal(r.isError, true);
  t.match(r.structuredContent, { error: { code: 'timeout' } });
  t.match(types, ['text/event-stream']);
  t.ok(seen.length >= 1, `${seen.length} progress notifications before the timeout`);
  t.ok(ms < 10000, `answered after ${Math.round(ms)} ms, at the 3 s deadline plus the bound`);
  const recs = readAudit(short.auditPath).filter((x) => x.request_id === requestIdOf(r));
  t.equal(recs.length, 1, 'one outcome record');
  t.match(recs[0]?.outcome, { status: 'error', code: 'timeout' });
});

t.test('HTTP: a client that leaves mid-stream leaves exactly one outcome record', async (t) => {
  const before = outcomes('run_javascript').length;
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 9,
    method: 'tools/call',
    params: { name: 'run_javascript', arguments: { code: STEPS(100, 100) }, _meta: { progressToken: 'leave' } },
  });
  const first = await new Promise<string>((resolve, reject) => {
    const req = http.request(server.url, { method: 'POST', headers: { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25' } }, (res) => {
      t.equal(res.headers['content-type'], 'text/event-stream');
      res.once('data', (c: Buffer) => {
        req.destroy();
        resolve(c.toString());
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end(body);
  });
  t.match(first, /^event: message\ndata: .*"notifications\/progress".*"progressToken":"leave"/);
  const deadline = Date.now() + 15000;
  while (outcomes('run_javascript').length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // Time for a second record to appear, if one would.
  await new Promise((r) => setTimeout(r, 1500));
  const added = outcomes('run_javascript').slice(before);
  t.equal(added.length, 1, 'exactly one outcome record');
  t.match(added[0]?.outcome, { status: 'cancelled' });
});

t.test('HTTP: SIGTERM mid-stream: the stream runs to its result, new connections are refused, exit 0', async (t) => {
  const own = makeSandbox({ javascript: { timeout_ms: 20000 } });
  const s = await startHttpServer(['--config', own.configPath]);
  t.teardown(async () => {
    await s.stop();
    own.cleanup();
  });
  const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)));
  const { client } = await watchedClient(s.url);
  const seen: number[] = [];
  let signalled = false;
  const call = client.callTool({ name: 'run_javascript', arguments: { code: STEPS(25, 100) } }, undefined, {
    onprogress: (p) => {
      seen.push(p.progress);
      if (!signalled) {
        signalled = true;
        s.child.kill('SIGTERM');
      }
    },
    timeout: 30000,
  });
  // Once the server has taken the signal, a new connection is refused while the stream goes on.
  let refused: string | undefined;
  for (let i = 0; i < 50 && refused === undefined; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (!signalled) continue;
    const r = await new Promise<string | undefined>((resolve) => {
      const req = http.request(`${s.base}/health`, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 503 ? 'status 503' : undefined);
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code));
      req.end();
    });
    refused = r;
  }
  const r = await call;
  t.equal((r.structuredContent as { result: string }).result, 'done', 'the in-flight stream ran to its result');
  t.equal(seen.at(-1), 25, 'with its last update');
  t.match(refused, /ECONNREFUSED|ECONNRESET|status 503/, `a new connection during the drain: ${refused}`);
  t.equal(await exited, 0, 'exit 0 after the drain');
  await client.close().catch(() => undefined);
  const recs = readAudit(own.auditPath).filter((x) => x.tool === 'run_javascript' && x.event === undefined);
  t.equal(recs.length, 1, 'one outcome record');
  t.match(recs[0]?.outcome, { status: 'ok' });
});

t.test('stdio: an update held by the throttle still reaches the SDK client', async (t) => {
  // Its own sandbox: one writer per audit log, and the HTTP server holds the shared one.
  const own = makeSandbox({ javascript: { timeout_ms: 10000 } });
  const { client, close } = await stdioClient(['--config', own.configPath]);
  t.teardown(async () => {
    await close();
    own.cleanup();
  });
  // 1 goes at once; 2 and 3 come within the interval and 3 is held, then sent at the interval's
  // end, well before the result. A leading-edge throttle dropped both.
  const code =
    'const spin = (ms) => { const t0 = Date.now(); while (Date.now() - t0 < ms) {} };' +
    'progress(1, 3); spin(20); progress(2, 3); spin(20); progress(3, 3); spin(600); return "held"';
  const seen: number[] = [];
  const r = await client.callTool({ name: 'run_javascript', arguments: { code } }, undefined, { onprogress: (p) => seen.push(p.progress), timeout: 30000 });
  t.equal((r.structuredContent as { result: string }).result, 'held');
  t.equal(seen.at(-1), 3, `the last update arrived: ${seen.join(',')}`);
  t.notOk(seen.includes(2), 'the one it replaced did not');
});

t.test('stdio: a burst’s last update is written before the result, every time', async (t) => {
  const own = makeSandbox({ javascript: { timeout_ms: 10000 } });
  t.teardown(own.cleanup);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', own.configPath], { stdio: ['pipe', 'pipe', 'ignore'], env: cleanChildEnv() });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const frames: Record<string, any>[] = [];
  let buf = '';
  const answered = new Map<number, () => void>();
  child.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const f = JSON.parse(buf.slice(0, nl)) as Record<string, any>;
      buf = buf.slice(nl + 1);
      frames.push(f);
      if (typeof f.id === 'number') answered.get(f.id)?.();
    }
  });
  const ask = (m: Record<string, unknown>) =>
    new Promise<void>((resolve) => {
      answered.set(m.id as number, resolve);
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...m })}\n`);
    });
  await ask({ id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  for (let id = 2; id < 7; id++) {
    await ask({ id, method: 'tools/call', params: { name: 'run_javascript', arguments: { code: BURST }, _meta: { progressToken: `burst-${id}` } } });
    const mine = frames.filter((f) => f.id === id || f.params?.progressToken === `burst-${id}`);
    const progress = mine.filter((f) => f.method === 'notifications/progress').map((f) => f.params.progress as number);
    t.equal(mine.at(-1)?.id, id, `call ${id}: the result is the last frame`);
    t.equal(progress.at(-1), 20, `call ${id}: the final update precedes it (${progress.join(',')})`);
    t.ok(progress.length < 20, `call ${id}: throttled`);
  }
});

t.test('the throttle: the first update at once, the last one held and sent, nothing after finish', async (t) => {
  // A 1 s interval: the checks below must land inside one interval even when this process stalls.
  const sent: ProgressParams[] = [];
  const ch = throttledProgress((p) => sent.push(p), 'tok', 1000);
  ch.report(1, 10);
  for (let i = 2; i <= 5; i++) ch.report(i, 10, `step ${i}`);
  t.same(
    sent.map((p) => p.progress),
    [1],
    'inside the interval the rest are held',
  );
  await new Promise((r) => setTimeout(r, 1100));
  t.same(sent.at(-1), { progressToken: 'tok', progress: 5, total: 10, message: 'step 5' }, 'the newest held update went out at the interval’s end');
  ch.report(5, 10);
  ch.report(4, 10);
  ch.report(Number.NaN);
  ch.report(6);
  ch.report(7);
  const count = sent.length;
  ch.finish(true);
  t.same(
    sent.slice(count).map((p) => p.progress),
    [7],
    'the held 7 (which replaced 6) flushed by finish',
  );
  t.notOk(
    sent.some((p) => p.progress === 4 || p.progress === 6 || Number.isNaN(p.progress)),
    'non-increasing values dropped, and 6 was replaced',
  );
  t.equal(sent.filter((p) => p.progress === 5).length, 1, 'a repeated value is not sent twice');
  ch.report(8);
  await new Promise((r) => setTimeout(r, 1100));
  t.equal(sent.at(-1)?.progress, 7, 'nothing after finish');
  const cancelled: ProgressParams[] = [];
  const c2 = throttledProgress((p) => cancelled.push(p), 1, 1000);
  c2.report(1);
  c2.report(2);
  c2.finish(false);
  await new Promise((r) => setTimeout(r, 1100));
  t.same(
    cancelled.map((p) => p.progress),
    [1],
    'a cancelled call’s held update is dropped',
  );
});
