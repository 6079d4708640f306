import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t from 'tap';
import { BIN, makeSandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { loadConfig } from '../src/config/loader.js';
import { createLogger } from '../src/observability/logger.js';
import { AuthRuntime } from '../src/auth/runtime.js';
import { createKey, parseApiKey, readKeyFile, revokeKey, usageFileOf, withKeyFileLock } from '../src/auth/api-keys.js';
import { Lockout } from '../src/auth/lockout.js';
import { PostgresKeyStore } from '../src/auth/postgres-key-store.js';
import { redactUrl } from '../src/config/redact-url.js';
import { generateKeyPair, SignJWT } from 'jose';

t.setTimeout(600_000);
const logger = createLogger('error');

function runtime(configPath: string, hooks: ConstructorParameters<typeof AuthRuntime>[3] = {}): AuthRuntime {
  const { config } = loadConfig({ file: configPath });
  return new AuthRuntime(config, path.dirname(configPath), logger, hooks);
}

t.test('key format and parsing', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  const { token, record } = await createKey(file, { principal: 'alice', roles: ['developer'], tier: 'local' });
  t.match(token, /^bwk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const parsed = parseApiKey(token);
  t.equal(parsed?.id, record.id);
  t.equal(Buffer.from(parsed!.secret, 'base64url').length, 32, '32 random bytes');
  t.equal(parseApiKey(token.slice(0, -10)), null, 'a truncated secret is not even shaped like a key');
  t.equal(parseApiKey('bwk_zz_abc'), null);
  const stored = fs.readFileSync(file, 'utf8');
  t.notOk(stored.includes(parsed!.secret), 'the secret is not stored');
  t.match(readKeyFile(file).keys[0]!.hash, /^\$argon2id\$/);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
});

t.test('verify, proof cache, wrong / truncated / other-key secrets, expiry', async (t) => {
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json' } });
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  const a = await createKey(file, { principal: 'alice', roles: ['developer', 'analyst'], tier: 'local' });
  const b = await createKey(file, { principal: 'bob', roles: ['viewer'], tier: 'local' });
  const old = await createKey(file, { principal: 'carol', roles: ['viewer'], tier: 'local', expiresInMs: 1000, now: new Date(Date.now() - 60_000) });
  let runs = 0;
  const auth = runtime(sb.configPath, { onArgon2: () => (runs += 1) });

  const ok = await auth.authenticate(`Bearer ${a.token}`, '10.0.0.1');
  t.ok(ok.ok);
  if (ok.ok) t.same(ok.principal, { id: 'alice', roles: ['developer', 'analyst'], auth: 'api_key', tier: 'local' });
  t.equal(runs, 1);
  for (let i = 0; i < 20; i++) t.ok((await auth.authenticate(`Bearer ${a.token}`, '10.0.0.1')).ok);
  t.equal(runs, 1, 'a verified key is not hashed again within the proof TTL');

  const pa = parseApiKey(a.token)!;
  const pb = parseApiKey(b.token)!;
  const other = await auth.authenticate(`Bearer bwk_${pa.id}_${pb.secret}`, '10.0.0.2');
  t.same({ ok: other.ok, reason: (other as any).reason }, { ok: false, reason: 'auth.bad_secret' }, "another key's secret is refused");
  const flipped = pa.secret.slice(0, -1) + (pa.secret.endsWith('A') ? 'B' : 'A');
  t.notOk((await auth.authenticate(`Bearer bwk_${pa.id}_${flipped}`, '10.0.0.3')).ok, 'one changed character is refused');
  t.match(await auth.authenticate(`Bearer ${a.token.slice(0, -8)}`, '10.0.0.4'), { ok: false, status: 401, reason: 'auth.malformed_token' }, 'truncated');
  t.match(await auth.authenticate(undefined, '10.0.0.5'), { ok: false, status: 401, reason: 'auth.missing' });
  t.match(await auth.authenticate(`Basic ${a.token}`, '10.0.0.5'), { ok: false, status: 401, reason: 'auth.malformed_header' });
  t.match(await auth.authenticate(`Bearer ${old.token}`, '10.0.0.6'), { ok: false, status: 401, reason: 'auth.key_expired' });
  t.match(await auth.authenticate(`Bearer bwk_0123456789abcdef_${pa.secret}`, '10.0.0.7'), { ok: false, reason: 'auth.unknown_key' });
  t.ok((await auth.authenticate(`Bearer ${b.token}`, '10.0.0.8')).ok, 'the other key still works');
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '10.0.0.9')).ok, 'a wrong guess did not evict the holder');

  await auth.close();
  const usage = JSON.parse(fs.readFileSync(usageFileOf(file), 'utf8'));
  t.ok(usage[pa.id], 'last_used recorded in the sidecar');
});

