/**
 * Every stage of the gate driven into its throw path. The unit under test is the real gate (real
 * policy wasm, real audit log, real read_file worker); for each case one piece of GateDeps is
 * replaced by a stub that throws (or never settles) where that stage relies on it, and the other
 * pieces are wrapped only to watch: which stages ran (the gate's own counters and timings), whether
 * the policy was asked, whether the executor started, and which records were appended.
 *
 * For every case: the typed answer (code and reasons), no stage after the failing one ran, nothing
 * executed without an allowing decision, and exactly one outcome record was written — except when
 * the record stage itself fails, where the one append is attempted and the result is withheld.
 */
import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import { z } from 'zod';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';
import { runGate } from '../src/gate/run.js';
import type { GateDeps } from '../src/gate/deps.js';
import { execute } from '../src/gate/execute.js';
import { RECORD_BOUND_MS } from '../src/gate/deadline.js';
import { GateMetrics } from '../src/observability/gate-metrics.js';
import { PolicyError } from '../src/policy/types.js';
import type { PolicyEvaluator } from '../src/policy/engine.js';
import type { AuditLog } from '../src/audit/audit-log.js';
import type { RateStore } from '../src/limits/rate-store.js';
import type { Config } from '../src/config/schema.js';
import type { ToolDefinition } from '../src/tools/types.js';
import type { ToolRegistry } from '../src/tools/registry.js';
import type { Authorised, GateOutcome } from '../src/core/call.js';
import type { Decision, Obligations } from '../src/core/decision.js';
import type { StageName } from '../src/core/stages.js';

const TOOL = 'read_file';
const ARGS = { path: 'hello.txt' };

const sb = makeSandbox();
const gate = await inProcessGate(sb.configPath);
t.teardown(async () => {
  await gate.close();
  sb.cleanup();
});
const base = gate.app.deps;
const realTool = registered(TOOL);

function registered(name: string): ToolDefinition {
  const tool = base.tools.get(name);
  if (!tool) throw new Error(`${name} is not registered`);
  return tool;
}

type Appended = Parameters<AuditLog['append']>[0];
const requestIdOf = (f: Appended): unknown => ('request_id' in f ? f.request_id : undefined);
const eventOf = (f: Appended): unknown => ('event' in f ? f.event : undefined);

/** What the watchers saw during one call. */
interface Seen {
  decided: number;
  executed: number;
  /** Every record handed to the audit log, in order (outcome and intent records alike). */
  readonly appended: Appended[];
  readonly metrics: GateMetrics;
}

interface Pieces {
  readonly config?: Readonly<Config>;
  readonly buckets?: RateStore;
  /** Replaces read_file's definition; it receives the real one with the executor already watched. */
  readonly tool?: (watched: ToolDefinition) => ToolDefinition;
  readonly policy?: PolicyEvaluator;
  readonly append?: (fields: Appended, real: AuditLog) => ReturnType<AuditLog['append']>;
}

/** GateDeps on the real app with the given pieces replaced and the rest watched. */
function depsWith(pieces: Pieces = {}): { deps: GateDeps; seen: Seen } {
  const seen: Seen = { decided: 0, executed: 0, appended: [], metrics: new GateMetrics() };
  const watchedTool: ToolDefinition = {
    ...realTool,
    execute: (call, env) => {
      seen.executed++;
      return realTool.execute(call, env);
    },
  };
  const tool = pieces.tool ? pieces.tool(watchedTool) : watchedTool;
  const tools: ToolRegistry = new Map([...base.tools, [TOOL, tool]]);
  const policy = pieces.policy ?? base.policy;
  const watchedPolicy: PolicyEvaluator = {
    revision: policy.revision,
    ready: policy.ready,
    decide: (input) => {
      seen.decided++;
      return policy.decide(input);
    },
    visibleTools: (input) => policy.visibleTools(input),
  };
  const realAudit = base.audit;
  const audit: AuditLog = {
    get writable() {
      return realAudit.writable;
    },
    get lastSeq() {
      return realAudit.lastSeq;
    },
    append: (fields) => {
      seen.appended.push(fields);
      return pieces.append ? pieces.append(fields, realAudit) : realAudit.append(fields);
    },
    close: () => realAudit.close(),
  };
  const deps: GateDeps = {
    ...base,
    config: pieces.config ?? base.config,
    buckets: pieces.buckets ?? base.buckets,
    tools,
    policy: watchedPolicy,
    audit,
    metrics: seen.metrics,
  };
  return { deps, seen };
}

