import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import NodeSqlParser from 'node-sql-parser';
import t, { type Test } from 'tap';
import {
  analyseSql,
  clearSqlAnalysisCache,
  DEFAULT_SQL_FUNCTIONS,
  initSqlAnalysis,
  SQL_REASON_CODES,
  sqlAnalysisReady,
  sqlSessionSettings,
  type SqlAnalysis,
  type SqlOptions,
  type SqlTimings,
} from '../src/analysis/sql.js';
import { checkSqlHygiene } from '../src/analysis/sql-hygiene.js';
import { DenialError } from '../src/core/denial.js';
import { WasmPolicyEngine, readPolicyData } from '../src/policy/engine.js';
import { ATTACKS, DANGEROUS_CALLS, LEGIT, LOOKALIKES, SCOPES, type Passed } from './sql-corpus.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

await initSqlAnalysis();

/** The denial analyseSql throws, or a failure if it passes or throws anything else. */
function denialOf(sql: string, opts: SqlOptions = {}): { code: string; reasons: readonly string[]; message: string } | string {
  try {
    const a = analyseSql(sql, opts);
    return `passed with ${JSON.stringify(a.facts)}`;
  } catch (err) {
    if (err instanceof DenialError) return { code: err.denial.code, reasons: err.denial.reasons, message: err.denial.message };
    return `threw a non-denial: ${(err as Error)?.stack ?? String(err)}`;
  }
}

function analyse(sql: string, opts: SqlOptions = {}): SqlAnalysis | string {
  try {
    return analyseSql(sql, opts);
  } catch (err) {
    return err instanceof DenialError ? `denied: ${err.denial.reasons.join(',')}: ${err.message}` : `bug: ${(err as Error)?.stack ?? String(err)}`;
  }
}

function checkPassed(t: Test, c: Passed): void {
  const a = analyse(c.sql, c.opts ?? {});
  if (typeof a === 'string') {
    t.fail(`${c.name}: ${a}`);
    return;
  }
  t.equal(a.facts.statements, 1, `${c.name}: statements`);
  t.equal(a.facts.kind, 'select', `${c.name}: kind`);
  t.equal(a.text, c.sql, `${c.name}: the exact text`);
  if (c.tables) t.same(a.facts.tables, c.tables, `${c.name}: tables`);
  if (c.functions) t.same(a.facts.functions, c.functions, `${c.name}: functions`);
  if (c.agreement) t.equal(a.facts.agreement, c.agreement, `${c.name}: agreement`);
}

t.test('the attack corpus: every query is refused with its reason code', async (t) => {
  const refusals = ATTACKS.length;
  t.ok(refusals >= 80, `${refusals} attack queries`);
  for (const a of ATTACKS) {
    const d = denialOf(a.sql, a.opts ?? {});
    if (typeof d === 'string') {
      t.fail(`${a.name}: ${d}`);
      continue;
    }
    t.equal(d.code, a.code ?? 'sql_rejected', `${a.name}: code`);
    t.ok(d.reasons.includes(a.reason), `${a.name}: ${a.reason} in ${JSON.stringify(d.reasons)} (${d.message})`);
  }
  const used = new Set(ATTACKS.map((a) => a.reason));
  for (const r of used) t.ok(Object.hasOwn(SQL_REASON_CODES, r), `${r} is a registered reason code`);
});

t.test('every dangerous function is refused in every spelling', async (t) => {
  for (const call of DANGEROUS_CALLS) {
    const name = call.slice(0, call.indexOf('('));
    const args = call.slice(call.indexOf('('));
    for (const spelled of [
      name,
      name.toUpperCase(),
      `pg_catalog.${name}`,
      `PG_CATALOG.${name.toUpperCase()}`,
      `"${name}"`,
      `"pg_catalog"."${name}"`,
      `"${name.toUpperCase()}"`,
      `public.${name}`,
    ]) {
      for (const sql of [
        `SELECT ${spelled}${args}`,
        `SELECT * FROM users WHERE id IN (SELECT 1 FROM orders ORDER BY ${spelled}${args})`,
        `WITH x AS (SELECT coalesce(${spelled}${args}, NULL) AS v) SELECT * FROM x`,
      ]) {
        const d = denialOf(sql);
        t.ok(typeof d !== 'string' && d.reasons.includes('sql.function_not_allowed'), `${sql} → ${typeof d === 'string' ? d : d.reasons.join(',')}`);
      }
    }
  }
});

