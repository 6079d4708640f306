import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { generateKey, loadSigner } from '../src/audit/note.js';
import { auditFields, withoutArgs, type RecordInput } from '../src/audit/record.js';
import { parseAuditFields, parseAuditLine, parseAuditRecord, type AuditRecord, type IntentFields, type OutcomeRecord } from '../src/audit/record-type.js';
import { NO_REFUSED_APPENDS, RefusedAppends } from '../src/audit/refused-appends.js';
import { sealRecord } from '../src/audit/seal-record.js';
import { collectFileReport } from '../src/audit/report.js';
import { GENESIS_PREV } from '../src/audit/chain.js';
import { deny } from '../src/core/denial.js';
import { makeSandbox } from './helpers/fixtures.js';

// Issue 16 (3): one versioned record type, and a parser every reader goes through.

function input(extra: Partial<RecordInput> = {}): RecordInput {
  return {
    context: { transport: 'http', clientIp: '127.0.0.1', requestId: 'req-1', receivedAt: new Date(), signal: new AbortController().signal },
    tool: 'read_file',
    toolKnown: true,
    principal: { id: 'alice', roles: ['reader'], auth: 'api_key', tier: 'default' },
    args: { path: 'notes/a.txt' },
    argsValidated: true,
    facts: { path: { canonical: '/data/notes/a.txt', root: '/data', kind: 'file', size: 5, nlink: 1, extension: '.txt' } },
    decision: { allow: true, reasons: ['policy.reader'], obligations: {} },
    policyRevision: 'rev-1',
    status: 'ok',
    result: { text: 'x', structured: { content: 'hello' } },
    durationMs: 1.23456,
    execution: { metrics: { cpu_ms: 0.5, heap_bytes: 1024 }, caps: { timeoutMs: 1000 } },
    ...extra,
  };
}

const intent: IntentFields = {
  event: 'intent',
  request_id: 'req-2',
  transport: 'http',
  client_ip: null,
  principal: { id: 'bob', roles: ['writer'], auth: 'oauth' },
  tool: 'call_api',
  args: { method: 'POST', url: 'https://api.example/x' },
  args_sha256: 'a'.repeat(64),
  args_bytes: 42,
  masked: [],
  facts: null,
  decision: { allow: true, reasons: [], policy_revision: 'rev-1' },
  policy_revision: 'rev-1',
};

function outcomeAt(recs: readonly AuditRecord[], i: number): OutcomeRecord {
  const r = recs[i];
  if (!r || r.event !== undefined) throw new Error(`record ${i} is not a call's outcome`);
  return r;
}

function lines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

