/**
 * Principal attributes with the PostgreSQL key store (sql/api-keys-postgres.sql): `bulwark keys
 * create --attr` stores them in the `attributes` column, servers carry them into the principal,
 * and row filters by `attributes.region` hold over HTTP with the MCP SDK client. A table created
 * by the release before attributes keeps working (servers read it; `keys install-schema` upgrades
 * it in place), and attributes are fixed for a key's life like the rest of it.
 *
 * Real PostgreSQL from scripts/run-tests.mjs (PGURL); without it this file fails, never skips.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import postgres from 'postgres';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { BIN, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { bearerClient } from './helpers/bearer.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { customerRegions, customersWithOrders, refusalOf, runShapes, writePolicyData, type ShapeRun } from './helpers/regional.js';
import { KEYS_POSTGRES_SQL } from '../src/auth/postgres-key-store.js';
import { mintKey } from '../src/auth/api-keys.js';

t.setTimeout(300_000);

const PGURL = process.env.PGURL;

/**
 * The schema as the release before attributes shipped it: today's file without the attributes
 * column and its guard clause (each asserted present, so an edit of the file cannot make this a
 * copy of today's schema unnoticed).
 */
function schemaBeforeAttributes(): string {
  const now = fs.readFileSync(KEYS_POSTGRES_SQL, 'utf8');
  const column = /\n-- Verified principal attributes[\s\S]*?ALTER TABLE bulwark_api_key ADD COLUMN IF NOT EXISTS attributes[^;]*;\n/;
  const guard = '\n       OR NEW.attributes IS DISTINCT FROM OLD.attributes';
  if (!column.test(now) || !now.includes(guard)) throw new Error('sql/api-keys-postgres.sql changed: update schemaBeforeAttributes');
  return now.replace(column, '\n').replace(guard, '');
}