t.test('legitimate analytical queries pass, with their tables and functions', async (t) => {
  t.ok(LEGIT.length >= 25, `${LEGIT.length} legitimate queries`);
  t.ok(LEGIT.filter((c) => c.tables || c.functions).length >= 25, 'most assert their facts');
  for (const c of LEGIT) checkPassed(t, c);
});

t.test('harmless look-alikes pass (the decisions they document)', async (t) => {
  for (const c of LOOKALIKES) checkPassed(t, c);
});

t.test('CTE scope: shadowing follows PostgreSQL', async (t) => {
  for (const s of SCOPES) {
    const a = analyse(s.sql, { allowCatalogs: true });
    if (typeof a === 'string') t.fail(`${s.name}: ${a}`);
    else t.same(a.facts.tables, s.tables, s.name);
  }
  // Without allowCatalogs, the outer pg_user that a subquery's CTE does not hide is refused.
  const d = denialOf('SELECT * FROM (WITH pg_user AS (SELECT 1) SELECT * FROM pg_user) s, pg_user');
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.catalog_not_allowed'));
  const ok = analyse('WITH pg_user AS (SELECT 1 AS usename) SELECT * FROM pg_user');
  t.ok(typeof ok !== 'string' && ok.facts.tables.length === 0, 'a CTE named pg_user is not the catalog');
});

t.test('catalogs: refused by default, collected with allowCatalogs', async (t) => {
  const a = analyse(
    'SELECT rolname FROM pg_authid UNION ALL SELECT usename FROM pg_catalog.pg_shadow UNION ALL SELECT table_name FROM information_schema.tables',
    { allowCatalogs: true },
  );
  if (typeof a === 'string') return t.fail(a);
  // An unqualified pg_* name may resolve to either schema, so the policy must allow both.
  t.same(a.facts.tables, ['information_schema.tables', 'pg_catalog.pg_authid', 'pg_catalog.pg_shadow', 'public.pg_authid']);
  const d = denialOf('SELECT rolname FROM pg_authid');
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.catalog_not_allowed'));
});

t.test('parser DoS: huge and deep inputs are refused fast, and the parser keeps working', async (t) => {
  const huge = 'SELECT ' + 'a, '.repeat(3_500_000) + '1';
  t.ok(huge.length > 10_000_000);
  let t0 = performance.now();
  let d = denialOf(huge);
  let ms = performance.now() - t0;
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_long'), '10 MB: too long');
  t.ok(ms < 1000, `10 MB refused in ${ms.toFixed(2)} ms`);

  const deep = 'SELECT ' + '('.repeat(10_000) + '1' + ')'.repeat(10_000);
  t0 = performance.now();
  d = denialOf(deep);
  ms = performance.now() - t0;
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_long'), '10,000 nested parentheses: over the default byte cap');
  t.ok(ms < 1000, `refused in ${ms.toFixed(2)} ms`);
  // With a byte cap that lets the text in, the nesting scanner refuses it before any parser.
  t0 = performance.now();
  d = denialOf(deep, { maxBytes: 1 << 20 });
  ms = performance.now() - t0;
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_deep'), '10,000 nested parentheses: too deep');
  t.ok(ms < 1000, `refused in ${ms.toFixed(2)} ms`);
  const deepInStrings = "SELECT '" + '('.repeat(200) + "' /* " + '('.repeat(200) + ' */, $x$' + '('.repeat(200) + '$x$ FROM users';
  t.equal(typeof analyse(deepInStrings), 'object', 'parentheses inside strings, comments and dollar quotes do not count');

  // Deep trees without parentheses reach the parser but not the walk or node-sql-parser.
  for (const [name, sql] of [
    ['NOT chain', 'SELECT ' + 'NOT '.repeat(4000) + 'true'],
    ['cast chain', 'SELECT 1' + '::int'.repeat(1300)],
    ['CASE nesting', 'SELECT ' + 'CASE WHEN true THEN '.repeat(600) + '1' + ' END'.repeat(600)],
    ['operator chain', 'SELECT ' + Array(2000).fill('1').join('+')],
    ['UNION chain', Array(900).fill('SELECT 1').join(' UNION ')],
    ['long list', 'SELECT ' + Array(8000).fill('1').join(',')],
  ] as const) {
    t0 = performance.now();
    d = denialOf(sql);
    ms = performance.now() - t0;
    t.ok(
      typeof d !== 'string' && (d.reasons.includes('sql.too_deep') || d.reasons.includes('sql.too_complex')),
      `${name}: ${typeof d === 'string' ? d : d.reasons.join(',')}`,
    );
    t.ok(ms < 1000, `${name} refused in ${ms.toFixed(2)} ms`);
  }
  t.ok(sqlAnalysisReady(), 'the parser is still usable');
  const after = analyse('SELECT id, name FROM users WHERE id = $1', { cache: false });
  t.ok(typeof after !== 'string' && after.facts.tables[0] === 'public.users', 'a normal query analyses afterwards');
});

