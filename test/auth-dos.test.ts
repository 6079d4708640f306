/**
 * Issue 17: authentication that an attacker cannot turn into an outage. Each test is one attack
 * from the issue, over real HTTP from many loopback source addresses (127.x.y.z) against a real
 * `bulwark serve` with `auth.http: api_key`. Timings live in `npm run bench` (scripts/bench/auth-burst.mjs).
 */
import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import t from 'tap';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { INIT, JSON_HEADERS, request, simultaneous } from './helpers/http.js';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { createKey, parseApiKey } from '../src/auth/api-keys.js';
import { configSchema } from '../src/config/schema.js';

type CryptoKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

t.setTimeout(300_000);

const ISSUER = 'https://issuer.test.example';
const AUDIENCE = 'https://bulwark.test.example/mcp';

const sb = makeSandbox({
  auth: {
    http: 'api_key',
    keys_file: 'keys.json',
    lockout: { threshold: 5, base_s: 30, max_s: 60 },
    refusals: { per_address: 20, interval_s: 2 },
    oauth: { issuer: ISSUER, audience: AUDIENCE, jwks_file: 'jwks.json', roles_claim: 'scope', tier: 'local' },
  },
  limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 }, tiny: { capacity: 2, refill_per_s: 0.001 } }, default_tier: 'local' },
});
const keysFile = path.join(sb.dir, 'keys.json');
let server: HttpServerProcess;
const tokens: Record<string, string> = {};
let k1: CryptoKey;
let k2: CryptoKey;

