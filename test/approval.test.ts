/**
 * Human approval bound to the exact call, through the real gate (runGate with the compiled policy
 * wasm, the file audit log, call_api against a real HTTP upstream on loopback), with the client
 * channel of each protocol era built as the transports build it:
 *
 * - 2026-07-28: input_required with a sealed requestState, then the retry (approve, decline,
 *   cancel, tampered state, changed arguments, another principal, expired, replayed, no capability);
 * - 2025-11-25: the inline form elicitation (`ask`): the approval record is durable before the
 *   human is asked, the wait does not eat the call's deadline, decline and timeout deny;
 * - no way to ask: approval_required, never a silent run;
 * - a tool's own needsInput: its state sealed, handed back as resumedState only to the same call.
 *
 * The upstream counts every request: nothing reaches it before an approval.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { z } from 'zod';
import { makeSandbox, readAudit, ROOT, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { runGate } from '../src/gate/run.js';
import { argsDigest } from '../src/audit/record.js';
import { verifyFile } from '../src/audit/verify.js';
import { collectFileReport, renderHtml } from '../src/audit/report.js';
import { parseAuditFields } from '../src/audit/record-type.js';
import { Sealer } from '../src/core/seal.js';
import { RequestStateCodec } from '../src/gate/request-state.js';
import type { GateDeps } from '../src/gate/deps.js';
import type { ClientChannel, ClientInputRequest, GateOutcome, ToolResult, TransportKind } from '../src/core/call.js';
import type { ToolDefinition } from '../src/tools/types.js';

const SHIPPED = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: Record<string, any> };

/** A tool that asks its client a question (2026-07-28 needsInput) and answers once it has the answer. */
const askBack: ToolDefinition<{ question: string }> = {
  name: 'ask_back',
  family: 'javascript',
  description: 'test tool: asks the client, then answers',
  annotations: { title: 'ask back', readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  input: z.object({ question: z.string().max(200) }).strict(),
  outputSchema: { type: 'object' },
  analyse: async () => ({ facts: {}, pinned: {} }),
  execute: async (call): Promise<ToolResult> => {
    const client = call.context.client;
    const resumed = client?.resumedState;
    if (resumed?.round === 1) {
      return { text: 'done', structured: { resumed, answer: client?.inputResponses?.name ?? null } };
    }
    return {
      text: '',
      structured: {},
      needsInput: {
        inputRequests: { name: { method: 'elicitation/create', params: { message: call.args.question, requestedSchema: { type: 'object', properties: {} } } } },
        state: { round: 1, kept: 'server-side note' },
      },
    };
  },
};

interface World {
  readonly sb: Sandbox;
  readonly gate: InProcessGate;
  readonly up: TestUpstream;
  readonly deps: GateDeps;
  call(tool: string, args: unknown, client?: ClientChannel, o?: { transport?: TransportKind; deps?: GateDeps; signal?: AbortSignal }): Promise<GateOutcome>;
  records(requestId: string): Record<string, any>[];
}

async function world(t: Test, o: { ttlMs?: number; timeoutMs?: number; slowCallMs?: number } = {}): Promise<World> {
  const up = await startUpstream();
  const sb = makeSandbox({
    apis: { svc: { base_url: `${up.origin}/v1/`, internal: true, retries: 0, methods: ['GET', 'POST', 'PATCH'], follow_redirects: 1 } },
    policy: { data: 'policy-data.json' },
    principals: { stdio: { id: 'alice', roles: ['developer'], tier: 'local' }, loopback: { id: 'bob', roles: ['developer'], tier: 'local' } },
    ...(o.timeoutMs ? { execution: { timeout_ms: o.timeoutMs } } : {}),
    ...(o.slowCallMs ? { observability: { log_level: 'error', slow_call_ms: o.slowCallMs } } : {}),
  });
  // The shipped data and its approval rule (developer POST/PATCH), with the test upstream granted.
  const data = structuredClone(SHIPPED);
  data.bulwark.api.upstreams.developer = ['svc'];
  data.bulwark.roles.developer.tools.push('ask_back');
  if (o.ttlMs) data.bulwark.api.approval.developer.ttl_ms = o.ttlMs;
  fs.writeFileSync(path.join(sb.dir, 'policy-data.json'), JSON.stringify(data));
  const gate = await inProcessGate(sb.configPath);
  t.teardown(async () => {
    await gate.close();
    await up.close();
    sb.cleanup();
  });
  const deps: GateDeps = { ...gate.app.deps, tools: new Map([...gate.app.deps.tools, ['ask_back', askBack as ToolDefinition]]) };
  return {
    sb,
    gate,
    up,
    deps,
    call: (tool, args, client, c = {}) =>
      runGate(
        {
          tool,
          args,
          context: {
            transport: c.transport ?? 'stdio',
            ...(c.transport === 'http' ? { clientIp: '127.0.0.1' } : {}),
            requestId: crypto.randomUUID(),
            receivedAt: new Date(),
            signal: c.signal ?? new AbortController().signal,
            ...(client ? { client } : {}),
          },
        },
        c.deps ?? deps,
      ),
    records: (requestId) => readAudit(sb.auditPath).filter((r) => r.request_id === requestId),
  };
}

const POST = { api: 'svc', method: 'POST', path: '/echo', body: { amount: 10, to: 'acct-7' } };

function modern(extra: Partial<ClientChannel> = {}): ClientChannel {
  return { era: '2026-07-28', capabilities: { elicitation: { form: true } }, ...extra };
}

const approve = (by = 'Dana Ops') => ({ approval: { action: 'accept', content: { approve: true, approver: by } } });

/** The one outcome record of a call (and every other record it left). */
function outcomeOf(w: World, o: GateOutcome): Record<string, any> {
  const recs = w.records(o.requestId).filter((r) => r.event === undefined);
  if (recs.length !== 1) throw new Error(`${o.requestId}: ${recs.length} outcome records`);
  return recs[0] as Record<string, any>;
}

t.test('2026-07-28: input_required with a sealed state, then the approved retry runs once', async (t) => {
  const w = await world(t);
  const first = await w.call('call_api', POST, modern());
  t.equal(first.status, 'input_required');
  t.notOk(first.denial);
  t.notOk(first.result, 'no result, nothing ran');
  const ir = first.inputRequired;
  t.ok(ir, 'the client is told what to answer');
  const ask = ir?.inputRequests.approval as ClientInputRequest;
  t.equal(ask.method, 'elicitation/create');
  t.match(ask.params, {
    mode: 'form',
    message: /^Approve call_api for alice\? POST \/echo on svc is not idempotent and changes state upstream: a human must approve it\./,
    requestedSchema: { type: 'object', properties: { approve: { type: 'boolean' }, approver: { type: 'string' } }, required: ['approve'] },
  });
  t.match(String(ask.params.message), /"amount":10/, 'the human sees the arguments');
  t.match(String(ask.params.message), new RegExp(argsDigest(POST).sha256), 'and their hash');
  t.match(ir?.requestState, /^[A-Za-z0-9_-]{60,}$/);
  t.equal(w.up.count(), 0, 'the upstream got nothing');
  const rec1 = outcomeOf(w, first);
  t.match(rec1.outcome, { status: 'input_required', code: null });
  t.same(rec1.approval, {
    status: 'requested',
    via: 'input_required',
    approvers: ['admin'],
    reason: 'POST /echo on svc is not idempotent and changes state upstream: a human must approve it.',
    ttl_ms: 300000,
    args_sha256: rec1.args_sha256,
  });
  t.equal(rec1.decision.obligations.approval.ttl_ms, 300000, 'the decision records the obligation');
  t.equal(w.records(first.requestId).length, 1, 'no intent record: nothing was about to run');

  const retry = await w.call('call_api', POST, modern({ requestState: ir?.requestState, inputResponses: approve() }));
  t.equal(retry.status, 'ok', JSON.stringify(retry.denial));
  t.equal(w.up.count('/v1/echo'), 1, 'the approved POST reached the upstream once');
  t.equal(JSON.parse(w.up.seen[0]?.body ?? '{}').amount, 10);
  const recs = w.records(retry.requestId);
  t.same(
    recs.map((r) => r.event ?? 'outcome'),
    ['intent', 'outcome'],
    'intent before the side effect, then the outcome',
  );
  const rec2 = outcomeOf(w, retry);
  t.match(rec2.approval, {
    status: 'granted',
    via: 'input_required',
    by: 'Dana Ops',
    action: 'accept',
    requested_in: first.requestId,
    args_sha256: rec1.args_sha256,
  });
  t.equal(rec2.args_sha256, argsDigest(POST).sha256, 'bound to the arguments hash the record keeps');

  const replay = await w.call('call_api', POST, modern({ requestState: ir?.requestState, inputResponses: approve() }));
  t.match(replay.denial, { code: 'request_state_invalid', reasons: ['request_state.replayed'] }, 'an approval is good for one run');
  t.equal(w.up.count(), 1, 'the replay reached nothing');
  t.equal(outcomeOf(w, replay).approval.status, 'invalid');

  const get = await w.call('call_api', { api: 'svc', path: '/json' }, modern());
  t.equal(get.status, 'ok', 'GET needs no approval');
  t.notOk(outcomeOf(w, get).approval);
  t.ok((await verifyFile(w.sb.auditPath)).ok, 'the log verifies');
});

t.test('2026-07-28: declined, cancelled, not approved, or no answer', async (t) => {
  const w = await world(t);
  const answers: [string, unknown, string][] = [
    ['decline', { action: 'decline' }, 'approval.declined'],
    ['cancel', { action: 'cancel' }, 'approval.cancelled'],
    ['accept without approve', { action: 'accept', content: { approve: false, approver: 'Eve' } }, 'approval.not_approved'],
    ['accept with approve as a string', { action: 'accept', content: { approve: 'true' } }, 'approval.not_approved'],
  ];
  for (const [what, answer, reason] of answers) {
    const first = await w.call('call_api', POST, modern());
    const retry = await w.call('call_api', POST, modern({ requestState: first.inputRequired?.requestState, inputResponses: { approval: answer } }));
    t.match(retry.denial, { code: 'approval_declined', reasons: [reason] }, `${what}: denied`);
    const rec = outcomeOf(w, retry);
    t.match(rec.approval, { status: 'declined', requested_in: first.requestId }, `${what}: recorded declined`);
    t.match(rec.outcome, { status: 'denied', code: 'approval_declined' });
  }
  t.equal(outcomeOf(w, await w.call('call_api', POST, modern())).approval.status, 'requested');
  // A retry that brings the state but no usable answer is asked again (a new state), never run.
  const first = await w.call('call_api', POST, modern());
  const noAnswer = await w.call('call_api', POST, modern({ requestState: first.inputRequired?.requestState, inputResponses: { approval: { yes: true } } }));
  t.equal(noAnswer.status, 'input_required', 'asked again');
  t.not(noAnswer.inputRequired?.requestState, first.inputRequired?.requestState, 'with a new state');
  // Answers without the sealed state are not approvals.
  const forged = await w.call('call_api', POST, modern({ inputResponses: approve() }));
  t.equal(forged.status, 'input_required', 'inputResponses alone approve nothing');
  t.equal(w.up.count(), 0, 'nothing reached the upstream');
});

t.test('2026-07-28: tampered state, changed arguments, another principal, another tool', async (t) => {
  const w = await world(t);
  const stateFor = async (args: unknown) => (await w.call('call_api', args, modern())).inputRequired?.requestState as string;

  const token = await stateFor(POST);
  const raw = Buffer.from(token, 'base64url');
  raw[raw.length - 5] = (raw[raw.length - 5] as number) ^ 0x40;
  const tampered = await w.call('call_api', POST, modern({ requestState: raw.toString('base64url'), inputResponses: approve() }));
  t.match(tampered.denial, { code: 'request_state_invalid', reasons: ['request_state.tampered'] }, 'a flipped ciphertext bit');
  const trec = outcomeOf(w, tampered);
  t.match(trec.outcome, { status: 'denied', code: 'request_state_invalid', reasons: ['request_state.tampered'] }, 'refused and audited');
  t.equal(trec.approval, undefined, 'nothing in a tampered state is believed, not even that it was an approval');
  t.ok(w.up.count() === 0);

  const changed = { ...POST, body: { amount: 10000, to: 'acct-7' } };
  const c = await w.call('call_api', changed, modern({ requestState: await stateFor(POST), inputResponses: approve() }));
  t.match(c.denial, { code: 'request_state_invalid', reasons: ['request_state.args_mismatch'] }, 'approved for 10, asked to send 10000');
  t.match(outcomeOf(w, c).approval, { status: 'invalid', args_sha256: argsDigest(changed).sha256 });

  const otherPath = await w.call('call_api', { ...POST, path: '/echo/x' }, modern({ requestState: await stateFor(POST), inputResponses: approve() }));
  t.match(otherPath.denial, { reasons: ['request_state.args_mismatch'] }, 'another path');

  const reordered = { body: { to: 'acct-7', amount: 10 }, path: '/echo', method: 'POST', api: 'svc' };
  const same = await w.call('call_api', reordered, modern({ requestState: await stateFor(POST), inputResponses: approve() }));
  t.equal(same.status, 'ok', 'the same arguments in another key order are the same call (RFC 8785)');
  t.equal(w.up.count(), 1);

  const bob = await w.call('call_api', POST, modern({ requestState: await stateFor(POST), inputResponses: approve() }), { transport: 'http' });
  t.match(bob.denial, { code: 'request_state_invalid', reasons: ['request_state.principal_mismatch'] }, "alice's approval presented by bob");
  const bobRec = outcomeOf(w, bob);
  t.equal(bobRec.principal.id, 'bob');
  t.equal(bobRec.approval.status, 'invalid');

  const js = await w.call('ask_back', { question: 'x' }, modern({ requestState: await stateFor(POST), inputResponses: approve() }));
  t.match(js.denial, { code: 'request_state_invalid', reasons: ['request_state.tool_mismatch'] }, 'a call_api approval presented to another tool');
  t.equal(w.up.count(), 1, 'none of these reached the upstream');
});

t.test('2026-07-28: an expired approval is refused and recorded expired; a replica without the key refuses', async (t) => {
  const w = await world(t, { ttlMs: 60_000 });
  let now = Date.now();
  const clocked = new RequestStateCodec(new Sealer(crypto.randomBytes(32)), { now: () => now });
  const deps = { ...w.deps, requestState: clocked };
  const first = await w.call('call_api', POST, modern(), { deps });
  t.equal(first.status, 'input_required');
  now += 60_000;
  const late = await w.call('call_api', POST, modern({ requestState: first.inputRequired?.requestState, inputResponses: approve() }), { deps });
  t.match(late.denial, { code: 'request_state_invalid', reasons: ['request_state.expired'] }, 'after ttl_ms the approval has lapsed');
  t.match(outcomeOf(w, late).approval, { status: 'expired', ttl_ms: 60_000, requested_in: first.requestId });

  // Another process (the gate's own random key) cannot open it: safe, not trusted.
  const elsewhere = await w.call(
    'call_api',
    POST,
    modern({ requestState: (await w.call('call_api', POST, modern(), { deps })).inputRequired?.requestState, inputResponses: approve() }),
  );
  t.match(elsewhere.denial, { reasons: ['request_state.tampered'] });
  t.equal(w.up.count(), 0);
});

t.test('2026-07-28 without elicitation, or no channel at all: approval_required, never a silent run', async (t) => {
  const w = await world(t);
  const noCap = await w.call('call_api', POST, modern({ capabilities: {} }));
  t.match(noCap.denial, { code: 'approval_required', reasons: ['approval.unsupported'] });
  t.match(noCap.denial?.message, /needs a human's approval .* and this client cannot be asked for it/);
  t.match(outcomeOf(w, noCap).approval, { status: 'unsupported', via: 'none' });
  const urlOnly = await w.call('call_api', POST, modern({ capabilities: { elicitation: { url: true } } }));
  t.match(urlOnly.denial, { code: 'approval_required' }, 'URL-mode elicitation only: no form to approve in');
  const none = await w.call('call_api', POST);
  t.match(none.denial, { code: 'approval_required', reasons: ['approval.unsupported'] }, 'a transport that set no channel');
  const oldNoAsk = await w.call('call_api', POST, { era: '2025-11-25', capabilities: { elicitation: { form: true } } });
  t.match(oldNoAsk.denial, { code: 'approval_required' }, '2025-11-25 declared elicitation but the answer cannot carry an ask (JSON only)');
  const oldNoCap = await w.call('call_api', POST, { era: '2025-11-25', capabilities: {}, ask: async () => ({ action: 'accept', content: { approve: true } }) });
  t.match(oldNoCap.denial, { code: 'approval_required' }, 'an ask to a client that did not declare elicitation is not sent');
  t.equal(w.up.count(), 0, 'nothing reached the upstream');
  for (const o of [noCap, urlOnly, none, oldNoAsk, oldNoCap]) t.equal(w.records(o.requestId).length, 1, 'one record each');
});

t.test('2025-11-25: the approval record is durable before the human is asked; approve runs, decline does not', async (t) => {
  const w = await world(t);
  const asked: { request: ClientInputRequest; timeoutMs: number; recordsAtAsk: Record<string, any>[]; upstreamAtAsk: number }[] = [];
  const ask =
    (answer: Record<string, unknown>): NonNullable<ClientChannel['ask']> =>
    async (request, { timeoutMs }) => {
      asked.push({ request, timeoutMs, recordsAtAsk: readAudit(w.sb.auditPath), upstreamAtAsk: w.up.count() });
      return answer;
    };
  const channel = (answer: Record<string, unknown>): ClientChannel => ({ era: '2025-11-25', capabilities: { elicitation: { form: true } }, ask: ask(answer) });

  const ok = await w.call('call_api', POST, channel({ action: 'accept', content: { approve: true, approver: 'Sam' } }));
  t.equal(ok.status, 'ok', JSON.stringify(ok.denial));
  t.equal(asked.length, 1, 'asked once');
  const a = asked[0]!;
  t.equal(a.request.method, 'elicitation/create');
  t.match(a.request.params, { mode: 'form', requestedSchema: { required: ['approve'] } });
  t.equal(a.timeoutMs, 300000, "the obligation's ttl_ms is the ask's time limit");
  const atAsk = a.recordsAtAsk.filter((r) => r.request_id === ok.requestId);
  t.same(
    atAsk.map((r) => r.event),
    ['approval'],
    'when the human was asked, the approval record was already in the log',
  );
  t.equal(a.upstreamAtAsk, 0, 'and nothing had reached the upstream');
  t.match(atAsk[0], {
    event: 'approval',
    principal: { id: 'alice' },
    tool: 'call_api',
    decision: { allow: true },
    approval: { status: 'requested', via: 'elicitation' },
  });
  const recs = w.records(ok.requestId);
  t.same(
    recs.map((r) => r.event ?? 'outcome'),
    ['approval', 'intent', 'outcome'],
    'approval request, intent, outcome',
  );
  t.match(outcomeOf(w, ok).approval, { status: 'granted', via: 'elicitation', by: 'Sam', request_seq: recs[0]?.seq, args_sha256: argsDigest(POST).sha256 });
  t.equal(w.up.count('/v1/echo'), 1);

  const no = await w.call('call_api', POST, channel({ action: 'decline' }));
  t.match(no.denial, { code: 'approval_declined', reasons: ['approval.declined'] });
  t.same(
    w.records(no.requestId).map((r) => r.event ?? 'outcome'),
    ['approval', 'outcome'],
    'a declined call leaves its request and its outcome, no intent',
  );
  t.match(outcomeOf(w, no).approval, { status: 'declined', action: 'decline' });
  const garbage = await w.call('call_api', POST, channel({ nonsense: true }));
  t.match(garbage.denial, { code: 'approval_required', reasons: ['approval.answer_malformed'] });
  const failing = await w.call('call_api', POST, {
    era: '2025-11-25',
    capabilities: { elicitation: { form: true } },
    ask: async () => {
      throw new Error('client went away');
    },
  });
  t.match(failing.denial, { code: 'approval_required', reasons: ['approval.ask_failed'] });
  t.equal(outcomeOf(w, failing).approval.status, 'failed');
  t.equal(w.up.count(), 1, 'only the approved call reached the upstream');
  t.ok((await verifyFile(w.sb.auditPath)).ok, 'the log with approval records verifies');
});

t.test("2025-11-25: the human's wait does not eat the call's deadline; an unanswered ask expires", async (t) => {
  // Scaled so that the call's own work (two fsynced records and an upstream round trip) fits its
  // cap with room on a loaded machine, while the human's wait alone is longer than the cap.
  const w = await world(t, { ttlMs: 3000, timeoutMs: 2000, slowCallMs: 1800 });
  const slowYes: ClientChannel = {
    era: '2025-11-25',
    capabilities: { elicitation: { form: true } },
    ask: async () => {
      // Longer than the whole 2000 ms deadline: the deadline's clock is stopped meanwhile.
      await new Promise((r) => setTimeout(r, 2400));
      return { action: 'accept', content: { approve: true } };
    },
  };
  const ok = await w.call('call_api', POST, slowYes);
  t.equal(ok.status, 'ok', `approved after 2400 ms, then ran within its 2000 ms cap (${JSON.stringify(ok.denial)})`);
  t.equal(outcomeOf(w, ok).outcome.caps.timeout_ms, 2000);
  const slow = (await w.deps.prom?.slowCalls.get())?.values.reduce((n, v) => n + v.value, 0);
  t.equal(slow, 0, 'nor does it make the call a slow one (slow_call_ms 1800)');
  t.equal(w.up.count(), 1);

  const never: ClientChannel = {
    era: '2025-11-25',
    capabilities: { elicitation: { form: true } },
    // As the SDK does: reject with McpError(RequestTimeout) when timeoutMs passes.
    ask: (_req, { timeoutMs }) =>
      new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error('Request timed out'), { code: -32001 })), timeoutMs)),
  };
  const late = await w.call('call_api', POST, never);
  t.match(late.denial, { code: 'approval_required', reasons: ['approval.timeout'] });
  t.match(outcomeOf(w, late).approval, { status: 'expired', ttl_ms: 3000 });

  const ac = new AbortController();
  const cancelled = w.call(
    'call_api',
    POST,
    {
      ...never,
      // The client cancels while the human is being asked (not before the ask, which a loaded
      // machine could reach later than a fixed delay).
      ask: (_r, { signal }) =>
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => reject(new Error('aborted')));
          setTimeout(() => ac.abort(), 20);
        }),
    },
    { signal: ac.signal },
  );
  const c = await cancelled;
  t.match(c.denial, { code: 'cancelled', reasons: ['approval.cancelled_call'] }, "the client's cancel ends the wait");
  t.equal(w.up.count(), 1, 'neither reached the upstream');
});