t.test('hygiene: tab, CR and LF are fine; the scanner reads quotes and comments like PostgreSQL', async (t) => {
  const a = analyse('SELECT\tid\r\nFROM\rusers\n');
  t.ok(typeof a !== 'string' && a.facts.tables[0] === 'public.users');
  const s = checkSqlHygiene("SELECT 'a''b', E'c\\'d', \"Q\"\"x\", $t$ ' $t$, $1 /* /* */ ( */ -- (\nFROM Users");
  t.equal(s.statements, 1);
  t.equal(s.depth, 0);
  t.ok(s.identifiers.has('Q"x') && s.identifiers.has('users') && s.identifiers.has('select'));
  t.ok(!s.identifiers.has('b') && !s.identifiers.has('d'), 'string contents are not identifiers');
  t.same([...s.hazards].sort(), ['dollar_quote', 'escape_string', 'nested_comment']);
  t.same([...checkSqlHygiene("SELECT '\\' ; DROP TABLE users; -- '").hazards], ['backslash_in_string']);
  t.equal(checkSqlHygiene("SELECT '\\' ; DROP TABLE users; -- '").statements, 2, 'the scanner counts two statements, like PostgreSQL');
  t.equal(checkSqlHygiene('SELECT 1;; ;').statements, 1);
  t.equal(checkSqlHygiene('SELECT a$b$c FROM t').hazards.size, 0, '$ inside an identifier is not a dollar quote');
  t.equal(checkSqlHygiene('SELECT 1 FROM t WHERE a = $1').hazards.size, 0);
  t.ok(checkSqlHygiene('SELECT U&"a" FROM t').hazards.has('unicode_escape'));
  t.ok(checkSqlHygiene('SELECT\u00a0x FROM t').hazards.has('non_ascii'));
  t.equal(checkSqlHygiene("SELECT x'1F', b'01', n'abc' FROM t").hazards.size, 0);
});