function call(deps: GateDeps, args: unknown = ARGS): Promise<GateOutcome> {
  const context = { transport: 'stdio' as const, requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal };
  return runGate({ tool: TOOL, args, context }, deps);
}

const outcomesOf = (seen: Seen, o: GateOutcome) => seen.appended.filter((f) => requestIdOf(f) === o.requestId && eventOf(f) === undefined);
const writtenFor = (o: GateOutcome) => readAudit(sb.auditPath).filter((r) => r.request_id === o.requestId);

interface Stopped {
  readonly stage: StageName;
  readonly code: string;
  readonly reasons: readonly string[];
  /** How the failing stage counted itself: a verdict it returned (`deny`) or a throw the gate caught (`error`). */
  readonly counted: 'deny' | 'error';
}

/** The call stopped at `stage`: no later stage ran, the policy and the executor were untouched unless reached, one outcome record. */
function assertStopped(t: Test, o: GateOutcome, seen: Seen, want: Stopped): void {
  t.equal(o.denial?.code, want.code, 'the typed code');
  t.same(o.denial?.reasons, want.reasons, 'the typed reasons');
  t.equal(o.result, undefined, 'no result');
  const order: StageName[] = ['authenticate', 'rate_limit', 'validate', 'analyse', 'decide', 'execute'];
  const ran = order.slice(0, order.indexOf(want.stage) + 1);
  const counts: Record<string, number> = { 'record.pass': 1 };
  for (const s of ran) counts[`${s}.${s === want.stage ? want.counted : 'pass'}`] = 1;
  t.same(seen.metrics.snapshot(), Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b))), 'no stage after it ran');
  t.same(Object.keys(o.stageMs).sort(), [...ran, 'record'].sort(), 'stage timings stop at it too');
  const reachedDecide = order.indexOf(want.stage) >= order.indexOf('decide');
  t.equal(seen.decided, reachedDecide ? 1 : 0, reachedDecide ? 'the policy was asked once' : 'the policy was never asked');
  if (order.indexOf(want.stage) < order.indexOf('execute')) t.equal(seen.executed, 0, 'the executor was not called');
  t.ok(seen.executed === 0 || (seen.decided === 1 && o.decision?.allow === true), 'nothing ran without an allowing decision');
  const outcomes = outcomesOf(seen, o);
  t.equal(outcomes.length, 1, 'one outcome record attempted');
  const written = writtenFor(o).filter((r) => r.event === undefined);
  t.equal(written.length, 1, 'one outcome record written');
  t.match(written[0]?.outcome, { code: want.code, reasons: want.reasons, result_sha256: null });
  t.equal(o.auditSeq, written[0]?.seq, 'the answer names its record');
}

t.test('control: with every piece real, all seven stages run, the executor once, one record', async (t) => {
  const { deps, seen } = depsWith();
  const o = await call(deps);
  t.equal(o.status, 'ok', JSON.stringify(o.denial));
  t.same(Object.keys(o.stageMs).sort(), ['analyse', 'authenticate', 'decide', 'execute', 'rate_limit', 'record', 'validate']);
  t.equal(seen.decided, 1);
  t.equal(seen.executed, 1);
  t.equal(outcomesOf(seen, o).length, 1);
  t.equal(writtenFor(o).length, 1);
});