t.test('every kind of record the writers produce reads back from disk as its kind', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'log', 'audit.jsonl');
  const key = generateKey('record-type-test');
  const checkpoint = { signer: loadSigner(key.encodedPrivate), origin: 'bulwark/test', everyRecords: 1000, everyMs: 60_000 };
  let log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5, genesis: true, checkpoint, policyRevision: 'rev-1' });
  const denied = auditFields(input({ status: 'denied', denial: deny('policy_denied', 'no', ['policy.not_granted']), result: undefined }));
  await log.append(auditFields(input()));
  const i = await log.append(intent);
  await log.append(auditFields(input({ intentSeq: i.seq, args: { s: '\ud800' }, argsValidated: false })));
  await log.append(denied);
  await log.append(withoutArgs(denied, 'lone_surrogate'));
  await log.close();
  // A torn last record: the next open sets it aside and writes a recovery record.
  fs.appendFileSync(file, '{"torn":');
  log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5, checkpoint });
  await log.close();

  const recs: AuditRecord[] = [];
  for (const line of lines(file)) {
    const p = parseAuditLine(line);
    if (!p.ok) t.fail(`${p.error.kind}: ${p.error.message}: ${line}`);
    else recs.push(p.record);
    t.same(parseAuditRecord(JSON.parse(line)), p, 'the line and its parsed JSON read the same');
  }
  t.same(
    recs.map((r) => r.event ?? 'outcome'),
    ['audit.genesis', 'outcome', 'intent', 'outcome', 'outcome', 'outcome', 'audit.recovery'],
  );
  t.same(
    recs.map((r) => r.seq),
    [1, 2, 3, 4, 5, 6, 7],
  );
  t.equal(recs[0]?.prev, GENESIS_PREV);

  const [genesis, , , , , , recovery] = recs;
  if (genesis?.event !== 'audit.genesis') throw new Error('not a genesis record');
  t.same(genesis.genesis, {
    stream: 'default',
    origin: 'bulwark/test',
    created_at: genesis.genesis?.created_at,
    keys: [key.encoded],
    policy_revision: 'rev-1',
    checkpoint: { every_records: 1000, every_ms: 60_000 },
  });
  const ok = outcomeAt(recs, 1);
  t.equal(ok.principal?.id, 'alice');
  t.equal(ok.outcome?.status, 'ok');
  t.equal(ok.outcome?.duration_ms, 1.235);
  t.same(ok.outcome?.metrics, { cpu_ms: 0.5, heap_bytes: 1024 });
  t.same(ok.outcome?.caps, { timeoutMs: 1000 });
  t.equal(ok.decision?.policy_revision, 'rev-1');
  const unvalidated = outcomeAt(recs, 3);
  t.equal(unvalidated.intent_seq, 3, 'the outcome names its intent');
  t.equal(unvalidated.args_sha256_form, 'json');
  t.same(unvalidated.masked, ['args']);
  const deniedRec = outcomeAt(recs, 4);
  t.equal(deniedRec.outcome?.code, 'policy_denied');
  t.same(deniedRec.outcome?.reasons, ['policy.not_granted']);
  const withoutArgsRec = outcomeAt(recs, 5);
  t.equal(withoutArgsRec.args, null);
  t.equal(withoutArgsRec.args_unrepresentable, 'lone_surrogate');
  t.same(withoutArgsRec.masked, ['args']);
  if (recovery?.event !== 'audit.recovery') throw new Error('not a recovery record');
  t.equal(recovery.recovery?.action, 'set_aside');
  t.equal(recovery.recovery?.bytes, '{"torn":'.length);
  t.match(recovery.recovery?.set_aside, /^audit\.jsonl\.torn-/);
});

function sealed(fields: Record<string, unknown>, seq = 1): string {
  return sealRecord(fields, seq, GENESIS_PREV, 65_536).line;
}

t.test('what does not read is a typed error, not a record', async (t) => {
  const ok = sealed({ tool: 'read_file', outcome: { status: 'ok' } });
  t.equal(parseAuditLine(ok).ok, true, 'a sparse record of version 1 reads: fields added later may be absent');
  t.match(parseAuditLine('{"tool":"x"}'), { ok: false, error: { kind: 'not_sealed' } });
  t.match(parseAuditLine(`{"a":${'x'.repeat(80)},"hash":"${'0'.repeat(64)}"}`), { ok: false, error: { kind: 'not_json' } });
  t.match(parseAuditRecord([1, 2]), { ok: false, error: { kind: 'not_object' } });
  const v2 = JSON.parse(ok) as Record<string, unknown>;
  t.match(parseAuditRecord({ ...v2, v: 2 }), { ok: false, error: { kind: 'version', found: 2 } });
  t.match(parseAuditRecord({ ...v2, seq: 0 }), { ok: false, error: { kind: 'envelope', field: 'seq' } });
  t.match(parseAuditRecord({ ...v2, prev: 'zz' }), { ok: false, error: { kind: 'envelope', field: 'prev' } });
  t.match(parseAuditRecord({ ...v2, hash: undefined }), { ok: false, error: { kind: 'envelope', field: 'hash' } });

  const badStatus = parseAuditLine(sealed({ tool: 'read_file', outcome: { status: 7 } }, 5));
  t.match(
    badStatus,
    { ok: false, error: { kind: 'field', field: 'outcome.status', expected: 'a string' }, envelope: { seq: 5 } },
    'the field is named, the envelope kept',
  );
  t.match(parseAuditLine(sealed({ principal: { id: 'a', roles: ['r', 1] } })), { ok: false, error: { kind: 'field', field: 'principal.roles' } });
  t.match(parseAuditLine(sealed({ event: 'intent', tool: { x: 1 } })), { ok: false, error: { kind: 'field', field: 'tool' } });
  t.match(parseAuditLine(sealed({ event: 'audit.recovery', recovery: { refused_appends: { count: 'many' } } })), {
    ok: false,
    error: { kind: 'field', field: 'recovery.refused_appends.count' },
  });
  t.match(parseAuditLine(sealed({ event: 42 })), { ok: false, error: { kind: 'field', field: 'event' } });
  t.match(parseAuditLine(sealed({ event: 'audit.future', x: 1 }, 9)), {
    ok: false,
    error: { kind: 'unknown_event', event: 'audit.future' },
    envelope: { seq: 9 },
  });
});