t.test('options: allow-list, default schema, strict agreement, limits', async (t) => {
  const custom = analyse('SELECT reporting.fiscal_quarter(created_at), count(*) FROM orders GROUP BY 1', { functions: ['count', 'reporting.fiscal_quarter'] });
  t.ok(typeof custom !== 'string' && custom.facts.functions.includes('reporting.fiscal_quarter'), 'a schema-qualified allow-list entry');
  let d = denialOf('SELECT fiscal_quarter(created_at) FROM orders', { functions: ['reporting.fiscal_quarter'] });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.function_not_allowed'), 'a qualified entry does not allow the unqualified call');
  d = denialOf('SELECT count(*) FROM orders', { functions: [] });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.function_not_allowed'), 'an empty allow-list allows no function');
  const caseSensitive = denialOf('SELECT "COUNT"(*) FROM orders');
  t.ok(typeof caseSensitive !== 'string' && caseSensitive.reasons.includes('sql.function_not_allowed'), 'a quoted upper-case name is a different function');

  const schema = analyse('SELECT * FROM events e JOIN public.users u ON u.id = e.user_id', { defaultSchema: 'analytics' });
  t.ok(typeof schema !== 'string' && schema.facts.tables.join() === 'analytics.events,public.users');
  t.throws(() => analyseSql('SELECT 1', { defaultSchema: 'Bad Schema' }), TypeError);
  t.same(sqlSessionSettings(), { standard_conforming_strings: 'on', search_path: 'pg_catalog, public, pg_temp' });
  t.same(sqlSessionSettings({ defaultSchema: 'analytics' }).search_path, 'pg_catalog, analytics, pg_temp');

  const gap = 'SELECT region, sum(amount) FROM sales GROUP BY GROUPING SETS ((region), ())';
  const lexical = analyse(gap);
  t.ok(typeof lexical !== 'string' && lexical.facts.agreement === 'lexical');
  d = denialOf(gap, { agreement: 'strict' });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.parser_disagreement'), 'strict mode refuses what node-sql-parser cannot parse');
  const both = analyse('SELECT count(*) FROM orders', { agreement: 'strict' });
  t.ok(typeof both !== 'string' && both.facts.agreement === 'both');

  d = denialOf('SELECT 1 -- ' + 'x'.repeat(100), { maxBytes: 64 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_long'));
  d = denialOf('SELECT ((((1))))', { maxDepth: 3 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_deep'));
  d = denialOf('SELECT a, b, c, d FROM t', { maxTokens: 5 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_complex'));
  d = denialOf('SELECT a + b + c + d FROM t', { maxTreeDepth: 4 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_deep'));
  d = denialOf('SELECT a, b, c, d FROM t', { maxNodes: 5 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_complex'));
});

t.test('the cache reuses a parse but re-applies every option', async (t) => {
  clearSqlAnalysisCache();
  const sql = 'SELECT pg_sleep(1), count(*) FROM ((SELECT 1) UNION ALL (SELECT 2)) s';
  const timings = {} as SqlTimings;
  const first = analyse(sql, { functions: [...DEFAULT_SQL_FUNCTIONS, 'pg_sleep'], timings });
  t.ok(typeof first !== 'string' && !timings.cached, 'first analysis parses');
  const again = analyse(sql, { functions: [...DEFAULT_SQL_FUNCTIONS, 'pg_sleep'], timings });
  t.ok(typeof again !== 'string' && timings.cached, 'second analysis comes from the cache');
  t.same(typeof again !== 'string' && again.facts, typeof first !== 'string' && first.facts);
  let d = denialOf(sql);
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.function_not_allowed'), "a cached parse still meets the caller's allow-list");
  d = denialOf(sql, { functions: [...DEFAULT_SQL_FUNCTIONS, 'pg_sleep'], maxDepth: 1 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_deep'), "and the caller's limits");
  d = denialOf(sql, { functions: [...DEFAULT_SQL_FUNCTIONS, 'pg_sleep'], maxBytes: 20 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_long'));
  d = denialOf(sql, { functions: [...DEFAULT_SQL_FUNCTIONS, 'pg_sleep'], agreement: 'strict', maxTreeDepth: 3 });
  t.ok(typeof d !== 'string' && d.reasons.includes('sql.too_deep'));
  const uncached = analyse(sql, { functions: [...DEFAULT_SQL_FUNCTIONS, 'pg_sleep'], cache: false, timings });
  t.ok(typeof uncached !== 'string' && !timings.cached && timings.libpgQuery > 0);
});

t.test('facts: fingerprint, limit, params, columns, exact text', async (t) => {
  const fp = (sql: string): string => {
    const a = analyse(sql);
    return typeof a === 'string' ? a : a.facts.fingerprint;
  };
  const base = fp('SELECT * FROM users WHERE id = 1 LIMIT 10');
  t.match(base, /^sqlt1:[0-9a-f]{64}$/);
  t.equal(fp('select *   from users -- note\n where id = 42 limit 99'), base, 'constants, case, spacing and comments do not change it');
  t.not(fp('SELECT * FROM users WHERE name = 1 LIMIT 10'), base, 'a different column does');
  t.not(fp('SELECT * FROM orders WHERE id = 1 LIMIT 10'), base, 'a different table does');
  t.not(fp('SELECT * FROM users WHERE id = $1 LIMIT 10'), base, 'a parameter is not a constant');

  const limit = (sql: string): number | undefined => {
    const a = analyse(sql);
    return typeof a === 'string' ? -1 : a.facts.limit;
  };
  t.equal(limit('SELECT * FROM users LIMIT 25'), 25);
  t.equal(limit('SELECT * FROM users LIMIT 0'), 0);
  t.equal(limit('SELECT * FROM users ORDER BY id FETCH FIRST 5 ROWS ONLY'), 5);
  t.equal(limit('SELECT id FROM users UNION ALL SELECT id FROM admins LIMIT 7'), 7);
  t.equal(limit('SELECT * FROM users LIMIT $1'), undefined);
  t.equal(limit('SELECT * FROM users LIMIT ALL'), undefined);
  t.equal(limit('SELECT * FROM users'), undefined);
  t.equal(limit('SELECT * FROM (SELECT * FROM users LIMIT 3) s'), undefined, 'only the top level counts');

  const a = analyse('SELECT a, t.b, t.*, $3 FROM t WHERE c = $1');
  if (typeof a === 'string') return t.fail(a);
  t.equal(a.facts.params, 3);
  t.same(a.facts.columns, ['*', 'a', 'b', 'c']);
  const text = '  SELECT 1 ; -- trailing\n';
  const b = analyse(text);
  t.ok(typeof b !== 'string' && b.text === text, 'the text to execute is the analysed text, byte for byte');
  t.ok(Object.isFrozen(DEFAULT_SQL_FUNCTIONS));
});

t.test('node-sql-parser gaps: tolerated only on lexically plain text (documented)', async (t) => {
  const parser = new NodeSqlParser.Parser();
  const gaps = [
    'SELECT region, sum(amount) FROM sales GROUP BY GROUPING SETS ((region), ())',
    'SELECT upper(substring(name FROM 1 FOR 1)) FROM users',
    'SELECT id FROM orders WHERE status = ANY($1::text[])',
    'VALUES (1)',
    'TABLE users',
    "SELECT json_agg(id) FILTER (WHERE status = 'paid') FROM orders",
    'SELECT id FROM orders FETCH FIRST 3 ROWS ONLY',
    "SELECT * FROM unnest(ARRAY['a']) WITH ORDINALITY",
    "SELECT E'x' AS s",
    "SELECT U&'\\0041'",
  ];
  for (const sql of gaps) {
    let parsed = true;
    try {
      parser.parse(sql, { database: 'postgresql' });
    } catch {
      parsed = false;
    }
    const a = analyse(sql);
    t.comment(`node-sql-parser ${parsed ? 'parses' : 'cannot parse'}: ${sql} → ${typeof a === 'string' ? a : `allowed (${a.facts.agreement})`}`);
    t.notOk(parsed, `node-sql-parser 5.4 still cannot parse: ${sql}`);
  }
});

t.test("the default allow-list is the source of the policy's function list", async (t) => {
  const data = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: { database: { functions: string[] } } };
  const policyFns = data.bulwark.database.functions;
  const ours = new Set(DEFAULT_SQL_FUNCTIONS);
  for (const f of policyFns) t.ok(ours.has(f), `policies/data.json function ${f} is in DEFAULT_SQL_FUNCTIONS`);
  const missing = DEFAULT_SQL_FUNCTIONS.filter((f) => !policyFns.includes(f));
  t.comment(`DEFAULT_SQL_FUNCTIONS not (yet) in policies/data.json: ${missing.length} (${missing.slice(0, 12).join(', ')}, ...)`);
  for (const f of DEFAULT_SQL_FUNCTIONS) t.equal(f, f.toLowerCase(), `${f} is lower-case, as policy data must be`);
  t.equal(new Set(DEFAULT_SQL_FUNCTIONS).size, DEFAULT_SQL_FUNCTIONS.length, 'no duplicates');
  for (const bad of [
    'pg_sleep',
    'pg_read_file',
    'set_config',
    'current_setting',
    'version',
    'txid_current',
    'dblink',
    'lo_import',
    'query_to_xml',
    'nextval',
  ]) {
    t.notOk(ours.has(bad), `${bad} is not allowed by default`);
  }
});

t.test('the facts are what the compiled policy expects', async (t) => {
  const data = readPolicyData(path.join(ROOT, 'policies', 'data.json')) as { bulwark: { database: Record<string, unknown> } };
  // The policy with its function list taken from the analyser (the decision this module proposes).
  const synced = { ...data, bulwark: { ...data.bulwark, database: { ...data.bulwark.database, functions: [...DEFAULT_SQL_FUNCTIONS] } } };
  const engine = await WasmPolicyEngine.load(path.join(ROOT, 'policies', 'policy.wasm'), synced, 64 * 1024);
  const decide = (roles: string[], facts: unknown) =>
    engine.decide({
      principal: { id: 'u1', roles, auth: 'stdio' },
      tool: 'query_database',
      args: {},
      facts: { sql: facts },
      context: { transport: 'stdio', time: '2025-01-01T00:00:00Z', request_id: 'r1' },
    });
  for (const c of LEGIT) {
    const a = analyse(c.sql);
    if (typeof a === 'string') {
      t.fail(`${c.name}: ${a}`);
      continue;
    }
    const d = decide(['admin'], a.facts);
    t.ok(d.allow, `${c.name}: the policy allows the admin (${d.reasons.join(',')})`);
  }
  const pub = analyse('SELECT count(*) FROM orders');
  t.ok(typeof pub !== 'string' && decide(['analyst'], pub.facts).allow, 'analyst, public table');
  const other = analyse('SELECT count(*) FROM analytics.events');
  t.ok(typeof other !== 'string' && decide(['analyst'], other.facts).reasons.includes('sql.table_not_allowed'), 'analyst, table outside public');
  const hr = analyse('SELECT * FROM hr.salaries');
  t.ok(typeof hr !== 'string' && decide(['admin'], hr.facts).reasons.includes('sql.table_not_allowed'), 'denied_tables wins for the admin');
  const catalog = analyse('SELECT * FROM pg_user', { allowCatalogs: true });
  t.ok(typeof catalog !== 'string' && !decide(['analyst'], catalog.facts).allow, 'an unqualified pg_* name is not public.* to the analyst');
});

t.test('property: safe fragments followed by ; and a forbidden statement are always refused', async (t) => {
  const safe = LEGIT.map((c) => c.sql).filter((s) => !s.includes('--'));
  const forbidden = [
    'DROP TABLE users',
    'DELETE FROM users',
    'UPDATE users SET admin = true',
    'COMMIT',
    'ROLLBACK',
    'START TRANSACTION READ WRITE',
    'SET TRANSACTION READ WRITE',
    'COPY users TO STDOUT',
    'LISTEN x',
    "NOTIFY x, 'y'",
    'VACUUM',
    'CREATE TABLE t AS SELECT 1',
    'GRANT ALL ON users TO PUBLIC',
    'SELECT pg_sleep(10)',
    'SELECT 1',
    'DO $$BEGIN END$$',
    'CALL p()',
    'SET search_path = evil',
    'DISCARD ALL',
  ];
  const sep = fc.constantFrom(';', ' ;', ';\n', '; -- c\n', ';/* c */', ' ;; ', ';\t');
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...safe), { minLength: 1, maxLength: 3 }),
      sep,
      fc.constantFrom(...forbidden),
      fc.boolean(),
      (fragments, s, bad, trailing) => {
        const sql = fragments.join(s) + s + bad + (trailing ? ';' : '');
        try {
          analyseSql(sql);
          return false;
        } catch (err) {
          return err instanceof DenialError && err.denial.code === 'sql_rejected';
        }
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 concatenations refused');
});

t.test('property: arbitrary text yields facts or a DenialError, never another error', async (t) => {
  const outcome = (sql: string): boolean => {
    try {
      const a = analyseSql(sql, { cache: false });
      return a.facts.statements === 1 && a.facts.kind === 'select' && a.text === sql;
    } catch (err) {
      return err instanceof DenialError;
    }
  };
  const tokens = [
    'SELECT',
    'FROM',
    'WHERE',
    'WITH',
    'AS',
    '(',
    ')',
    '[',
    ']',
    ',',
    ';',
    "'",
    '"',
    '$$',
    '$a$',
    '$1',
    '--',
    '\n',
    '/*',
    '*/',
    '\\',
    "E'",
    "U&'",
    'U&"',
    'pg_sleep(1)',
    'users',
    'x',
    '1',
    '.',
    '::',
    'regclass',
    '*',
    'UNION',
    'SELECT 1',
    'LATERAL',
    'ORDER BY',
    'LIMIT',
    'INTO',
    'FOR UPDATE',
    'count(*)',
    '(x).f',
    'NOT',
    '+',
    '||',
    '->>',
    ' ',
    '\t',
    'ä',
    '\u00a0',
  ];
  fc.assert(fc.property(fc.string({ maxLength: 200 }), outcome), { numRuns: 300 });
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 120 }), outcome), { numRuns: 300 });
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...tokens), { maxLength: 40 }).map((a) => a.join('')),
      outcome,
    ),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...tokens), { maxLength: 40 }).map((a) => a.join(' ')),
      outcome,
    ),
    { numRuns: 500 },
  );
  t.ok(sqlAnalysisReady(), 'the parser survived');
});

t.test('without initSqlAnalysis the analyser fails closed with `unavailable`', async (t) => {
  const mod = path.join(ROOT, 'dist', 'src', 'analysis', 'sql.js');
  const code = `import(${JSON.stringify(mod)}).then((m) => { try { m.analyseSql('SELECT 1'); console.log('passed'); } catch (e) { console.log(e.name, e.denial?.code, e.denial?.reasons.join(',')); } })`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.stdout.trim(), 'DenialError unavailable sql.parser_unavailable', r.stderr);
});
