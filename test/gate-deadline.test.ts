/**
 * The gate owns each call's deadline: the real gate (policy wasm, audit log) with one tool's
 * executor replaced by a misbehaving stub — one that never answers, one stuck waiting on a
 * dependency, one that ignores its signal — and a rate-limit store that hangs past the deadline.
 * Every call must be answered within its deadline plus the bound, leave exactly one outcome
 * record, and nothing may start executing after the deadline.
 */
import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { runGate } from '../src/gate/run.js';
import { EXECUTOR_GRACE_MS, RECORD_BOUND_MS } from '../src/gate/deadline.js';
import type { GateDeps } from '../src/gate/deps.js';
import type { ToolDefinition } from '../src/tools/types.js';
import type { Authorised } from '../src/core/call.js';

const CAP_MS = 400;
/** Grace plus scheduling slack on a loaded 2-core machine. */
const BOUND_MS = EXECUTOR_GRACE_MS + 400;

async function setup(t: Test) {
  const sb = makeSandbox({ execution: { timeout_ms: CAP_MS } });
  const gate = await inProcessGate(sb.configPath);
  t.teardown(async () => {
    await gate.close();
    sb.cleanup();
  });
  const withExecutor = (execute: (call: Authorised) => Promise<never> | Promise<unknown>, extra: Partial<GateDeps> = {}): GateDeps => {
    const real = gate.app.deps.tools.get('read_file') as ToolDefinition;
    const stub = { ...real, execute } as ToolDefinition;
    return { ...gate.app.deps, tools: new Map([...gate.app.deps.tools, ['read_file', stub]]), ...extra };
  };
  const call = (deps: GateDeps, signal = new AbortController().signal) =>
    runGate(
      { tool: 'read_file', args: { path: 'hello.txt' }, context: { transport: 'stdio', requestId: crypto.randomUUID(), receivedAt: new Date(), signal } },
      deps,
    );
  return { sb, gate, withExecutor, call };
}

t.test('an executor that never answers: the gate answers timeout at the deadline, records once, and aborts the signal', async (t) => {
  const { sb, withExecutor, call } = await setup(t);
  let aborted: unknown;
  const deps = withExecutor((c) => new Promise(() => c.context.signal.addEventListener('abort', () => (aborted = c.context.signal.reason))));
  const t0 = performance.now();
  const o = await call(deps);
  const ms = performance.now() - t0;
  t.equal(o.denial?.code, 'timeout');
  t.same(o.denial?.reasons, ['deadline.exceeded']);
  // The answer waits for its outcome record (fsynced), which a loaded disk stretches: that wait has
  // its own bound; the rest must fit the deadline's.
  const recordMs = o.stageMs.record ?? 0;
  t.ok(recordMs < RECORD_BOUND_MS, `the outcome record took ${Math.round(recordMs)} ms`);
  t.ok(ms >= CAP_MS - 5 && ms - recordMs <= CAP_MS + BOUND_MS, `answered after ${Math.round(ms)} ms (cap ${CAP_MS}, record ${Math.round(recordMs)})`);
  t.match(aborted, { code: 'timeout' }, 'the executor saw its signal aborted with the deadline');
  const recs = readAudit(sb.auditPath).filter((r) => r.request_id === o.requestId);
  t.equal(recs.length, 1, 'exactly one outcome record');
  t.match(recs[0]?.outcome, { status: 'error', code: 'timeout', reasons: ['deadline.exceeded'], caps: { timeout_ms: CAP_MS } });
});

t.test('an executor stuck on a dependency: answered unavailable, naming it', async (t) => {
  const { sb, withExecutor, call } = await setup(t);
  const deps = withExecutor((c) => {
    c.context.deadline?.waitingOn('database');
    return new Promise(() => undefined);
  });
  const o = await call(deps);
  t.equal(o.denial?.code, 'unavailable');
  t.same(o.denial?.reasons, ['deadline.database']);
  t.equal(readAudit(sb.auditPath).filter((r) => r.request_id === o.requestId).length, 1);
});

t.test('a cleared mark is a plain timeout; an executor that reports cancellation at the deadline is a timeout too', async (t) => {
  const { withExecutor, call } = await setup(t);
  const cleared = withExecutor((c) => {
    c.context.deadline?.waitingOn('database')();
    return new Promise(() => undefined);
  });
  t.equal((await call(cleared)).denial?.code, 'timeout');
  const { DenialError, deny } = await import('../src/core/denial.js');
  const polite = withExecutor(
    (c) =>
      new Promise((_, reject) => c.context.signal.addEventListener('abort', () => reject(new DenialError(deny('cancelled', 'stopped', ['call.cancelled']))))),
  );
  const o = await call(polite);
  t.equal(o.denial?.code, 'timeout', 'the deadline, not a client cancellation');
});

t.test('a client cancellation stays a cancellation', async (t) => {
  const { withExecutor, call } = await setup(t);
  const { DenialError, deny } = await import('../src/core/denial.js');
  const deps = withExecutor(
    (c) =>
      new Promise((_, reject) => c.context.signal.addEventListener('abort', () => reject(new DenialError(deny('cancelled', 'stopped', ['call.cancelled']))))),
  );
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  const o = await call(deps, ac.signal);
  t.equal(o.denial?.code, 'cancelled');
});

t.test('a stage that hangs past the deadline: answered at the deadline, and the executor never starts', async (t) => {
  const { sb, withExecutor, call } = await setup(t);
  let executed = 0;
  let release: () => void = () => undefined;
  const hanging = new Promise<void>((r) => (release = r));
  const buckets = {
    take: async () => {
      await hanging;
      return { ok: true as const };
    },
  } as unknown as GateDeps['buckets'];
  const deps = withExecutor(
    async () => {
      executed++;
      return { text: 'ran', structured: {} };
    },
    { buckets },
  );
  const t0 = performance.now();
  const o = await call(deps);
  const waited = performance.now() - t0 - (o.stageMs.record ?? 0);
  t.ok(waited <= CAP_MS + BOUND_MS, `answered within the bound (${Math.round(waited)} ms before the record)`);
  // The rate-limit stage marks its store as the dependency it waits on.
  t.equal(o.denial?.code, 'unavailable');
  t.same(o.denial?.reasons, ['deadline.rate_store']);
  release();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(executed, 0, 'the stage that came back late did not let the executor start');
  t.equal(readAudit(sb.auditPath).filter((r) => r.request_id === o.requestId).length, 1, 'one record');
});

t.test('the policy obligation tightens the deadline; the executor gets what is left as its cap', async (t) => {
  const { withExecutor, call } = await setup(t);
  let cap = 0;
  const deps = withExecutor(async (c) => {
    cap = c.caps.timeoutMs;
    return { text: 'ok', structured: { path: 'hello.txt' } };
  });
  await call(deps);
  t.ok(cap > 0 && cap <= CAP_MS, `the executor's cap (${cap} ms) is at most the call's ${CAP_MS} ms`);
});
