/**
 * The pieces behind 2025-11-25 asks, one by one: session tokens (expiry, binding, purpose), the
 * pending-ask registry (bounds, owners, answers that do not fit), and the capability mapping.
 */
import t from 'tap';
import type { JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import { Sealer } from '../src/core/seal.js';
import type { ClientInputRequest, Principal } from '../src/core/call.js';
import { declaredCapabilities, declares } from '../src/server/client-channel.js';
import { PendingAsks } from '../src/transport/http/pending-asks.js';
import { issueSession, openSession, SESSION_PURPOSE } from '../src/transport/http/session-token.js';

const alice: Principal = { id: 'alice', roles: ['developer'], auth: 'api_key', tier: 'local' };
const aliceOAuth: Principal = { ...alice, auth: 'oauth' };
const bob: Principal = { ...alice, id: 'bob' };
const DAY = 86_400_000;

t.test('session tokens: bound to the principal, expire, open only under their purpose and key', async (t) => {
  const sealer = Sealer.random();
  const now = 1_800_000_000_000;
  const { token, session } = issueSession(sealer, alice, { elicitation: { form: true, url: false } }, '2025-11-25', now);
  t.same(openSession(sealer, token, alice, DAY, now + 1000), session);
  t.equal(openSession(sealer, token, bob, DAY, now), undefined, 'another principal');
  t.equal(openSession(sealer, token, aliceOAuth, DAY, now), undefined, 'the same id through another authentication');
  t.equal(openSession(sealer, token, undefined, DAY, now), undefined, 'the loopback principal');
  t.equal(openSession(sealer, token, alice, DAY, now + DAY + 1), undefined, 'expired');
  t.equal(openSession(sealer, token, alice, DAY, now - 120_000), undefined, 'issued two minutes in the future (clock skew bound: one)');
  t.ok(openSession(sealer, token, alice, DAY, now - 30_000), 'half a minute of skew is tolerated');
  t.equal(openSession(Sealer.random(), token, alice, DAY, now), undefined, 'another key (a replica without the shared key)');
  const other = sealer.seal('request-state', { ...session });
  t.equal(openSession(sealer, other, alice, DAY, now), undefined, 'sealed for another purpose');
  const odd = sealer.seal(SESSION_PURPOSE, { ...session, issuedAt: 'yesterday' });
  t.equal(openSession(sealer, odd, alice, DAY, now), undefined, 'a payload of the wrong shape');
  const loose = sealer.seal(SESSION_PURPOSE, { ...session, capabilities: { elicitation: { form: 'yes' }, sampling: 1, roots: true } });
  t.same(openSession(sealer, loose, alice, DAY, now)?.capabilities, { elicitation: { form: false, url: false }, roots: true }, 'only literal true declares');
  t.not(issueSession(sealer, alice, {}, '2025-11-25', now).session.sid, session.sid, 'a new sid per initialize');
});

t.test('declared capabilities: the 2025-11-25 shapes, untrusted', async (t) => {
  t.same(declaredCapabilities({ elicitation: {} }), { elicitation: { form: true, url: false } }, 'empty elicitation means form');
  t.same(declaredCapabilities({ elicitation: { url: {} } }), { elicitation: { form: false, url: true } });
  t.same(declaredCapabilities({ elicitation: { form: {}, url: {} }, sampling: {}, roots: { listChanged: true } }), {
    elicitation: { form: true, url: true },
    sampling: true,
    roots: true,
  });
  t.same(declaredCapabilities({ elicitation: true, sampling: 'yes', roots: [] }), {}, 'non-objects declare nothing');
  t.same(declaredCapabilities(undefined), {});
  const form: ClientInputRequest = { method: 'elicitation/create', params: { message: 'm', requestedSchema: { type: 'object', properties: {} } } };
  const url: ClientInputRequest = { method: 'elicitation/create', params: { mode: 'url', message: 'm', url: 'https://x.example/', elicitationId: 'e' } };
  t.ok(declares({ elicitation: { form: true } }, form));
  t.notOk(declares({ elicitation: { url: true } }, form));
  t.notOk(declares({ elicitation: { form: true } }, url));
});

const request: ClientInputRequest = {
  method: 'elicitation/create',
  params: { mode: 'form', message: 'Approve?', requestedSchema: { type: 'object', properties: { approve: { type: 'boolean' } } } },
};
const caps = { elicitation: { form: true } };
const never = new AbortController().signal;

t.test('pending asks: only the owner answers; bounds; timeouts; aborts; answers that do not fit', async (t) => {
  const asks = new PendingAsks({ max: 3, perOwner: 2 });
  const sent: JSONRPCRequest[] = [];
  const send = (m: JSONRPCRequest): void => {
    sent.push(m);
  };
  const first = asks.ask('alice\ns1', caps, request, send, { signal: never, timeoutMs: 5000 });
  const id = sent[0]?.id as string;
  t.match(id, /^bulwark-ask-[A-Za-z0-9_-]{22}$/);
  t.equal(sent[0]?.method, 'elicitation/create');
  t.notOk(asks.answer('bob\ns2', { jsonrpc: '2.0', id, result: { action: 'accept', content: { approve: true } } }), "another owner's answer");
  t.notOk(asks.answer('alice\ns2', { jsonrpc: '2.0', id, result: { action: 'accept', content: { approve: true } } }), 'the same principal, another session');
  t.notOk(asks.answer('alice\ns1', { jsonrpc: '2.0', id: 'bulwark-ask-nope', result: {} }), 'an unknown id');
  t.equal(asks.size, 1, 'still waiting');
  t.ok(asks.answer('alice\ns1', { jsonrpc: '2.0', id, result: { action: 'decline' } }));
  t.same(await first, { action: 'decline' });
  t.equal(asks.size, 0);

  const a = asks.ask('alice\ns1', caps, request, send, { signal: never, timeoutMs: 5000 });
  const b = asks.ask('alice\ns1', caps, request, send, { signal: never, timeoutMs: 5000 });
  await t.rejects(asks.ask('alice\ns1', caps, request, send, { signal: never, timeoutMs: 5000 }), /Too many requests/, 'per owner');
  const c = asks.ask('bob\ns9', caps, request, send, { signal: never, timeoutMs: 5000 });
  await t.rejects(asks.ask('carol\ns3', caps, request, send, { signal: never, timeoutMs: 5000 }), /Too many requests/, 'in all');
  const [ida, idb, idc] = sent.slice(-3).map((m) => m.id as string);
  t.ok(asks.answer('alice\ns1', { jsonrpc: '2.0', id: ida as string, error: { code: -1, message: 'User rejected' } }));
  await t.rejects(a, /User rejected/, 'a client error rejects');
  t.ok(asks.answer('alice\ns1', { jsonrpc: '2.0', id: idb as string, result: { action: 'maybe' } }));
  await t.rejects(b, /malformed/, 'an answer that is not an ElicitResult rejects');
  const abort = new AbortController();
  const d = asks.ask('carol\ns3', caps, request, send, { signal: abort.signal, timeoutMs: 5000 });
  abort.abort(new Error('client went away'));
  await t.rejects(d, /client went away/);
  t.ok(asks.answer('bob\ns9', { jsonrpc: '2.0', id: idc as string, result: { action: 'cancel' } }));
  t.same(await c, { action: 'cancel' });
  await t.rejects(asks.ask('alice\ns1', caps, request, send, { signal: never, timeoutMs: 20 }), /timed out/);
  t.equal(asks.size, 0, 'nothing left behind');
  await t.rejects(
    asks.ask('alice\ns1', {}, request, send, { signal: never, timeoutMs: 20 }),
    /did not declare/,
    'an undeclared capability is refused before sending',
  );
  const before = sent.length;
  await t.rejects(
    asks.ask('alice\ns1', caps, { method: 'elicitation/create', params: { message: 3 } }, send, { signal: never, timeoutMs: 20 }),
    /Malformed elicitation\/create/,
  );
  t.equal(sent.length, before, 'nothing malformed is sent');
});
