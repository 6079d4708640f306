/**
 * Sealed requestState (src/gate/request-state.ts): what it binds, and every way a client can try to
 * make a state open for something it was not issued for. Tampering is done on the real bytes of a
 * real token (version, IV, tag, ciphertext, length), not on a mock.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Sealer } from '../src/core/seal.js';
import { argsDigest } from '../src/audit/record.js';
import {
  MAX_REMEMBERED_STATES,
  REQUEST_STATE_KEY_ENV,
  REQUEST_STATE_PURPOSE,
  RequestStateCodec,
  requestStateCodecFor,
  requestStateKey,
  stateDenial,
  type StateBinding,
} from '../src/gate/request-state.js';
import { SESSION_PURPOSE } from '../src/transport/http/session-token.js';

const KEY = crypto.randomBytes(32);
const ARGS = { api: 'svc', method: 'POST', path: '/payments', body: { amount: 10, currency: 'EUR' } };
const BINDING: StateBinding = { principal: { id: 'alice', auth: 'api_key' }, tool: 'call_api', argsSha256: argsDigest(ARGS).sha256 };

function codec(now?: () => number, maxRemembered?: number): RequestStateCodec {
  return new RequestStateCodec(new Sealer(KEY), { ...(now ? { now } : {}), ...(maxRemembered ? { maxRemembered } : {}) });
}

/** The token's bytes with one bit flipped at `index` (negative: from the end). */
function flip(token: string, index: number): string {
  const raw = Buffer.from(token, 'base64url');
  const i = index < 0 ? raw.length + index : index;
  raw[i] = (raw[i] as number) ^ 0x01;
  return raw.toString('base64url');
}

t.test('issue and open: the payload binds principal, method, tool, arguments hash, times, nonce and issuer', async (t) => {
  let now = 1_800_000_000_000;
  const c = codec(() => now);
  const { token, payload } = c.issue('approval', BINDING, {
    requestId: 'req-1',
    ttlMs: 60_000,
    approval: { approvers: ['admin'], reason: 'POST changes state', ttl_ms: 60_000 },
  });
  t.match(token, /^[A-Za-z0-9_-]+$/, 'base64url');
  t.notMatch(Buffer.from(token, 'base64url').toString('latin1'), /alice|call_api|payments/, 'the client cannot read what is inside');
  t.same(payload, {
    v: 1,
    purpose: 'approval',
    principal: { id: 'alice', auth: 'api_key' },
    method: 'tools/call',
    tool: 'call_api',
    args_sha256: BINDING.argsSha256,
    iat: now,
    exp: now + 60_000,
    nonce: payload.nonce,
    request_id: 'req-1',
    approval: { approvers: ['admin'], reason: 'POST changes state', ttl_ms: 60_000 },
  });
  t.equal(Buffer.from(payload.nonce, 'base64url').length, 16, '128-bit nonce');
  now += 59_999;
  const opened = c.open(token, BINDING);
  t.ok(opened.ok, 'opens for the same call before it expires');
  if (opened.ok) t.same(opened.payload, payload);

  const second = c.issue('approval', BINDING, { requestId: 'req-1', ttlMs: 60_000 });
  t.not(second.token, token, 'a fresh IV and nonce every time');
  t.not(second.payload.nonce, payload.nonce);
});

t.test('the arguments hash is RFC 8785: the same arguments in another key order open it; any change does not', async (t) => {
  const c = codec();
  const reordered = { body: { currency: 'EUR', amount: 10 }, path: '/payments', method: 'POST', api: 'svc' };
  const a = c.issue('approval', BINDING, { requestId: 'r', ttlMs: 60_000 });
  t.ok(c.open(a.token, { ...BINDING, argsSha256: argsDigest(reordered).sha256 }).ok, 'key order is not a change');
  for (const changed of [
    { ...ARGS, body: { amount: 11, currency: 'EUR' } },
    { ...ARGS, body: { amount: 10.0000001, currency: 'EUR' } },
    { ...ARGS, body: { amount: '10', currency: 'EUR' } },
    { ...ARGS, path: '/payments/' },
    { ...ARGS, extra: null },
    { api: 'svc', method: 'POST', path: '/payments' },
  ]) {
    const s = c.issue('approval', BINDING, { requestId: 'r', ttlMs: 60_000 });
    const o = c.open(s.token, { ...BINDING, argsSha256: argsDigest(changed).sha256 });
    t.same(o.ok ? 'opened' : o.why, 'args_mismatch', `refused for ${JSON.stringify(changed)}`);
  }
});