t.test("a tool's needsInput: state sealed, handed back only to the same call as resumedState", async (t) => {
  const w = await world(t);
  const first = await w.call('ask_back', { question: 'Your name?' }, modern());
  t.equal(first.status, 'input_required');
  t.same(Object.keys(first.inputRequired?.inputRequests ?? {}), ['name']);
  const state = first.inputRequired?.requestState as string;
  t.notMatch(Buffer.from(state, 'base64url').toString('latin1'), /server-side note/, 'the tool state is not readable by the client');
  t.match(outcomeOf(w, first).outcome, { status: 'input_required', result_sha256: null });

  const retry = await w.call(
    'ask_back',
    { question: 'Your name?' },
    modern({ requestState: state, inputResponses: { name: { action: 'accept', content: { n: 'Kim' } } } }),
  );
  t.equal(retry.status, 'ok');
  t.same(retry.result?.structured, { resumed: { round: 1, kept: 'server-side note' }, answer: { action: 'accept', content: { n: 'Kim' } } });

  const changed = await w.call(
    'ask_back',
    { question: 'Your age?' },
    modern({ requestState: (await w.call('ask_back', { question: 'Your name?' }, modern())).inputRequired?.requestState }),
  );
  t.match(changed.denial, { reasons: ['request_state.args_mismatch'] }, 'another question cannot resume this state');
  const oldEra = await w.call('ask_back', { question: 'Your name?' }, { era: '2025-11-25', capabilities: {} });
  t.match(oldEra.denial, { code: 'tool_error', reasons: ['tool.input_required_unsupported'] }, 'a 2025-11-25 client cannot be answered input_required');
});