t.test('a revoked key stops working within reload_check_ms (cached proof dropped)', async (t) => {
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json', reload_check_ms: 200 } });
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  const a = await createKey(file, { principal: 'alice', roles: ['developer'], tier: 'local' });
  const auth = runtime(sb.configPath);
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '::1')).ok);
  t.ok(await revokeKey(file, a.record.id));
  await new Promise((r) => setTimeout(r, 250));
  t.match(
    await auth.authenticate(`Bearer ${a.token}`, '::1'),
    { ok: false, reason: 'auth.key_revoked' },
    'revoked within the bound although a proof was cached',
  );
});

t.test('lockout: exponential back-off, 429 without argon2, per (key id, address) and per address', async (t) => {
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json', lockout: { threshold: 3, address_threshold: 4, base_s: 10, max_s: 100 } } });
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  const a = await createKey(file, { principal: 'alice', roles: ['developer'], tier: 'local' });
  const b = await createKey(file, { principal: 'bob', roles: ['developer'], tier: 'local' });
  let clock = Date.now();
  let runs = 0;
  const auth = runtime(sb.configPath, { now: () => clock, onArgon2: () => (runs += 1) });
  const pa = parseApiKey(a.token)!;
  const wrong = `Bearer bwk_${pa.id}_${'A'.repeat(43)}`;
  for (let i = 0; i < 3; i++) t.match(await auth.authenticate(wrong, '203.0.113.9'), { ok: false, status: 401 });
  t.equal(runs, 3);
  for (let i = 0; i < 50; i++) {
    const r = await auth.authenticate(wrong, '203.0.113.9');
    t.equal(r.ok ? 0 : r.status, 429);
  }
  t.equal(runs, 3, 'no argon2 while locked');
  const locked = await auth.authenticate(wrong, '203.0.113.9');
  t.ok(!locked.ok && locked.retryAfterS! >= 1 && locked.retryAfterS! <= 10, 'Retry-After within the first back-off');
  // The same key id from another address is not locked (issue 17: key ids are public, so a lock per
  // key id alone would let anyone lock its holder out) — it gets its verification …
  t.match(await auth.authenticate(wrong, '198.51.100.1'), { ok: false, status: 401, reason: 'auth.bad_secret' });
  t.equal(runs, 4);
  // An address past its budget (4): unknown ids are cheap refusals that spend it …
  for (let i = 0; i < 4; i++)
    t.match(await auth.authenticate(`Bearer bwk_00000000000000${i}a_${'A'.repeat(43)}`, '203.0.113.20'), {
      ok: false,
      status: 401,
      reason: 'auth.unknown_key',
    });
  t.match(await auth.authenticate(`Bearer bwk_00000000000000${1}a_${'A'.repeat(43)}`, '203.0.113.20'), { ok: false, status: 429 });
  // … yet a holder on that shared address, whose key id never failed from it, is verified;
  t.ok((await auth.authenticate(`Bearer ${b.token}`, '203.0.113.20')).ok, 'a valid key on a locked shared address');
  // a guess at a key id that never failed there gets one attempt, which locks that pair at once.
  const wrongB = `Bearer bwk_${parseApiKey(b.token)!.id}_${'A'.repeat(43)}`;
  const before = runs;
  t.match(await auth.authenticate(wrongB, '203.0.113.20'), { ok: false, status: 401, reason: 'auth.bad_secret' });
  t.match(await auth.authenticate(wrongB, '203.0.113.20'), { ok: false, status: 429 });
  t.equal(runs - before, 1, 'one argon2 run per key id on a locked address');
  // After the back-off one more failure doubles it.
  clock += 10_001;
  t.match(await auth.authenticate(wrong, '203.0.113.9'), { ok: false, status: 401 });
  const again = await auth.authenticate(wrong, '203.0.113.9');
  t.ok(!again.ok && again.status === 429 && again.retryAfterS! > 10 && again.retryAfterS! <= 20, `doubled (${(again as any).retryAfterS} s)`);
  // The right key from a clean address after the lock expires.
  clock += 100_001;
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '192.0.2.7')).ok);
});

t.test('Lockout is bounded in memory', async (t) => {
  const l = new Lockout({ threshold: 1, baseMs: 1000, maxMs: 1000, forgetMs: 1000 }, Date.now, 100);
  for (let i = 0; i < 1000; i++) l.failure(`ip:${i}`);
  t.equal(l.retryAfterS('ip:0'), 0, 'the oldest were forgotten');
  t.ok(l.retryAfterS('ip:999') > 0);
});

