/**
 * Principal attributes (issue 13 item 3): verified facts about a caller (region, tenant) that row
 * filters take values from, `{"principal": "attributes.region"}`. They come from the API key
 * (`bulwark keys create --attr`, file store here; PostgreSQL store in
 * principal-attributes-postgres.test.ts), from an access token's claims mapped by
 * auth.oauth.attributes, or from the configured local principal; never from the request.
 *
 * The database is the real PostgreSQL scripts/run-tests.mjs starts (PGURL); the server is the real
 * `bulwark serve` over HTTP, called with the MCP SDK client.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { stringify } from 'yaml';
import { BIN, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { httpClient, startHttpServer, stdioClient, type HttpServerProcess } from './helpers/clients.js';
import { bearerClient, errorOf } from './helpers/bearer.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { BY_REGION, customerRegions, customersWithOrders, refusalOf, runShapes, SHAPES, writePolicyData, type ShapeRun } from './helpers/regional.js';
import { attributesProblems, frozenAttributes, MAX_ATTRIBUTES } from '../src/core/principal-attributes.js';
import { attributesOf } from '../src/cli/keys-commands.js';
import { claimAttributes } from '../src/auth/oauth.js';
import { applyRowFilters, loadRowFilterDeparser, parseRowFilters, type RowFilterPrincipal } from '../src/analysis/sql-row-filter.js';
import { initSqlAnalysis } from '../src/analysis/sql.js';
import { ConfigError, loadConfig } from '../src/config/loader.js';
import { DenialError } from '../src/core/denial.js';
import { policyInput } from '../src/policy/input.js';

t.setTimeout(300_000);

function refusal(fn: () => unknown): DenialError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DenialError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

// ---------------------------------------------------------------------------------------------
// The rules, without services

t.test('attribute rules: names, values, lists, bounds', async (t) => {
  t.same(attributesProblems({ region: 'eu', tenant_id: '42', teams: ['a', 'b'] }), [], 'strings and a list of strings');
  t.same(attributesProblems(undefined), [], 'none');
  const bad: [unknown, string][] = [
    [{ Region: 'eu' }, 'an upper-case name'],
    [{ '1region': 'eu' }, 'a name starting with a digit'],
    [{ __proto__x: 'eu' }, 'a name starting with _'],
    [{ 'region.x': 'eu' }, 'a dotted name'],
    [{ ['a'.repeat(64)]: 'eu' }, 'a 64-character name'],
    [{ region: '' }, 'an empty value'],
    [{ region: 'x'.repeat(257) }, 'a 257-character value'],
    [{ region: 'eu\u0000' }, 'a NUL'],
    [{ region: 'e\u202eu' }, 'a bidi override'],
    [{ region: '\ud800' }, 'a lone surrogate'],
    [{ region: 42 }, 'a number'],
    [{ region: true }, 'a boolean'],
    [{ region: { a: 'b' } }, 'an object'],
    [{ region: [] }, 'an empty list'],
    [{ region: ['eu', 1] }, 'a list with a number'],
    [{ region: Array.from({ length: 33 }, (_, i) => `r${i}`) }, 'a list of 33'],
    [Object.fromEntries(Array.from({ length: MAX_ATTRIBUTES + 1 }, (_, i) => [`a${i}`, 'v'])), 'one attribute too many'],
    [Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`a${i}`, 'v'.repeat(256)])), 'more than 4 KiB'],
    [['region', 'eu'], 'a list instead of an object'],
    ['region=eu', 'a string'],
  ];
  for (const [value, why] of bad) t.ok(attributesProblems(value).length > 0, why);
  t.same(frozenAttributes({ b: 'x', a: ['1', '2'] }), { a: ['1', '2'], b: 'x' });
  t.ok(Object.isFrozen(frozenAttributes({ a: ['1'] })!.a), 'lists are frozen too');
  t.equal(frozenAttributes({}), undefined, 'no attributes: absent');
  t.throws(() => frozenAttributes({ Region: 'eu' }));
});

t.test('keys create --attr: NAME=VALUE, the same name again makes a list', async (t) => {
  t.same(attributesOf(['region=eu', 'tenant_id=42']), { region: 'eu', tenant_id: '42' });
  t.same(attributesOf(['regions=north', 'regions=east']), { regions: ['north', 'east'] });
  t.same(attributesOf(['note=a=b']), { note: 'a=b' }, 'the first = splits');
  t.same(attributesOf([]), {});
  for (const bad of [['region'], ['=eu'], ['Region=eu'], ['region='], ['region=\u0007']]) t.type(attributesOf(bad), 'string', JSON.stringify(bad));
});

t.test('OAuth claims mapped to attributes: wrong types and missing claims leave the attribute absent', async (t) => {
  const mapping = {
    region: 'region',
    tenant_id: 'https://example.com/tenant',
    teams: 'groups',
    level: 'lvl',
    blob: 'obj',
    flag: 'flag',
    big: 'big',
    f: 'float',
  };
  const got = claimAttributes(
    {
      region: 'eu',
      'https://example.com/tenant': 42,
      groups: ['a', 'b'],
      lvl: ['a', 3],
      obj: { region: 'us' },
      flag: true,
      big: 2 ** 60,
      float: 1.5,
    },
    mapping,
  );
  t.same(got, { region: 'eu', teams: ['a', 'b'], tenant_id: '42' }, 'a string, a list of strings and a safe integer (in decimal)');
  t.equal(claimAttributes({ sub: 'x' }, mapping), undefined, 'no mapped claim: no attributes');
  t.equal(claimAttributes({ region: 'eu' }, undefined), undefined, 'no mapping: no attributes');
  t.equal(claimAttributes({ region: 'x'.repeat(300) }, { region: 'region' }), undefined, 'an over-long claim is left out');
  t.equal(
    claimAttributes(JSON.parse('{"__proto__": "eu"}') as Record<string, unknown>, { region: '__proto__' })?.region,
    'eu',
    'an own claim named __proto__ is read as data',
  );
  t.equal(claimAttributes({}, { region: 'toString' }), undefined, 'an inherited property is not a claim');
});

t.test('row filters read attributes.<name>; a principal without it is refused', async (t) => {
  await initSqlAnalysis();
  await loadRowFilterDeparser();
  const base: RowFilterPrincipal = { id: 'erin', roles: ['regional'], auth: 'api_key', tier: 'local' };
  const filters = parseRowFilters([BY_REGION]);
  const r = applyRowFilters('SELECT id FROM customers', [], filters, { ...base, attributes: { region: 'north' } });
  t.same(r?.params, ['north'], 'the value is bound as a parameter');
  t.match(r?.text, /bulwark_rf\.region = \$1/);
  t.notMatch(r?.text, /north/, 'never written into the SQL text');

  const inList = applyRowFilters('SELECT id FROM customers', [], parseRowFilters([{ ...BY_REGION, op: 'in' }]), {
    ...base,
    attributes: { region: ['north', 'east'] },
  });
  t.same(inList?.params, ['north', 'east'], 'a list attribute with in');
  const inOne = applyRowFilters('SELECT id FROM customers', [], parseRowFilters([{ ...BY_REGION, op: 'in' }]), { ...base, attributes: { region: 'north' } });
  t.same(inOne?.params, ['north'], 'a string attribute with in: a list of one');

  const lacking: [string, RowFilterPrincipal][] = [
    ['no attributes at all', base],
    ['other attributes', { ...base, attributes: { tenant_id: '42' } }],
    ['an empty list', { ...base, attributes: { region: [] as string[] } }],
    ['an empty string', { ...base, attributes: { region: '' } }],
  ];
  for (const [why, p] of lacking) {
    const e = refusal(() => applyRowFilters('SELECT id FROM customers', [], filters, p));
    t.same([e.denial.code, e.denial.reasons], ['policy_error', ['sql.row_filter_attribute']], why);
  }
  const list = refusal(() => applyRowFilters('SELECT id FROM customers', [], filters, { ...base, attributes: { region: ['north', 'east'] } }));
  t.same([list.denial.code, list.denial.reasons], ['policy_error', ['sql.row_filter_attribute']], 'a list attribute with =: refused, not its first value');
  const inherited = refusal(() =>
    applyRowFilters('SELECT id FROM customers', [], parseRowFilters([{ ...BY_REGION, value: { principal: 'attributes.constructor' } }]), {
      ...base,
      attributes: { region: 'north' },
    }),
  );
  t.same(inherited.denial.reasons, ['sql.row_filter_attribute'], 'an inherited property is not an attribute');

  for (const name of ['region', 'attributes.', 'attributes.Region', 'attributes.__proto__', 'attributes.a.b', 'attributes', 'attributes.region ']) {
    const e = refusal(() => parseRowFilters([{ ...BY_REGION, value: { principal: name } }]));
    t.same([e.denial.code, e.denial.reasons], ['policy_error', ['sql.row_filter_attribute']], `${JSON.stringify(name)}: not an attribute principals carry`);
  }
  t.match(
    refusal(() => parseRowFilters([{ ...BY_REGION, value: { principal: 'region' } }])).denial.message,
    /attributes\.region/,
    'the message names the form',
  );
  t.same(
    refusal(() => parseRowFilters([{ ...BY_REGION, value: { principal: 'roles' } }])).denial.reasons,
    ['sql.row_filter_invalid'],
    'roles with = is still refused as before',
  );
  t.same(parseRowFilters([{ ...BY_REGION, op: '<>' }])[0]?.value, { principal: 'attributes.region' }, '<> too');
});

t.test('the policy input carries the attributes (an object, empty when there are none)', async (t) => {
  const call = (attributes?: Record<string, string | string[]>) =>
    policyInput({
      tool: 'list_tables',
      args: {},
      argsBytes: 2,
      facts: {},
      pinned: undefined,
      principal: { id: 'erin', roles: ['regional'], auth: 'api_key', tier: 'local', ...(attributes ? { attributes } : {}) },
      context: { transport: 'http', requestId: 'r', receivedAt: new Date(0), signal: new AbortController().signal },
    });
  t.same((call({ region: 'eu', teams: ['a'] }).principal as Record<string, unknown>).attributes, { region: 'eu', teams: ['a'] });
  t.same((call().principal as Record<string, unknown>).attributes, {});
});

t.test('configuration: attributes of the local principals and the OAuth mapping are checked at load', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const write = (extra: Record<string, unknown>): string => {
    const file = path.join(sb.dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(file, stringify({ audit: { path: sb.auditPath }, filesystem: { roots: [sb.root] }, ...extra }));
    return file;
  };
  const { config } = loadConfig({
    file: write({ principals: { stdio: { id: 'me', roles: ['developer'], attributes: { region: 'north', teams: ['a', 'b'] } } } }),
  });
  t.same(config.principals.stdio.attributes, { region: 'north', teams: ['a', 'b'] });
  const problems = (extra: Record<string, unknown>): string[] => {
    try {
      loadConfig({ file: write(extra) });
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems];
      throw err;
    }
    return [];
  };
  t.match(problems({ principals: { stdio: { id: 'me', roles: [], attributes: { Region: 'x' } } } }).join('\n'), /principals\.stdio\.attributes/);
  t.match(problems({ principals: { loopback: { id: 'me', roles: [], attributes: { region: '' } } } }).join('\n'), /principals\.loopback\.attributes/);
  t.match(problems({ principals: { stdio: { id: 'me', roles: [], attributes: { region: 'x\u0001' } } } }).join('\n'), /principals\.stdio\.attributes/);
  const oauth = { issuer: 'https://issuer.example', audience: 'bulwark', jwks_file: 'jwks.json' };
  t.match(problems({ auth: { oauth: { ...oauth, attributes: { 'Bad-Name': 'x' } } } }).join('\n'), /auth\.oauth\.attributes/);
});

// ---------------------------------------------------------------------------------------------
// The embedded PGlite demo database, over HTTP from loopback (the loopback principal's attributes)

t.test('the loopback principal: attributes from the configuration filter the embedded PGlite database', async (t) => {
  // The truth: the same demo data read by an unfiltered principal (developer) over stdio.
  // PGlite's first start takes seconds on a loaded machine: a generous call deadline.
  const execution = { timeout_ms: 60_000 };
  const plain = makeSandbox({ principals: { stdio: { id: 'dev', roles: ['developer'], tier: 'local' } }, execution });
  const regional = makeSandbox({ principals: { loopback: { id: 'desk', roles: ['regional'], tier: 'local', attributes: { region: 'south' } } }, execution });
  fs.appendFileSync(regional.configPath, `policy:\n  data: ${JSON.stringify(writePolicyData(regional.dir))}\n`);
  let stdio: Awaited<ReturnType<typeof stdioClient>> | undefined;
  let http: HttpServerProcess | undefined;
  let c: Client | undefined;
  t.teardown(async () => {
    await c?.close().catch(() => undefined);
    await http?.stop();
    await stdio?.close();
    plain.cleanup();
    regional.cleanup();
  });
  const rows = async (cl: Client, sql: string) => {
    const r = await cl.callTool({ name: 'query_database', arguments: { sql, params: [] } });
    if (r.isError) throw new Error(JSON.stringify(r.structuredContent));
    return (r.structuredContent as { rows: Record<string, unknown>[] }).rows;
  };
  // One PGlite at a time: the truth first, then the filtered server.
  stdio = await stdioClient(['--config', plain.configPath]);
  const truth = new Map((await rows(stdio.client, 'SELECT id, region FROM customers')).map((r) => [Number(r.id), String(r.region)]));
  const withOrders = new Set((await rows(stdio.client, 'SELECT DISTINCT customer_id FROM orders')).map((r) => Number(r.customer_id)));
  await stdio.close();
  stdio = undefined;
  http = await startHttpServer(['--config', regional.configPath]);
  c = await httpClient(http.url);
  t.ok(truth.size > 0 && new Set(truth.values()).size > 1, 'the demo data has customers in several regions');
  const runs = await runShapes(c, ['south'], truth, withOrders);
  t.same(
    runs.filter((r) => r.error || r.got.join(',') !== r.want.join(',')),
    [],
    'every shape returns exactly the south rows',
  );
  t.equal(runs.filter((r) => r.got.join(',') !== runShapesAll(truth)).length, runs.length, 'and never every customer');
});

/** Every customer id, as runShapes lists them (for a check that a run was filtered at all). */
function runShapesAll(truth: ReadonlyMap<number, string>): string {
  return [...truth.keys()].sort((a, b) => a - b).join(',');
}

