import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import t from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { INIT, JSON_HEADERS, request, type Reply } from './helpers/http.js';
import { BIN, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { createKey } from '../src/auth/api-keys.js';
import { JWKS_DEFAULTS, JwtVerifier, type JwksTiming } from '../src/auth/oauth.js';
import { ConfigError } from '../src/config/loader.js';
import type { Config } from '../src/config/schema.js';

// Issue 7: JWT access tokens verified against the issuer's JWKS *URL*: a real loopback JWKS
// server, real Bulwark processes for the end-to-end behaviour (defaults: JWKS_DEFAULTS), and
// the verifier in-process with short timings for max age, back-off and each failure mode.

type CryptoKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
type OAuthConfig = NonNullable<Config['auth']['oauth']>;

t.setTimeout(120_000);
// The three groups below share nothing but the JWKS server (each has its own routes), and two of
// them mostly wait on JWKS timeouts and cooldowns: run them side by side.
t.jobs = 3;

const ISSUER = 'https://issuer.test.example';
const AUDIENCE = 'https://bulwark.test.example/mcp';
const D = JWKS_DEFAULTS;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the issuer's keys and tokens ----

let k1: CryptoKey;
let k2: CryptoKey;
let stranger: CryptoKey;
let jwk1: JWK;
let jwk2: JWK;

async function jwt(opts: { kid?: string; key?: CryptoKey; iss?: string; aud?: string; exp?: number | string; sub?: string } = {}): Promise<string> {
  return new SignJWT({ roles: ['developer'] })
    .setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? 'k1' })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setSubject(opts.sub ?? 'svc-reporting')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(opts.key ?? k1);
}

async function issuerKey(kid: string): Promise<{ key: CryptoKey; jwk: JWK }> {
  const pair = await generateKeyPair('ES256', { extractable: true });
  return { key: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

const randomKid = () => `attacker-${Math.random().toString(36).slice(2)}`;

// ---- the loopback JWKS server: one route per scenario, each counting its fetches ----

interface Route {
  hits: number;
  /** When each fetch arrived. */
  times: number[];
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
}
const routes = new Map<string, Route>();
const held = new Set<http.ServerResponse>();
let jwksServer: http.Server;
let jwksBase: string;
/** Another host the redirect route points at: it must never be asked. */
let otherHost: http.Server;
let otherHits = 0;
let otherUrl: string;

function serveJson(res: http.ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
/** Answer nothing until the test ends. */
function hang(res: http.ServerResponse): void {
  held.add(res);
}
function route(p: string, handle: Route['handle']): { url: string; route: Route } {
  const r: Route = { hits: 0, times: [], handle };
  routes.set(p, r);
  return { url: `${jwksBase}${p}`, route: r };
}

async function listen(server: http.Server, host: string): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

// ---- two Bulwark servers: A's issuer is healthy, B's misbehaves on cue ----

let sbA: Sandbox;
let sbB: Sandbox;
let A: HttpServerProcess;
let B: HttpServerProcess;
let apiKeyB: string;
/** `bulwark serve` with a plain-http, non-loopback jwks_url. */
let sbPlain: Sandbox;
let plainHttpBoot: { status: number | null; stderr: string };
let keysA: JWK[] = [];
let routeA: Route;
let modeB: 'hang' | 'garbage' | 'ok' = 'hang';
let routeB: Route;

function sandboxFor(jwksUrl: string): Sandbox {
  return makeSandbox({
    auth: {
      http: 'api_key',
      keys_file: 'keys.json',
      // These tests count JWKS fetches under many refusals; the address lockout would cut them short.
      lockout: { threshold: 1000, base_s: 1, max_s: 1 },
      oauth: { issuer: ISSUER, audience: AUDIENCE, jwks_url: jwksUrl, roles_claim: 'roles', tier: 'local', algorithms: ['ES256'] },
    },
  });
}

t.before(async () => {
  ({ key: k1, jwk: jwk1 } = await issuerKey('k1'));
  ({ key: k2, jwk: jwk2 } = await issuerKey('k2'));
  stranger = (await generateKeyPair('ES256')).privateKey;

  jwksServer = http.createServer((req, res) => {
    const r = routes.get(req.url ?? '');
    if (!r) return void res.writeHead(404).end();
    r.hits += 1;
    r.times.push(Date.now());
    r.handle(req, res);
  });
  jwksBase = await listen(jwksServer, '127.0.0.1');
  otherHost = http.createServer((_req, res) => {
    otherHits += 1;
    serveJson(res, { keys: [jwk1] });
  });
  otherUrl = `${await listen(otherHost, '127.0.0.2')}/jwks.json`;

  keysA = [jwk1];
  const a = route('/a/jwks.json', (_req, res) => serveJson(res, { keys: keysA }));
  routeA = a.route;
  const b = route('/b/jwks.json', (_req, res) => {
    if (modeB === 'hang') return hang(res);
    if (modeB === 'garbage') return void res.writeHead(200, { 'content-type': 'application/json' }).end('<html>not a key set</html>');
    serveJson(res, { keys: [jwk1] });
  });
  routeB = b.route;

  sbA = sandboxFor(a.url);
  sbB = sandboxFor(b.url);
  apiKeyB = (await createKey(path.join(sbB.dir, 'keys.json'), { principal: 'ops', roles: ['developer'], tier: 'local' })).token;
  sbPlain = sandboxFor('http://issuer.example/jwks.json');
  // Started with the servers, and asynchronously: a spawnSync would stall this process (and so
  // the JWKS server) while the other groups run.
  const booted = new Promise<{ status: number | null; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'serve', '--http', '127.0.0.1:0', '--config', sbPlain.configPath],
      { env: cleanChildEnv(), timeout: 20_000 },
      (err, _stdout, stderr) => resolve({ status: err ? (err.code as number | null) : 0, stderr }),
    );
  });
  [A, B, plainHttpBoot] = await Promise.all([startHttpServer(['--config', sbA.configPath]), startHttpServer(['--config', sbB.configPath]), booted]);
});

