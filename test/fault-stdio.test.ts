import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { BIN, makeSandbox, readAudit } from './helpers/fixtures.js';
import { verifyCli } from './helpers/faults.js';
import { cleanChildEnv } from './helpers/child-env.js';

/**
 * stdio as a script uses it: write the calls, close stdin, read the answers. EOF must not drop the
 * calls already sent, and bytes split across reads must arrive as they were written.
 */

interface Frame {
  id?: number | string | null;
  error?: { code: number; message: string };
  result?: { isError?: boolean; structuredContent?: Record<string, any> };
}

interface RawServer {
  readonly child: ChildProcessWithoutNullStreams;
  /** Frames read so far, with when each arrived (performance.now()). */
  readonly frames: { frame: Frame; at: number }[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  waitFor(pred: (f: Frame) => boolean, ms: number): Promise<Frame | undefined>;
}

function startRaw(configPath: string): RawServer {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath], { stdio: ['pipe', 'pipe', 'pipe'], env: cleanChildEnv() });
  const frames: { frame: Frame; at: number }[] = [];
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.trim()) frames.push({ frame: JSON.parse(line) as Frame, at: performance.now() });
    }
  });
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  return {
    child,
    frames,
    stderr: () => err,
    exited,
    async waitFor(pred, ms) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const hit = frames.find((f) => pred(f.frame));
        if (hit) return hit.frame;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      return frames.find((f) => pred(f.frame))?.frame;
    },
  };
}

const INIT = {
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};
const INITIALIZED = { jsonrpc: '2.0', method: 'notifications/initialized' };
const call = (id: number, name: string, args: unknown) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

async function initialised(server: RawServer, t: Test): Promise<void> {
  server.child.stdin.write(`${JSON.stringify(INIT)}\n${JSON.stringify(INITIALIZED)}\n`);
  const init = await server.waitFor((f) => f.id === 'init', 20_000);
  t.ok(init?.result, `initialize answered${init?.result ? '' : ` (exit ${server.child.exitCode}; stderr: ${server.stderr().slice(-600)})`}`);
}

t.test('stdin closed right after N calls: every call is run and answered, then exit 0', async (t) => {
  const sb = makeSandbox({ javascript: { timeout_ms: 5000 }, execution: { javascript_pool: { size: 2, max_queue: 64, heap_mb: 512 } } });
  t.teardown(sb.cleanup);
  const server = startRaw(sb.configPath);
  t.teardown(() => server.child.kill('SIGKILL'));
  await initialised(server, t);
  // Files and JavaScript: the JavaScript pool's workers are still starting when stdin closes, so
  // these calls are queued, not merely in flight, at EOF.
  const N = 40;
  const calls = Array.from({ length: N }, (_, i) =>
    i % 2 === 0 ? call(i + 1, 'read_file', { path: 'hello.txt' }) : call(i + 1, 'run_javascript', { code: `return ${i} * 2;` }),
  );
  const sentAt = performance.now();
  server.child.stdin.end(calls.map((c) => JSON.stringify(c)).join('\n') + '\n');
  const exit = await Promise.race([server.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 60_000).unref())]);
  t.ok(exit, 'the server exited after stdin closed');
  t.equal(exit?.code, 0, `exit code 0 (stderr: ${server.stderr().slice(-400)})`);
  const answers = new Map(server.frames.filter((f) => typeof f.frame.id === 'number').map((f) => [f.frame.id as number, f]));
  t.equal(answers.size, N, `${answers.size}/${N} calls answered`);
  let ok = 0;
  let maxMs = 0;
  for (let i = 0; i < N; i++) {
    const a = answers.get(i + 1);
    const sc = a?.frame.result?.structuredContent;
    if (i % 2 === 0) t.equal(sc?.content, 'hello, world\n', `call ${i + 1}: read_file ran`);
    else t.equal(sc?.result, i * 2, `call ${i + 1}: run_javascript ran (${JSON.stringify(sc?.error ?? a?.frame.error ?? null)})`);
    if (a && !a.frame.result?.isError) ok += 1;
    if (a) maxMs = Math.max(maxMs, a.at - sentAt);
  }
  t.ok(exit && exit.at >= Math.max(...[...answers.values()].map((a) => a.at)), 'the process exited after the last answer');
  const recs = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file' || r.tool === 'run_javascript');
  t.equal(recs.length, N, 'one audit record per call');
  t.equal(recs.filter((r) => r.outcome.code === null || r.outcome.code === undefined).length, N, 'all recorded as ok');
  t.comment(`stdin EOF: calls=${N} answered=${answers.size} ok=${ok} max_answer_ms=${maxMs.toFixed(0)} records=${recs.length} exit=${exit?.code}`);
  const v = verifyCli(sb.auditPath);
  t.equal(v.status, 0, `audit verify passes: ${v.out.slice(0, 300)}`);
});