t.test('the record: typed when read back, and shown in the HTML report', async (t) => {
  const w = await world(t);
  const hostile = '<img src=x onerror=alert(1)> Mallory';
  const yes: ClientChannel = {
    era: '2025-11-25',
    capabilities: { elicitation: { form: true } },
    ask: async () => ({ action: 'accept', content: { approve: true, approver: hostile } }),
  };
  const ok = await w.call('call_api', POST, yes);
  t.equal(ok.status, 'ok');
  const first = await w.call('call_api', { ...POST, method: 'PATCH' }, modern());
  const declined = await w.call(
    'call_api',
    { ...POST, method: 'PATCH' },
    modern({ requestState: first.inputRequired?.requestState, inputResponses: { approval: { action: 'decline' } } }),
  );
  t.equal(declined.status, 'denied');
  const longName = 'x'.repeat(500);
  const long = await w.call('call_api', POST, { ...yes, ask: async () => ({ action: 'accept', content: { approve: true, approver: longName } }) });
  t.equal(outcomeOf(w, long).approval.by, 'x'.repeat(200), "the client's text is capped at 200 characters");

  const report = await collectFileReport(w.sb.auditPath);
  t.same(
    report.approvals?.map((a) => [a.tool, a.status, a.by]),
    [
      ['call_api', 'granted', hostile],
      ['call_api', 'requested', ''],
      ['call_api', 'declined', ''],
      ['call_api', 'granted', 'x'.repeat(200)],
    ],
    'one row per outcome that involved an approval',
  );
  const html = renderHtml(report);
  t.match(html, /<h2>Approvals \(4\)<\/h2>/);
  t.match(html, /<td class="mono">granted<\/td><td class="mono">&lt;img src=x onerror=alert\(1\)&gt; Mallory<\/td>/, 'shown, escaped');
  t.notMatch(html, /<img src=x/, 'never as markup');
  t.match(html, new RegExp(argsDigest(POST).sha256), 'with the arguments hash it is bound to');

  // The parser refuses a wrong type in the new field, in an outcome and in an approval request record.
  const rec = outcomeOf(w, ok);
  const bad = parseAuditFields({ ...rec, approval: { ...rec.approval, status: 7 } });
  t.match(bad, { ok: false, error: { kind: 'field', field: 'approval.status' } });
  const badSha = parseAuditFields({ ...rec, approval: { ...rec.approval, args_sha256: 'abc' } });
  t.match(badSha, { ok: false, error: { field: 'approval.args_sha256', expected: '64 hex digits' } });
  const request = w.records(ok.requestId).find((r) => r.event === 'approval');
  t.ok(parseAuditFields(request).ok, 'the approval request record reads');
  t.match(parseAuditFields({ ...request, approval: 'yes' }), { ok: false, error: { field: 'approval', expected: 'an object' } });
  t.ok((await verifyFile(w.sb.auditPath)).ok);
});