t.test('CLI: keys create | list | revoke', async (t) => {
  const sb = makeSandbox({ auth: { keys_file: 'k/keys.json' } });
  t.teardown(sb.cleanup);
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'keys', ...args, '--config', sb.configPath], { encoding: 'utf8', env: cleanChildEnv() });
  const c = run('create', '--principal', 'ci-bot', '--roles', 'developer,ops', '--expires', '30d', '--json');
  t.equal(c.status, 0, c.stderr);
  const created = JSON.parse(c.stdout);
  t.match(created.key, /^bwk_/);
  t.equal(created.store, path.join(sb.dir, 'k', 'keys.json'));
  t.notOk('hash' in created);
  const secret = parseApiKey(created.key)!.secret;
  const l = run('list', '--json');
  t.equal(l.status, 0);
  t.notOk(l.stdout.includes(secret));
  t.notOk(l.stdout.includes('argon2'), 'no hashes either');
  t.match(JSON.parse(l.stdout).keys[0], {
    id: created.id,
    principal: 'ci-bot',
    roles: ['developer', 'ops'],
    tier: 'local',
    revoked: null,
    last_used: null,
    state: 'active',
  });
  t.equal(run('create', '--principal', 'x', '--roles', 'a', '--tier', 'nope').status, 2, 'unknown tier');
  t.equal(run('create', '--roles', 'a').status, 2, 'principal required');
  t.equal(run('revoke', created.id).status, 0);
  t.equal(JSON.parse(run('list', '--json').stdout).keys[0].state, 'revoked');
  t.equal(run('revoke', 'ffffffffffffffff').status, 1);
});

t.test('the fast path: one argon2 run for many calls, and again only after the proof expires', async (t) => {
  // Timings live in `npm run bench` (scripts/bench/auth.mjs); here the count of argon2 runs is what must hold.
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json', proof_ttl_s: 60 } });
  t.teardown(sb.cleanup);
  const a = await createKey(path.join(sb.dir, 'keys.json'), { principal: 'alice', roles: ['developer'], tier: 'local' });
  let clock = Date.now();
  let runs = 0;
  const auth = runtime(sb.configPath, { now: () => clock, onArgon2: () => (runs += 1) });
  const first = await Promise.all(Array.from({ length: 16 }, () => auth.authenticate(`Bearer ${a.token}`, '::1')));
  t.ok(first.every((r) => r.ok));
  t.equal(runs, 1, '16 concurrent first calls share one argon2 run');
  for (let i = 0; i < 500; i++) await auth.authenticate(`Bearer ${a.token}`, '::1');
  t.equal(runs, 1);
  clock += 60_001;
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '::1')).ok);
  t.equal(runs, 2, 'argon2 again once the proof TTL passed');
  await auth.close();
});

t.test('concurrent `keys create` runs: the lock keeps every key', async (t) => {
  const sb = makeSandbox({ auth: { keys_file: 'keys.json' } });
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  const n = 8;
  const runs = await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [BIN, 'keys', 'create', '--principal', `bot-${i}`, '--roles', 'reader', '--config', sb.configPath, '--json'], {
            env: cleanChildEnv(),
          });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
          child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
          child.on('close', (status) => resolve({ status, stdout, stderr }));
        }),
    ),
  );
  for (const r of runs) t.equal(r.status, 0, r.stderr);
  const ids = runs.map((r) => JSON.parse(r.stdout).id as string).sort();
  t.same(
    readKeyFile(file)
      .keys.map((k) => k.id)
      .sort(),
    ids,
    'all eight keys are in the store',
  );
  t.notOk(fs.existsSync(`${file}.lock`), 'the lock is released');
  // Eight concurrent revokes of different keys: every one lands.
  await Promise.all(ids.map((id) => revokeKey(file, id)));
  t.ok(readKeyFile(file).keys.every((k) => k.revoked !== null));
});

t.test('a lock left by a dead process is broken; a live holder is waited for', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  fs.writeFileSync(`${file}.lock`, `${dead.stdout}\n`);
  await createKey(file, { principal: 'after-crash', roles: ['reader'], tier: 'local' });
  t.equal(readKeyFile(file).keys.length, 1, 'a crashed holder does not block the store');
  // A live holder (this process) keeps others waiting until it lets go.
  const order: string[] = [];
  const holder = withKeyFileLock(file, () => {
    order.push('holder');
  });
  const waiting = createKey(file, { principal: 'waiter', roles: ['reader'], tier: 'local' }).then(() => order.push('waiter'));
  await Promise.all([holder, waiting]);
  t.same(order, ['holder', 'waiter']);
  t.equal(readKeyFile(file).keys.length, 2);
});

