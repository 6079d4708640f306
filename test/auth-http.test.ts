import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

type CryptoKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
import { INIT, JSON_HEADERS, request, type Reply } from './helpers/http.js';
import { BIN, makeSandbox, readAudit } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { createKey, parseApiKey } from '../src/auth/api-keys.js';
import { isDenialCode } from '../src/core/codes.js';

t.setTimeout(240_000);

const ISSUER = 'https://issuer.test.example';
const AUDIENCE = 'https://bulwark.test.example/mcp';

async function bearerClient(url: string, token: string): Promise<Client> {
  const client = new Client({ name: 'bulwark-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  return client;
}

/** A secret in the configuration (an upstream's header): it must never reach a log or the audit log. */
const UPSTREAM_SECRET = 'UPSTREAM-CANARY-5d1e8b2a';

const sb = makeSandbox({
  observability: { log_level: 'debug' },
  apis: { vault: { base_url: 'https://api.example.invalid/', headers: { 'x-api-key': UPSTREAM_SECRET } } },
  auth: {
    http: 'api_key',
    keys_file: 'keys.json',
    lockout: { threshold: 4, base_s: 30, max_s: 60 },
    oauth: { issuer: ISSUER, audience: AUDIENCE, jwks_file: 'jwks.json', roles_claim: 'roles', tier: 'local', scopes_supported: ['mcp:tools'] },
  },
  limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 }, tiny: { capacity: 2, refill_per_s: 0.001 } }, default_tier: 'local' },
});
const keysFile = path.join(sb.dir, 'keys.json');
let server: HttpServerProcess;
let alice: string;
let tiny: string;
let scraper: string;
let signer: CryptoKey;
let stranger: CryptoKey;

async function jwt(claims: Record<string, unknown>, opts: { key?: CryptoKey; iss?: string; aud?: string; exp?: number | string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setSubject('svc-reporting')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '5m')
    .sign(opts.key ?? signer);
}

