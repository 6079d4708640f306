/**
 * Issue 7, "Who may call": the role matrix, end to end over HTTP.
 *
 * One `bulwark serve --http` process with `auth.http: api_key` and the shipped policy data
 * (policies/data.json, not overridden); one API key per role that data defines. For each role:
 * what tools/list shows, and for every tool a call that passes analysis, so the only thing that
 * can refuse it is the policy. Expectations are derived from the data file (the server is checked
 * against the data it loaded), and a few are also written by hand (the data is checked against
 * intent), so a mistake in either is caught.
 *
 * Where roles differ on resources, the differences the data defines are exercised too: SQL tables
 * (allow-lists and the deny list), redacted columns, upstreams and methods for call_api (a
 * loopback upstream), hard links, and the obligations that tighten the caps (seen in the audit
 * record). A denial must be a policy denial (`policy_denied` with the policy's reasons); an allowed
 * call must carry an allowing decision in its audit record, even when the tool then fails on I/O.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { makeSandbox, readAudit, ROOT } from './helpers/fixtures.js';
import { startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { bearerClient, errorOf, requestIdOf } from './helpers/bearer.js';
import { createKey } from '../src/auth/api-keys.js';

t.setTimeout(180_000);

// ---------------------------------------------------------------------------------------------
// The policy data, and what it implies (a small reading of policies/authz.rego's semantics)
// ---------------------------------------------------------------------------------------------

interface RoleData {
  tools: string[];
  obligations?: Record<string, number>;
  filesystem?: { allow_hardlinks?: boolean };
}
interface PolicyData {
  roles: Record<string, RoleData>;
  filesystem: { allow_hardlinks?: boolean };
  database: { tables: Record<string, string[]>; denied_tables?: string[]; redact_columns?: Record<string, string[]> };
  api: {
    upstreams: Record<string, string[]>;
    methods: Record<string, string[]>;
    paths: Record<string, Record<string, string[]>>;
    denied_paths: Record<string, string[]>;
    approval?: Record<string, { methods: string[] }>;
  };
}

const DATA = (JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: PolicyData }).bulwark;
const ROLES = Object.keys(DATA.roles);

const grants = (role: string, tool: string): boolean => (DATA.roles[role]?.tools ?? []).includes(tool);

function tableMatch(pattern: string, table: string): boolean {
  if (pattern === '*' || pattern === table) return true;
  if (!pattern.endsWith('.*')) return false;
  const prefix = pattern.slice(0, -1);
  const rest = table.slice(prefix.length);
  return table.startsWith(prefix) && rest !== '' && !rest.includes('.');
}
function tableAllowed(role: string, table: string): boolean {
  if ((DATA.database.denied_tables ?? []).some((p) => tableMatch(p, table))) return false;
  return (DATA.database.tables[role] ?? []).some((p) => tableMatch(p, table));
}

function pathUnder(p: string, prefix: string): boolean {
  return prefix === '/' || p === prefix || (prefix.endsWith('/') ? p.startsWith(prefix) : p.startsWith(`${prefix}/`));
}
/** The policy's reasons for one role's call_api (sorted; [] when allowed). */
function apiReasons(role: string, upstream: string, method: string, p: string): string[] {
  const reasons = new Set<string>();
  const ups = DATA.api.upstreams[role] ?? [];
  const granted = ups.includes(upstream) || ups.includes('*');
  if (!granted) reasons.add('url.upstream_not_allowed');
  if (!(DATA.api.methods[role] ?? []).includes(method)) reasons.add('url.method_not_allowed');
  if (granted) {
    const restrict = [upstream, '*'].map((u) => DATA.api.paths[role]?.[u]).filter((x): x is string[] => Array.isArray(x));
    if (restrict.length && !restrict.flat().some((prefix) => pathUnder(p, prefix))) reasons.add('url.path_not_allowed');
  }
  if ([upstream, '*'].some((u) => (DATA.api.denied_paths[u] ?? []).some((prefix) => pathUnder(p.toLowerCase(), prefix)))) reasons.add('url.path_denied');
  return [...reasons].sort();
}

/**
 * The policy reports every reason a call fails, not only the first. When no role of the caller
 * grants the tool, the family checks run with no granting role, so the role-scoped ones (tables,
 * upstreams, methods) fail too. NO_ROLE stands for "no granting role" in the helpers above.
 */