t.test('a last message without its newline, then EOF, is still answered', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const server = startRaw(sb.configPath);
  t.teardown(() => server.child.kill('SIGKILL'));
  await initialised(server, t);
  server.child.stdin.end(JSON.stringify(call(7, 'read_file', { path: 'hello.txt' })));
  const exit = await server.exited;
  t.equal(exit.code, 0);
  t.equal(server.frames.find((f) => f.frame.id === 7)?.frame.result?.structuredContent?.content, 'hello, world\n');
});

t.test('multi-byte characters split across two reads arrive intact', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const name = 'café-€-😀.txt';
  const content = 'naïve — 5 € — 😀 — 日本語\n';
  fs.writeFileSync(path.join(sb.root, name), content);
  const server = startRaw(sb.configPath);
  t.teardown(() => server.child.kill('SIGKILL'));
  await initialised(server, t);
  const send = async (frame: unknown, splitInside: string) => {
    const bytes = Buffer.from(`${JSON.stringify(frame)}\n`, 'utf8');
    // Cut one byte into the character, so neither read holds it whole.
    const at = bytes.indexOf(Buffer.from(splitInside, 'utf8')) + 1;
    t.ok(at > 0 && Buffer.from(splitInside, 'utf8').length > 1, `cut inside ${splitInside}`);
    server.child.stdin.write(bytes.subarray(0, at));
    await new Promise((r) => setTimeout(r, 150));
    server.child.stdin.write(bytes.subarray(at));
  };
  const cases: [number, string][] = [
    [1, 'é'],
    [2, '€'],
    [3, '😀'],
  ];
  for (const [id, ch] of cases) {
    await send(call(id, 'read_file', { path: name }), ch);
    const a = await server.waitFor((f) => f.id === id, 15_000);
    t.equal(
      a?.result?.structuredContent?.content,
      content,
      `read_file of ${name}, cut inside ${ch}: found and read intact (${JSON.stringify(a?.result?.structuredContent?.error ?? null)})`,
    );
  }
  // The string the JavaScript returns, cut inside the emoji on the way in.
  await send(call(10, 'run_javascript', { code: 'return input + "!";', input: '→ 😀 €' }), '😀');
  const js = await server.waitFor((f) => f.id === 10, 20_000);
  t.equal(js?.result?.structuredContent?.result, '→ 😀 €!', 'run_javascript got and returned the string intact');
  server.child.stdin.end();
  t.equal((await server.exited).code, 0);
  const recs = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file');
  t.same(
    recs.map((r) => r.args?.path),
    [name, name, name],
    'the audit log holds the name as sent',
  );
});

t.test('a line that is not UTF-8 is a parse error; the server keeps serving', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const server = startRaw(sb.configPath);
  t.teardown(() => server.child.kill('SIGKILL'));
  await initialised(server, t);
  const bad = Buffer.concat([
    Buffer.from('{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"a'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('.txt"}}}\n'),
  ]);
  server.child.stdin.write(bad);
  server.child.stdin.write(`${JSON.stringify(call(6, 'read_file', { path: 'hello.txt' }))}\n`);
  const good = await server.waitFor((f) => f.id === 6, 15_000);
  t.equal(good?.result?.structuredContent?.content, 'hello, world\n');
  const parseErrors = server.frames.filter((f) => f.frame.id === null && f.frame.error?.code === -32700);
  t.equal(parseErrors.length, 1, 'one parse error (id null) for the invalid bytes');
  t.notOk(
    server.frames.some((f) => f.frame.id === 5),
    'the invalid line was not run',
  );
  server.child.stdin.end();
  t.equal((await server.exited).code, 0);
});