if (!PGURL) {
  t.fail('PGURL is not set: run with scripts/run-tests.mjs, which starts PostgreSQL');
} else {
  const suffix = crypto.randomBytes(4).toString('hex');
  const keysDb = `bulwark_attr_keys_${suffix}`;
  const cluster = postgres(PGURL, { max: 1, onnotice: () => undefined });
  const logins = { server: `bwa_server_${suffix}`, operator: `bwa_operator_${suffix}` };
  const passwords = { server: crypto.randomBytes(12).toString('hex'), operator: crypto.randomBytes(12).toString('hex') };
  const urlFor = (user?: string, password?: string): string => {
    const u = new URL(PGURL);
    if (user) {
      u.username = user;
      u.password = password as string;
    }
    u.pathname = `/${keysDb}`;
    return u.toString();
  };
  const adminUrl = urlFor();
  const serverUrl = urlFor(logins.server, passwords.server);
  const operatorUrl = urlFor(logins.operator, passwords.operator);
  let admin: postgres.Sql;
  let db: TestDatabase;
  let sb: Sandbox;
  let server: HttpServerProcess;
  let truth: Map<number, string>;
  let withOrders: Set<number>;
  const clients: Client[] = [];

  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'keys', ...args], { encoding: 'utf8', env: cleanChildEnv() });
  const create = (principal: string, roles: string, ...attrs: string[]) =>
    cli('create', '--principal', principal, '--roles', roles, ...attrs.flatMap((a) => ['--attr', a]), '--store', operatorUrl, '--json');
  const created = (r: ReturnType<typeof cli>): { key: string; id: string } => {
    if (r.status !== 0) throw new Error(`keys create failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { key: string; id: string };
  };
  const client = async (token: string): Promise<Client> => {
    const c = await bearerClient(server.url, token);
    clients.push(c);
    return c;
  };
  const leaks = (runs: readonly ShapeRun[]) => runs.filter((r) => r.error || r.got.join(',') !== r.want.join(','));

  t.before(async () => {
    db = await createTestDatabase();
    truth = await customerRegions(db.adminUrl);
    withOrders = await customersWithOrders(db.adminUrl);
    await cluster.unsafe(`CREATE DATABASE ${keysDb}`);
    admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
    // The previous release's schema, as an operator would have installed it.
    await admin.unsafe(schemaBeforeAttributes());
    for (const who of ['server', 'operator'] as const) await cluster.unsafe(`CREATE ROLE ${logins[who]} LOGIN PASSWORD '${passwords[who]}'`);
    await admin.unsafe(`GRANT bulwark_keys_reader TO ${logins.server}`);
    await admin.unsafe(`GRANT bulwark_keys_admin TO ${logins.operator}`);
    sb = makeSandbox({
      auth: { http: 'api_key', store: 'postgres', postgres_url: serverUrl, reload_check_ms: 100 },
      database: { url: db.readerUrl, statement_timeout_ms: 5000 },
    });
    fs.appendFileSync(sb.configPath, `policy:\n  data: ${JSON.stringify(writePolicyData(sb.dir))}\n`);
  });
  t.teardown(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await server?.stop();
    sb?.cleanup();
    await admin?.end({ timeout: 5 });
    await cluster.unsafe(`DROP DATABASE IF EXISTS ${keysDb} WITH (FORCE)`);
    for (const login of Object.values(logins)) await cluster.unsafe(`DROP ROLE IF EXISTS ${login}`);
    await cluster.end({ timeout: 5 });
    await db?.drop();
  });

  t.test('a table from before attributes: keys still work; --attr asks for install-schema; install-schema upgrades in place', async (t) => {
    const cols = async () =>
      (await admin`SELECT column_name FROM information_schema.columns WHERE table_name = 'bulwark_api_key'`).map((r) => r.column_name as string);
    t.notOk((await cols()).includes('attributes'), 'the old table has no attributes column');
    const old = created(create('olga', 'regional'));
    server = await startHttpServer(['--config', sb.configPath]);
    const before = await refusalOf(await client(old.key), 'SELECT id FROM customers');
    t.same(
      [before.error?.code, before.error?.reasons],
      ['policy_error', ['sql.row_filter_attribute']],
      'the old key authenticates (no attributes: the filter refuses)',
    );
    const orders = await (await client(old.key)).callTool({ name: 'query_database', arguments: { sql: 'SELECT count(*)::int AS n FROM orders', params: [] } });
    t.same((orders.structuredContent as { rows: unknown[] }).rows, [{ n: 200 }], 'and its unfiltered queries run');

    const refused = create('nora', 'regional', 'region=north');
    t.equal(refused.status, 1, 'an attribute cannot be stored in the old table');
    t.match(refused.stderr, /install-schema/, 'the message says what to run');
    t.equal((await admin`SELECT count(*)::int AS n FROM bulwark_api_key`)[0]?.n, 1, 'nothing was stored');

    const doctor = () => {
      const r = spawnSync(process.execPath, [BIN, 'doctor', '--config', sb.configPath, '--json'], { encoding: 'utf8', env: cleanChildEnv() });
      const out = JSON.parse(r.stdout) as { checks: { check: string; ok: boolean; detail: string }[] };
      return out.checks.find((c) => c.check === 'keys');
    };
    const stale = doctor();
    t.equal(stale?.ok, false, 'doctor flags the old key table');
    t.match(stale?.detail, /predates key attributes.*install-schema/, String(stale?.detail));

    const install = cli('install-schema', adminUrl);
    t.equal(install.status, 0, install.stderr);
    const fresh = doctor();
    t.equal(fresh?.ok, true, `doctor is content after the upgrade: ${fresh?.detail}`);
    t.ok((await cols()).includes('attributes'), 'the column was added');
    t.same((await admin`SELECT attributes FROM bulwark_api_key WHERE id = ${old.id}`)[0]?.attributes, {}, 'the old key gets no attributes');
    t.equal(cli('install-schema', adminUrl).status, 0, 'and again: idempotent');
    const again = await refusalOf(await client(old.key), 'SELECT id FROM customers');
    t.same(again.error?.reasons, ['sql.row_filter_attribute'], 'the old key still authenticates after the upgrade');
  });

  t.test('keys create --attr into PostgreSQL; list shows them; every shape filtered per key over HTTP', async (t) => {
    const north = created(create('nora', 'regional', 'region=north', 'tenant_id=42'));
    const west = created(create('will', 'regional', 'region=west'));
    const multi = created(create('mia', 'multi_region', 'regions=south', 'regions=east'));
    const list = cli('list', '--store', operatorUrl, '--json');
    t.equal(list.status, 0, list.stderr);
    const rows = (JSON.parse(list.stdout) as { keys: { id: string; attributes: unknown }[] }).keys;
    t.same(rows.find((k) => k.id === north.id)?.attributes, { region: 'north', tenant_id: '42' });
    t.same(rows.find((k) => k.id === multi.id)?.attributes, { regions: ['south', 'east'] });
    t.notMatch(list.stdout, passwords.operator);
    t.same((await admin`SELECT attributes FROM bulwark_api_key WHERE id = ${west.id}`)[0]?.attributes, { region: 'west' }, 'a jsonb object in the column');

    for (const [key, regions] of [
      [north.key, ['north']],
      [west.key, ['west']],
      [multi.key, ['south', 'east']],
    ] as const) {
      const runs = await runShapes(await client(key), regions, truth, withOrders);
      t.same(leaks(runs), [], `${regions.join(' and ')}: every shape returns exactly those rows`);
    }
    const c = await client(north.key);
    const { requestId } = await refusalOf(c, "SELECT count(*)::int AS n FROM customers WHERE region <> 'north'");
    const rec = readAudit(sb.auditPath).find((r) => r.request_id === requestId);
    t.match(rec, { principal: { id: 'nora', auth: 'api_key' }, outcome: { status: 'ok' }, facts: { sql: { row_filters: { tables: ['public.customers'] } } } });
  });

  t.test('attributes are fixed for the life of a key, and checked again when read', async (t) => {
    const k = created(create('fay', 'regional', 'region=north'));
    await t.rejects(
      admin`UPDATE bulwark_api_key SET attributes = '{"region": "south"}' WHERE id = ${k.id}`,
      /only revocation may change a key/,
      'the guard trigger refuses a change',
    );
    const operator = postgres(operatorUrl, { max: 1, onnotice: () => undefined });
    t.teardown(() => operator.end({ timeout: 5 }));
    await t.rejects(operator`UPDATE bulwark_api_key SET attributes = '{}' WHERE id = ${k.id}`, /permission denied/, 'operators may update revoked only');
    await t.rejects(
      admin`INSERT INTO bulwark_api_key (id, principal, roles, tier, created, hash, attributes)
      VALUES ('00000000000000aa', 'x', '{regional}', 'local', now(), '$argon2id$x', '"north"')`,
      /bulwark_api_key_attributes_object/,
      'a non-object is refused by the table',
    );

    // A row written by hand with an attribute the server would misread: the key is refused.
    const { token, record } = await mintKey({ principal: 'hand', roles: ['regional'], tier: 'local' });
    await admin`INSERT INTO bulwark_api_key (id, principal, roles, tier, created, hash, attributes)
      VALUES (${record.id}, 'hand', '{regional}', 'local', now(), ${record.hash}, ${JSON.stringify({ Region: 'north' })}::text::jsonb)`;
    let status = 0;
    for (let i = 0; i < 50 && status !== 401; i++) {
      const r = await fetch(server.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
        }),
      });
      status = r.status;
      await r.body?.cancel();
      if (status !== 401) await new Promise((res) => setTimeout(res, 100));
    }
    t.equal(status, 401, 'a key whose stored attributes are not well-formed is refused');
    t.match(server.stderr(), /principal, role or attribute that is not well-formed/);
  });
}