t.teardown(async () => {
  await Promise.all([A?.stop(), B?.stop()]);
  for (const res of held) res.destroy();
  for (const server of [jwksServer, otherHost]) server?.closeAllConnections();
  await Promise.all([jwksServer, otherHost].map((server) => server && new Promise((r) => server.close(r))));
  sbA?.cleanup();
  sbB?.cleanup();
  sbPlain?.cleanup();
});

function post(server: HttpServerProcess, token: string, from?: string): Promise<Reply> {
  return request(server.url, { headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` }, body: INIT, ...(from ? { from } : {}) });
}
const reasonOf = (r: Reply): string => (JSON.parse(r.body) as { reason: string }).reason;

// ---- end to end: server A, healthy issuer ----

t.test('server A, a healthy issuer', async (t) => {
  t.test('a token signed by a key from the JWKS URL is accepted end to end; the principal reaches the audit log', async (t) => {
    const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(A.url), { requestInit: { headers: { Authorization: `Bearer ${await jwt()}` } } }));
    t.teardown(() => client.close());
    const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
    t.notOk(r.isError, JSON.stringify(r.content));
    t.match(JSON.stringify(r.content), /hello, world/);
    const rec = readAudit(sbA.auditPath)
      .filter((x) => x.tool === 'read_file')
      .at(-1);
    t.same(rec?.principal, { id: 'svc-reporting', roles: ['developer'], auth: 'oauth' });
    t.equal(routeA.hits, 1, 'the JWKS was fetched once and cached for the following requests');
  });

  t.test('bad signature, wrong audience, wrong issuer, expired and alg none are refused 401 without refetching', async (t) => {
    const before = routeA.hits;
    const cases: [string, string, string][] = [
      ['bad signature', await jwt({ key: stranger }), 'auth.jwt_bad_signature'],
      ['wrong audience', await jwt({ aud: 'https://other.example' }), 'auth.jwt_claim_aud'],
      ['wrong issuer', await jwt({ iss: 'https://evil.example' }), 'auth.jwt_claim_iss'],
      ['expired', await jwt({ exp: Math.floor(Date.now() / 1000) - 3600 }), 'auth.jwt_expired'],
      [
        'alg none',
        `${Buffer.from('{"alg":"none","kid":"k1"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'x', exp: 9e9 })).toString('base64url')}.`,
        'auth.jwt_alg_not_allowed',
      ],
      ['signed with a key the JWKS has, but a different kid in the header', await jwt({ kid: 'k1', key: k2 }), 'auth.jwt_bad_signature'],
    ];
    for (const [i, [name, token, reason]] of cases.entries()) {
      const res = await post(A, token, `127.0.0.${10 + i}`);
      t.equal(res.status, 401, name);
      t.equal(reasonOf(res), reason, name);
      t.match(res.headers['www-authenticate'], /error="invalid_token"/, name);
    }
    t.equal(routeA.hits, before, 'a refusal with a known kid never costs the issuer a request');
    const last = readAudit(sbA.auditPath)
      .filter((r) => r.tool === 'http:authenticate')
      .at(-1);
    t.match(last, { principal: null, outcome: { status: 'denied', code: 'unauthenticated', reasons: ['auth.jwt_bad_signature'] } });
  });

  t.test('key rotation: a new kid is picked up within the cooldown; invented kids cost at most one fetch per cooldown', async (t) => {
    const before = routeA.hits;
    keysA = [jwk1, jwk2]; // the issuer publishes k2 and starts signing with it
    const rotatedAt = Date.now();
    const k2Token = await jwt({ kid: 'k2', key: k2, sub: 'svc-rotated' });
    let accepted = false;
    let unknownRefusals = 0;
    let attackerRequests = 0;
    const answers = new Set<string>();
    while (Date.now() - rotatedAt < D.cooldownMs + 6000) {
      // An attacker sends a fresh invented kid all the while; each is an unknown key.
      const [mine, theirs] = await Promise.all([post(A, k2Token), post(A, await jwt({ kid: randomKid() }))]);
      attackerRequests += 1;
      answers.add(`${theirs.status} ${reasonOf(theirs)}`);
      if (mine.status === 200) {
        accepted = true;
        break;
      }
      answers.add(`${mine.status} ${reasonOf(mine)}`);
      unknownRefusals += 1;
      await sleep(100);
    }
    t.same([...answers], ['401 auth.jwt_unknown_key'], 'unknown kids are refused, never accepted unverified');
    const took = Date.now() - rotatedAt;
    t.ok(accepted, 'a token signed with the rotated-in key is accepted');
    t.ok(took <= D.cooldownMs + 3000, `picked up ${took} ms after the rotation (cooldown ${D.cooldownMs} ms)`);
    t.equal(routeA.hits, before + 1, `one refetch for ${unknownRefusals + attackerRequests} unknown-kid requests`);

    // Right after the refetch, a burst of invented kids is inside the cooldown: no fetch at all.
    const burst = await Promise.all(Array.from({ length: 30 }, async (_, i) => post(A, await jwt({ kid: randomKid() }), `127.0.0.${40 + (i % 8)}`)));
    t.same(new Set(burst.map((r) => `${r.status} ${reasonOf(r)}`)), new Set(['401 auth.jwt_unknown_key']));
    t.equal(routeA.hits, before + 1, 'a burst of 30 invented kids within the cooldown fetched nothing');
    t.equal((await post(A, await jwt())).status, 200, 'the old key still verifies while the issuer lists it');
  });

  t.test('a key the issuer removes is still accepted until the cache max age (documented); no fetch is made for it', async (t) => {
    const before = routeA.hits;
    keysA = [jwk2];
    t.equal(
      (await post(A, await jwt())).status,
      200,
      `cached for up to ${D.maxAgeMs / 1000} s (JWKS_DEFAULTS.maxAgeMs); the in-process test below shows the refusal after it`,
    );
    t.equal(routeA.hits, before);
  });
});

