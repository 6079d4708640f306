import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import postgres from 'postgres';
import { BIN, makeSandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { INIT, JSON_HEADERS, request, type Reply } from './helpers/http.js';
import { parseApiKey } from '../src/auth/api-keys.js';
import { installKeysSchema, PostgresKeyStore } from '../src/auth/postgres-key-store.js';

// A real PostgreSQL, started by scripts/run-tests.mjs. Without it this file fails (never skips).
const PGURL = process.env.PGURL;
t.setTimeout(240_000);

if (!PGURL) {
  t.fail('PGURL is not set: run the suite with `npm test` (scripts/run-tests.mjs starts PostgreSQL and sets PGURL)');
} else {
  const suffix = crypto.randomBytes(4).toString('hex');
  const dbName = `bulwark_keys_${suffix}`;
  const cluster = postgres(PGURL, { max: 1, onnotice: () => undefined });
  const urlFor = (user: string, password: string, db = dbName): string => {
    const u = new URL(PGURL);
    u.username = user;
    u.password = password;
    u.pathname = `/${db}`;
    return u.toString();
  };
  const adminUrl = (() => {
    const u = new URL(PGURL);
    u.pathname = `/${dbName}`;
    return u.toString();
  })();
  const logins = { server: `bwk_server_${suffix}`, operator: `bwk_operator_${suffix}`, flaky: `bwk_flaky_${suffix}` };
  const passwords = {
    server: crypto.randomBytes(12).toString('hex'),
    operator: crypto.randomBytes(12).toString('hex'),
    flaky: crypto.randomBytes(12).toString('hex'),
  };
  const serverUrl = urlFor(logins.server, passwords.server);
  const operatorUrl = urlFor(logins.operator, passwords.operator);
  const flakyUrl = urlFor(logins.flaky, passwords.flaky);
  let admin: postgres.Sql;

  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'keys', ...args], { encoding: 'utf8', env: cleanChildEnv() });
  const createKeyCli = (principal: string, roles: string): { key: string; id: string } => {
    const r = cli('create', '--principal', principal, '--roles', roles, '--store', operatorUrl, '--json');
    if (r.status !== 0) throw new Error(`keys create failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { key: string; id: string };
  };
  const call = async (server: HttpServerProcess, key: string, from = '127.0.0.1'): Promise<Reply> => {
    const send = () => request(server.url, { headers: { ...JSON_HEADERS, authorization: `Bearer ${key}` }, body: INIT, from });
    try {
      return await send();
    } catch (err) {
      // A kept-alive socket the server closed as we reused it (its keepAliveTimeout): send once more.
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' || server.child.exitCode !== null) throw err;
      return send();
    }
  };

  const sandboxFor = (url: string, extra: Record<string, unknown> = {}) =>
    makeSandbox({ auth: { http: 'api_key', store: 'postgres', postgres_url: url, ...extra } });

  t.before(async () => {
    await cluster.unsafe(`CREATE DATABASE ${dbName}`);
    const install = cli('install-schema', adminUrl);
    if (install.status !== 0) throw new Error(`install-schema: ${install.stderr}`);
    await installKeysSchema(adminUrl); // idempotent
    admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
    for (const who of ['server', 'operator', 'flaky'] as const) {
      await cluster.unsafe(`CREATE ROLE ${logins[who]} LOGIN PASSWORD '${passwords[who]}'`);
    }
    await admin.unsafe(`GRANT bulwark_keys_reader TO ${logins.server}, ${logins.flaky}`);
    await admin.unsafe(`GRANT bulwark_keys_admin TO ${logins.operator}`);
  });
  t.teardown(async () => {
    await admin?.end({ timeout: 5 });
    await cluster.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    for (const login of Object.values(logins)) await cluster.unsafe(`DROP ROLE IF EXISTS ${login}`);
    await cluster.end({ timeout: 5 });
  });

  t.test('two replicas share the store: a new key works on both at once, a revocation reaches both', async (t) => {
    // reload_check_ms is a minute: what makes both replicas see the changes quickly is
    // LISTEN/NOTIFY (revocation) and the re-read on an unknown key id (creation).
    // Two replicas: the same key store, each its own audit log (one writer per log file).
    const sbA = sandboxFor(serverUrl, { reload_check_ms: 60_000 });
    const sbB = sandboxFor(serverUrl, { reload_check_ms: 60_000 });
    t.teardown(() => {
      sbA.cleanup();
      sbB.cleanup();
    });
    const a = await startHttpServer(['--config', sbA.configPath]);
    t.teardown(() => a.stop());
    const b = await startHttpServer(['--config', sbB.configPath]);
    t.teardown(() => b.stop());
    const { key, id } = createKeyCli('alice', 'developer');
    t.equal((await call(a, key)).status, 200, 'replica A accepts the new key');
    t.equal((await call(b, key)).status, 200, 'replica B accepts the new key');
    t.equal((await call(a, key)).status, 200, 'and again from the cached proof');

    const list = cli('list', '--store', operatorUrl, '--json');
    t.equal(list.status, 0, list.stderr);
    const listed = JSON.parse(list.stdout) as { store: string; keys: { id: string; principal: string; state: string }[] };
    t.match(
      listed.keys.find((k) => k.id === id),
      { principal: 'alice', state: 'active' },
    );
    t.notMatch(list.stdout, passwords.operator, 'the store is shown without its password');
    t.notMatch(list.stdout, parseApiKey(key)!.secret);
    t.notMatch(list.stdout, /argon2/);

    const revoke = cli('revoke', id, '--store', operatorUrl);
    t.equal(revoke.status, 0, revoke.stderr);
    const revokedAt = Date.now();
    const refusedBy = async (server: HttpServerProcess): Promise<number> => {
      for (;;) {
        const r = await call(server, key);
        if (r.status === 401) {
          t.equal(JSON.parse(r.body).reason, 'auth.key_revoked');
          return Date.now() - revokedAt;
        }
        if (Date.now() - revokedAt > 5000) return Infinity;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const [tookA, tookB] = await Promise.all([refusedBy(a), refusedBy(b)]);
    t.ok(tookA < 1000 && tookB < 1000, `both replicas refuse the revoked key (${tookA} / ${tookB} ms) although they poll only every minute`);
    for (const s of [a, b]) {
      t.equal(s.child.exitCode, null, 'the replica is still running');
      t.notMatch(s.stderr(), passwords.server, 'the store password never reaches the logs');
    }
  });

  t.test('last_used is recorded in the usage table', async (t) => {
    const sb = sandboxFor(serverUrl);
    t.teardown(sb.cleanup);
    const s = await startHttpServer(['--config', sb.configPath]);
    t.teardown(() => s.stop());
    const { key, id } = createKeyCli('usage-bot', 'reader');
    const before = Date.now();
    t.equal((await call(s, key)).status, 200);
    await s.stop(); // SIGTERM flushes last-used times
    const list = JSON.parse(cli('list', '--store', operatorUrl, '--json').stdout) as { keys: { id: string; last_used: string | null }[] };
    const lastUsed = list.keys.find((k) => k.id === id)?.last_used;
    t.ok(lastUsed && Date.parse(lastUsed) >= before - 1000, `last_used ${lastUsed}`);
  });

  t.test('the roles: servers read only; operators create and revoke; nobody deletes or un-revokes', async (t) => {
    const { id } = createKeyCli('rights', 'reader');
    const server = postgres(serverUrl, { max: 1, onnotice: () => undefined });
    const operator = postgres(operatorUrl, { max: 1, onnotice: () => undefined });
    t.teardown(async () => {
      await server.end({ timeout: 5 });
      await operator.end({ timeout: 5 });
    });
    const code = async (q: Promise<unknown>): Promise<string> => {
      try {
        await q;
        return 'ok';
      } catch (err) {
        return (err as { code?: string }).code ?? 'error';
      }
    };
    t.equal(await code(server`SELECT id FROM bulwark_api_key`), 'ok', 'servers read keys');
    t.equal(
      await code(
        server`INSERT INTO bulwark_api_key (id, principal, roles, tier, created, hash) VALUES ('0123456789abcdef', 'evil', '{admin}', 'premium', now(), '$argon2id$x')`,
      ),
      '42501',
      'a server cannot mint a key',
    );
    t.equal(await code(server`UPDATE bulwark_api_key SET roles = '{admin}' WHERE id = ${id}`), '42501', 'a server cannot change a key');
    t.equal(await code(server`UPDATE bulwark_api_key SET revoked = NULL WHERE id = ${id}`), '42501');
    t.equal(await code(operator`UPDATE bulwark_api_key SET roles = '{admin}' WHERE id = ${id}`), '42501', 'operators may only revoke (column grant)');
    t.equal(await code(operator`DELETE FROM bulwark_api_key WHERE id = ${id}`), '42501', 'no DELETE grant');
    t.equal(await code(admin`DELETE FROM bulwark_api_key WHERE id = ${id}`), '42501', 'even the owner cannot delete a key (trigger)');
    t.equal(await code(admin`TRUNCATE bulwark_api_key CASCADE`), '42501', 'nor truncate');
    t.equal(await code(admin`UPDATE bulwark_api_key SET roles = '{admin}' WHERE id = ${id}`), '42501', 'nor change anything but revocation');
    t.equal(cli('revoke', id, '--store', operatorUrl).status, 0);
    const [first] = await admin`SELECT revoked FROM bulwark_api_key WHERE id = ${id}`;
    t.equal(cli('revoke', id, '--store', operatorUrl).status, 0, 'revoking twice is fine');
    const [second] = await admin`SELECT revoked FROM bulwark_api_key WHERE id = ${id}`;
    t.same(second?.revoked, first?.revoked, 'and keeps the first time');
    t.equal(await code(admin`UPDATE bulwark_api_key SET revoked = NULL WHERE id = ${id}`), '42501', 'a revocation is final, even for the owner');
    t.equal(cli('revoke', 'ffffffffffffffff', '--store', operatorUrl).status, 1, 'no such key');
    const asServer = cli('create', '--principal', 'x', '--roles', 'reader', '--store', serverUrl);
    t.equal(asServer.status, 1, "keys create with the servers' login fails");
    t.match(asServer.stderr, /permission denied/);
    t.notMatch(asServer.stderr, passwords.server);
  });

  t.test('the store unreachable: last good copy until max_stale_s, then 503 (audited), then recovery', async (t) => {
    const sb = sandboxFor(flakyUrl, { reload_check_ms: 200, max_stale_s: 2 });
    t.teardown(sb.cleanup);
    const s = await startHttpServer(['--config', sb.configPath]);
    t.teardown(() => s.stop());
    const { key } = createKeyCli('flaky-user', 'developer');
    const lastServed = Date.now();
    t.equal((await call(s, key)).status, 200);
    // Take the login away and cut its connections: every poll now fails.
    const cut = Date.now();
    await cluster.unsafe(`ALTER ROLE ${logins.flaky} NOLOGIN`);
    await cluster`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${logins.flaky}`;
    t.equal((await call(s, key)).status, 200, 'a moment later the last good copy still answers');
    let r = await call(s, key);
    while (r.status === 200 && Date.now() - cut < 10_000) {
      await new Promise((res) => setTimeout(res, 100));
      r = await call(s, key);
    }
    const took = Date.now() - cut;
    const sinceGood = Date.now() - lastServed;
    t.equal(r.status, 503, 'refused once the copy is older than max_stale_s');
    // The last good poll ran at most reload_check_ms (200) before that last served call began.
    t.ok(sinceGood >= 1800 && took < 6000, `after ${took} ms (${sinceGood} ms after the last good read began; max_stale_s 2)`);
    t.match(JSON.parse(r.body), { error: 'unavailable', reason: 'auth.store_unavailable' });
    t.ok(r.headers['retry-after']);
    const ready = await request(`${s.base}/ready`, { method: 'GET' });
    t.equal(ready.status, 503);
    t.match(JSON.parse(ready.body), { status: 'not_ready', checks: { key_store: false } });

    await cluster.unsafe(`ALTER ROLE ${logins.flaky} LOGIN`);
    const back = Date.now();
    r = await call(s, key);
    while (r.status !== 200 && Date.now() - back < 10_000) {
      await new Promise((res) => setTimeout(res, 100));
      r = await call(s, key);
    }
    t.equal(r.status, 200, 'served again once the store answers');
    t.equal((await request(`${s.base}/ready`, { method: 'GET' })).status, 200);
    t.notMatch(s.stderr(), passwords.flaky, 'the password is not logged with the errors');
    t.match(s.stderr(), /the API key store could not be read/);
  });

  t.test("doctor: the servers' login passes; an operator login or a missing schema is reported", async (t) => {
    const doctorWith = (url: string) => {
      const sb = sandboxFor(url);
      const r = spawnSync(process.execPath, [BIN, 'doctor', '--config', sb.configPath, '--json'], { env: cleanChildEnv(), encoding: 'utf8' });
      sb.cleanup();
      const keys = (JSON.parse(r.stdout) as { checks: { check: string; ok: boolean; detail: string }[] }).checks.find((c) => c.check === 'keys');
      return { status: r.status, keys, out: r.stdout + r.stderr };
    };
    const good = doctorWith(serverUrl);
    t.match(good.keys, { ok: true, detail: /active of/ }, good.out);
    const operator = doctorWith(operatorUrl);
    t.match(operator.keys, { ok: false, detail: /can create or change keys/ });
    t.equal(operator.status, 1);
    const noSchema = doctorWith(urlFor(logins.server, passwords.server, 'postgres'));
    t.match(noSchema.keys, { ok: false, detail: /sql\/api-keys-postgres\.sql/ });
    for (const d of [good, operator, noSchema]) t.notMatch(d.out, new RegExp(`${passwords.server}|${passwords.operator}`), 'no password in the report');
  });

  t.test('PostgresKeyStore.poll reads only when the stamp moves', async (t) => {
    const store = new PostgresKeyStore(serverUrl);
    t.teardown(() => store.close());
    const first = await store.poll('');
    t.ok(first && first.keys.length > 0);
    t.equal(await store.poll(first!.stamp), null, 'unchanged: nothing re-read');
    createKeyCli('stamp', 'reader');
    const after = await store.poll(first!.stamp);
    t.ok(after && after.keys.length === first!.keys.length + 1, 'a new key moves the stamp');
    t.ok(after!.keys.every((k) => k.hash.startsWith('$argon2id$')));
  });
}