t.test('an approved POST that the upstream redirects (307) is not carried to a target nobody approved', async (t) => {
  const w = await world(t);
  w.up.route('/v1/moved', (_req, res) => {
    res.writeHead(307, { location: '/v1/echo', 'content-length': 0 });
    res.end();
  });
  w.up.route('/v1/see-other', (_req, res) => {
    res.writeHead(303, { location: '/v1/json', 'content-length': 0 });
    res.end();
  });
  const yes: ClientChannel = {
    era: '2025-11-25',
    capabilities: { elicitation: { form: true } },
    ask: async () => ({ action: 'accept', content: { approve: true } }),
  };
  const moved = await w.call('call_api', { ...POST, path: '/moved' }, yes);
  t.match(moved.denial, { code: 'approval_required', reasons: ['url.redirect_rejected', 'approval.redirect'] });
  t.same(
    w.up.seen.map((s) => `${s.method} ${s.url}`),
    ['POST /v1/moved'],
    'the approved request was sent; the redirected POST was not',
  );
  t.match(outcomeOf(w, moved).facts.url.hops, [{ redirect: 1, method: 'POST', path: '/echo', allow: true, approval_required: true }]);
  // A 303 turns the hop into a GET, which needs no approval: followed.
  const seeOther = await w.call('call_api', { ...POST, path: '/see-other' }, yes);
  t.equal(seeOther.status, 'ok', JSON.stringify(seeOther.denial));
  t.equal(w.up.seen.at(-1)?.method, 'GET');
});
