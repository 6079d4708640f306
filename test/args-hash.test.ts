import crypto from 'node:crypto';
import t from 'tap';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { stdioClient } from './helpers/clients.js';
import { inProcessGate } from './helpers/gate.js';
import { startUpstream, writePolicyData } from './helpers/upstreams.js';

/**
 * args_sha256 is what a client can reproduce (issue 12): SHA-256 over the RFC 8785 canonical JSON
 * of the arguments exactly as sent, without the defaults validation fills in. The client side here
 * is written from the RFC, not from the server's code: keys sorted by UTF-16 code units, no white
 * space, JSON.stringify's (ECMAScript) form for strings and numbers, UTF-8.
 */
function jcs(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${jcs(o[k])}`)
    .join(',')}}`;
}
const clientHash = (args: unknown): string => crypto.createHash('sha256').update(jcs(args), 'utf8').digest('hex');

t.test('a real MCP client reproduces args_sha256 from what it sent (validated calls, defaults not filled in)', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const { client, close } = await stdioClient(['--config', sb.configPath]);
  // Keys out of order, non-ASCII and escapes, numbers in other spellings than JCS writes them.
  const sent: [string, Record<string, unknown>][] = [
    ['read_file', { path: 'hello.txt' }], // encoding and offset have defaults
    ['list_directory', { recursive: false, path: 'sub' }],
    ['search_files', { query: 'needle "é" \u2028 ✓', path: '.', case_sensitive: false }],
    ['read_file', { offset: 1, path: 'sub/notes.md', encoding: 'text' }],
    ['read_file', { path: '../outside/secret.txt' }], // denied by the policy
  ];
  for (const [name, args] of sent) await client.callTool({ name, arguments: args });
  await close();
  const records = readAudit(sb.auditPath).filter((r) => r.event === undefined && r.tool !== undefined && r.request_id);
  t.equal(records.length, sent.length);
  records.forEach((r, i) => {
    const [name, args] = sent[i]!;
    t.equal(r.tool, name);
    t.equal(r.args_sha256, clientHash(args), `${name} #${i}: the client's hash`);
    t.equal(r.args_bytes, Buffer.byteLength(jcs(args)), 'args_bytes is the length of that canonical text');
    t.notOk('args_sha256_form' in r, 'canonical form');
  });
  // The validated arguments the record keeps do have the defaults: the hash is not over them.
  const first = records[0]!;
  t.match(first.args, { path: 'hello.txt', encoding: 'auto', offset: 0 }, 'the record keeps the validated arguments');
  t.not(first.args_sha256, clientHash(first.args), 'and the hash is not over them');
});

t.test('the intent record of a side-effecting call hashes the arguments as received too', async (t) => {
  const up = await startUpstream();
  const sb = makeSandbox({
    apis: { svc: { base_url: `${up.origin}/v1/`, internal: true, retries: 0, methods: ['GET', 'POST'] } },
    policy: { data: 'policy-data.json' },
    principals: { stdio: { id: 'alice', roles: ['developer'], tier: 'local' } },
  });
  writePolicyData(sb.dir, ['svc']);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(async () => {
    await up.close();
    sb.cleanup();
  });
  const args = { path: '/echo', body: { b: 2, a: [1, 'x'] }, api: 'svc', method: 'POST' };
  const out = await gate.call('call_api', args);
  await gate.close();
  t.equal(out.status, 'ok', JSON.stringify(out.denial));
  const recs = readAudit(sb.auditPath).filter((r) => r.request_id === out.requestId);
  const intent = recs.find((r) => r.event === 'intent');
  const outcome = recs.find((r) => r.event === undefined);
  t.ok(intent && outcome, 'an intent and an outcome record');
  t.equal(intent?.args_sha256, clientHash(args), 'intent: the client hash');
  t.equal(outcome?.args_sha256, clientHash(args), 'outcome: the same');
  // A GET with the method left to its default: the hash is over what was sent, without "method".
  const gate2 = await inProcessGate(sb.configPath);
  const get = { api: 'svc', path: '/json' };
  const out2 = await gate2.call('call_api', get);
  await gate2.close();
  const rec2 = readAudit(sb.auditPath).find((r) => r.request_id === out2.requestId && r.event === undefined);
  t.equal(rec2?.args_sha256, clientHash(get), 'the default method is not hashed');
  t.not(rec2?.args_sha256, clientHash({ ...get, method: 'GET' }));
});