t.test('authenticate: a config whose principals cannot be read is internal_error gate.authenticate_failed', async (t) => {
  const config: Readonly<Config> = {
    ...base.config,
    get principals(): Config['principals'] {
      throw new Error('the principals could not be read');
    },
  };
  const { deps, seen } = depsWith({ config });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'authenticate', code: 'internal_error', reasons: ['gate.authenticate_failed'], counted: 'error' });
  t.match(writtenFor(o)[0], { principal: null, decision: null, facts: null }, 'the record names no principal, facts or decision');
});

t.test('authenticate: a logger that throws while the gate reports the stage failure costs neither the answer nor the record', async (t) => {
  const config: Readonly<Config> = {
    ...base.config,
    get principals(): Config['principals'] {
      throw new Error('the principals could not be read');
    },
  };
  const { deps, seen } = depsWith({ config });
  const throwing = Object.create(deps.logger, {
    error: {
      value: () => {
        throw new Error('the log sink is gone');
      },
    },
  }) as GateDeps['logger'];
  const o = await call({ ...deps, logger: throwing });
  assertStopped(t, o, seen, { stage: 'authenticate', code: 'internal_error', reasons: ['gate.authenticate_failed'], counted: 'error' });
});

t.test('rate_limit: a rate store whose take() throws is unavailable rate.store_unavailable (retryable)', async (t) => {
  let takes = 0;
  const buckets: RateStore = {
    kind: 'memory',
    take: async () => {
      takes++;
      throw new Error('the rate store is gone');
    },
    healthy: async () => false,
    close: async () => undefined,
  };
  const { deps, seen } = depsWith({ buckets });
  const o = await call(deps);
  t.equal(takes, 1, 'the store was asked');
  assertStopped(t, o, seen, { stage: 'rate_limit', code: 'unavailable', reasons: ['rate.store_unavailable'], counted: 'deny' });
  t.same(o.denial?.detail, { retry_after_s: 1 });
});

t.test('rate_limit: limits that cannot be read are internal_error gate.rate_limit_failed', async (t) => {
  const config: Readonly<Config> = {
    ...base.config,
    get limits(): Config['limits'] {
      throw new Error('the limits could not be read');
    },
  };
  const { deps, seen } = depsWith({ config });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'rate_limit', code: 'internal_error', reasons: ['gate.rate_limit_failed'], counted: 'error' });
});

t.test('validate: an input schema whose parse throws is internal_error gate.validate_failed', async (t) => {
  const input = z
    .object({ path: z.string() })
    .strict()
    .superRefine(() => {
      throw new Error('the schema itself failed');
    });
  const { deps, seen } = depsWith({ tool: (watched) => ({ ...watched, input }) });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'validate', code: 'internal_error', reasons: ['gate.validate_failed'], counted: 'error' });
  t.match(writtenFor(o)[0], { args: null, masked: ['args'] }, 'arguments that never validated are kept as a hash only');
});

t.test("analyse: an analyser that throws a plain Error is the family's rejection, analysis.failed", async (t) => {
  const { deps, seen } = depsWith({
    tool: (watched) => ({
      ...watched,
      analyse: async () => {
        throw new Error('the analyser has a bug');
      },
    }),
  });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'analyse', code: 'path_rejected', reasons: ['analysis.failed'], counted: 'deny' });
});

t.test('analyse: an analyser that rejects with no reason at all gets the same typed answer as one that throws', async (t) => {
  // `Promise.reject()` carries `undefined`: the stage's catch must not read `.message` from it.
  const { deps, seen } = depsWith({ tool: (watched) => ({ ...watched, analyse: () => Promise.reject() }) });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'analyse', code: 'path_rejected', reasons: ['analysis.failed'], counted: 'deny' });
});

function throwingPolicy(err: unknown): PolicyEvaluator {
  return {
    revision: base.policy.revision,
    ready: true,
    decide: () => {
      throw err;
    },
    visibleTools: () => [],
  };
}