const NO_ROLE = '';
function ungrantedReasons(tool: string): string[] {
  const family: string[] = [];
  if (tool === 'query_database' || tool === 'describe_table') if (!tableAllowed(NO_ROLE, 'public.customers')) family.push('sql.table_not_allowed');
  if (tool === 'call_api') family.push(...apiReasons(NO_ROLE, 'github', 'GET', '/json'));
  return ['policy.no_role_grants_tool', ...family].sort();
}

/** The shipped approval rule (policies/approval.rego), for a single-role caller the policy allows. */
const needsApproval = (role: string, method: string): boolean => (DATA.api.approval?.[role]?.methods ?? []).includes(method);

const hardlinksAllowed = (role: string): boolean => DATA.filesystem.allow_hardlinks === true || DATA.roles[role]?.filesystem?.allow_hardlinks === true;
const obligation = (role: string, key: string): number | undefined => DATA.roles[role]?.obligations?.[key];

// ---------------------------------------------------------------------------------------------
// Hand-written expectations: what the shipped roles are meant to be. A data-file mistake that the
// derived checks would faithfully follow is caught here.
// ---------------------------------------------------------------------------------------------

const FILE_TOOLS = ['file_info', 'list_directory', 'read_file', 'search_files'];
const PINNED: Record<string, Record<string, boolean>> = {
  reader: {
    read_file: true,
    list_directory: true,
    search_files: true,
    file_info: true,
    query_database: false,
    list_tables: false,
    describe_table: false,
    run_javascript: false,
    call_api: false,
    api_stats: false,
  },
  analyst: { read_file: true, query_database: true, list_tables: true, describe_table: true, run_javascript: false, call_api: false, api_stats: false },
  developer: { read_file: true, query_database: true, run_javascript: true, call_api: true, api_stats: true },
  admin: { read_file: true, query_database: true, run_javascript: true, call_api: true, api_stats: true },
};

t.test('the shipped policy data matches the intended roles', async (t) => {
  t.same(ROLES.slice().sort(), ['admin', 'analyst', 'developer', 'reader'], 'the default roles');
  t.same(DATA.roles.reader?.tools.slice().sort(), FILE_TOOLS, 'reader: the file tools, nothing else');
  for (const [role, tools] of Object.entries(PINNED))
    for (const [tool, allowed] of Object.entries(tools)) t.equal(grants(role, tool), allowed, `${role} ${allowed ? 'may' : 'may not'} call ${tool}`);
  t.notOk(tableAllowed('analyst', 'analytics.daily'), 'analyst: public tables only');
  t.ok(tableAllowed('developer', 'analytics.daily'), 'developer: analytics too');
  for (const role of ROLES) t.notOk(tableAllowed(role, 'hr.salaries'), `${role}: hr.salaries is denied to everyone`);
  t.same(apiReasons('developer', 'github', 'PUT', '/repos/x'), ['url.method_not_allowed'], 'developer: no PUT or DELETE');
  t.same(apiReasons('developer', 'github', 'POST', '/repos/x'), [], 'developer: POST is allowed by the policy...');
  t.ok(needsApproval('developer', 'POST') && needsApproval('developer', 'PATCH'), '...with a human approval for POST and PATCH');
  t.notOk(needsApproval('developer', 'GET') || needsApproval('admin', 'POST'), 'GET, and admin, need none');
  t.same(apiReasons('developer', 'billing', 'GET', '/json'), ['url.upstream_not_allowed'], 'developer: named upstreams only');
  t.same(apiReasons('admin', 'billing', 'POST', '/json'), [], 'admin: any upstream, any method');
  t.same(apiReasons('admin', 'github', 'GET', '/admin/x'), ['url.path_denied'], 'denied paths bind admin too');
  t.ok(hardlinksAllowed('admin') && !hardlinksAllowed('developer') && !hardlinksAllowed('reader'), 'hard links: admin only');
  t.ok(
    (DATA.database.redact_columns?.analyst ?? []).includes('email') && !(DATA.database.redact_columns?.developer ?? []).includes('email'),
    'email is redacted for analysts only',
  );
});

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

