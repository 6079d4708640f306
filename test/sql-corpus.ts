/**
 * The SQL analyser's corpus, as data: attacks with the reason each must be refused with, harmless
 * look-alikes that must pass (they document decisions), legitimate analytical queries that must pass
 * (a gate that refuses everything fails on them), and CTE scope cases.
 */

export interface Refused {
  readonly name: string;
  readonly sql: string;
  /** The reason code expected in denial.reasons. */
  readonly reason: string;
  /** The denial code; sql_rejected unless given. */
  readonly code?: string;
  readonly opts?: Readonly<Record<string, unknown>>;
}

export interface Passed {
  readonly name: string;
  readonly sql: string;
  /** When given, facts.tables must equal this exactly. */
  readonly tables?: readonly string[];
  /** When given, facts.functions must equal this exactly. */
  readonly functions?: readonly string[];
  /** When given, facts.agreement must equal this. */
  readonly agreement?: 'both' | 'lexical';
  readonly opts?: Readonly<Record<string, unknown>>;
}

const M = 'sql.multi_statement';
const N = 'sql.not_select';
const F = 'sql.function_not_allowed';
const R = 'sql.reg_cast';
const C = 'sql.catalog_not_allowed';
const D = 'sql.parser_disagreement';

// ------------------------------------------------------------------------------------------------
// Attacks

const MULTI: Refused[] = [
  { name: 'two selects', sql: 'SELECT 1; SELECT 2', reason: M },
  { name: 'select then drop', sql: 'SELECT * FROM users; DROP TABLE users', reason: M },
  { name: 'commit escapes the read-only transaction', sql: 'COMMIT; DROP TABLE users', reason: M },
  { name: 'rollback, start read write', sql: 'ROLLBACK; START TRANSACTION READ WRITE; DELETE FROM users', reason: M },
  { name: 'set transaction read write', sql: 'SET TRANSACTION READ WRITE; DELETE FROM users', reason: M },
  { name: 'the backslash-quote differential', sql: "SELECT '\\' ; DROP TABLE users; -- '", reason: M },
  { name: 'E-string escaped quote then a real terminator', sql: "SELECT E'\\'' ; DROP TABLE users; -- '", reason: M },
  { name: 'nested comment closed, then a second statement', sql: 'SELECT 1 /* /* */ */; DROP TABLE users', reason: M },
  { name: 'dollar-quoted semicolon, then a second statement', sql: 'SELECT $$;$$; DROP TABLE users', reason: M },
  { name: 'tagged dollar quote, then a second statement', sql: 'SELECT $a$ ; $a$ ; DELETE FROM users', reason: M },
  { name: 'newline-separated vacuum', sql: 'select 1;\nvacuum', reason: M },
  { name: 'comment between statements', sql: 'SELECT 1 -- first\n; /* gap */ UPDATE users SET admin = true', reason: M },
  { name: 'select after a harmless select', sql: 'SELECT 1; SELECT pg_sleep(10)', reason: M },
];