function jwt(claims: Record<string, unknown>, opts: { key?: CryptoKey; kid?: string | null; sub?: string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader(opts.kid === null ? { alg: 'ES256' } : { alg: 'ES256', kid: opts.kid ?? 'k1' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(opts.sub ?? 'svc')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(opts.key ?? k1);
}

/** One tools/call over raw HTTP from a chosen source address. */
async function call(bearer: string, name: string, args: Record<string, unknown>, from: string): Promise<{ status: number; body: any }> {
  const r = await request(server.url, {
    headers: { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25', authorization: `Bearer ${bearer}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }),
    from,
  });
  return { status: r.status, body: r.body ? JSON.parse(r.body) : undefined };
}

const authRecords = (): Record<string, any>[] => readAudit(sb.auditPath).filter((r) => r.tool === 'http:authenticate');

t.before(async () => {
  for (const [name, tier] of [
    ['alice', 'local'],
    ['holder', 'local'],
    ['shared', 'local'],
    ['carol', 'tiny'],
    ['dev', 'local'],
  ] as const) {
    tokens[name] = (await createKey(keysFile, { principal: name, roles: name === 'dev' ? ['developer'] : ['developer'], tier })).token;
  }
  tokens.scraper = (await createKey(keysFile, { principal: 'scraper', roles: ['metrics'], tier: 'local' })).token;
  // A store edited by hand: a principal with a lone surrogate (JSON keeps it as \ud800).
  tokens.bad = (await createKey(keysFile, { principal: 'mallory\ud800', roles: ['developer'], tier: 'local' })).token;
  const p1 = await generateKeyPair('ES256', { extractable: true });
  const p2 = await generateKeyPair('ES256', { extractable: true });
  k1 = p1.privateKey;
  k2 = p2.privateKey;
  fs.writeFileSync(
    path.join(sb.dir, 'jwks.json'),
    JSON.stringify({
      keys: [
        { ...(await exportJWK(p1.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' },
        { ...(await exportJWK(p2.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' },
      ],
    }),
  );
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server.stop();
  sb.cleanup();
});

t.test('a burst of 48 wrong secrets for one key id counts from the start: at most threshold argon2 runs, the rest 429/503 at once', async (t) => {
  const id = parseApiKey(tokens.alice!)!.id;
  const burst = await simultaneous(
    server.url,
    Array.from({ length: 48 }, (_, i) => ({
      headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${id}_${String(i).padStart(2, '0')}${'W'.repeat(41)}` },
      body: INIT,
      from: '127.0.1.1',
    })),
  );
  const by = (s: number): number => burst.filter((r) => r.status === s).length;
  // Before: 48 × 401 (the lockout was read before argon2 and counted after it).
  t.ok(by(401) <= 5, `at most threshold (5) verifications ran: ${by(401)} × 401`);
  t.equal(by(401) + by(429) + by(503), 48, 'every request answered');
  t.ok(by(429) >= 30, `the rest refused at once: ${by(429)} × 429, ${by(503)} × 503`);
});

t.test('48 wrong secrets from 48 addresses: argon2 runs one at a time, the excess is refused 503 auth.busy at once', async (t) => {
  const id = parseApiKey(tokens.alice!)!.id;
  const burst = await simultaneous(
    server.url,
    Array.from({ length: 48 }, (_, i) => ({
      headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${id}_${'Z'.repeat(43)}${i}` },
      body: INIT,
      from: `127.0.2.${i + 1}`,
    })),
  );
  const busy = burst.filter((r) => r.status === 503);
  // Before: 48 concurrent argon2 runs on the libuv pool (48 × 401).
  t.ok(busy.length >= 48 - 1 - 16, `${busy.length} × 503 (concurrency 1 + queue 16 admitted)`);
  t.match(JSON.parse(busy[0]!.body), { error: 'unavailable', reason: 'auth.busy' });
  t.equal(busy[0]!.headers['retry-after'], '1');
  t.ok(
    authRecords().some((r) => r.client_ip?.startsWith('127.0.2.') && r.outcome.code === 'unavailable' && r.outcome.reasons[0] === 'auth.busy'),
    'a busy refusal is audited as unavailable',
  );
});

t.test('a key id under attack from one address does not lock its holder out from another (no cached proof)', async (t) => {
  const id = parseApiKey(tokens.holder!)!.id;
  for (let i = 0; i < 8; i++)
    await request(server.url, { headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${id}_${'Q'.repeat(43)}` }, body: INIT, from: '127.0.3.1' });
  const attacker = await request(server.url, {
    headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${id}_${'Q'.repeat(43)}` },
    body: INIT,
    from: '127.0.3.1',
  });
  t.equal(attacker.status, 429, 'the guesser is locked');
  // Before: 429 (failures counted per key id), for up to 900 s.
  const first = await call(tokens.holder!, 'file_info', { path: 'hello.txt' }, '127.0.3.2');
  t.equal(first.status, 200, 'the holder, first use, from its own address');
  t.notOk(first.body.result.isError);
});

t.test('a valid key on a shared address where someone else spent the budget is still verified', async (t) => {
  // 20 (4 × threshold) unknown ids from the address lock it (they cost no argon2).
  for (let i = 0; i < 21; i++)
    await request(server.url, {
      headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${i.toString(16).padStart(16, 'f')}_${'Q'.repeat(43)}` },
      body: INIT,
      from: '127.0.4.1',
    });
  const locked = await request(server.url, {
    headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${'1'.repeat(16)}_${'Q'.repeat(43)}` },
    body: INIT,
    from: '127.0.4.1',
  });
  t.equal(locked.status, 401, 'one cheap attempt per fresh key id …');
  const again = await request(server.url, {
    headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${'1'.repeat(16)}_${'Q'.repeat(43)}` },
    body: INIT,
    from: '127.0.4.1',
  });
  t.equal(again.status, 429, '… then that pair is locked');
  // Before: 429 for every key from the address.
  const r = await call(tokens.shared!, 'file_info', { path: 'hello.txt' }, '127.0.4.1');
  t.equal(r.status, 200);
  t.notOk(r.body.result.isError);
});

t.test('10,000 credential-less requests from one address add a handful of records; discovery still gets its 401', async (t) => {
  const before = authRecords().length;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16, localAddress: '127.0.5.1' } as http.AgentOptions);
  t.teardown(() => agent.destroy());
  const statuses = new Map<number, number>();
  let challenge: string | undefined;
  let next = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.request(server.url, { method: 'POST', agent, headers: JSON_HEADERS }, (res) => {
        statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1);
        challenge ??= res.headers['www-authenticate'];
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(INIT);
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < 10_000) await one();
    }),
  );
  // Each 2 s interval of the address records its first 20 refusals one by one, then counts the
  // rest: a slow machine that needs more than one interval for the 10,000 gets 20 more per interval.
  const intervals = Math.floor((performance.now() - t0) / 2000) + 1;
  t.same([...statuses], [[401, 10_000]], 'every one a 401');
  t.match(challenge, /^Bearer resource_metadata="/);
  const mine = (): Record<string, any>[] =>
    authRecords()
      .slice(before)
      .filter((r) => r.client_ip === '127.0.5.1');
  const added = mine();
  // Before: 10,000 records (one fsynced record each).
  t.ok(added.length <= 20 * intervals + 5, `${added.length} records (${intervals} interval(s))`);
  // The aggregate is written when the address's interval (2 s) ends.
  await new Promise((r) => setTimeout(r, 2600));
  const aggs = mine().filter((r) => r.args?.aggregated);
  const counted = aggs.reduce((n, r) => n + r.args.aggregated.count, 0);
  const single = mine().filter((r) => !r.args?.aggregated).length;
  t.ok(aggs.length >= 1 && aggs.length <= intervals + 4, `${aggs.length} aggregate records`);
  t.equal(single + counted, 10_000, 'every refusal is in a record or a count');
  t.match(aggs[0], { principal: null, outcome: { status: 'denied', code: 'unauthenticated', reasons: ['auth.refusals_aggregated', 'auth.missing'] } });
  t.ok(Date.parse(aggs[0]!.args.aggregated.last) >= Date.parse(aggs[0]!.args.aggregated.first));
});

t.test('a JWT principal the audit log cannot encode is refused with an audited 401 auth.jwt_bad_principal', async (t) => {
  const cases: [string, string][] = [
    ['lone surrogate sub', await jwt({ scope: 'developer' }, { sub: 'eve\ud800' })],
    ['control char sub', await jwt({ scope: 'developer' }, { sub: 'eve\u0007' })],
    ['long sub', await jwt({ scope: 'developer' }, { sub: 'e'.repeat(129) })],
    ['lone surrogate role', await jwt({ scope: 'developer \udc00x' })],
    ['NBSP in scope', await jwt({ scope: 'x\u00a0developer' })],
  ];
  for (const [i, [name, token]] of cases.entries()) {
    const r = await call(token, 'read_file', { path: 'hello.txt' }, `127.0.6.${i + 1}`);
    // Before: 200 with audit_unavailable (no record) for the surrogates; `developer` granted for NBSP.
    t.equal(r.status, 401, name);
    t.equal(r.body.reason, 'auth.jwt_bad_principal', name);
    t.ok(
      authRecords().some((x) => x.client_ip === `127.0.6.${i + 1}` && x.outcome.reasons[0] === 'auth.jwt_bad_principal'),
      `${name}: audited`,
    );
  }
  const ok = await call(await jwt({ scope: 'developer  reader' }), 'read_file', { path: 'hello.txt' }, '127.0.6.20');
  t.notOk(ok.body.result.isError, 'SP-separated scope (empty tokens ignored) still works');
});

t.test('an API key whose principal the audit log cannot encode is refused with an audited 401', async (t) => {
  const r = await call(tokens.bad!, 'read_file', { path: 'hello.txt' }, '127.0.6.40');
  // Before: accepted, and the call answered audit_unavailable without a record.
  t.equal(r.status, 401);
  t.equal(r.body.reason, 'auth.key_bad_principal');
  t.ok(
    authRecords().some((x) => x.client_ip === '127.0.6.40' && x.outcome.reasons[0] === 'auth.key_bad_principal'),
    'audited',
  );
});

t.test('the argon2 verifier process killed mid-verification: 503 auth.busy (no failure counted), then it serves again', async (t) => {
  const pid = server.child.pid!;
  const verifier = (): number | undefined => {
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid && fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('argon2-child')) return Number(d);
      } catch {
        // gone meanwhile
      }
    }
    return undefined;
  };
  const fresh = (await createKey(keysFile, { principal: 'fresh', roles: ['developer'], tier: 'local' })).token;
  const child = verifier();
  t.ok(child, 'the verifier runs in its own process');
  const pending = call(fresh, 'file_info', { path: 'hello.txt' }, '127.0.11.1');
  await new Promise((r) => setTimeout(r, 40));
  process.kill(child!, 'SIGKILL');
  const r = await pending;
  t.equal(r.status, 503);
  t.equal(r.body.reason, 'auth.busy');
  const again = await call(fresh, 'file_info', { path: 'hello.txt' }, '127.0.11.1');
  t.equal(again.status, 200, 'verified by a new verifier process');
  t.notOk(again.body.result.isError);
  t.not(verifier(), child);
});

t.test('an API key principal and a JWT subject with the same id do not share a rate bucket', async (t) => {
  const from = '127.0.7.1';
  t.notOk((await call(tokens.carol!, 'file_info', { path: 'hello.txt' }, from)).body.result.isError);
  t.notOk((await call(tokens.carol!, 'file_info', { path: 'hello.txt' }, from)).body.result.isError);
  t.match((await call(tokens.carol!, 'file_info', { path: 'hello.txt' }, from)).body.result.structuredContent.error, { code: 'rate_limited' });
  const token = await jwt({ scope: 'developer' }, { sub: 'carol' });
  for (let i = 0; i < 3; i++)
    t.notOk((await call(token, 'file_info', { path: 'hello.txt' }, from)).body.result.isError, 'the token has its own (local) bucket');
  // Before: the token's takes with the larger tier refilled the shared bucket `principal:carol`.
  t.match(
    (await call(tokens.carol!, 'file_info', { path: 'hello.txt' }, from)).body.result.structuredContent.error,
    { code: 'rate_limited' },
    'the tiny key is still limited',
  );
});

t.test('a JWT without kid is checked against each key of its type (key rotation)', async (t) => {
  const r = await call(await jwt({ scope: 'developer' }, { key: k2, kid: null }), 'file_info', { path: 'hello.txt' }, '127.0.8.1');
  // Before: 401 (jose refuses when two keys match and the token names none).
  t.equal(r.status, 200);
  t.notOk(r.body.result.isError);
  const forged = await call(
    await jwt({ scope: 'developer' }, { key: (await generateKeyPair('ES256')).privateKey, kid: null }),
    'file_info',
    { path: 'hello.txt' },
    '127.0.8.2',
  );
  t.equal(forged.status, 401);
  t.equal(forged.body.reason, 'auth.jwt_bad_signature');
});

t.test('/metrics needs a role; unknown tool names share one label value', async (t) => {
  t.equal((await request(`${server.base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${tokens.dev}` } })).status, 403);
  for (let i = 0; i < 30; i++) await call(tokens.dev!, `no_such_tool_${i}`, {}, '127.0.9.1');
  const m = await request(`${server.base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${tokens.scraper}` } });
  t.equal(m.status, 200);
  // Before: 17 series per invented name.
  t.notOk(m.body.includes('no_such_tool_'), 'no series per unknown name');
  t.match(m.body, /mcp_requests_total\{tool="\(unknown\)",status="denied"\} 30/);
});

t.test('a refused bearer is recorded with its real duration', async (t) => {
  const id = parseApiKey(tokens.dev!)!.id;
  await request(server.url, { headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${id}_${'D'.repeat(43)}` }, body: INIT, from: '127.0.10.1' });
  const rec = authRecords().find((r) => r.client_ip === '127.0.10.1');
  // Before: duration_ms 0. A wrong secret for a known key runs argon2 (tens of ms at least).
  t.ok(rec && rec.outcome.duration_ms >= 5, `duration_ms ${rec?.outcome.duration_ms}`);
});

t.test('auth.oauth.algorithms refuses none and HMAC at config validation', async (t) => {
  const base = { issuer: ISSUER, audience: AUDIENCE, jwks_file: 'j.json' };
  for (const alg of ['none', 'HS256', 'hs512']) {
    const r = configSchema.safeParse({ auth: { oauth: { ...base, algorithms: ['ES256', alg] } } });
    t.notOk(r.success, alg);
    t.match(JSON.stringify(r.error?.issues), /HMAC/, alg);
  }
  t.ok(configSchema.safeParse({ auth: { oauth: { ...base, algorithms: ['ES256', 'EdDSA'] } } }).success);
});