let up: TestUpstream;
let server: HttpServerProcess;
const tokens = new Map<string, string>();
const clients = new Map<string, Client>();
let sb: ReturnType<typeof makeSandbox>;

t.before(async () => {
  up = await startUpstream();
  sb = makeSandbox({
    auth: { http: 'api_key', keys_file: 'keys.json' },
    limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 } }, default_tier: 'local' },
    // Configured caps above every role's obligations, so the obligations are what the audit shows.
    execution: { timeout_ms: 60_000 },
    filesystem: { max_result_bytes: 64 * 1024 * 1024 },
    javascript: { memory_mb: 256 },
    database: { max_result_bytes: 64 * 1024 * 1024 },
    apis: {
      // Named like a shipped developer upstream, but on loopback.
      github: { base_url: `${up.origin}/gh/`, internal: true, retries: 0, methods: ['GET', 'HEAD', 'POST'] },
      // An upstream no role but a wildcard grants.
      billing: { base_url: `${up.origin}/billing/`, internal: true, retries: 0, methods: ['GET', 'POST'] },
    },
  });
  // Two names for one file: nlink 2.
  fs.writeFileSync(path.join(sb.root, 'linked.txt'), 'one file, two names\n');
  fs.linkSync(path.join(sb.root, 'linked.txt'), path.join(sb.root, 'linked-too.txt'));
  const keysFile = path.join(sb.dir, 'keys.json');
  for (const role of ROLES) tokens.set(role, (await createKey(keysFile, { principal: `p-${role}`, roles: [role], tier: 'local' })).token);
  tokens.set('nobody', (await createKey(keysFile, { principal: 'p-nobody', roles: ['no-such-role'], tier: 'local' })).token);
  tokens.set('reader+developer', (await createKey(keysFile, { principal: 'p-multi', roles: ['reader', 'developer'], tier: 'local' })).token);
  server = await startHttpServer(['--config', sb.configPath]);
  for (const [who, token] of tokens) clients.set(who, await bearerClient(server.url, token));
});

t.teardown(async () => {
  await Promise.allSettled([...clients.values()].map((c) => c.close()));
  await server?.stop();
  await up?.close();
  sb?.cleanup();
});

function auditOf(requestId: string): Record<string, any> {
  const rec = readAudit(sb.auditPath).find((r) => r.request_id === requestId);
  if (!rec) throw new Error(`no audit record for ${requestId}`);
  return rec;
}

/** One call per tool that passes validation and analysis for every caller: only the policy can refuse it. */
const BENIGN: Record<string, Record<string, unknown>> = {
  read_file: { path: 'hello.txt' },
  list_directory: { path: 'sub' },
  search_files: { path: '.', query: 'needle' },
  file_info: { path: 'hello.txt' },
  query_database: { sql: 'SELECT count(*) AS n FROM customers' },
  list_tables: {},
  describe_table: { table: 'public.customers' },
  call_api: { api: 'github', path: '/json' },
  api_stats: {},
  run_javascript: { code: 'return input.map((x) => x * 2)', input: [1, 2, 3] },
};

/** What a successful benign call returns (so "allowed" means the tool really ran). */
function checkResult(t: Test, tool: string, structured: Record<string, any>): void {
  switch (tool) {
    case 'read_file':
      t.match(JSON.stringify(structured), /hello, world/);
      break;
    case 'list_directory':
      t.match(JSON.stringify(structured), /notes\.md/);
      break;
    case 'search_files':
      t.match(JSON.stringify(structured), /notes\.md/);
      break;
    case 'file_info':
      t.match(structured, { kind: 'file', size: 13 });
      break;
    case 'query_database':
      t.same(structured.rows, [{ n: 50 }]);
      break;
    case 'list_tables':
      t.ok((structured.tables as { name: string }[]).some((x) => x.name === 'customers'));
      break;
    case 'describe_table':
      t.match(JSON.stringify(structured), /email/);
      break;
    case 'call_api':
      t.match(structured, { status: 200, body: { ok: true, name: 'bulwark' } });
      break;
    case 'api_stats':
      t.match(JSON.stringify(structured), /github/);
      break;
    case 'run_javascript':
      t.match(JSON.stringify(structured), /\[2,4,6\]/);
      break;
    default:
      t.fail(`no check for ${tool}`);
  }
}