const NOT_SELECT: Refused[] = [
  { name: 'drop', sql: 'DROP TABLE users', reason: N },
  { name: 'delete', sql: 'DELETE FROM users', reason: N },
  { name: 'update', sql: "UPDATE users SET role = 'admin'", reason: N },
  { name: 'insert', sql: 'INSERT INTO users (id) VALUES (1)', reason: N },
  { name: 'truncate', sql: 'TRUNCATE users', reason: N },
  { name: 'merge', sql: 'MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN DELETE', reason: N },
  { name: 'commit', sql: 'COMMIT', reason: N },
  { name: 'rollback', sql: 'ROLLBACK', reason: N },
  { name: 'begin', sql: 'BEGIN', reason: N },
  { name: 'start transaction read write', sql: 'START TRANSACTION READ WRITE', reason: N },
  { name: 'set transaction read write', sql: 'SET TRANSACTION READ WRITE', reason: N },
  { name: 'set search_path', sql: 'SET search_path = evil, public', reason: N },
  { name: 'set session authorization', sql: 'SET SESSION AUTHORIZATION postgres', reason: N },
  { name: 'reset', sql: 'RESET ALL', reason: N },
  { name: 'show', sql: 'SHOW data_directory', reason: N },
  { name: 'copy to stdout', sql: 'COPY users TO STDOUT', reason: N },
  { name: 'copy query to a file', sql: "COPY (SELECT * FROM users) TO '/tmp/users.csv'", reason: N },
  { name: 'copy from program', sql: "COPY users FROM PROGRAM 'id'", reason: N },
  { name: 'declare cursor with hold', sql: 'DECLARE c CURSOR WITH HOLD FOR SELECT * FROM users', reason: N },
  { name: 'listen', sql: 'LISTEN channel', reason: N },
  { name: 'notify', sql: "NOTIFY channel, 'payload'", reason: N },
  { name: 'unlisten', sql: 'UNLISTEN *', reason: N },
  { name: 'do block', sql: 'DO $$BEGIN PERFORM pg_sleep(10); END$$', reason: N },
  { name: 'call', sql: 'CALL refresh_everything()', reason: N },
  { name: 'explain analyze delete', sql: 'EXPLAIN ANALYZE DELETE FROM users', reason: N },
  { name: 'explain select (refused too: it is not a SELECT and EXPLAIN ANALYZE executes)', sql: 'EXPLAIN SELECT * FROM users', reason: N },
  { name: 'create table as select', sql: 'CREATE TABLE stolen AS SELECT * FROM users', reason: N },
  { name: 'create function', sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", reason: N },
  { name: 'vacuum', sql: 'VACUUM', reason: N },
  { name: 'analyze', sql: 'ANALYZE users', reason: N },
  { name: 'prepare', sql: 'PREPARE p AS SELECT 1', reason: N },
  { name: 'execute', sql: 'EXECUTE p', reason: N },
  { name: 'lock table', sql: 'LOCK TABLE users IN ACCESS EXCLUSIVE MODE', reason: N },
  { name: 'discard all', sql: 'DISCARD ALL', reason: N },
  { name: 'grant', sql: 'GRANT ALL ON users TO PUBLIC', reason: N },
  { name: 'alter system', sql: "ALTER SYSTEM SET log_statement = 'none'", reason: N },
  { name: 'checkpoint', sql: 'CHECKPOINT', reason: N },
  { name: 'load a library', sql: "LOAD '/tmp/evil.so'", reason: N },
  { name: 'refresh materialized view', sql: 'REFRESH MATERIALIZED VIEW mv', reason: N },
  { name: 'writable CTE: delete', sql: 'WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x', reason: N },
  { name: 'writable CTE: update', sql: "WITH x AS (UPDATE users SET role = 'admin' RETURNING id) SELECT count(*) FROM x", reason: N },
  { name: 'writable CTE: insert', sql: 'WITH x AS (INSERT INTO audit_log VALUES (1) RETURNING *) SELECT 1', reason: N },
  { name: 'writable CTE inside a subquery', sql: 'SELECT * FROM (WITH d AS (DELETE FROM users RETURNING id) SELECT * FROM d) s', reason: N },
  { name: 'writable CTE after a harmless one', sql: 'WITH a AS (SELECT 1), b AS (DELETE FROM users RETURNING 1) SELECT * FROM a', reason: N },
];

const INTO_AND_LOCKS: Refused[] = [
  { name: 'select into', sql: 'SELECT * INTO stolen FROM users', reason: 'sql.select_into' },
  { name: 'select into temp', sql: 'SELECT 1 AS x INTO TEMP t', reason: 'sql.select_into' },
  { name: 'for update', sql: 'SELECT * FROM users FOR UPDATE', reason: 'sql.locking_clause' },
  { name: 'for share nowait', sql: 'SELECT * FROM users FOR SHARE NOWAIT', reason: 'sql.locking_clause' },
  { name: 'for no key update skip locked', sql: 'SELECT * FROM users FOR NO KEY UPDATE SKIP LOCKED', reason: 'sql.locking_clause' },
  { name: 'for update in a subquery', sql: 'SELECT * FROM (SELECT * FROM users FOR UPDATE) s', reason: 'sql.locking_clause' },
  { name: 'for key share in a CTE', sql: 'WITH x AS (SELECT * FROM users FOR KEY SHARE) SELECT * FROM x', reason: 'sql.locking_clause' },
  { name: 'for update of a table after a union', sql: 'SELECT id FROM users UNION ALL (SELECT id FROM admins FOR UPDATE)', reason: 'sql.locking_clause' },
];

/** Every dangerous built-in, called plainly. */
export const DANGEROUS_CALLS: readonly string[] = [
  'pg_sleep(10)',
  "pg_sleep_for('1 hour')",
  "pg_sleep_until('2099-01-01')",
  "pg_read_file('/etc/passwd')",
  "pg_read_binary_file('/etc/passwd')",
  "pg_ls_dir('.')",
  "pg_stat_file('/etc/passwd')",
  "lo_import('/etc/passwd')",
  "lo_export(16385, '/tmp/x')",
  'lo_creat(-1)',
  'lo_get(16385)',
  'lo_unlink(16385)',
  "dblink('host=evil', 'SELECT 1')",
  "dblink_exec('host=evil', 'DROP TABLE users')",
  "set_config('search_path', 'evil', false)",
  'pg_terminate_backend(1234)',
  'pg_cancel_backend(1234)',
  'pg_advisory_lock(1)',
  'pg_try_advisory_lock(1)',
  'pg_advisory_xact_lock(1)',
  'txid_current()',
  'pg_current_xact_id()',
  "pg_notify('channel', 'payload')",
  "query_to_xml('SELECT * FROM pg_authid', true, true, '')",
  "table_to_xml('pg_authid', true, true, '')",
  "cursor_to_xml('c', 10, true, true, '')",
  "database_to_xml(true, true, '')",
  "current_setting('data_directory')",
  'version()',
  'pg_reload_conf()',
  'pg_rotate_logfile()',
  "nextval('orders_id_seq')",
  "setval('orders_id_seq', 1)",
  "ts_stat('SELECT body_tsv FROM docs')",
  'pg_backend_pid()',
  'current_database()',
  'inet_server_addr()',
  "to_regclass('pg_authid')",
  "pg_logical_emit_message(true, 'x', 'y')",
  'pg_switch_wal()',
  "has_table_privilege('users', 'select')",
  "xpath('/a', '<a/>')",
  "encode('x', 'base64')",
];

function fnName(call: string): string {
  return call.slice(0, call.indexOf('('));
}

const FUNCTIONS: Refused[] = [
  ...DANGEROUS_CALLS.map((call) => ({ name: `call ${fnName(call)}`, sql: `SELECT ${call}`, reason: F })),
  // spellings of pg_sleep
  { name: 'schema-qualified', sql: 'SELECT pg_catalog.pg_sleep(1)', reason: F },
  { name: 'upper case', sql: 'SELECT PG_SLEEP(1)', reason: F },
  { name: 'mixed case, qualified', sql: 'SELECT PG_CATALOG.Pg_Sleep(1)', reason: F },
  { name: 'quoted lower case', sql: 'SELECT "pg_sleep"(1)', reason: F },
  { name: 'quoted upper case (a different, nonexistent function; refused all the same)', sql: 'SELECT "PG_SLEEP"(1)', reason: F },
  { name: 'quoted schema and name', sql: 'SELECT "pg_catalog"."pg_sleep"(1)', reason: F },
  { name: 'public-qualified built-in name', sql: 'SELECT public.lower(name) FROM users', reason: F },
  { name: 'unicode-escaped identifier', sql: 'SELECT U&"\\0070g_sleep"(1)', reason: F },
  // positions
  { name: 'in FROM', sql: "SELECT * FROM pg_read_file('/etc/passwd')", reason: F },
  { name: 'in FROM with a column definition', sql: "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", reason: F },
  { name: 'in ROWS FROM', sql: 'SELECT * FROM ROWS FROM (generate_series(1, 2), pg_sleep(1))', reason: F },
  { name: 'lateral function', sql: 'SELECT * FROM users u, LATERAL pg_sleep(1)', reason: F },
  { name: 'lateral subquery', sql: 'SELECT * FROM users u CROSS JOIN LATERAL (SELECT pg_sleep(1)) s', reason: F },
  { name: 'scalar subquery', sql: 'SELECT (SELECT pg_sleep(1))', reason: F },
  { name: 'CTE', sql: 'WITH x AS (SELECT pg_sleep(1)) SELECT * FROM x', reason: F },
  { name: 'nested CTE', sql: 'WITH a AS (WITH b AS (SELECT pg_sleep(1)) SELECT * FROM b) SELECT * FROM a', reason: F },
  {
    name: 'recursive CTE arm',
    sql: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE pg_sleep(0.1) IS NOT NULL) SELECT * FROM r',
    reason: F,
  },
  { name: 'ORDER BY', sql: 'SELECT * FROM users ORDER BY pg_sleep(1)', reason: F },
  { name: 'GROUP BY', sql: 'SELECT count(*) FROM users GROUP BY pg_sleep(1)', reason: F },
  { name: 'HAVING', sql: 'SELECT count(*) FROM users HAVING pg_sleep(1) IS NOT NULL', reason: F },
  { name: 'WHERE EXISTS', sql: 'SELECT * FROM users WHERE EXISTS (SELECT pg_sleep(1))', reason: F },
  { name: 'IN list', sql: 'SELECT * FROM users WHERE id IN (1, pg_backend_pid())', reason: F },
  { name: 'CASE', sql: 'SELECT CASE WHEN true THEN pg_sleep(1) END', reason: F },
  { name: 'COALESCE', sql: 'SELECT coalesce(pg_sleep(1), NULL)', reason: F },
  { name: 'argument of an allowed function', sql: "SELECT lower(pg_read_file('/etc/passwd'))", reason: F },
  { name: 'window ORDER BY', sql: 'SELECT sum(1) OVER (ORDER BY pg_sleep(1)) FROM users', reason: F },
  { name: 'window PARTITION BY in WINDOW clause', sql: 'SELECT sum(1) OVER w FROM users WINDOW w AS (PARTITION BY pg_backend_pid())', reason: F },
  { name: 'aggregate FILTER', sql: 'SELECT count(*) FILTER (WHERE pg_sleep(1) IS NULL) FROM users', reason: F },
  { name: 'WITHIN GROUP', sql: 'SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY pg_backend_pid()) FROM users', reason: F },
  { name: 'aggregate ORDER BY', sql: "SELECT string_agg(name, ',' ORDER BY pg_backend_pid()) FROM users", reason: F },
  { name: 'DISTINCT ON', sql: 'SELECT DISTINCT ON (pg_backend_pid()) id FROM users', reason: F },
  { name: 'LIMIT', sql: 'SELECT * FROM users LIMIT pg_backend_pid()', reason: F },
  { name: 'join condition', sql: 'SELECT * FROM users a JOIN users b ON pg_sleep(1) IS NULL', reason: F },
  { name: 'UNION arm', sql: 'SELECT 1 UNION ALL SELECT pg_backend_pid()', reason: F },
  { name: 'VALUES', sql: 'VALUES (pg_sleep(1))', reason: F },
  { name: 'array subscript', sql: 'SELECT (ARRAY[1, 2])[pg_backend_pid()]', reason: F },
  { name: 'cast argument', sql: 'SELECT pg_sleep(1)::text', reason: F },
  { name: 'named arguments', sql: "SELECT set_config(setting_name => 'search_path', new_value => 'evil', is_local => false)", reason: F },
  { name: 'TABLESAMPLE argument', sql: 'SELECT * FROM users TABLESAMPLE SYSTEM (pg_backend_pid())', reason: F },
  { name: 'TABLESAMPLE extension method', sql: 'SELECT * FROM users TABLESAMPLE system_rows (10)', reason: F },
  { name: 'string hides nothing from the real parser', sql: "SELECT '\\' , pg_sleep(1) -- '", reason: F },
  { name: 'dollar quote hides nothing from the real parser', sql: "SELECT $$'$$ , pg_sleep(1)", reason: F },
  // PostgreSQL's attribute notation: (x).f is f(x) for any type of x, t.f is f(t) on a whole row.
  { name: 'attribute notation: (float).pg_sleep', sql: 'SELECT (0.1::float8).pg_sleep', reason: F },
  { name: 'attribute notation: (text).current_setting', sql: "SELECT ('data_directory'::text).current_setting", reason: F },
  { name: 'attribute notation: (text).pg_ls_dir', sql: "SELECT ('.'::text).pg_ls_dir", reason: F },
  { name: 'attribute notation: (text).pg_read_file', sql: "SELECT ('/etc/passwd'::text).pg_read_file", reason: F },
  { name: 'attribute notation: (bigint).pg_advisory_lock', sql: 'SELECT (1::bigint).pg_advisory_lock', reason: F },
  { name: 'attribute notation on a column', sql: 'SELECT (s.x).pg_sleep FROM (SELECT 0.1::float8 AS x) s', reason: F },
  { name: 'attribute notation in WHERE', sql: "SELECT id FROM users WHERE ('x'::text).pg_notify IS NULL", reason: F },
  { name: 'whole-row attribute call t.f', sql: 'SELECT u.pg_column_size FROM users u', reason: F },
  { name: 'whole-row attribute call schema.t.f', sql: 'SELECT public.users.pg_typeof FROM public.users', reason: F },
  { name: 'whole-row attribute call (t).f', sql: 'SELECT (u).quote_literal FROM users u', reason: F },
  // The price: field selection from a composite value is refused unless the field name is an
  // allowed function, since (x).f cannot be told apart from f(x) without the catalog.
  { name: 'composite field selection is refused (over-block, documented)', sql: 'SELECT (c.address).city FROM customers c', reason: F },
  { name: 'current_user is identity disclosure (not allow-listed)', sql: 'SELECT current_user', reason: F },
  { name: 'session_user', sql: 'SELECT session_user', reason: F },
];