t.before(async () => {
  alice = (await createKey(keysFile, { principal: 'alice', roles: ['developer'], tier: 'local' })).token;
  tiny = (await createKey(keysFile, { principal: 'tiny-bot', roles: ['developer'], tier: 'tiny' })).token;
  scraper = (await createKey(keysFile, { principal: 'scraper', roles: ['metrics'], tier: 'local' })).token;
  const pair = await generateKeyPair('ES256', { extractable: true });
  signer = pair.privateKey;
  stranger = (await generateKeyPair('ES256')).privateKey;
  fs.writeFileSync(path.join(sb.dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  server = await startHttpServer(['--config', sb.configPath]);
});
t.teardown(async () => {
  await server.stop();
  sb.cleanup();
});

t.test('401 with WWW-Authenticate naming the RFC 9728 metadata; the metadata document', async (t) => {
  const none = await request(server.url, { headers: JSON_HEADERS, body: INIT });
  t.equal(none.status, 401);
  const wellKnown = `${server.base}/.well-known/oauth-protected-resource/mcp`;
  t.equal(none.headers['www-authenticate'], `Bearer resource_metadata="${wellKnown}"`);
  t.match(JSON.parse(none.body), { error: 'unauthenticated', reason: 'auth.missing', message: String });
  const bad = await request(server.url, { headers: { ...JSON_HEADERS, authorization: 'Bearer bwk_0123456789abcdef_' + 'x'.repeat(43) }, body: INIT });
  t.equal(bad.status, 401);
  t.match(bad.headers['www-authenticate'], /error="invalid_token"/);
  const meta = await request(wellKnown, { method: 'GET' });
  t.equal(meta.status, 200);
  t.same(JSON.parse(meta.body), {
    resource: server.url,
    authorization_servers: [ISSUER],
    bearer_methods_supported: ['header'],
    scopes_supported: ['mcp:tools'],
    resource_name: 'Bulwark MCP server',
  });
  t.equal((await request(`${server.base}/health`, { method: 'GET' })).status, 200, '/health stays open');
  const recs = readAudit(sb.auditPath).filter((r) => r.tool === 'http:authenticate');
  t.ok(recs.length >= 2, 'refused authentications are audited');
  t.match(recs.at(-1), {
    principal: null,
    outcome: { status: 'denied', code: 'unauthenticated', reasons: ['auth.unknown_key'] },
    args: { key_id: '0123456789abcdef' },
  });
  // The answer and the record name the refusal alike (the answer used to say `unauthorized`).
  const badBody = JSON.parse(bad.body);
  t.same({ error: badBody.error, reason: badBody.reason }, { error: recs.at(-1)!.outcome.code, reason: recs.at(-1)!.outcome.reasons[0] });
  for (const r of [none, bad]) t.ok(isDenialCode(JSON.parse(r.body).error), 'the error is a registry code');
});

t.test('an API key over the SDK transport: the principal reaches the gate, the policy and the audit log', async (t) => {
  const client = await bearerClient(server.url, alice);
  t.teardown(() => client.close());
  const tools = await client.listTools();
  t.ok(tools.tools.some((x) => x.name === 'read_file'));
  const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  t.notOk(r.isError, JSON.stringify(r.content));
  const rec = readAudit(sb.auditPath)
    .filter((x) => x.tool === 'read_file')
    .at(-1);
  t.same(rec?.principal, { id: 'alice', roles: ['developer'], auth: 'api_key' });
});

t.test('rate tiers per principal: rate_limited with retry_after_s', async (t) => {
  const client = await bearerClient(server.url, tiny);
  t.teardown(() => client.close());
  const results = [];
  for (let i = 0; i < 3; i++) results.push(await client.callTool({ name: 'file_info', arguments: { path: 'hello.txt' } }));
  t.notOk(results[0]!.isError);
  t.notOk(results[1]!.isError);
  t.ok(results[2]!.isError);
  t.match(results[2]!.structuredContent, { error: { code: 'rate_limited', reasons: ['rate.principal'] } });
  t.ok(((results[2]!.structuredContent as any).error.retry_after_s as number) >= 1);
});

t.test('JWT access tokens: accepted from the issuer, refused otherwise', async (t) => {
  const good = await jwt({ roles: ['developer'] });
  const client = await bearerClient(server.url, good);
  t.teardown(() => client.close());
  const r = await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } });
  t.notOk(r.isError, JSON.stringify(r.content));
  const rec = readAudit(sb.auditPath)
    .filter((x) => x.tool === 'read_file')
    .at(-1);
  t.same(rec?.principal, { id: 'svc-reporting', roles: ['developer'], auth: 'oauth' });

  const cases: [string, string, string][] = [
    ['bad signature', await jwt({ roles: ['developer'] }, { key: stranger }), 'auth.jwt_bad_signature'],
    ['wrong audience', await jwt({ roles: ['developer'] }, { aud: 'https://other.example' }), 'auth.jwt_claim_aud'],
    ['wrong issuer', await jwt({ roles: ['developer'] }, { iss: 'https://evil.example' }), 'auth.jwt_claim_iss'],
    ['expired', await jwt({ roles: ['developer'] }, { exp: Math.floor(Date.now() / 1000) - 3600 }), 'auth.jwt_expired'],
    [
      'alg none',
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'x', exp: 9e9 })).toString('base64url')}.`,
      'auth.',
    ],
  ];
  for (const [name, token, reason] of cases) {
    const res = await request(server.url, {
      headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` },
      body: INIT,
      from: `127.0.0.${10 + cases.findIndex((c) => c[0] === name)}`,
    });
    t.equal(res.status, 401, name);
    t.match(JSON.parse(res.body).reason, reason, name);
    t.equal(JSON.parse(res.body).error, 'unauthenticated', name);
  }
});

t.test('/metrics needs a bearer and exposes the named series', async (t) => {
  const anonymous = await request(`${server.base}/metrics`, { method: 'GET' });
  t.equal(anonymous.status, 401);
  t.match(JSON.parse(anonymous.body), { error: 'unauthenticated', reason: 'auth.missing' });
  // Issue 17: a principal without the `metrics` (or `admin`) role is refused.
  const roleless = await request(`${server.base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${alice}` } });
  t.equal(roleless.status, 403);
  t.match(JSON.parse(roleless.body), { error: 'policy_denied', reason: 'auth.role_required', message: /metrics, admin/ });
  for (const r of [anonymous, roleless]) t.ok(isDenialCode(JSON.parse(r.body).error), 'the error is a registry code');
  const m = await request(`${server.base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${scraper}` } });
  t.equal(m.status, 200);
  for (const series of [
    'mcp_requests_total{tool="read_file",status="ok"}',
    'mcp_request_duration_seconds_bucket{le=',
    'mcp_policy_decisions_total{decision="allow",code="none"}',
    'mcp_rate_limited_total{scope="principal"}',
    'mcp_active_connections',
    'mcp_audit_append_duration_seconds_count',
    'mcp_worker_pool_size{pool=',
    'mcp_worker_kills',
    'mcp_auth_total{outcome="refused"',
    'mcp_gate_stage_total{stage="authenticate",outcome="pass"}',
  ]) {
    t.ok(m.body.includes(series.replace('mcp_request_duration_seconds_bucket{le=', 'mcp_request_duration_seconds_bucket{')), series);
  }
});