t.test('tools/list and tools/call for every role and every tool, as the policy data says', async (t) => {
  const catalogue = Object.keys(BENIGN).sort();
  const granted = [...new Set(ROLES.flatMap((r) => DATA.roles[r]!.tools))].sort();
  t.same(
    granted.filter((tool) => !catalogue.includes(tool)),
    [],
    'every tool a role grants is exercised below',
  );
  for (const role of ROLES) {
    await t.test(role, async (t) => {
      const client = clients.get(role)!;
      const listed = (await client.listTools()).tools.map((x) => x.name).sort();
      t.same(
        listed,
        catalogue.filter((tool) => grants(role, tool)),
        `${role} sees exactly the tools its role grants`,
      );
      for (const tool of catalogue) {
        const r = await client.callTool({ name: tool, arguments: BENIGN[tool] });
        const err = errorOf(r);
        const rec = auditOf(requestIdOf(r));
        if (grants(role, tool)) {
          t.equal(err, undefined, `${role} ${tool}: allowed (${JSON.stringify(err)})`);
          if (!err) checkResult(t, tool, r.structuredContent as Record<string, any>);
          t.match(rec, {
            principal: { id: `p-${role}`, roles: [role], auth: 'api_key' },
            decision: { allow: true, reasons: [] },
            outcome: { status: 'ok', code: null },
          });
        } else {
          const reasons = ungrantedReasons(tool);
          t.equal(err?.code, 'policy_denied', `${role} ${tool}: denied by the policy`);
          t.same(err?.reasons, reasons, `${role} ${tool}: because no role grants it (${reasons.join(', ')})`);
          t.same(
            rec.decision && { allow: rec.decision.allow, reasons: rec.decision.reasons },
            { allow: false, reasons },
            `${role} ${tool}: the audited decision`,
          );
          t.match(rec.outcome, { status: 'denied', code: 'policy_denied' });
        }
        if (PINNED[role]?.[tool] !== undefined) t.equal(!err, PINNED[role]![tool], `${role} ${tool}: as pinned by hand`);
      }
    });
  }
  t.equal(up.count('/gh/json'), ROLES.filter((r) => grants(r, 'call_api')).length, 'the upstream was reached only by roles granted call_api');
});

t.test('a principal whose roles are unknown sees nothing and may call nothing; roles combine as a union', async (t) => {
  const nobody = clients.get('nobody')!;
  t.same((await nobody.listTools()).tools, [], 'an unknown role lists no tools');
  for (const tool of ['read_file', 'run_javascript']) {
    const err = errorOf(await nobody.callTool({ name: tool, arguments: BENIGN[tool] }));
    t.same(err && { code: err.code, reasons: err.reasons }, { code: 'policy_denied', reasons: ['policy.no_role_grants_tool'] }, tool);
  }
  const multi = clients.get('reader+developer')!;
  const union = Object.keys(BENIGN)
    .filter((tool) => grants('reader', tool) || grants('developer', tool))
    .sort();
  t.same((await multi.listTools()).tools.map((x) => x.name).sort(), union);
  const js = await multi.callTool({ name: 'run_javascript', arguments: BENIGN.run_javascript });
  t.equal(errorOf(js), undefined, 'the developer role grants run_javascript to a reader+developer key');
  // Obligations come from the granting roles: the more generous developer limits win for read_file.
  const rf = await multi.callTool({ name: 'read_file', arguments: BENIGN.read_file });
  const caps = auditOf(requestIdOf(rf)).outcome.caps;
  t.equal(caps.timeout_ms, Math.max(obligation('reader', 'timeout_ms')!, obligation('developer', 'timeout_ms')!));
});