const REG_CASTS: Refused[] = [
  ['regproc', "SELECT 'pg_sleep'::regproc"],
  ['regprocedure', "SELECT 'sum(int4)'::regprocedure"],
  ['regclass', "SELECT 'pg_authid'::regclass"],
  ['regtype', "SELECT CAST('int4' AS regtype)"],
  ['regnamespace', "SELECT 'pg_catalog'::regnamespace"],
  ['regrole', "SELECT 'postgres'::regrole"],
  ['regoper', "SELECT '+'::regoper"],
  ['regoperator', "SELECT '+(int4,int4)'::regoperator"],
  ['regconfig', "SELECT 'english'::regconfig"],
  ['regdictionary', "SELECT 'simple'::regdictionary"],
  ['regcollation', 'SELECT \'"C"\'::regcollation'],
  ['qualified pg_catalog.regclass', 'SELECT relname::pg_catalog.regclass FROM users'],
  ['array of regclass', "SELECT '{pg_authid}'::regclass[]"],
  ['type-literal syntax', "SELECT regclass 'pg_authid'"],
  ['cast chain to oid', "SELECT * FROM users WHERE id = 'users'::regclass::oid"],
  ['column definition list type', "SELECT * FROM json_to_record('{}') AS r(x regclass)"],
].map(([name, sql]) => ({ name: `reg cast: ${name}`, sql: sql as string, reason: R }));