t.test('lockout over HTTP: 429 with Retry-After once failures pass the threshold', async (t) => {
  const id = parseApiKey(alice)!.id;
  const wrong = `bwk_${id}_${'B'.repeat(43)}`;
  const statuses: number[] = [];
  let last: Reply | undefined;
  for (let i = 0; i < 8; i++) {
    last = await request(server.url, { headers: { ...JSON_HEADERS, authorization: `Bearer ${wrong}` }, body: INIT, from: '127.0.0.2' });
    statuses.push(last.status);
  }
  t.same(statuses, [401, 401, 401, 401, 429, 429, 429, 429]);
  t.ok(Number(last!.headers['retry-after']) >= 1);
  const locked = JSON.parse(last!.body);
  t.match(locked, { error: 'rate_limited', reason: 'auth.locked_out', retry_after_s: Number(last!.headers['retry-after']) });
  t.ok(isDenialCode(locked.error), 'the error is a registry code');
  const otherId = parseApiKey(tiny)!.id;
  const other = await request(server.url, {
    headers: { ...JSON_HEADERS, authorization: `Bearer bwk_${otherId}_${'C'.repeat(43)}` },
    body: INIT,
    from: '127.0.0.2',
  });
  // Issue 17: locks are per (key id, address) plus a budget per address (4 × threshold = 16 here):
  // another key id from this address still gets its verification.
  t.equal(other.status, 401, 'another key id from the address is not locked by the first one');
  // The holder of the key, whose proof is cached, is not locked out by someone guessing.
  const client = await bearerClient(server.url, alice);
  t.notOk((await client.callTool({ name: 'file_info', arguments: { path: 'hello.txt' } })).isError);
  await client.close();
});

t.test('keys revoke against the running server: refused within reload_check_ms (1 s) although its proof was cached', async (t) => {
  const c = spawnSync(process.execPath, [BIN, 'keys', 'create', '--principal', 'temp', '--roles', 'developer', '--config', sb.configPath, '--json'], {
    env: cleanChildEnv(),
    encoding: 'utf8',
  });
  t.equal(c.status, 0, c.stderr);
  const { key, id } = JSON.parse(c.stdout) as { key: string; id: string };
  const headers = { ...JSON_HEADERS, authorization: `Bearer ${key}` };
  await new Promise((r) => setTimeout(r, 1100)); // the server notices the new key within the bound too
  t.equal((await request(server.url, { headers, body: INIT, from: '127.0.0.30' })).status, 200);
  t.equal((await request(server.url, { headers, body: INIT, from: '127.0.0.30' })).status, 200, 'served from the cached proof');
  t.equal(spawnSync(process.execPath, [BIN, 'keys', 'revoke', id, '--config', sb.configPath], { env: cleanChildEnv() }).status, 0);
  const revokedAt = Date.now();
  let status = 200;
  while (status === 200 && Date.now() - revokedAt < 5000) {
    status = (await request(server.url, { headers, body: INIT, from: '127.0.0.30' })).status;
    if (status === 200) await new Promise((r) => setTimeout(r, 100));
  }
  const took = Date.now() - revokedAt;
  t.equal(status, 401);
  t.ok(took <= 1500, `refused ${took} ms after the revoke returned`);
  t.ok(fs.existsSync(`${keysFile}.usage.json`), 'last_used sidecar written');
  const list = JSON.parse(
    spawnSync(process.execPath, [BIN, 'keys', 'list', '--config', sb.configPath, '--json'], { env: cleanChildEnv(), encoding: 'utf8' }).stdout,
  );
  t.ok(list.keys.find((k: { principal: string }) => k.principal === 'alice').last_used, 'keys list shows last_used');
});

t.test('no secret reaches the logs or the audit log', async (t) => {
  const secrets = [alice, tiny, parseApiKey(alice)!.secret, parseApiKey(tiny)!.secret, UPSTREAM_SECRET];
  const stderr = server.stderr();
  const audit = fs.readFileSync(sb.auditPath, 'utf8');
  for (const s of secrets) {
    t.notOk(stderr.includes(s), 'stderr');
    t.notOk(audit.includes(s), 'audit');
  }
  t.notOk(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/.test(stderr + audit), 'no JWT either');
  t.match(stderr, /"request_id":"[0-9a-f-]{36}"/, 'refusals are logged with a request id');
  t.match(stderr, /"message":"authenticated"[^\n]*"principal":"alice"/, 'the authenticated principal is logged (debug)');
  t.equal(spawnSync(process.execPath, [BIN, 'audit', 'verify', sb.auditPath], { env: cleanChildEnv(), encoding: 'utf8' }).status, 0);
});