t.test('fields before sealing: what the metrics read', async (t) => {
  const f = parseAuditFields(auditFields(input({ status: 'denied', denial: deny('rate_limited', 'slow down', ['rate.principal']) })));
  if (!f.ok || f.fields.event !== undefined) throw new Error('an outcome record did not read');
  t.equal(f.fields.outcome?.code, 'rate_limited');
  t.same(f.fields.outcome?.reasons, ['rate.principal']);
  t.match(parseAuditFields(intent), { ok: true, fields: { event: 'intent', tool: 'call_api' } });
  t.match(parseAuditFields({ outcome: { duration_ms: 'fast' } }), { ok: false, error: { kind: 'field', field: 'outcome.duration_ms' } });
  t.match(parseAuditFields(null), { ok: false, error: { kind: 'not_object' } });
});

t.test('the report counts what reads, an event of a later build as an event, and the rest as unreadable', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'log', 'audit.jsonl');
  const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5 });
  await log.append(auditFields(input()));
  await log.append({ event: 'audit.future', detail: 1 });
  await log.append({ tool: ['not', 'a', 'name'], outcome: { status: 'ok' } });
  await log.close();
  const d = await collectFileReport(file);
  t.equal(d.verdict.ok, true, 'the chain is intact: the shape of a record is not the verifier’s business');
  t.equal(d.records, 2);
  t.equal(d.unreadable, 1);
  t.equal(d.byTool.get('read_file'), 1);
  t.equal(d.byTool.get('event: audit.future'), 1);
  t.equal(d.byDecision.get('n/a (event record)'), 1);
});

t.test('refused appends: an exact count, the first ids, and what a failed recovery gives back comes first', async (t) => {
  const r = new RefusedAppends(2);
  t.equal(r.take(), undefined, 'nothing refused, nothing to say');
  r.note({ request_id: 'a' }, new Date('2026-01-01T00:00:00Z'));
  r.note({ request_id: 'b'.repeat(300) }, new Date('2026-01-01T00:00:01Z'));
  r.note({ request_id: 'c' }, new Date('2026-01-01T00:00:02Z'));
  r.note({}, new Date('2026-01-01T00:00:03Z'));
  const first = r.take();
  t.same(first, { count: 4, first_at: '2026-01-01T00:00:00.000Z', last_at: '2026-01-01T00:00:03.000Z', request_ids: ['a', 'b'.repeat(100)] });
  t.equal(r.take(), undefined, 'taking starts a fresh count');
  r.note({ request_id: 'd' }, new Date('2026-01-01T00:00:04Z'));
  r.putBack(first);
  t.same(r.take(), { count: 5, first_at: '2026-01-01T00:00:00.000Z', last_at: '2026-01-01T00:00:04.000Z', request_ids: ['a', 'b'.repeat(100)] });
  r.putBack(first);
  t.same(r.take(), first, 'given back into an empty count it is as it was');
  t.same(NO_REFUSED_APPENDS, { count: 0, first_at: null, last_at: null, request_ids: [] });
});