t.test('an unreadable store: the last good copy serves for max_stale_s, then keys are refused (503), and it recovers', async (t) => {
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json', reload_check_ms: 100, max_stale_s: 5 } });
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  const a = await createKey(file, { principal: 'alice', roles: ['developer'], tier: 'local' });
  const good = fs.readFileSync(file, 'utf8');
  let clock = Date.now();
  const auth = runtime(sb.configPath, { now: () => clock });
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '::1')).ok);
  fs.writeFileSync(file, '{ "version": 1, "keys": [ {"id": tr');
  clock += 1000;
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '::1')).ok, 'within max_stale_s the last good copy answers');
  t.ok(auth.storeProblem, 'the problem is known');
  clock += 5000;
  t.match(await auth.authenticate(`Bearer ${a.token}`, '::1'), { ok: false, status: 503, reason: 'auth.store_unavailable' }, 'fail closed once stale');
  t.notOk(auth.storeFresh);
  fs.writeFileSync(file, good);
  clock += 200;
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '::1')).ok, 'served again once readable');
  t.ok(auth.storeFresh);
  await auth.close();
});

t.test('a key created after the server read the store works at once (no failure counted)', async (t) => {
  const sb = makeSandbox({ auth: { http: 'api_key', keys_file: 'keys.json', reload_check_ms: 60_000, lockout: { threshold: 1 } } });
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'keys.json');
  await createKey(file, { principal: 'first', roles: ['reader'], tier: 'local' });
  const auth = runtime(sb.configPath);
  await auth.start();
  await new Promise((r) => setTimeout(r, 150));
  const b = await createKey(file, { principal: 'late', roles: ['reader'], tier: 'local' });
  t.ok((await auth.authenticate(`Bearer ${b.token}`, '::1')).ok, 'the unknown id made the runtime look again');
  t.ok((await auth.authenticate(`Bearer ${b.token}`, '::1')).ok, 'and no lockout was engaged');
  await auth.close();
});

t.test("an unreachable JWKS is not the client's fault: no lockout strike, API keys from that address still work", async (t) => {
  const sb = makeSandbox({
    auth: {
      http: 'api_key',
      keys_file: 'keys.json',
      lockout: { threshold: 2, address_threshold: 2, base_s: 60 },
      // Port 1 on loopback: connection refused at once.
      oauth: { issuer: 'https://issuer.test.example', audience: 'bulwark', jwks_url: 'http://127.0.0.1:1/jwks.json' },
    },
  });
  t.teardown(sb.cleanup);
  const a = await createKey(path.join(sb.dir, 'keys.json'), { principal: 'alice', roles: ['developer'], tier: 'local' });
  const auth = runtime(sb.configPath);
  const { privateKey } = await generateKeyPair('ES256');
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer('https://issuer.test.example')
    .setAudience('bulwark')
    .setSubject('svc')
    .setExpirationTime('5m')
    .sign(privateKey);
  for (let i = 0; i < 5; i++) t.match(await auth.authenticate(`Bearer ${token}`, '198.51.100.7'), { ok: false, status: 401, reason: 'auth.jwks_unavailable' });
  t.ok((await auth.authenticate(`Bearer ${a.token}`, '198.51.100.7')).ok, 'the address is not locked');
  // A forged token (the issuer is not the fault) still counts.
  const junk = `${Buffer.from('{"alg":"none"}').toString('base64url')}.e30.`;
  await auth.authenticate(`Bearer ${junk}`, '198.51.100.8');
  await auth.authenticate(`Bearer ${junk}`, '198.51.100.8');
  t.match(await auth.authenticate(`Bearer ${junk}`, '198.51.100.8'), { ok: false, status: 429 });
  await auth.close();
});

t.test('a store URL is shown without its password (the one redactUrl, shared with the audit log and Redis)', async (t) => {
  const store = new PostgresKeyStore('postgres://bulwark_reader:s3cr3t-pw@127.0.0.1:1/keys');
  t.teardown(() => store.close());
  t.equal(store.where, 'postgres://bulwark_reader:***@127.0.0.1:1/keys');
  t.equal(redactUrl('postgres://u:pw@[::1/db'), 'postgres:(unparseable url)', 'a URL that does not parse shows its scheme only');
  t.equal(redactUrl('postgresql://host/db'), 'postgresql://host/db', 'nothing to hide');
  const message = 'connect to redis://:hunter2@10.0.0.1:6379 failed; retrying rediss://user:pw@cache:6380/0';
  t.equal(redactUrl(message), 'connect to redis://***@10.0.0.1:6379 failed; retrying rediss://***@cache:6380/0');
  t.equal(redactUrl('connect ECONNREFUSED 127.0.0.1:6379'), 'connect ECONNREFUSED 127.0.0.1:6379');
});