t.test('tampering with any part of the token is refused, and never throws', async (t) => {
  const c = codec();
  const { token } = c.issue('tool', BINDING, { requestId: 'r', ttlMs: 60_000, state: { step: 2, cart: ['a', 'b'] } });
  const raw = Buffer.from(token, 'base64url');
  const cases: [string, string, string][] = [
    ['version byte', flip(token, 0), 'malformed'],
    ['first IV byte', flip(token, 1), 'tampered'],
    ['last IV byte', flip(token, 12), 'tampered'],
    ['first tag byte', flip(token, 13), 'tampered'],
    ['last tag byte', flip(token, 28), 'tampered'],
    ['first ciphertext byte', flip(token, 29), 'tampered'],
    ['last ciphertext byte', flip(token, -1), 'tampered'],
    ['one byte cut off', raw.subarray(0, raw.length - 1).toString('base64url'), 'tampered'],
    ['one byte added', Buffer.concat([raw, Buffer.of(0)]).toString('base64url'), 'tampered'],
    ['only the header', raw.subarray(0, 29).toString('base64url'), 'malformed'],
    ['standard base64 alphabet', raw.toString('base64'), raw.toString('base64').match(/[+/=]/) ? 'malformed' : 'opened'],
    ['a space inside', `${token.slice(0, 10)} ${token.slice(10)}`, 'malformed'],
    ['empty', '', 'malformed'],
    ['16 KiB + 1 characters', 'A'.repeat(16 * 1024 + 1), 'malformed'],
  ];
  for (const [what, bad, expected] of cases) {
    const o = c.open(bad, BINDING);
    t.equal(o.ok ? 'opened' : o.why, expected, `${what}: ${expected}`);
  }
  for (const notAString of [undefined, null, 42, { token }, [token], true]) {
    const o = c.open(notAString, BINDING);
    t.equal(o.ok ? 'opened' : o.why, 'malformed', `${JSON.stringify(notAString) ?? 'undefined'}: malformed`);
  }
  // Swapping ciphertexts between two valid tokens: the tag covers them.
  const other = Buffer.from(c.issue('tool', BINDING, { requestId: 'r', ttlMs: 60_000 }).token, 'base64url');
  const spliced = Buffer.concat([raw.subarray(0, 29), other.subarray(29)]).toString('base64url');
  t.equal((c.open(spliced, BINDING) as { why?: string }).why, 'tampered', "another token's ciphertext under this tag: tampered");
  t.ok(c.open(token, BINDING).ok, 'the untouched token still opens (no tampered attempt used it up)');
});

t.test('another key, another purpose, or a payload of another shape never opens', async (t) => {
  const c = codec();
  const { token } = c.issue('approval', BINDING, { requestId: 'r', ttlMs: 60_000 });
  const otherReplica = new RequestStateCodec(new Sealer(crypto.randomBytes(32)));
  t.equal((otherReplica.open(token, BINDING) as { why?: string }).why, 'tampered', 'a replica with another key refuses it');
  const sameKeyReplica = new RequestStateCodec(new Sealer(KEY));
  t.ok(sameKeyReplica.open(token, BINDING).ok, 'a replica sharing the key opens it');

  const sealer = new Sealer(KEY);
  const session = sealer.seal(SESSION_PURPOSE, { sid: 'x', principal: 'api_key:alice' });
  t.equal((c.open(session, BINDING) as { why?: string }).why, 'tampered', 'a session id sealed by the same key is not a requestState');
  const good = c.issue('approval', BINDING, { requestId: 'r', ttlMs: 60_000 }).payload;
  for (const [what, payload] of [
    ['another payload version', { ...good, v: 2 }],
    ['an unknown purpose', { ...good, purpose: 'admin' }],
    ['a method that is not tools/call', { ...good, method: 'resources/read' }],
    ['no expiry', { ...good, exp: undefined }],
    ['a string expiry', { ...good, exp: String(good.exp) }],
    ['approvers not strings', { ...good, approval: { approvers: [1], reason: 'x', ttl_ms: 1 } }],
    ['tool state not an object', { ...good, purpose: 'tool', state: 'x' }],
    ['not an object', ['v', 1]],
  ] as const) {
    const forged = sealer.seal(REQUEST_STATE_PURPOSE, payload);
    t.equal((c.open(forged, BINDING) as { why?: string }).why, 'malformed', `${what}: malformed`);
  }
});