// ---- end to end: server B, an issuer that hangs, then serves garbage, then recovers ----

t.test('server B, an issuer that hangs, then serves garbage, then recovers', async (t) => {
  let hangRefusedAt = 0;
  t.test('a hanging JWKS endpoint: 401 auth.jwks_unavailable within the timeout, the server stays healthy, failures back off', async (t) => {
    const start = Date.now();
    let settled = false;
    const pending = post(B, await jwt(), '127.0.0.60').finally(() => (settled = true));
    while (routeB.hits === 0 && Date.now() - start < 5000) await sleep(20);
    t.equal(routeB.hits, 1, 'the JWT request made Bulwark fetch the JWKS');
    // While the fetch hangs, other requests are served: they do not queue behind it.
    const [health, keyed, meta] = await Promise.all([
      request(`${B.base}/health`, { method: 'GET' }),
      post(B, apiKeyB),
      request(`${B.base}/.well-known/oauth-protected-resource/mcp`, { method: 'GET' }),
    ]);
    t.equal(health.status, 200, '/health during the hang');
    t.equal(keyed.status, 200, 'an API key request during the hang');
    t.equal(meta.status, 200);
    t.notOk(settled, 'all three answered while the JWT request still waits on the JWKS');
    // A second JWT arriving during the hang waits for the same fetch; it does not start another.
    const second = await post(B, await jwt(), '127.0.0.61');
    const res = await pending;
    hangRefusedAt = Date.now();
    const took = hangRefusedAt - start;
    t.equal(res.status, 401);
    t.equal(reasonOf(res), 'auth.jwks_unavailable');
    t.equal(second.status, 401);
    t.equal(reasonOf(second), 'auth.jwks_unavailable');
    // From the request's start: the fetch began a little later (B's first request, under load).
    t.ok(took >= D.timeoutMs && took <= D.timeoutMs + 3000, `refused ${took} ms after the request (timeout ${D.timeoutMs} ms)`);
    t.equal(routeB.hits, 1, 'one fetch for both requests');

    // Just after the failure: refused at once, no new fetch (back-off for the cooldown).
    const t1 = Date.now();
    const again = await post(B, await jwt({ kid: randomKid() }), '127.0.0.62');
    t.equal(again.status, 401);
    t.equal(reasonOf(again), 'auth.jwks_unavailable');
    t.ok(Date.now() - t1 < D.timeoutMs - 1000, 'answered without waiting on the issuer again');
    t.equal(routeB.hits, 1);
    t.equal(B.child.exitCode, null, 'the server is still running');
  });

  t.test('garbage from the JWKS URL is auth.jwks_invalid; once it serves keys again, tokens are accepted', async (t) => {
    modeB = 'garbage';
    const failedAt = Date.now();
    const reasons = new Set<string>();
    while (Date.now() - failedAt < D.cooldownMs + 6000) {
      const r = await post(B, await jwt(), '127.0.0.63');
      reasons.add(`${r.status} ${reasonOf(r)}`);
      if (r.status !== 401 || reasonOf(r) === 'auth.jwks_invalid') break;
      await sleep(200);
    }
    t.same([...reasons], ['401 auth.jwks_unavailable', '401 auth.jwks_invalid'], 'unavailable during the back-off, then invalid: never accepted, never a 500');
    const waited = (routeB.times[1] ?? 0) - hangRefusedAt;
    t.ok(waited >= D.cooldownMs - 1000, `the retry waited for the cooldown: ${waited} ms after the failure`);
    t.equal(routeB.hits, 2, 'one retry for all those requests');

    modeB = 'ok';
    const fixedAt = Date.now();
    let status = 401;
    const meanwhile = new Set<string>();
    while (status !== 200 && Date.now() - fixedAt < D.cooldownMs + 6000) {
      const r = await post(B, await jwt(), '127.0.0.64');
      status = r.status;
      if (status !== 200) {
        meanwhile.add(`${r.status} ${reasonOf(r)}`);
        await sleep(200);
      }
    }
    t.same([...meanwhile], ['401 auth.jwks_invalid'], 'the last failure, until the next retry');
    t.equal(status, 200, `accepted ${Date.now() - fixedAt} ms after the issuer recovered`);
    t.equal(routeB.hits, 3);
    const reasonsAudited = readAudit(sbB.auditPath)
      .filter((r) => r.tool === 'http:authenticate')
      .map((r) => r.outcome.reasons[0]);
    t.ok(reasonsAudited.includes('auth.jwks_unavailable') && reasonsAudited.includes('auth.jwks_invalid'), 'both reasons are in the audit log');
    t.equal(B.child.exitCode, null);
    t.notMatch(B.stderr(), /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'no token in the log');
  });
});