const CATALOGS: Refused[] = [
  { name: 'pg_authid', sql: 'SELECT rolname, rolpassword FROM pg_authid', reason: C },
  { name: 'pg_shadow', sql: 'SELECT * FROM pg_shadow', reason: C },
  { name: 'qualified pg_authid', sql: 'SELECT * FROM pg_catalog.pg_authid', reason: C },
  { name: 'quoted, qualified', sql: 'SELECT * FROM "pg_catalog"."pg_authid"', reason: C },
  { name: 'upper case folds', sql: 'SELECT * FROM PG_CATALOG.PG_USER', reason: C },
  { name: "pg_stat_activity (other sessions' query text)", sql: 'SELECT query FROM pg_stat_activity', reason: C },
  { name: 'pg_settings', sql: 'SELECT * FROM pg_settings', reason: C },
  { name: 'information_schema', sql: 'SELECT * FROM information_schema.tables', reason: C },
  { name: 'pg_toast', sql: 'SELECT * FROM pg_toast.pg_toast_1255', reason: C },
  { name: 'pg_temp', sql: 'SELECT * FROM pg_temp.scratch', reason: C },
  { name: 'catalog in a subquery', sql: 'SELECT * FROM users WHERE name IN (SELECT usename FROM pg_user)', reason: C },
  { name: 'catalog joined', sql: 'SELECT * FROM users u JOIN pg_roles r ON r.rolname = u.name', reason: C },
  { name: 'unicode-escaped catalog name', sql: 'SELECT * FROM U&"\\0070g_authid"', reason: C },
  { name: 'large objects', sql: 'SELECT data FROM pg_largeobject', reason: C },
];

const CONSTRUCTS: Refused[] = [
  { name: 'XMLTABLE', sql: "SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int PATH 'x')", reason: 'sql.construct_not_allowed' },
  { name: 'JSON_TABLE', sql: "SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (a int PATH '$'))", reason: 'sql.construct_not_allowed' },
  { name: 'xmlparse', sql: 'SELECT xmlparse(document \'<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>\')', reason: 'sql.construct_not_allowed' },
  { name: 'xmlelement', sql: 'SELECT xmlelement(name a, name) FROM users', reason: 'sql.construct_not_allowed' },
  { name: 'SQL/JSON constructor', sql: "SELECT json_object('a' : 1)", reason: 'sql.construct_not_allowed' },
  { name: 'SQL/JSON query function', sql: "SELECT json_value('{\"a\":1}', '$.a')", reason: 'sql.construct_not_allowed' },
  { name: 'IS JSON', sql: "SELECT '{}' IS JSON", reason: 'sql.construct_not_allowed' },
  { name: 'three-part name', sql: 'SELECT * FROM otherdb.public.users', reason: 'sql.identifier_unsupported' },
  { name: 'a dot inside a quoted table name', sql: 'SELECT * FROM "hr.salaries"', reason: 'sql.identifier_unsupported' },
  { name: 'a star inside a quoted schema name', sql: 'SELECT * FROM "*".users', reason: 'sql.identifier_unsupported' },
];

const DIFFERENTIALS: Refused[] = [
  // node-sql-parser cannot parse U& escapes, and they are a lexical hazard: no tolerance.
  { name: 'U& string', sql: "SELECT U&'\\0041' FROM users", reason: D },
  { name: 'U& identifier for an ordinary column', sql: 'SELECT U&"\\0069d" FROM users', reason: D },
  // node-sql-parser reads lateral_fn as LATERAL _fn: a real differential, caught by the function comparison.
  { name: 'keyword-prefixed function name', sql: 'SELECT * FROM lateral_fn(1)', reason: D, opts: { functions: ['lateral_fn'] } },
  // node-sql-parser fails on GROUPING SETS; the E'' string makes the text lexically ambiguous.
  {
    name: 'unparsable by node-sql-parser and lexically ambiguous',
    sql: "SELECT sum(amount) FROM sales WHERE note <> E'\\\\' GROUP BY GROUPING SETS ((region), ())",
    reason: D,
  },
  // A backslash in a standard string is neutralised for node-sql-parser; a stray one outside is not.
  { name: 'backslash outside any string', sql: 'SELECT 1 \\ 2', reason: 'sql.parse_error' },
  {
    name: 'unparsable by node-sql-parser, with a nested comment',
    sql: 'SELECT sum(amount) /* a /* b */ c */ FROM sales GROUP BY GROUPING SETS ((region), ())',
    reason: D,
  },
  // node-sql-parser 5.4 cannot parse an aliased E'' string; E'' is a lexical hazard: an over-block we accept.
  { name: 'aliased E-string (node-sql-parser cannot parse it)', sql: "SELECT E'it\\'s' AS s FROM users", reason: D },
  {
    name: 'strict agreement refuses what node-sql-parser cannot parse',
    sql: 'SELECT region, sum(amount) FROM sales GROUP BY GROUPING SETS ((region), ())',
    reason: D,
    opts: { agreement: 'strict' },
  },
];