t.test('decide: a policy that throws a plain Error is policy_error policy.evaluation_failed', async (t) => {
  const { deps, seen } = depsWith({ policy: throwingPolicy(new Error('the evaluator broke')) });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'decide', code: 'policy_error', reasons: ['policy.evaluation_failed'], counted: 'deny' });
  t.equal(o.decision, undefined, 'no decision is reported');
  t.equal(writtenFor(o)[0]?.decision, null, 'the record says the policy gave no decision');
});

t.test("decide: a policy that throws a PolicyError is policy_error with the error's reason", async (t) => {
  const { deps, seen } = depsWith({ policy: throwingPolicy(new PolicyError('policy.trap', 'the wasm trapped')) });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'decide', code: 'policy_error', reasons: ['policy.trap'], counted: 'deny' });
});

t.test('decide: an allowing decision whose obligations cannot be read is internal_error gate.decide_failed, and nothing runs', async (t) => {
  const allowWithoutObligations: Decision = {
    allow: true,
    reasons: [],
    get obligations(): Obligations {
      throw new Error('the obligations could not be read');
    },
  };
  const policy: PolicyEvaluator = { revision: base.policy.revision, ready: true, decide: () => allowWithoutObligations, visibleTools: () => [] };
  const { deps, seen } = depsWith({ policy });
  const o = await call(deps);
  assertStopped(t, o, seen, { stage: 'decide', code: 'internal_error', reasons: ['gate.decide_failed'], counted: 'error' });
  t.equal(o.decision, undefined, 'a decision the gate could not finish is not reported as one');
});

t.test('execute: an executor that throws a plain Error is tool_error tool.failed', async (t) => {
  const { deps, seen } = depsWith({
    tool: (watched) => ({
      ...watched,
      execute: async (c, env) => {
        await watched.execute(c, env);
        throw new Error('the executor has a bug');
      },
    }),
  });
  const o = await call(deps);
  t.equal(seen.executed, 1, 'the executor ran, after an allowing decision');
  t.equal(o.decision?.allow, true);
  assertStopped(t, o, seen, { stage: 'execute', code: 'tool_error', reasons: ['tool.failed'], counted: 'deny' });
});

t.test('execute: an executor that never settles is answered timeout deadline.exceeded at the deadline', async (t) => {
  const capMs = 300;
  const config: Readonly<Config> = { ...base.config, execution: { ...base.config.execution, timeout_ms: capMs } };
  let started = 0;
  const { deps, seen } = depsWith({
    config,
    tool: (watched) => ({
      ...watched,
      execute: () => {
        started++;
        return new Promise(() => undefined);
      },
    }),
  });
  const t0 = performance.now();
  const o = await call(deps);
  const ms = performance.now() - t0;
  t.ok(ms >= capMs - 5 && ms < capMs + RECORD_BOUND_MS, `answered after ${Math.round(ms)} ms (cap ${capMs})`);
  t.equal(started, 1);
  t.equal(o.denial?.code, 'timeout');
  t.same(o.denial?.reasons, ['deadline.exceeded']);
  t.equal(seen.decided, 1);
  // The executor never returned, so execute never counted itself: only the record stage did.
  t.same(seen.metrics.snapshot(), { 'analyse.pass': 1, 'authenticate.pass': 1, 'decide.pass': 1, 'rate_limit.pass': 1, 'record.pass': 1, 'validate.pass': 1 });
  t.equal(outcomesOf(seen, o).length, 1, 'one outcome record attempted');
  t.equal(writtenFor(o).length, 1, 'one outcome record written');
});

t.test('execute: a side-effect predicate that throws is internal_error gate.execute_failed, and the executor never starts', async (t) => {
  const { deps, seen } = depsWith({
    tool: (watched) => ({
      ...watched,
      sideEffects: () => {
        throw new Error('the side-effect predicate has a bug');
      },
    }),
  });
  const o = await call(deps);
  t.equal(seen.executed, 0, 'the executor was not called');
  assertStopped(t, o, seen, { stage: 'execute', code: 'internal_error', reasons: ['gate.execute_failed'], counted: 'error' });
});