t.test('bound to the principal (id and how it authenticated) and the tool', async (t) => {
  const c = codec();
  const issue = () => c.issue('approval', BINDING, { requestId: 'r', ttlMs: 60_000 }).token;
  const why = (token: string, b: StateBinding) => {
    const o = c.open(token, b);
    return o.ok ? 'opened' : o.why;
  };
  t.equal(why(issue(), { ...BINDING, principal: { id: 'bob', auth: 'api_key' } }), 'principal_mismatch', 'another principal');
  t.equal(why(issue(), { ...BINDING, principal: { id: 'alice', auth: 'oauth' } }), 'principal_mismatch', 'the same id through another authenticator');
  t.equal(why(issue(), { ...BINDING, principal: { id: 'Alice', auth: 'api_key' } }), 'principal_mismatch', 'ids compare exactly');
  t.equal(why(issue(), { ...BINDING, tool: 'run_javascript' }), 'tool_mismatch', 'another tool');
  const refused = c.open(issue(), { ...BINDING, principal: { id: 'bob', auth: 'api_key' } });
  t.ok(!refused.ok && refused.payload?.request_id === 'r', 'the refusal carries what the state was, for the audit record');
});

t.test('expiry, and single use', async (t) => {
  let now = 1_000_000;
  const c = codec(() => now);
  const { token } = c.issue('approval', BINDING, { requestId: 'r', ttlMs: 5_000 });
  now += 5_000;
  const late = c.open(token, BINDING);
  t.equal(late.ok ? 'opened' : late.why, 'expired', 'at exp it has expired');
  t.equal(late.ok ? undefined : late.payload?.exp, 1_005_000);

  now = 2_000_000;
  const fresh = c.issue('tool', BINDING, { requestId: 'r2', ttlMs: 5_000, state: { n: 1 } }).token;
  t.ok(c.open(fresh, BINDING).ok, 'first use opens');
  const again = c.open(fresh, BINDING);
  t.equal(again.ok ? 'opened' : again.why, 'replayed', 'second use is refused');
  t.equal(stateDenial('replayed').code, 'request_state_invalid');
  t.same(stateDenial('args_mismatch').reasons, ['request_state.args_mismatch']);
});

t.test('the single-use memory is bounded: expired nonces are swept, unexpired ones are never forgotten', async (t) => {
  let now = 0;
  const c = codec(() => now, 3);
  const open = (ttlMs: number) => {
    const o = c.open(c.issue('tool', BINDING, { requestId: 'r', ttlMs }).token, BINDING);
    return o.ok ? 'opened' : o.why;
  };
  t.same([open(1000), open(1000), open(5000)], ['opened', 'opened', 'opened']);
  t.equal(open(1000), 'replay_cache_full', 'full of unexpired states: refused, not forgotten');
  now = 1000;
  t.equal(open(1000), 'opened', 'the two expired nonces are swept, room again');
  t.ok(MAX_REMEMBERED_STATES >= 10_000, `the default bound (${MAX_REMEMBERED_STATES}) is not a toy`);
});

t.test('the key: a file (relative to the config), the environment, or random; at least 32 bytes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-rs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const secret = crypto.randomBytes(48).toString('base64');
  fs.writeFileSync(path.join(dir, 'rs.key'), `${secret}\n`);
  fs.writeFileSync(path.join(dir, 'short.key'), `${'k'.repeat(31)}\n`);
  const cfg = (file?: string) => ({ protocol: { ...(file ? { request_state_key_file: file } : {}), request_state_ttl_ms: 600_000 } });
  t.same(requestStateKey(cfg('rs.key'), dir, {}), Buffer.from(secret), 'the file, without its trailing newline');
  t.throws(() => requestStateKey(cfg('short.key'), dir, {}), /31 bytes; the requestState key needs at least 32/);
  t.throws(() => requestStateKey(cfg('missing.key'), dir, {}), /ENOENT/, 'a configured file that is missing stops the boot');
  t.same(requestStateKey(cfg(), dir, { [REQUEST_STATE_KEY_ENV]: secret }), Buffer.from(secret), 'the environment variable');
  t.throws(() => requestStateKey(cfg(), dir, { [REQUEST_STATE_KEY_ENV]: 'too short' }), /at least 32/);
  t.equal(requestStateKey(cfg(), dir, {}), undefined, 'neither: no key (a random one is used)');

  // Two "replicas" with the configured key understand each other; two with random keys do not.
  const a = requestStateCodecFor(cfg('rs.key'), dir, {});
  const b = requestStateCodecFor(cfg(), dir, { [REQUEST_STATE_KEY_ENV]: secret });
  t.ok(b.open(a.issue('approval', BINDING, { requestId: 'r', ttlMs: 60_000 }).token, BINDING).ok, 'file and environment with the same secret interoperate');
  const r1 = requestStateCodecFor(cfg(), dir, {});
  const r2 = requestStateCodecFor(cfg(), dir, {});
  const o = r2.open(r1.issue('approval', BINDING, { requestId: 'r', ttlMs: 60_000 }).token, BINDING);
  t.equal(o.ok ? 'opened' : o.why, 'tampered', 'random per-process keys: another replica refuses the retry (safe)');
});