const HYGIENE: Refused[] = [
  { name: 'NUL byte', sql: 'SELECT 1\u0000; DROP TABLE users', reason: 'sql.control_character' },
  { name: 'vertical tab', sql: 'SELECT\u000b1', reason: 'sql.control_character' },
  { name: 'form feed', sql: 'SELECT\f1', reason: 'sql.control_character' },
  { name: 'escape character', sql: 'SELECT 1 -- \u001b[2J', reason: 'sql.control_character' },
  { name: 'DEL', sql: 'SELECT 1\u007f', reason: 'sql.control_character' },
  { name: 'C1 control', sql: 'SELECT 1\u0085', reason: 'sql.control_character' },
  { name: 'bidi override in a comment', sql: 'SELECT 1 -- \u202e; DROP TABLE users', reason: 'sql.control_character' },
  { name: 'lone surrogate', sql: "SELECT '\ud800'", reason: 'sql.invalid_unicode' },
  { name: 'empty', sql: '', reason: 'sql.empty' },
  { name: 'whitespace', sql: ' \n\t ', reason: 'sql.empty' },
  { name: 'only a comment', sql: '-- nothing here', reason: 'sql.empty' },
  { name: 'only a semicolon', sql: ';', reason: 'sql.empty' },
  { name: 'parse error', sql: 'SELEC 1', reason: 'sql.parse_error' },
  { name: 'unbalanced parenthesis', sql: 'SELECT (1', reason: 'sql.parse_error' },
  { name: 'unterminated string', sql: "SELECT 'abc", reason: 'sql.parse_error' },
  { name: 'unterminated nested comment', sql: 'SELECT 1 /* /* */', reason: 'sql.parse_error' },
  { name: 'over the byte cap', sql: 'SELECT 1 -- ' + 'x'.repeat(20_000), reason: 'sql.too_long' },
  { name: 'over the byte cap in UTF-8 but not in characters', sql: "SELECT '" + '\u00e9'.repeat(9000) + "'", reason: 'sql.too_long' },
  { name: 'parentheses over the depth cap', sql: 'SELECT ' + '('.repeat(65) + '1' + ')'.repeat(65), reason: 'sql.too_deep' },
  { name: 'brackets over the depth cap', sql: 'SELECT ' + 'ARRAY['.repeat(65) + '1' + ']'.repeat(65), reason: 'sql.too_deep' },
  { name: 'NOT chain: a deep tree without parentheses', sql: 'SELECT ' + 'NOT '.repeat(1000) + 'true', reason: 'sql.too_deep' },
  {
    name: 'CASE nesting: a deep tree without parentheses',
    sql: 'SELECT ' + 'CASE WHEN true THEN '.repeat(300) + '1' + ' END'.repeat(300),
    reason: 'sql.too_deep',
  },
  { name: 'too many tokens', sql: 'SELECT ' + Array(5000).fill('1').join(','), reason: 'sql.too_complex' },
];

export const ATTACKS: readonly Refused[] = [
  ...MULTI,
  ...NOT_SELECT,
  ...INTO_AND_LOCKS,
  ...FUNCTIONS,
  ...REG_CASTS,
  ...CATALOGS,
  ...CONSTRUCTS,
  ...DIFFERENTIALS,
  ...HYGIENE,
];

// ------------------------------------------------------------------------------------------------
// Look-alikes: harmless texts that resemble attacks. Each passing case documents a decision.