t.test('execute: an intent record that cannot be appended is audit_unavailable audit.intent_failed, and the side effect never runs', async (t) => {
  const { deps, seen } = depsWith({
    tool: (watched) => ({ ...watched, sideEffects: () => true }),
    append: (fields, real) => (eventOf(fields) === 'intent' ? Promise.reject(new Error('disk full')) : real.append(fields)),
  });
  const o = await call(deps);
  t.equal(seen.executed, 0, 'the executor was not called');
  t.equal(seen.appended.filter((f) => requestIdOf(f) === o.requestId && eventOf(f) === 'intent').length, 1, 'the intent was attempted first');
  assertStopped(t, o, seen, { stage: 'execute', code: 'audit_unavailable', reasons: ['audit.intent_failed'], counted: 'deny' });
});

t.test('execute: a call that carries no decision is refused before any tool code, gate.not_authorised', async (t) => {
  const { deps, seen } = depsWith();
  const context = { transport: 'stdio' as const, requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal };
  // A value shaped like an Authorised call, built without decide: the type can be forged, the runtime registry cannot.
  const forged = {
    tool: TOOL,
    args: ARGS,
    context,
    principal: { id: 'mallory', roles: ['admin'], auth: 'stdio' as const, tier: 'local' },
    argsBytes: 20,
    facts: {},
    pinned: {},
    decision: { allow: true as const, reasons: [], obligations: {} },
    caps: { timeoutMs: 1000, maxBytes: 1000, redactColumns: [] },
  } as unknown as Authorised;
  const v = await execute(forged, deps);
  t.equal(v.ok, false);
  t.match(v, { denial: { code: 'internal_error', reasons: ['gate.not_authorised'] } });
  t.equal(seen.executed, 0, 'the executor was not called');
  t.equal(seen.appended.length, 0, 'no intent was written for it either');
});

t.test('record: an audit log whose append throws withholds the result, audit_unavailable audit.append_failed', async (t) => {
  const { deps, seen } = depsWith({ append: () => Promise.reject(new Error('EIO: the disk went away')) });
  const o = await call(deps);
  t.equal(seen.executed, 1, 'the tool had run, after an allowing decision');
  t.equal(o.denial?.code, 'audit_unavailable');
  t.same(o.denial?.reasons, ['audit.append_failed']);
  t.equal(o.result, undefined, 'the result is withheld without its record');
  t.equal(o.auditSeq, undefined);
  t.equal(outcomesOf(seen, o).length, 1, 'the one outcome record was attempted once');
  t.equal(writtenFor(o).length, 0, 'nothing reached the log');
  t.equal(seen.metrics.counts.get('record.error'), 1);
  t.equal(o.stageMs.record, undefined, 'the record stage did not complete');
});

t.test('record: an audit log whose append never settles is answered within the bound, audit_unavailable audit.append_timeout', async (t) => {
  const { deps, seen } = depsWith({ append: () => new Promise(() => undefined) });
  const t0 = performance.now();
  const o = await call(deps);
  const ms = performance.now() - t0;
  t.ok(ms >= RECORD_BOUND_MS - 5 && ms < RECORD_BOUND_MS + 1500, `answered after ${Math.round(ms)} ms (bound ${RECORD_BOUND_MS})`);
  t.equal(seen.executed, 1);
  t.equal(o.denial?.code, 'audit_unavailable');
  t.same(o.denial?.reasons, ['audit.append_timeout']);
  t.equal(o.result, undefined, 'the result is withheld without its record');
  t.equal(outcomesOf(seen, o).length, 1, 'the one outcome record was attempted once');
  t.equal(writtenFor(o).length, 0, 'nothing reached the log');
});