t.test('SQL tables differ by role: allow-lists, the deny list; an allowed query may still fail on I/O', async (t) => {
  const tables = ['public.customers', 'analytics.daily_sales', 'hr.salaries', 'finance.ledger'];
  for (const role of ROLES.filter((r) => grants(r, 'query_database'))) {
    const client = clients.get(role)!;
    for (const table of tables) {
      const r = await client.callTool({ name: 'query_database', arguments: { sql: `SELECT count(*) AS n FROM ${table}` } });
      const err = errorOf(r);
      const rec = auditOf(requestIdOf(r));
      if (tableAllowed(role, table)) {
        t.not(err?.code, 'policy_denied', `${role} ${table}: not a policy denial`);
        t.equal(rec.decision?.allow, true, `${role} ${table}: the policy allowed it`);
        // The embedded demo database has only public tables. Allowed but absent: with masks in force
        // for the role, the gate cannot compute the lineage they need and refuses (fail closed);
        // without, the database says the relation does not exist.
        const masked = (DATA.database.redact_columns?.[role] ?? []).length > 0;
        if (table === 'public.customers') t.equal(err, undefined, `${role} ${table}: answered`);
        else if (masked)
          t.match(err, { code: 'sql_rejected', reasons: ['sql.catalog_unknown_table'] }, `${role} ${table}: allowed, then refused: not in the catalog`);
        else t.equal(err?.code, 'tool_error', `${role} ${table}: allowed, then the database says it does not exist`);
      } else {
        t.match(err, { code: 'policy_denied' }, `${role} ${table}: denied`);
        t.same(err?.reasons, ['sql.table_not_allowed'], `${role} ${table}: because of the table`);
        t.equal(rec.decision?.allow, false);
      }
    }
  }
  // By hand: analysts stay in public, nobody reads hr.salaries, admin reaches any other schema.
  const analyst = errorOf(await clients.get('analyst')!.callTool({ name: 'query_database', arguments: { sql: 'SELECT count(*) FROM analytics.daily_sales' } }));
  t.same(analyst?.reasons, ['sql.table_not_allowed']);
  const admin = errorOf(await clients.get('admin')!.callTool({ name: 'query_database', arguments: { sql: 'SELECT count(*) FROM hr.salaries' } }));
  t.same(admin?.reasons, ['sql.table_not_allowed'], 'admin too is refused hr.salaries');
  const adminOther = errorOf(await clients.get('admin')!.callTool({ name: 'query_database', arguments: { sql: 'SELECT count(*) FROM finance.ledger' } }));
  t.equal(adminOther?.code, 'tool_error', 'admin: any other table passes the policy');
});

t.test('redacted columns and row caps differ by role', async (t) => {
  const sql = 'SELECT id, email FROM customers ORDER BY id LIMIT 1';
  const emails = new Map<string, unknown>();
  for (const role of ROLES.filter((r) => grants(r, 'query_database'))) {
    const r = await clients.get(role)!.callTool({ name: 'query_database', arguments: { sql } });
    t.equal(errorOf(r), undefined, role);
    const s = r.structuredContent as { rows: { email: unknown }[]; redacted_columns: string[] };
    const redacts = (DATA.database.redact_columns?.[role] ?? []).includes('email');
    t.same(s.redacted_columns, redacts ? ['email'] : [], `${role}: redacted_columns`);
    emails.set(role, s.rows[0]?.email);
    const caps = auditOf(requestIdOf(r)).outcome.caps;
    t.equal(caps.max_rows, obligation(role, 'max_rows'), `${role}: max_rows obligation`);
    t.same(caps.redact_columns, [...(DATA.database.redact_columns?.[role] ?? [])].sort(), `${role}: redact_columns obligation`);
  }
  t.match(String(emails.get('admin')), /@/, 'admin sees the address');
  t.match(String(emails.get('developer')), /@/, 'developer sees the address');
  t.notMatch(String(emails.get('analyst')), /@/, 'analyst does not');
});

