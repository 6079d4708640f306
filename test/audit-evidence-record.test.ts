import crypto from 'node:crypto';
import t from 'tap';
import { argsDigest, auditFields, recordedToolName, type RecordInput } from '../src/audit/record.js';
import { readAudit, makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

// Issue 12 (6): hashes a client can reproduce, tool names recorded as given.

/** What a client computes, independently: sorted keys, JSON.stringify's number and string forms. */
function clientCanonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(clientCanonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${clientCanonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
const sha = (s: string): string => crypto.createHash('sha256').update(s, 'utf8').digest('hex');

function input(extra: Partial<RecordInput>): RecordInput {
  return {
    context: { transport: 'stdio', requestId: 'r1', receivedAt: new Date(), signal: new AbortController().signal },
    tool: 'read_file',
    toolKnown: true,
    args: {},
    argsValidated: true,
    policyRevision: 'rev',
    status: 'ok',
    durationMs: 1,
    ...extra,
  };
}

t.test('args_sha256 is SHA-256 of the canonical JSON of the arguments as received', async (t) => {
  const received = { z: [1, 2.5, 'é'], a: { y: true, b: null }, path: 'notes/x.txt' };
  t.equal(argsDigest(received).sha256, sha(clientCanonical(received)));
  t.equal(argsDigest(received).form, 'jcs');
  // Validation filled in a default: the record hashes what the client sent, not the filled-in form.
  const f = auditFields(input({ args: { ...received, max_bytes: 65536 }, rawArgs: received }));
  t.equal(f.args_sha256, sha(clientCanonical(received)));
  t.equal(f.args_bytes, Buffer.byteLength(clientCanonical(received)));
  t.notOk('args_sha256_form' in f);
  // Key order as sent does not matter.
  t.equal(argsDigest({ b: 1, a: 2 }).sha256, argsDigest({ a: 2, b: 1 }).sha256);
  // No canonical form (a lone surrogate): JSON.stringify's text, and the record says so.
  const lone = auditFields(input({ args: { s: '\ud800' }, argsValidated: false }));
  t.equal(lone.args_sha256, sha(JSON.stringify({ s: '\ud800' })));
  t.equal(lone.args_sha256_form, 'json');
});

t.test('unknown tool names are recorded as given (capped at 200; quoted only if not well-formed)', async (t) => {
  t.equal(recordedToolName('no_such_tool'), 'no_such_tool', 'not JSON-quoted');
  t.equal(recordedToolName('<b>"x"</b>'), '<b>"x"</b>');
  t.equal(recordedToolName('a'.repeat(500)).length, 200);
  t.equal(recordedToolName(`${'a'.repeat(199)}😀`), 'a'.repeat(199), 'a cut through a surrogate pair drops the half');
  t.equal(recordedToolName('x\ud800y'), '"x\\ud800y"', 'a lone surrogate: the escaped form stands in');
});

t.test('through the gate: an unknown tool and its arguments, as a client can check them', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const gate = await inProcessGate(sb.configPath);
  const args = { zeta: 1, alpha: ['x', { k: 'v' }] };
  const out = await gate.call('no such tool', args);
  await gate.close();
  const rec = readAudit(sb.auditPath).find((r) => r.request_id === out.requestId)!;
  t.equal(rec.tool, 'no such tool');
  t.equal(rec.args_sha256, sha(clientCanonical(args)), 'the client reproduces the hash');
});