export const LOOKALIKES: readonly Passed[] = [
  // In an E-string, \' is an escaped quote for every parser: one harmless string.
  {
    name: "E-string with \\' hides a 'statement' inside the string",
    sql: "SELECT E'\\' ; DROP TABLE users; -- '",
    tables: [],
    functions: [],
    agreement: 'both',
  },
  { name: 'E-string with an escaped quote', sql: "SELECT E'it\\'s' FROM users", tables: ['public.users'], agreement: 'both' },
  // With standard_conforming_strings on (enforced by the executor), a backslash in '...' is an
  // ordinary character. node-sql-parser reads it as an escape, so it is asked about the text with
  // those backslashes neutralised; the facts are libpg-query's reading, which is the server's: here
  // the subquery is read, and the policy decides on hr.salaries (the database test proves the
  // server sees the same).
  {
    name: 'backslash in a standard string before a subquery',
    sql: "SELECT '\\' , (SELECT secret FROM hr.salaries) -- '",
    tables: ['hr.salaries'],
    agreement: 'both',
  },
  { name: 'a string ending in a backslash', sql: "SELECT 'x\\' AS a, 'y' AS b", tables: [], agreement: 'both' },
  { name: 'LIKE with a backslash escape', sql: "SELECT * FROM users WHERE name LIKE 'a\\%'", tables: ['public.users'], agreement: 'both' },
  {
    name: 'regular expression class',
    sql: "SELECT regexp_replace(name, '\\s+', ' ') FROM users",
    tables: ['public.users'],
    functions: ['regexp_replace'],
    agreement: 'both',
  },
  {
    name: 'a backslash in a string, node-sql-parser gap (GROUPING SETS): plain once neutralised',
    sql: "SELECT sum(amount) FROM sales WHERE note <> '\\' GROUP BY GROUPING SETS ((region), ())",
    tables: ['public.sales'],
    agreement: 'lexical',
  },
  // TABLE t is PostgreSQL's grammar for SELECT * FROM t: the same tree, facts and fingerprint.
  { name: 'TABLE t', sql: 'TABLE users', tables: ['public.users'], agreement: 'lexical' },
  { name: 'TABLE schema.t', sql: 'TABLE analytics.events', tables: ['analytics.events'], agreement: 'lexical' },
  // A bare VALUES list reads nothing (see 'VALUES is a SELECT' below); its expressions get every rule.
  { name: 'VALUES with a subquery reports its relation', sql: 'VALUES ((SELECT count(*) FROM orders))', tables: ['public.orders'], functions: ['count'] },
  // PostgreSQL nests block comments; so does node-sql-parser 5.4: the DROP is inside the comment.
  { name: 'nested comment swallows a "second statement"', sql: 'SELECT 1 /* nested /* */ ; DROP TABLE users; -- */', tables: [], functions: [] },
  { name: 'nested comment swallows a function call', sql: 'SELECT 1 /* /* */ , pg_sleep(1) */', tables: [], functions: [] },
  { name: 'dollar-quoted semicolon', sql: 'SELECT $$;$$ AS s FROM users', tables: ['public.users'] },
  { name: 'tagged dollar quote', sql: 'SELECT $a$ DROP TABLE users; $a$ AS s', tables: [] },
  { name: 'trailing semicolon', sql: 'SELECT id FROM users;', tables: ['public.users'] },
  { name: 'trailing semicolons and comment', sql: 'SELECT id FROM users;; -- done', tables: ['public.users'] },
  { name: 'a table aliased with a catalog name is not a catalog', sql: 'SELECT pg_authid.id FROM users AS pg_authid', tables: ['public.users'] },
  { name: 'a column named like a dangerous function', sql: 'SELECT pg_sleep FROM users', tables: ['public.users'], functions: [] },
  { name: 'a string that names a dangerous function', sql: "SELECT 'pg_sleep(10)' AS s", functions: [] },
  // CPU and memory bombs are analysed like any SELECT: the executor's timeout, worker kill and
  // temp_file_limit stop them, not the analyser (a recursive CTE or a cross join does the same).
  { name: 'generate_series CPU bomb', sql: 'SELECT count(*) FROM generate_series(1, 1e12)', functions: ['count', 'generate_series'] },
  { name: 'recursive CTE without end', sql: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r', tables: [] },
  { name: 'cross join bomb', sql: 'SELECT count(*) FROM orders a, orders b, orders c', tables: ['public.orders'] },
  { name: 'string repeat memory bomb', sql: "SELECT repeat('x', 1000000000)", functions: ['repeat'] },
  { name: 'TABLE is a SELECT', sql: 'TABLE users', tables: ['public.users'], agreement: 'lexical' },
  { name: 'VALUES is a SELECT', sql: "VALUES (1, 'a'), (2, 'b')", tables: [], agreement: 'lexical' },
  {
    name: 'built-in TABLESAMPLE method (a function: bernoulli)',
    sql: 'SELECT * FROM orders TABLESAMPLE BERNOULLI (10) REPEATABLE (42)',
    tables: ['public.orders'],
    functions: ['bernoulli'],
  },
  { name: 'attribute notation with an allowed function', sql: 'SELECT (ARRAY[1, 2]).cardinality', functions: ['cardinality'] },
  {
    name: 'whole-row attribute call of an allowed function (reported)',
    sql: 'SELECT u.to_json FROM users u',
    tables: ['public.users'],
    functions: ['to_json'],
  },
  { name: 'a column named like a row-callable function is reported as a possible call', sql: 'SELECT o.concat FROM orders o', functions: ['concat'] },
  { name: 'pg_catalog-qualified allowed built-in', sql: 'SELECT pg_catalog.lower(name) FROM users', functions: ['lower'] },
  {
    name: 'now() is allowed (stable, harmless)',
    sql: 'SELECT now(), current_date, current_timestamp',
    functions: ['current_date', 'current_timestamp', 'now'],
  },
];

// ------------------------------------------------------------------------------------------------
// Legitimate analytical queries

export const LEGIT: readonly Passed[] = [
  { name: 'parameterised lookup', sql: 'SELECT id, name FROM users WHERE id = $1', tables: ['public.users'], functions: [] },
  {
    name: 'join, order, limit, offset',
    sql: 'SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at >= $1 ORDER BY o.created_at DESC LIMIT 50 OFFSET 10',
    tables: ['public.customers', 'public.orders'],
    functions: [],
  },
  {
    name: 'group by, having',
    sql: 'SELECT c.name, count(*) AS n, sum(o.total) AS revenue FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.name HAVING count(*) > 5 ORDER BY revenue DESC',
    tables: ['public.customers', 'public.orders'],
    functions: ['count', 'sum'],
  },
  {
    name: 'CTE with interval',
    sql: "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '30 days') SELECT customer_id, count(*) FROM recent GROUP BY customer_id",
    tables: ['public.orders'],
    functions: ['count', 'now'],
  },
  {
    name: 'chained CTEs',
    sql: 'WITH a AS (SELECT customer_id, total FROM orders), b AS (SELECT customer_id, sum(total) AS s FROM a GROUP BY customer_id) SELECT * FROM b WHERE s > 100',
    tables: ['public.orders'],
    functions: ['sum'],
  },
  {
    name: 'nested CTEs',
    sql: 'WITH outer_cte AS (WITH inner_cte AS (SELECT id FROM users) SELECT id FROM inner_cte) SELECT count(*) FROM outer_cte',
    tables: ['public.users'],
    functions: ['count'],
  },
  {
    name: 'row_number window',
    sql: 'SELECT id, total, row_number() OVER (PARTITION BY customer_id ORDER BY created_at) AS rn FROM orders',
    functions: ['row_number'],
  },
  {
    name: 'named window with frame',
    sql: 'SELECT id, total, sum(total) OVER w AS running, lag(total) OVER w AS prev FROM orders WINDOW w AS (PARTITION BY customer_id ORDER BY created_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)',
    functions: ['lag', 'sum'],
  },
  {
    name: 'percentile_cont WITHIN GROUP',
    sql: 'SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) AS median FROM orders',
    tables: ['public.orders'],
    functions: ['percentile_cont'],
  },
  {
    name: 'percentile_disc per group',
    sql: 'SELECT customer_id, percentile_disc(0.9) WITHIN GROUP (ORDER BY total) FROM orders GROUP BY customer_id',
    functions: ['percentile_disc'],
  },
  {
    name: 'FILTER',
    sql: "SELECT count(*) FILTER (WHERE status = 'paid') AS paid, count(*) FILTER (WHERE status <> 'paid') AS unpaid FROM orders",
    functions: ['count'],
    agreement: 'both',
  },
  {
    name: 'FILTER on json_agg (node-sql-parser cannot)',
    sql: "SELECT json_agg(id) FILTER (WHERE status = 'paid') FROM orders",
    functions: ['json_agg'],
    agreement: 'lexical',
  },
  {
    name: 'GROUPING SETS (node-sql-parser cannot)',
    sql: 'SELECT region, product, sum(amount), grouping(region) FROM sales GROUP BY GROUPING SETS ((region), (product), ())',
    tables: ['public.sales'],
    functions: ['grouping', 'sum'],
    agreement: 'lexical',
  },
  { name: 'ROLLUP', sql: 'SELECT region, product, sum(amount) FROM sales GROUP BY ROLLUP (region, product)', tables: ['public.sales'], functions: ['sum'] },
  { name: 'CUBE', sql: 'SELECT region, product, sum(amount) FROM sales GROUP BY CUBE (region, product)', tables: ['public.sales'], functions: ['sum'] },
  {
    name: 'LATERAL subquery',
    sql: 'SELECT c.id, last_o.total FROM customers c CROSS JOIN LATERAL (SELECT o.total FROM orders o WHERE o.customer_id = c.id ORDER BY o.created_at DESC LIMIT 1) last_o',
    tables: ['public.customers', 'public.orders'],
  },
  {
    name: 'LEFT JOIN LATERAL ... ON true',
    sql: 'SELECT u.id, e.n FROM users u LEFT JOIN LATERAL (SELECT count(*) AS n FROM events e WHERE e.user_id = u.id) e ON true',
    tables: ['public.events', 'public.users'],
    functions: ['count'],
  },
  {
    name: 'JSON operators',
    sql: "SELECT payload->>'event' AS event, payload->'user'->>'id' AS uid FROM events WHERE payload->>'kind' = $1",
    tables: ['public.events'],
    functions: [],
  },
  {
    name: 'JSON path operator and jsonb functions',
    sql: "SELECT payload #>> '{a,b}', jsonb_extract_path_text(payload, 'user', 'email') FROM events WHERE payload @> '{\"kind\": \"click\"}'",
    functions: ['jsonb_extract_path_text'],
  },
  {
    name: 'CASE buckets',
    sql: "SELECT id, CASE WHEN total > 100 THEN 'big' WHEN total > 10 THEN 'medium' ELSE 'small' END AS bucket FROM orders",
    functions: [],
  },
  {
    name: 'date_trunc by month',
    sql: "SELECT date_trunc('month', created_at) AS month, sum(total) FROM orders GROUP BY 1 ORDER BY 1",
    functions: ['date_trunc', 'sum'],
  },
  {
    name: 'EXISTS',
    sql: 'SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)',
    tables: ['public.customers', 'public.orders'],
  },
  {
    name: 'IN subquery',
    sql: 'SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total > $1)',
    tables: ['public.customers', 'public.orders'],
  },
  {
    name: 'UNION ALL with ORDER BY and LIMIT',
    sql: 'SELECT id FROM users UNION ALL SELECT id FROM archived_users ORDER BY id LIMIT 100',
    tables: ['public.archived_users', 'public.users'],
  },
  { name: 'EXTRACT', sql: 'SELECT extract(year FROM created_at) AS y, count(*) FROM orders GROUP BY y', functions: ['count', 'extract'] },
  {
    name: 'SUBSTRING ... FROM ... FOR (node-sql-parser cannot)',
    sql: 'SELECT coalesce(nickname, name) AS display, upper(substring(name FROM 1 FOR 1)) FROM users',
    functions: ['coalesce', 'substring', 'upper'],
    agreement: 'lexical',
  },
  { name: 'rounding aggregates', sql: 'SELECT round(avg(total)::numeric, 2), min(total), max(total) FROM orders', functions: ['avg', 'max', 'min', 'round'] },
  { name: 'string_agg with ORDER BY', sql: "SELECT string_agg(name, ', ' ORDER BY name) FROM users", functions: ['string_agg'] },
  { name: 'array_agg', sql: 'SELECT customer_id, array_agg(id ORDER BY id) FROM orders GROUP BY customer_id', functions: ['array_agg'] },
  { name: 'json_build_object', sql: "SELECT json_build_object('id', id, 'name', name) FROM users", functions: ['json_build_object'] },
  {
    name: 'ranking windows',
    sql: 'SELECT rank() OVER (ORDER BY total DESC), dense_rank() OVER (ORDER BY total DESC), ntile(4) OVER (ORDER BY total) FROM orders',
    functions: ['dense_rank', 'ntile', 'rank'],
  },
  {
    name: 'DISTINCT ON',
    sql: 'SELECT DISTINCT ON (customer_id) customer_id, created_at FROM orders ORDER BY customer_id, created_at DESC',
    tables: ['public.orders'],
  },
  {
    name: 'to_char and BETWEEN params',
    sql: "SELECT to_char(created_at, 'YYYY-MM-DD') FROM orders WHERE created_at BETWEEN $1 AND $2",
    functions: ['to_char'],
  },
  {
    name: 'schema-qualified tables',
    sql: 'SELECT a.id FROM analytics.events a JOIN public.users u ON u.id = a.user_id',
    tables: ['analytics.events', 'public.users'],
  },
  {
    name: 'derived table',
    sql: 'SELECT * FROM (SELECT customer_id, sum(total) s FROM orders GROUP BY customer_id) t WHERE t.s > 10',
    tables: ['public.orders'],
    functions: ['sum'],
  },
  {
    name: '= ANY($1::text[]) (node-sql-parser cannot)',
    sql: 'SELECT id FROM orders WHERE status = ANY($1::text[])',
    tables: ['public.orders'],
    agreement: 'lexical',
  },
  {
    name: 'recursive CTE',
    sql: 'WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT sum(n) FROM t',
    tables: [],
    functions: ['sum'],
  },
  {
    name: 'value windows',
    sql: 'SELECT first_value(total) OVER (PARTITION BY customer_id ORDER BY created_at), last_value(total) OVER (PARTITION BY customer_id ORDER BY created_at), lead(total, 1) OVER (ORDER BY id) FROM orders',
    functions: ['first_value', 'last_value', 'lead'],
  },
  {
    name: 'conditional and math functions',
    sql: 'SELECT greatest(a, b), least(a, b), nullif(a, 0), abs(a), floor(b), ceil(b) FROM metrics',
    tables: ['public.metrics'],
    functions: ['abs', 'ceil', 'floor', 'greatest', 'least', 'nullif'],
  },
  { name: 'LIKE with a parameter', sql: 'SELECT id FROM users WHERE lower(email) LIKE $1 AND NOT deleted', functions: ['lower'] },
  { name: 'jsonb_agg of a derived row', sql: 'SELECT jsonb_agg(t) FROM (SELECT id, name FROM users LIMIT 5) t', functions: ['jsonb_agg'] },
  { name: 'count distinct', sql: 'SELECT count(DISTINCT customer_id) FROM orders', functions: ['count'] },
  { name: 'INTERSECT', sql: 'SELECT id FROM users INTERSECT SELECT user_id FROM events', tables: ['public.events', 'public.users'] },
  { name: 'EXCEPT', sql: 'SELECT id FROM users EXCEPT SELECT user_id FROM banned_users', tables: ['public.banned_users', 'public.users'] },
  {
    name: 'FETCH FIRST (node-sql-parser cannot)',
    sql: 'SELECT id FROM orders ORDER BY total DESC FETCH FIRST 10 ROWS ONLY',
    tables: ['public.orders'],
    agreement: 'lexical',
  },
  {
    name: 'unnest WITH ORDINALITY (node-sql-parser cannot)',
    sql: "SELECT * FROM unnest(ARRAY['a', 'b']) WITH ORDINALITY AS u(v, i)",
    functions: ['unnest'],
    agreement: 'lexical',
  },
  {
    name: 'generate_series calendar',
    sql: "SELECT d::date, count(o.id) FROM generate_series(date '2024-01-01', date '2024-01-31', interval '1 day') d LEFT JOIN orders o ON o.created_at::date = d::date GROUP BY 1 ORDER BY 1",
    tables: ['public.orders'],
    functions: ['count', 'generate_series'],
  },
  { name: 'trim and length', sql: 'SELECT trim(name), length(name) FROM users', functions: ['btrim', 'length'] },
  { name: 'AT TIME ZONE', sql: "SELECT created_at AT TIME ZONE 'UTC' FROM orders", functions: ['timezone'] },
  { name: 'quoted mixed-case table (reported lower-case)', sql: 'SELECT "Id" FROM "Sales"."Orders"', tables: ['sales.orders'] },
  {
    name: 'comments everywhere',
    sql: "-- monthly revenue\nSELECT /* the month */ date_trunc('month', created_at) AS m, -- bucket\n  sum(total) FROM orders GROUP BY 1",
    functions: ['date_trunc', 'sum'],
    agreement: 'both',
  },
  {
    name: 'the 20-line report',
    sql: `WITH monthly AS (
  SELECT c.region, date_trunc('month', o.created_at) AS month,
         sum(o.total) AS revenue, count(DISTINCT o.customer_id) AS buyers
  FROM orders o
  JOIN customers c ON c.id = o.customer_id
  WHERE o.created_at >= $1 AND o.status = 'paid'
  GROUP BY c.region, date_trunc('month', o.created_at)
), ranked AS (
  SELECT region, month, revenue, buyers,
         rank() OVER (PARTITION BY month ORDER BY revenue DESC) AS r,
         lag(revenue) OVER (PARTITION BY region ORDER BY month) AS prev_revenue
  FROM monthly
)
SELECT region, month, revenue, buyers, r,
       CASE WHEN prev_revenue IS NULL THEN NULL
            ELSE round((revenue - prev_revenue) / nullif(prev_revenue, 0) * 100, 1) END AS growth_pct
FROM ranked
WHERE r <= 10
ORDER BY month DESC, r
LIMIT 100`,
    tables: ['public.customers', 'public.orders'],
    functions: ['count', 'date_trunc', 'lag', 'nullif', 'rank', 'round', 'sum'],
    agreement: 'both',
  },
];

// ------------------------------------------------------------------------------------------------
// CTE scope: a CTE is visible in its WITH's query and, without RECURSIVE, to later siblings only.

export interface ScopeCase {
  readonly name: string;
  readonly sql: string;
  /** facts.tables with allowCatalogs on. */
  readonly tables: readonly string[];
}

export const SCOPES: readonly ScopeCase[] = [
  { name: 'a CTE hides the catalog relation of the same name', sql: 'WITH pg_user AS (SELECT 1 AS usename) SELECT * FROM pg_user', tables: [] },
  {
    name: 'a CTE inside a subquery does not hide the outer pg_user',
    sql: 'SELECT * FROM (WITH pg_user AS (SELECT 1) SELECT * FROM pg_user) s, pg_user',
    tables: ['pg_catalog.pg_user', 'public.pg_user'],
  },
  {
    name: 'a non-recursive CTE does not see itself',
    sql: 'WITH pg_user AS (SELECT * FROM pg_user) SELECT * FROM pg_user',
    tables: ['pg_catalog.pg_user', 'public.pg_user'],
  },
  {
    name: 'a recursive CTE sees itself',
    sql: 'WITH RECURSIVE pg_user AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM pg_user WHERE n < 3) SELECT * FROM pg_user',
    tables: [],
  },
  { name: 'a CTE does not see a later sibling', sql: 'WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a', tables: ['public.b'] },
  { name: 'with RECURSIVE, a CTE sees a later sibling', sql: 'WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a', tables: [] },
  { name: 'a CTE sees an earlier sibling', sql: 'WITH b AS (SELECT 1), a AS (SELECT * FROM b) SELECT * FROM a', tables: [] },
  { name: 'a schema-qualified name is never a CTE', sql: 'WITH users AS (SELECT 1) SELECT * FROM public.users', tables: ['public.users'] },
  {
    name: 'an outer CTE is visible in a sublink',
    sql: 'WITH x AS (SELECT 1 AS id) SELECT * FROM users WHERE id IN (SELECT id FROM x)',
    tables: ['public.users'],
  },
  { name: 'an outer CTE is visible in a derived table', sql: 'WITH x AS (SELECT 1 AS id) SELECT * FROM (SELECT * FROM x) s', tables: [] },
  {
    name: 'a CTE of one UNION arm is not visible in the other',
    sql: '(WITH x AS (SELECT 1) SELECT * FROM x) UNION ALL (SELECT * FROM x)',
    tables: ['public.x'],
  },
  { name: 'a CTE on a UNION is visible in both arms', sql: 'WITH x AS (SELECT 1) SELECT * FROM x UNION ALL SELECT * FROM x', tables: [] },
  {
    name: 'a CTE defined in a subquery does not leak out',
    sql: 'SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) s JOIN secret ON true',
    tables: ['public.secret'],
  },
  { name: 'an inner CTE shadows an outer one', sql: 'WITH t AS (SELECT 1) SELECT * FROM (WITH t AS (SELECT 2) SELECT * FROM t) s, t', tables: [] },
  {
    name: 'a CTE in a sublink does not leak to the outer query',
    sql: 'SELECT * FROM users WHERE EXISTS (WITH orders AS (SELECT 1) SELECT * FROM orders) AND id IN (SELECT customer_id FROM orders)',
    tables: ['public.orders', 'public.users'],
  },
];