// ---- in process, short timings ----

function cfg(jwksUrl: string): OAuthConfig {
  return {
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks_url: jwksUrl,
    roles_claim: 'roles',
    principal_claim: 'sub',
    tier: 'standard',
    clock_skew_s: 30,
    algorithms: ['ES256'],
  } as OAuthConfig;
}
const FAST: Partial<JwksTiming> = { timeoutMs: 500, cooldownMs: 300, maxAgeMs: 1200, maxBytes: 8192 };
const verifier = (url: string, timing: Partial<JwksTiming> = FAST) => new JwtVerifier(cfg(url), '/nonexistent', timing);

t.test('the verifier in-process, with short timings', async (t) => {
  t.test('jwks_url must be https unless the host is loopback; no credentials in it', async (t) => {
    for (const bad of ['http://issuer.example/jwks.json', 'http://10.0.0.1/jwks.json', 'ftp://issuer.example/jwks.json', 'http://127.0.0.1.nip.io/jwks.json']) {
      t.throws(() => verifier(bad), ConfigError, bad);
      t.throws(() => verifier(bad), /auth\.oauth\.jwks_url: must be https/, bad);
    }
    t.throws(() => verifier('https://user:pass@issuer.example/jwks.json'), /must not carry credentials/);
    for (const good of [
      'https://issuer.example/.well-known/jwks.json',
      'http://127.0.0.1:1/jwks.json',
      'http://localhost:1/jwks.json',
      'http://[::1]:1/jwks.json',
    ]) {
      t.doesNotThrow(() => verifier(good), good);
    }
    // The process refuses to start on such a configuration (exit 2, the configuration error).
    const r = plainHttpBoot;
    t.equal(r.status, 2, r.stderr);
    t.match(r.stderr, /auth\.oauth\.jwks_url: must be https/);
  });

  t.test('each way the JWKS URL can fail refuses the token with a stable reason and a detail', async (t) => {
    const closed = http.createServer();
    const closedUrl = `${await listen(closed, '127.0.0.1')}/jwks.json`;
    await new Promise((r) => closed.close(r));
    const { privateKey: pk } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = { ...(await exportJWK(pk)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const cases: [string, string, string, RegExp][] = [
      ['connection refused', closedUrl, 'auth.jwks_unavailable', /could not be fetched: ECONNREFUSED/],
      ['HTTP 500', route('/f/500', (_q, s) => void s.writeHead(500).end('{"keys":[]}')).url, 'auth.jwks_unavailable', /HTTP 500/],
      ['HTTP 404', `${jwksBase}/f/nothing-here`, 'auth.jwks_unavailable', /HTTP 404/],
      [
        'redirect to another host',
        route('/f/redirect', (_q, s) => void s.writeHead(302, { location: otherUrl }).end()).url,
        'auth.jwks_unavailable',
        /HTTP 302 \(redirects are not followed\)/,
      ],
      ['not JSON', route('/f/garbage', (_q, s) => void s.writeHead(200).end('\u0000\u0001garbage')).url, 'auth.jwks_invalid', /did not return JSON/],
      ['JSON, not a key set', route('/f/not-a-set', (_q, s) => serveJson(s, { keys: 'all of them' })).url, 'auth.jwks_invalid', /did not return a key set/],
      ['a private key as a member', route('/f/private', (_q, s) => serveJson(s, { keys: [privateJwk] })).url, 'auth.jwks_invalid', /./],
      [
        'oversized, with a content-length',
        route('/f/big', (_q, s) => {
          const body = JSON.stringify({ keys: [jwk1], pad: 'x'.repeat(100_000) });
          s.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
        }).url,
        'auth.jwks_invalid',
        /larger than 8192 bytes/,
      ],
      [
        'oversized, chunked without a length',
        route('/f/big-chunked', (_q, s) => {
          s.writeHead(200, { 'content-type': 'application/json' });
          for (let i = 0; i < 50; i++) s.write(`${i === 0 ? '{"pad":"' : ''}${'y'.repeat(1000)}`);
          s.end('"}');
        }).url,
        'auth.jwks_invalid',
        /larger than 8192 bytes/,
      ],
      ['no answer', route('/f/hang', (_q, s) => hang(s)).url, 'auth.jwks_unavailable', /did not answer within 500 ms/],
      [
        'headers, then the body stalls',
        route('/f/stall', (_q, s) => {
          s.writeHead(200, { 'content-type': 'application/json' });
          s.write('{"keys":[');
          hang(s);
        }).url,
        'auth.jwks_unavailable',
        /did not answer within 500 ms/,
      ],
    ];
    const token = await jwt();
    await Promise.all(
      cases.map(async ([name, url, reason, detail]) => {
        const v = verifier(url);
        const started = Date.now();
        const r = await v.verify(token);
        t.match(r, { ok: false, reason }, name);
        if (!r.ok) t.match(r.detail, detail, name);
        t.ok(Date.now() - started <= 500 + 2000, `${name}: settled in ${Date.now() - started} ms`);
        t.equal(v.remote?.fetches, 1, name);
      }),
    );
    t.equal(otherHits, 0, 'the redirect target was never asked');
    // The same verifier on a good URL accepts, so the refusals above are the URL's doing.
    t.match(await verifier(route('/f/good', (_q, s) => serveJson(s, { keys: [jwk1] })).url).verify(token), {
      ok: true,
      principal: { id: 'svc-reporting', auth: 'oauth' },
    });
  });

  t.test('a removed key is refused once the cache is older than maxAgeMs', async (t) => {
    let keys = [jwk1];
    const r = route('/m/jwks.json', (_q, s) => serveJson(s, { keys }));
    const v = verifier(r.url);
    const token = await jwt();
    t.match(await v.verify(token), { ok: true });
    const fetchedAt = Date.now();
    keys = [jwk2];
    t.match(await v.verify(token), { ok: true }, 'cached: still accepted before maxAgeMs');
    t.equal(r.route.hits, 1);
    await sleep(FAST.maxAgeMs! - (Date.now() - fetchedAt) + 50);
    t.match(await v.verify(token), { ok: false, reason: 'auth.jwt_unknown_key' }, 'refused after maxAgeMs');
    t.equal(r.route.hits, 2);
    t.match(await v.verify(await jwt({ kid: 'k2', key: k2 })), { ok: true }, 'the remaining key verifies');
  });

  t.test('stale keys are never used: issuer down after maxAgeMs refuses every token until it answers again', async (t) => {
    let up = true;
    const r = route('/s/jwks.json', (_q, s) => (up ? serveJson(s, { keys: [jwk1] }) : void s.writeHead(503).end()));
    const v = verifier(r.url);
    const token = await jwt();
    t.match(await v.verify(token), { ok: true });
    up = false;
    await sleep(FAST.maxAgeMs! + 50);
    t.match(await v.verify(token), { ok: false, reason: 'auth.jwks_unavailable', detail: /HTTP 503/ });
    up = true;
    await sleep(FAST.cooldownMs! + 50);
    t.match(await v.verify(token), { ok: true }, 'recovered after the back-off');
    t.equal(r.route.hits, 3);
  });

  t.test('bounds on fetches: concurrent first requests share one; failures and invented kids are spaced by the cooldown', async (t) => {
    const slow = route('/b2/slow', (_q, s) => void setTimeout(() => serveJson(s, { keys: [jwk1] }), 200));
    const v1 = verifier(slow.url);
    const results = await Promise.all(Array.from({ length: 25 }, async () => v1.verify(await jwt())));
    t.ok(results.every((x) => x.ok));
    t.equal(slow.route.hits, 1, '25 concurrent first requests, one fetch');

    const down = route('/b2/down', (_q, s) => void s.writeHead(500).end());
    const v2 = verifier(down.url);
    const started = Date.now();
    let n = 0;
    const seen = new Set<string>();
    while (Date.now() - started < 1000) {
      const r = await v2.verify(await jwt({ kid: randomKid() }));
      seen.add(r.ok ? 'accepted' : r.reason);
      n += 1;
    }
    t.same([...seen], ['auth.jwks_unavailable']);
    const allowed = Math.ceil((Date.now() - started) / FAST.cooldownMs!) + 1;
    t.ok(n > 20, `${n} requests`);
    t.ok(down.route.hits <= allowed, `${down.route.hits} fetches for ${n} requests to a failing issuer (bound ${allowed})`);
    t.ok(down.route.hits >= 2, 'but it is retried');

    const up = route('/b2/up', (_q, s) => serveJson(s, { keys: [jwk1] }));
    const v3 = verifier(up.url);
    const began = Date.now();
    let m = 0;
    const seen3 = new Set<string>();
    while (Date.now() - began < 1000) {
      const r = await v3.verify(await jwt({ kid: randomKid() }));
      seen3.add(r.ok ? 'accepted' : r.reason);
      m += 1;
    }
    t.same([...seen3], ['auth.jwt_unknown_key']);
    const bound = Math.ceil((Date.now() - began) / FAST.cooldownMs!) + 1;
    t.ok(up.route.hits <= bound && up.route.hits >= 2, `${up.route.hits} fetches for ${m} invented kids (bound ${bound})`);
  });
});