// ---------------------------------------------------------------------------------------------
// Over HTTP, against the real PostgreSQL

const PGURL = process.env.PGURL;
if (!PGURL) {
  t.fail('PGURL is not set: run with scripts/run-tests.mjs, which starts PostgreSQL');
} else {
  const ISSUER = 'https://issuer.example';
  const AUDIENCE = 'https://bulwark.example/mcp';
  let db: TestDatabase;
  let sb: Sandbox;
  let server: HttpServerProcess;
  let truth: Map<number, string>;
  let withOrders: Set<number>;
  let signer: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  const tokens: Record<string, string> = {};
  const clients: Client[] = [];

  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'keys', ...args, '--config', sb.configPath], { encoding: 'utf8', env: cleanChildEnv() });
  const create = (principal: string, roles: string, ...attrs: string[]): string => {
    const r = cli('create', '--principal', principal, '--roles', roles, ...attrs.flatMap((a) => ['--attr', a]), '--json');
    if (r.status !== 0) throw new Error(`keys create failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { key: string }).key;
  };
  const client = async (token: string): Promise<Client> => {
    const c = await bearerClient(server.url, token);
    clients.push(c);
    return c;
  };
  const jwt = (claims: Record<string, unknown>, sub = 'svc-eu') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(signer);
  const leaks = (runs: readonly ShapeRun[]) => runs.filter((r) => r.error || r.got.join(',') !== r.want.join(','));

  t.before(async () => {
    db = await createTestDatabase();
    truth = await customerRegions(db.adminUrl);
    withOrders = await customersWithOrders(db.adminUrl);
    sb = makeSandbox({
      auth: {
        http: 'api_key',
        keys_file: 'keys.json',
        oauth: {
          issuer: ISSUER,
          audience: AUDIENCE,
          jwks_file: 'jwks.json',
          tier: 'local',
          attributes: { region: 'https://example.com/region', regions: 'regions' },
        },
      },
      database: { url: db.readerUrl, statement_timeout_ms: 5000 },
    });
    fs.appendFileSync(sb.configPath, `policy:\n  data: ${JSON.stringify(writePolicyData(sb.dir))}\n`);
    const pair = await generateKeyPair('ES256', { extractable: true });
    signer = pair.privateKey;
    fs.writeFileSync(path.join(sb.dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    tokens.north = create('nora', 'regional', 'region=north', 'tenant_id=42');
    tokens.south = create('sam', 'regional', 'region=south');
    tokens.none = create('nobody', 'regional');
    tokens.multi = create('mia', 'multi_region', 'regions=north', 'regions=east');
    server = await startHttpServer(['--config', sb.configPath]);
  });
  t.teardown(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await server?.stop();
    sb?.cleanup();
    await db?.drop();
  });

  t.test('keys create --attr is stored with the key and shown by keys list', async (t) => {
    const stored = JSON.parse(fs.readFileSync(path.join(sb.dir, 'keys.json'), 'utf8')) as { keys: { principal: string; attributes?: unknown }[] };
    t.same(stored.keys.find((k) => k.principal === 'nora')?.attributes, { region: 'north', tenant_id: '42' });
    t.same(stored.keys.find((k) => k.principal === 'mia')?.attributes, { regions: ['north', 'east'] });
    t.notOk('attributes' in (stored.keys.find((k) => k.principal === 'nobody') ?? {}), 'a key without attributes stores none');
    const list = cli('list', '--json');
    t.equal(list.status, 0, list.stderr);
    const rows = (JSON.parse(list.stdout) as { keys: { principal: string; attributes: unknown }[] }).keys;
    t.same(rows.find((k) => k.principal === 'nora')?.attributes, { region: 'north', tenant_id: '42' });
    t.same(rows.find((k) => k.principal === 'nobody')?.attributes, {});
    const text = cli('list');
    t.match(text.stdout, /nora {2}roles=regional {2}tier=local {2}attributes=region="north",tenant_id="42"/);
    t.match(text.stdout, /mia {2}roles=multi_region {2}tier=local {2}attributes=regions=\["north","east"\]/);
    t.match(text.stdout, /nobody {2}roles=regional {2}tier=local {2}attributes=- /);
    const bad = cli('create', '--principal', 'x', '--roles', 'regional', '--attr', 'Region=north');
    t.equal(bad.status, 2, 'a malformed attribute is a usage error');
    t.match(bad.stderr, /--attr: .*lower-case/);
    t.equal((JSON.parse(fs.readFileSync(path.join(sb.dir, 'keys.json'), 'utf8')) as { keys: unknown[] }).keys.length, 4, 'and nothing was stored');
    t.match(cli('--help').stdout, /--attr NAME=VALUE/);
  });

  t.test('a region attribute filters every query shape to that region, for each key', async (t) => {
    for (const [name, regions] of [
      ['north', ['north']],
      ['south', ['south']],
      ['multi', ['north', 'east']],
    ] as const) {
      const runs = await runShapes(await client(tokens[name] as string), regions, truth, withOrders);
      t.same(leaks(runs), [], `${name}: every shape returns exactly the rows of ${regions.join(' and ')}`);
      t.ok(
        runs.every((r) => r.want.length > 0),
        `${name}: each shape has rows to return`,
      );
    }
    // The check itself can fail: north's rows are not south's.
    const north = await client(tokens.north as string);
    t.equal(leaks(await runShapes(north, ['south'], truth, withOrders)).length, SHAPES.length, 'every shape differs from another region’s rows');
    const { requestId } = await refusalOf(north, 'SELECT id FROM customers');
    const rec = readAudit(sb.auditPath).find((r) => r.request_id === requestId);
    t.match(rec?.facts?.sql?.row_filters, { tables: ['public.customers'], references: 1 }, 'the record names the filter applied');
    t.match(rec?.decision?.obligations?.row_filters, [BY_REGION], 'and the obligation as the policy gave it');
    t.same(rec?.principal?.attributes, { region: 'north', tenant_id: '42' }, 'the record keeps the verified attributes');
    t.notMatch(JSON.stringify({ ...rec, principal: null }), /"north"/, 'nowhere else: the value is bound, not recorded as SQL text');
  });

  t.test('the filter is applied to the principal of the credential, whatever the request carries', async (t) => {
    const south = await client(tokens.south as string);
    const forged = await south.callTool({
      name: 'query_database',
      arguments: { sql: 'SELECT DISTINCT region FROM customers', params: [] },
      _meta: { attributes: { region: 'north' }, principal: { id: 'nora', attributes: { region: 'north' } } },
    });
    t.same((forged.structuredContent as { rows: unknown[] }).rows, [{ region: 'south' }], 'the key’s region, not the _meta’s');
    const extra = await south.callTool({ name: 'query_database', arguments: { sql: 'SELECT 1', params: [], attributes: { region: 'north' } } });
    t.equal(errorOf(extra as never)?.code, 'invalid_input', 'an attributes argument is not accepted');
  });

  t.test('a principal without the attribute gets policy_error and an audit record', async (t) => {
    const none = await client(tokens.none as string);
    const { error, requestId } = await refusalOf(none, 'SELECT id FROM customers');
    t.same([error?.code, error?.reasons], ['policy_error', ['sql.row_filter_attribute']]);
    const recs = readAudit(sb.auditPath).filter((r) => r.request_id === requestId);
    t.equal(recs.length, 1, 'exactly one record');
    t.match(recs[0], { principal: { id: 'nobody', auth: 'api_key' }, tool: 'query_database', outcome: { status: 'denied', code: 'policy_error' } });
    t.notOk(recs[0] && 'attributes' in recs[0].principal, 'a principal without attributes is recorded without them');
    // A query that reads no filtered table needs no attribute.
    const orders = await none.callTool({ name: 'query_database', arguments: { sql: 'SELECT count(*)::int AS n FROM orders', params: [] } });
    t.same((orders.structuredContent as { rows: unknown[] }).rows, [{ n: 200 }], 'orders are not filtered for this role');
  });

  t.test('OAuth: claims mapped to attributes filter rows; a missing or mistyped claim is refused by the filter', async (t) => {
    const eu = await client(await jwt({ roles: ['regional'], 'https://example.com/region': 'west' }));
    const runs = await runShapes(eu, ['west'], truth, withOrders);
    t.same(leaks(runs), [], 'the token’s region claim filters every shape');
    const multi = await client(await jwt({ roles: ['multi_region'], regions: ['south', 'west'] }, 'svc-multi'));
    t.same(leaks(await runShapes(multi, ['south', 'west'], truth, withOrders)), [], 'a list claim with in');
    for (const [why, claims] of [
      ['a missing claim', { roles: ['regional'] }],
      ['a number where a string is mapped', { roles: ['regional'], 'https://example.com/region': 1.5 }],
      ['an object', { roles: ['regional'], 'https://example.com/region': { value: 'west' } }],
      ['the region under an unmapped name', { roles: ['regional'], region: 'west' }],
    ] as const) {
      const c = await client(await jwt(claims, `svc-${why.replace(/\W/g, '')}`.slice(0, 60)));
      const { error, requestId } = await refusalOf(c, 'SELECT id FROM customers');
      t.same([error?.code, error?.reasons], ['policy_error', ['sql.row_filter_attribute']], why);
      t.equal(readAudit(sb.auditPath).filter((r) => r.request_id === requestId).length, 1, `${why}: recorded`);
    }
  });

  t.test('the local principal: attributes from the configuration (stdio)', async (t) => {
    const local = makeSandbox({
      principals: { stdio: { id: 'ops', roles: ['regional'], tier: 'local', attributes: { region: 'east' } } },
      database: { url: db.readerUrl, statement_timeout_ms: 5000 },
    });
    fs.appendFileSync(local.configPath, `policy:\n  data: ${JSON.stringify(writePolicyData(local.dir))}\n`);
    const { client: c, close } = await stdioClient(['--config', local.configPath]);
    t.teardown(async () => {
      await close();
      local.cleanup();
    });
    t.same(leaks(await runShapes(c, ['east'], truth, withOrders)), [], 'the configured region filters every shape');
  });
}