t.test('call_api: upstreams, methods and denied paths differ by role', async (t) => {
  const cases: [string, string, string, unknown?][] = [
    ['github', 'GET', '/json'],
    ['github', 'POST', '/echo', { a: 1 }],
    ['billing', 'GET', '/json'],
    ['billing', 'POST', '/echo', { a: 1 }],
    ['github', 'GET', '/admin/users'],
  ];
  for (const role of ROLES) {
    for (const [api, method, p, body] of cases) {
      const before = up.count();
      const r = await clients.get(role)!.callTool({ name: 'call_api', arguments: { api, method, path: p, ...(body === undefined ? {} : { body }) } });
      const err = errorOf(r);
      const label = `${role} ${method} ${api}${p}`;
      const granted = grants(role, 'call_api');
      const reasons = granted ? apiReasons(role, api, method, p) : [...apiReasons(NO_ROLE, api, method, p), 'policy.no_role_grants_tool'].sort();
      if (reasons.length === 0 && needsApproval(role, method)) {
        // This client declares no elicitation: the call is refused, never run unapproved.
        t.match(err, { code: 'approval_required', reasons: ['approval.unsupported'] }, `${label}: needs an approval this client cannot give`);
        t.equal(up.count() - before, 0, `${label}: never reached the upstream`);
      } else if (reasons.length === 0) {
        t.equal(err, undefined, `${label}: allowed (${JSON.stringify(err)})`);
        t.equal(up.count() - before, 1, `${label}: reached the upstream`);
      } else {
        t.same(err && { code: err.code, reasons: err.reasons }, { code: 'policy_denied', reasons }, `${label}: denied by the policy`);
        t.equal(up.count() - before, 0, `${label}: never reached the upstream`);
      }
    }
  }
  // By hand.
  t.match(errorOf(await clients.get('developer')!.callTool({ name: 'call_api', arguments: { api: 'billing', path: '/json' } })), {
    code: 'policy_denied',
    reasons: ['url.upstream_not_allowed'],
  });
  t.equal(
    errorOf(await clients.get('admin')!.callTool({ name: 'call_api', arguments: { api: 'billing', method: 'POST', path: '/echo', body: { b: 2 } } })),
    undefined,
  );
  t.match(errorOf(await clients.get('admin')!.callTool({ name: 'call_api', arguments: { api: 'github', path: '/admin/users' } })), {
    code: 'policy_denied',
    reasons: ['url.path_denied'],
  });
});

t.test('hard links: only a role that allows them may read a file with two names', async (t) => {
  for (const role of ROLES.filter((r) => grants(r, 'read_file'))) {
    const r = await clients.get(role)!.callTool({ name: 'read_file', arguments: { path: 'linked-too.txt' } });
    const err = errorOf(r);
    if (hardlinksAllowed(role)) {
      t.equal(err, undefined, `${role}: allowed`);
      t.match(JSON.stringify(r.structuredContent), /one file, two names/);
    } else {
      t.same(err && { code: err.code, reasons: err.reasons }, { code: 'policy_denied', reasons: ['path.hardlink'] }, `${role}: denied by the policy`);
    }
  }
  t.notOk(errorOf(await clients.get('admin')!.callTool({ name: 'read_file', arguments: { path: 'linked.txt' } })), 'admin, by hand');
  t.match(
    errorOf(await clients.get('reader')!.callTool({ name: 'read_file', arguments: { path: 'linked.txt' } })),
    { code: 'policy_denied', reasons: ['path.hardlink'] },
    'reader, by hand',
  );
});

t.test('obligations tighten the caps per role (seen in the audit record)', async (t) => {
  for (const role of ROLES) {
    const r = await clients.get(role)!.callTool({ name: 'read_file', arguments: BENIGN.read_file });
    t.equal(errorOf(r), undefined);
    const caps = auditOf(requestIdOf(r)).outcome.caps;
    t.equal(caps.timeout_ms, Math.min(60_000, obligation(role, 'timeout_ms') ?? Infinity), `${role}: timeout_ms`);
    t.equal(caps.max_bytes, Math.min(64 * 1024 * 1024, obligation(role, 'max_bytes') ?? Infinity), `${role}: max_bytes`);
    if (grants(role, 'run_javascript')) {
      const js = await clients.get(role)!.callTool({ name: 'run_javascript', arguments: BENIGN.run_javascript });
      t.equal(auditOf(requestIdOf(js)).outcome.caps.memory_mb, Math.min(256, obligation(role, 'memory_mb') ?? Infinity), `${role}: memory_mb`);
    }
  }
  // By hand: a reader's calls are held to 5 s, an admin's to 30 s.
  const reader = await clients.get('reader')!.callTool({ name: 'file_info', arguments: BENIGN.file_info });
  t.equal(auditOf(requestIdOf(reader)).outcome.caps.timeout_ms, 5000);
  const admin = await clients.get('admin')!.callTool({ name: 'file_info', arguments: BENIGN.file_info });
  t.equal(auditOf(requestIdOf(admin)).outcome.caps.timeout_ms, 30_000);
});
