import type { SqlQueryFacts } from '../core/facts.js';
import * as nodeCrypto from 'node:crypto';
import { loadModule, parseSync } from 'libpg-query';
import { DenialError, refuse } from '../core/denial.js';
import { neutraliseStringBackslashes, secondOpinion } from './sql-agree.js';
import { checkSqlHygiene, DEFAULT_MAX_SQL_BYTES, DEFAULT_MAX_SQL_DEPTH, DEFAULT_MAX_SQL_TOKENS, type LexicalHazard, type SqlScan } from './sql-hygiene.js';
import { SqlWalker, type FunctionRef, type NameRef, type WalkResult } from './sql-walk.js';

export { DEFAULT_MAX_SQL_BYTES, DEFAULT_MAX_SQL_DEPTH, DEFAULT_MAX_SQL_TOKENS } from './sql-hygiene.js';
export { REG_TYPES } from './sql-walk.js';

/**
 * SQL analysis for `query_database`: raw text → facts, once.
 *
 *   hygiene (length, control characters, nesting depth, token count; sql-hygiene.ts)
 *   → libpg-query, the PostgreSQL 17 parser: exactly one statement
 *   → the walk over its tree (sql-walk.ts): a SELECT, only SELECTs inside, no INTO / locking, no reg*
 *     casts, only known node kinds; collects relations (scope-aware CTE resolution) and functions,
 *     including PostgreSQL's attribute-notation calls (`(x).f` is `f(x)`, `t.f` is `f(t)`)
 *   → the caller's options: function allow-list, system catalogs
 *   → agreement (sql-agree.ts): node-sql-parser must see the same one SELECT, relations and functions
 *   → facts for the policy, and the exact text the executor must run.
 *
 * The only tolerated disagreement: node-sql-parser *fails to parse* a text that libpg-query accepts
 * and that passes every rule (it lacks GROUPING SETS, FETCH FIRST, WITH ORDINALITY, VALUES, TABLE,
 * SUBSTRING(... FROM ...), FILTER on most aggregates, CURRENT_USER, ...). That is tolerated only when
 * the text is *lexically plain*: the hygiene scanner found none of the constructs on which SQL lexers
 * disagree (backslash in a string, E'' or U&'' escapes, dollar quotes, nested comments, non-ASCII
 * outside quotes, stray backslash or $). Parser differentials that matter for security — one side
 * seeing a string, comment or statement boundary where the other sees code, like
 * `SELECT '\' ; DROP TABLE users; -- '` — are lexical: in a lexically plain text every token boundary
 * is unambiguous, so a parse failure there is a grammar-coverage gap, not a differential. Even then
 * the scanner still cross-checks libpg-query: one statement, and every relation and function name
 * must appear as an identifier token outside strings and comments. `agreement: 'strict'` turns the
 * tolerance off; the facts say which kind of agreement a query got (`agreement: 'both' | 'lexical'`).
 *
 * Backslashes in standard strings: with standard_conforming_strings on, `'a\b'` is three ordinary
 * characters to PostgreSQL, while node-sql-parser reads `\` as an escape (so `'x\'` never ends for
 * it). Its reading is the wrong one there, so it is asked about the text with every backslash the
 * scanner located inside a standard string replaced by `_` (neutraliseStringBackslashes): no token
 * boundary moves for PostgreSQL, and node-sql-parser then reads what PostgreSQL reads, so its
 * agreement is required as on any text; that hazard no longer counts for the tolerance above.
 *
 * `TABLE t` is the grammar's shorthand for `SELECT * FROM t`: libpg-query returns the same tree, so
 * facts and fingerprint are identical. A bare VALUES list is allowed deliberately (it reads nothing;
 * its expressions are walked like any other).
 *
 * Assumptions the executor must make true (see sqlSessionSettings): standard_conforming_strings = on
 * (libpg-query lexes with it on), and search_path = pg_catalog, <defaultSchema>, pg_temp (unqualified
 * names are reported as <defaultSchema>.name, and unqualified pg_* names also as pg_catalog.name).
 */

/**
 * Functions allowed by default: side-effect-free built-ins for analytical queries. This list is the
 * source for the policy's `database.functions` (policies/data.json holds a subset, which the test
 * suite checks). Entries are PostgreSQL's folded names: a bare entry allows the unqualified call and
 * the pg_catalog-qualified one; a `schema.name` entry allows exactly that qualified call.
 *
 * Deliberately absent: everything pg_* (pg_sleep, pg_read_file, pg_ls_dir, pg_stat_file,
 * pg_terminate_backend, pg_cancel_backend, pg_advisory_lock..., pg_notify, pg_reload_conf, ...),
 * lo_*, dblink*, set_config, current_setting (reads server settings), version (fingerprints the
 * server), txid_* / pg_current_xact_id (assigns or exposes transaction ids), nextval/setval,
 * query_to_xml/table_to_xml/cursor_to_xml (run SQL given as text), ts_stat (runs SQL given as text),
 * xml functions, current_user & co (identity disclosure; add them if you want them).
 *
 * generate_series is allowed: it has no side effects and adds no power that a recursive CTE or a
 * cross join does not already give; the CPU, memory and temp-file cost of any SELECT is bounded by
 * the executor's statement timeout, worker kill and temp_file_limit, not by the analyser.
 */
export const DEFAULT_SQL_FUNCTIONS: readonly string[] = Object.freeze(
  [
    // aggregates
    'any_value',
    'array_agg',
    'avg',
    'bit_and',
    'bit_or',
    'bool_and',
    'bool_or',
    'corr',
    'count',
    'covar_pop',
    'covar_samp',
    'every',
    'json_agg',
    'json_object_agg',
    'jsonb_agg',
    'jsonb_object_agg',
    'max',
    'min',
    'mode',
    'percentile_cont',
    'percentile_disc',
    'regr_avgx',
    'regr_avgy',
    'regr_count',
    'regr_intercept',
    'regr_r2',
    'regr_slope',
    'stddev',
    'stddev_pop',
    'stddev_samp',
    'string_agg',
    'sum',
    'var_pop',
    'var_samp',
    'variance',
    // window functions
    'cume_dist',
    'dense_rank',
    'first_value',
    'lag',
    'last_value',
    'lead',
    'nth_value',
    'ntile',
    'percent_rank',
    'rank',
    'row_number',
    // conditional (reported for COALESCE, NULLIF, GREATEST, LEAST, GROUPING)
    'coalesce',
    'greatest',
    'grouping',
    'least',
    'nullif',
    'num_nonnulls',
    'num_nulls',
    // math
    'abs',
    'cbrt',
    'ceil',
    'ceiling',
    'degrees',
    'div',
    'exp',
    'floor',
    'gcd',
    'lcm',
    'ln',
    'log',
    'log10',
    'mod',
    'pi',
    'power',
    'radians',
    'random',
    'round',
    'sign',
    'sqrt',
    'trunc',
    'width_bucket',
    // strings (btrim/ltrim/rtrim are TRIM(...); similar_to_escape is SIMILAR TO)
    'ascii',
    'bit_length',
    'btrim',
    'char_length',
    'character_length',
    'chr',
    'concat',
    'concat_ws',
    'format',
    'initcap',
    'left',
    'length',
    'lower',
    'lpad',
    'ltrim',
    'md5',
    'normalize',
    'is_normalized',
    'octet_length',
    'overlay',
    'position',
    'regexp_count',
    'regexp_like',
    'regexp_match',
    'regexp_matches',
    'regexp_replace',
    'regexp_split_to_array',
    'regexp_split_to_table',
    'regexp_substr',
    'repeat',
    'replace',
    'reverse',
    'right',
    'rpad',
    'rtrim',
    'similar_to_escape',
    'split_part',
    'starts_with',
    'string_to_array',
    'strpos',
    'substr',
    'substring',
    'to_hex',
    'translate',
    'trim',
    'upper',
    // date and time (timezone is AT TIME ZONE; current_date & co are the SQL keywords)
    'age',
    'clock_timestamp',
    'current_date',
    'current_time',
    'current_timestamp',
    'date_bin',
    'date_part',
    'date_trunc',
    'extract',
    'isfinite',
    'justify_days',
    'justify_hours',
    'justify_interval',
    'localtime',
    'localtimestamp',
    'make_date',
    'make_interval',
    'make_time',
    'make_timestamp',
    'make_timestamptz',
    'now',
    'overlaps',
    'statement_timestamp',
    'timezone',
    'to_char',
    'to_date',
    'to_number',
    'to_timestamp',
    'transaction_timestamp',
    // json
    'array_to_json',
    'json_array_elements',
    'json_array_elements_text',
    'json_array_length',
    'json_build_array',
    'json_build_object',
    'json_each',
    'json_each_text',
    'json_extract_path',
    'json_extract_path_text',
    'json_object_keys',
    'json_to_record',
    'json_to_recordset',
    'json_typeof',
    'jsonb_array_elements',
    'jsonb_array_elements_text',
    'jsonb_array_length',
    'jsonb_build_array',
    'jsonb_build_object',
    'jsonb_each',
    'jsonb_each_text',
    'jsonb_extract_path',
    'jsonb_extract_path_text',
    'jsonb_object_keys',
    'jsonb_path_exists',
    'jsonb_path_match',
    'jsonb_path_query',
    'jsonb_path_query_array',
    'jsonb_path_query_first',
    'jsonb_pretty',
    'jsonb_set',
    'jsonb_strip_nulls',
    'jsonb_to_record',
    'jsonb_to_recordset',
    'jsonb_typeof',
    'row_to_json',
    'to_json',
    'to_jsonb',
    // TABLESAMPLE BERNOULLI / SYSTEM (sampling methods are functions too)
    'bernoulli',
    'system',
    // arrays and set-returning
    'array_append',
    'array_cat',
    'array_length',
    'array_lower',
    'array_position',
    'array_positions',
    'array_prepend',
    'array_remove',
    'array_to_string',
    'array_upper',
    'cardinality',
    'generate_series',
    'unnest',
  ].sort(),
);

/** Every reason code the analyser can give (all with denial code `sql_rejected` unless noted). */
export const SQL_REASON_CODES = {
  'sql.not_text': 'The query is not a string.',
  'sql.empty': 'The query is empty or only comments.',
  'sql.too_long': 'The query is longer than maxBytes (UTF-8).',
  'sql.control_character': 'The query contains a control character other than tab, CR, LF (C0, DEL, C1, bidi controls).',
  'sql.invalid_unicode': 'The query contains a lone UTF-16 surrogate.',
  'sql.too_deep': 'Parentheses/brackets nest deeper than maxDepth, or the parse tree deeper than maxTreeDepth.',
  'sql.too_complex': 'More than maxTokens lexical tokens, or more than maxNodes parse tree nodes.',
  'sql.parse_error': "PostgreSQL's parser (libpg-query) rejects the text.",
  'sql.multi_statement': 'More than one statement.',
  'sql.not_select': 'A statement other than SELECT, at the top or inside (data-modifying WITH, ...).',
  'sql.select_into': 'SELECT INTO (creates a table).',
  'sql.locking_clause': 'FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE.',
  'sql.reg_cast': 'A cast to a reg* type (regproc, regclass, ...): a catalog lookup by name.',
  'sql.function_not_allowed': 'A function outside the allow-list: a call anywhere, a TABLESAMPLE method, or an attribute-notation call ((x).f, t.f).',
  'sql.catalog_not_allowed': 'A system catalog relation (pg_* schema or name, information_schema) while allowCatalogs is off.',
  'sql.construct_not_allowed': 'A construct the analyser does not allow (XMLTABLE, JSON_TABLE, SQL/JSON and XML expressions, an unknown node kind).',
  'sql.identifier_unsupported': 'A three-part name, or an identifier containing "." or "*", that facts cannot represent unambiguously.',
  'sql.parser_disagreement': 'node-sql-parser reads the text differently, or cannot parse a text with lexical hazards.',
  'sql.parser_unavailable': 'libpg-query is not loaded or failed (denial code `unavailable`).',
} as const;

export type SqlReasonCode = keyof typeof SQL_REASON_CODES;

export interface SqlOptions {
  /** UTF-8 byte cap on the text. Default 16 KiB. */
  readonly maxBytes?: number;
  /** Cap on nesting of ( and [ outside quotes and comments. Default 64. */
  readonly maxDepth?: number;
  /** Cap on lexical tokens (operator characters count one each). Default 4,096. */
  readonly maxTokens?: number;
  /** Cap on the depth of libpg-query's tree as walked. Default 200. */
  readonly maxTreeDepth?: number;
  /** Cap on the nodes of libpg-query's tree as walked. Default 10,000. */
  readonly maxNodes?: number;
  /** Function allow-list (PostgreSQL's folded names). Default DEFAULT_SQL_FUNCTIONS. */
  readonly functions?: readonly string[];
  /** Allow relations in pg_* schemas, information_schema, and unqualified pg_* names. Default false. */
  readonly allowCatalogs?: boolean;
  /** The schema unqualified names resolve to (must match the executor's search_path). Default 'public'. */
  readonly defaultSchema?: string;
  /** 'lexical' (default) tolerates a node-sql-parser parse failure on lexically plain text; 'strict' never does. */
  readonly agreement?: 'strict' | 'lexical';
  /** Reuse the parse, walk and agreement of an identical text (default true). */
  readonly cache?: boolean;
  /**
   * The text was written by PostgreSQL's deparser from a tree the caller checked (the row filter
   * rewrite, sql-row-filter.ts, which also checks that the text parses back to that tree). The
   * deparser spells a string with a backslash as E'...': that escape-string hazard is then its
   * own canonical spelling and does not block the lexical tolerance; node-sql-parser must still
   * not disagree, and every other hazard still counts. Cached apart from the text's own agreement.
   */
  readonly deparsed?: boolean;
  /** Filled with per-stage milliseconds when given (benchmarks). */
  readonly timings?: SqlTimings;
}

export interface SqlTimings {
  hygiene: number;
  libpgQuery: number;
  walk: number;
  nodeSqlParser: number;
  total: number;
  cached: boolean;
}

/**
 * How the query uses columns, by name (lower-case, unresolved), for the redaction gate in
 * query_database (a first, fail-closed step towards lineage; issue 13 items 1-2). Only a *bare
 * copy* can be masked safely: a top-level output of a plain SELECT that is exactly a column
 * reference and keeps that column's name (`email`, `c.email`, `email AS email`). Every other
 * reference — an alias that renames, any function, cast or operator, a predicate, ORDER BY,
 * GROUP BY, a subquery, a CTE, a set operation — is a use the mask cannot follow.
 */
export interface ColumnUses {
  /** Column names copied bare to an output of the same name (maskable by name). */
  readonly bare: readonly string[];
  /** Column names referenced anywhere else (derived values, predicates, orderings, subqueries). */
  readonly other: readonly string[];
  /** A reference that may be a whole row (`c`, `row_to_json(c)`, `(c).email`): a name of a relation, alias or CTE used as a column. */
  readonly wholeRow: readonly string[];
  /** A star inside an expression (`to_jsonb(c.*)`, `row(c.*)`), or in a set operation's branch (combined by position). */
  readonly nestedStar: boolean;
  /** A star at the top level of a plain SELECT. */
  readonly topStar: boolean;
  /** A star in a subquery's or CTE's target list (copies columns under their own names). */
  readonly innerStar: boolean;
  /** A table, subquery or CTE alias with a column list (`customers c(a, b, c, e)`) while a star copies columns. */
  readonly renames: boolean;
  /** SELECT DISTINCT at the top: the row count depends on the values of the bare outputs. */
  readonly distinct: boolean;
  /** ORDER BY / GROUP BY by output position (`ORDER BY 1`): orders or groups by a bare output's values. */
  readonly ordinal: boolean;
  /** A NATURAL JOIN: compares every same-named column, masked ones included. */
  readonly natural: boolean;
}

type Node = Record<string, unknown>;

function fieldNames(ref: Node): { names: string[]; star: boolean } {
  const names: string[] = [];
  let star = false;
  for (const f of (ref.fields as Node[] | undefined) ?? []) {
    const str = f.String as Node | undefined;
    if (str && typeof str.sval === 'string') names.push(str.sval.toLowerCase());
    else if ('A_Star' in f) star = true;
  }
  return { names, star };
}

/** One pass over libpg-query's tree of an accepted SELECT (iterative; the walk already bounded it). */
export function columnUsesOf(stmt: unknown): ColumnUses {
  const bare = new Set<string>();
  const other = new Set<string>();
  const single = new Set<string>();
  const relNames = new Set<string>();
  let nestedStar = false;
  let topStar = false;
  let renames = false;
  let distinct = false;
  let ordinal = false;
  let natural = false;
  let innerStar = false;
  let setOp = false;
  const derivedNames = new Set<string>();
  const stack: unknown[] = [];
  const top = (stmt as Node | undefined)?.SelectStmt as Node | undefined;
  if (top && top.op === 'SETOP_NONE') {
    if (Array.isArray(top.distinctClause) && top.distinctClause.length > 0) distinct = true;
    for (const c of [
      ...((top.sortClause as Node[] | undefined) ?? []).map((x) => (x.SortBy as Node | undefined)?.node),
      ...((top.groupClause as Node[] | undefined) ?? []),
    ]) {
      if (typeof c === 'object' && c !== null && 'A_Const' in c) ordinal = true;
    }
    for (const [k, v] of Object.entries(top)) {
      if (k !== 'targetList') {
        stack.push(v);
        continue;
      }
      for (const t of (v as Node[]) ?? []) {
        const rt = t.ResTarget as Node | undefined;
        const ref = (rt?.val as Node | undefined)?.ColumnRef as Node | undefined;
        if (ref) {
          const { names, star } = fieldNames(ref);
          if (star) {
            topStar = true;
            continue;
          }
          const last = names[names.length - 1];
          if (names.length === 1) single.add(names[0] as string);
          const out = typeof rt?.name === 'string' ? rt.name.toLowerCase() : last;
          if (last !== undefined && out === last) {
            bare.add(last);
            continue;
          }
        }
        stack.push(t);
      }
    }
  } else stack.push(stmt);
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x !== 'object' || x === null) continue;
    if (Array.isArray(x)) {
      for (const v of x) stack.push(v);
      continue;
    }
    const node = x as Node;
    const sel = node.SelectStmt as Node | undefined;
    // A set operation combines its branches by position, under the first branch's names: a star
    // in any branch (or in the top-level one, handled above only for a plain SELECT) can land a
    // masked column under another name.
    if (sel && sel.op !== undefined && sel.op !== 'SETOP_NONE') setOp = true;
    // DISTINCT and positional GROUP BY / ORDER BY in a subquery or CTE act on what its star copied.
    if (sel && Array.isArray(sel.distinctClause) && sel.distinctClause.length > 0) distinct = true;
    if (sel) for (const g of (sel.groupClause as Node[] | undefined) ?? []) if ('A_Const' in g) ordinal = true;
    const sortNode = (node.SortBy as Node | undefined)?.node;
    if (typeof sortNode === 'object' && sortNode !== null && 'A_Const' in sortNode) ordinal = true;
    const target = node.ResTarget as Node | undefined;
    const targetRef = (target?.val as Node | undefined)?.ColumnRef as Node | undefined;
    if (targetRef && fieldNames(targetRef).star) {
      // `SELECT *` / `SELECT t.*` inside a subquery or CTE copies columns under their own names.
      innerStar = true;
      continue;
    }
    const ref = node.ColumnRef as Node | undefined;
    if (ref) {
      const { names, star } = fieldNames(ref);
      if (star) nestedStar = true;
      else if (names.length > 0) other.add(names[names.length - 1] as string);
      if (!star && names.length === 1) single.add(names[0] as string);
      continue;
    }
    const sub = node.RangeSubselect as Node | undefined;
    const subAlias = sub?.alias as Node | undefined;
    if (subAlias) {
      if (typeof subAlias.aliasname === 'string') derivedNames.add(subAlias.aliasname.toLowerCase());
      if (Array.isArray(subAlias.colnames) && subAlias.colnames.length > 0) renames = true;
    }
    const join = node.JoinExpr as Node | undefined;
    if (join) {
      // USING (email) and NATURAL JOIN compare columns by name: predicates without a ColumnRef.
      for (const u of (join.usingClause as Node[] | undefined) ?? []) {
        const sval = (u.String as Node | undefined)?.sval;
        if (typeof sval === 'string') other.add(sval.toLowerCase());
      }
      if (join.isNatural === true) natural = true;
    }
    const rv = node.RangeVar as Node | undefined;
    if (rv) {
      if (typeof rv.relname === 'string') relNames.add(rv.relname.toLowerCase());
      const alias = rv.alias as Node | undefined;
      if (alias && typeof alias.aliasname === 'string') relNames.add(alias.aliasname.toLowerCase());
      if (alias && Array.isArray(alias.colnames) && alias.colnames.length > 0) renames = true;
    }
    const cte = node.CommonTableExpr as Node | undefined;
    if (cte) {
      if (typeof cte.ctename === 'string') derivedNames.add(cte.ctename.toLowerCase());
      if (Array.isArray(cte.aliascolnames) && cte.aliascolnames.length > 0) renames = true;
    }
    for (const k in node) stack.push(node[k]);
  }
  // A whole row of a table can carry masked columns; one of a subquery or CTE only when a star
  // copied columns into it (otherwise its columns were each checked where they were selected).
  // Function aliases (`generate_series(...) d`) are not rows of a table.
  const rowNames = innerStar ? new Set([...relNames, ...derivedNames]) : relNames;
  const wholeRow = [...single].filter((n) => rowNames.has(n)).sort();
  if (setOp && (innerStar || topStar)) nestedStar = true;
  if (renames && !(innerStar || topStar)) renames = false;
  return { bare: [...bare].sort(), other: [...other].sort(), wholeRow, nestedStar, topStar, innerStar, renames, distinct, ordinal, natural };
}

export interface SqlAnalysis {
  readonly facts: SqlQueryFacts;
  /** The exact text that was analysed: the executor runs this string, unchanged. */
  readonly text: string;
  /** Relations with their exact (case-preserved) names, CTEs excluded. */
  readonly relations: readonly NameRef[];
  /** Functions with their exact names. */
  readonly calls: readonly FunctionRef[];
  /** How columns are used, by name (the name-based first step; kept for callers without a catalog). */
  readonly columnUses: ColumnUses;
  /** libpg-query's tree of the statement (shared with the cache: never modify it); lineage reads it. */
  readonly stmt: unknown;
}

const DEFAULT_MAX_TREE_DEPTH = 200;
const DEFAULT_MAX_NODES = 10_000;
const CACHE_SIZE = 512;
const SCHEMA_NAME = /^[a-z_][a-z0-9_$]{0,62}$/;

const defaultFunctionSet: ReadonlySet<string> = new Set(DEFAULT_SQL_FUNCTIONS);
const functionSets = new WeakMap<readonly string[], ReadonlySet<string>>();

let loaded = false;
let broken = false;

/** Load libpg-query's WebAssembly module; call once at start-up, before analyseSql. */
export async function initSqlAnalysis(): Promise<void> {
  await loadModule();
  loaded = true;
  if (!canaryOk()) {
    broken = true;
    throw new Error('libpg-query loaded but does not parse a canary query');
  }
}

export function sqlAnalysisReady(): boolean {
  return loaded && !broken;
}

/** Session settings the executor must apply so that the server reads the text as the analyser did. */
export function sqlSessionSettings(opts: Pick<SqlOptions, 'defaultSchema'> = {}): Readonly<Record<string, string>> {
  const schema = defaultSchemaOf(opts);
  return { standard_conforming_strings: 'on', search_path: `pg_catalog, ${schema}, pg_temp` };
}

function defaultSchemaOf(opts: Pick<SqlOptions, 'defaultSchema'>): string {
  const schema = opts.defaultSchema ?? 'public';
  if (!SCHEMA_NAME.test(schema)) throw new TypeError(`defaultSchema must be a plain lower-case identifier, got ${JSON.stringify(schema)}`);
  return schema;
}

function canaryOk(): boolean {
  try {
    const tree = parseSync('SELECT a FROM b WHERE c = 1');
    return tree?.stmts?.length === 1 && tree.stmts[0]?.stmt?.SelectStmt?.fromClause?.[0]?.RangeVar?.relname === 'b';
  } catch {
    return false;
  }
}

function unavailable(message: string): never {
  return refuse('unavailable', message, ['sql.parser_unavailable']);
}

interface Parsed {
  readonly walk: WalkResult;
  readonly scan: SqlScan;
  readonly fingerprint: string;
  readonly limit: number | undefined;
  /** The name-based column uses: computed on first need (lineage replaced them on the call path). */
  columnUses?: ColumnUses;
  readonly stmt: unknown;
  /** Computed on first need, then reused. */
  agreement?: { readonly kind: 'both' | 'lexical' } | { readonly kind: 'deny'; readonly message: string; readonly detail: Record<string, unknown> };
  /** The same, for the text as written by the deparser (SqlOptions.deparsed). */
  deparsedAgreement?: Parsed['agreement'];
}

/** A small LRU of successful parses, keyed by the exact text (analysis is a pure function of it). */
const cache = new Map<string, Parsed>();

export function clearSqlAnalysisCache(): void {
  cache.clear();
}

function parseTree(text: string): { stmts: { stmt: unknown }[]; version: number } {
  try {
    const tree = parseSync(text);
    if (typeof tree !== 'object' || tree === null) throw new TypeError('libpg-query returned no tree');
    return { stmts: Array.isArray(tree.stmts) ? tree.stmts : [], version: Number(tree.version) };
  } catch (err) {
    if (err instanceof Error && err.name === 'SqlError') {
      const details = (err as Error & { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
      const position = details?.cursorPosition;
      return refuse('sql_rejected', `The SQL query does not parse: ${err.message}.`, ['sql.parse_error'], position === undefined ? undefined : { position });
    }
    // Anything else is the parser failing (a JS stack overflow reading a very deep tree, a wasm
    // trap). Check that it still works before blaming the input; a broken parser fails closed.
    if (!canaryOk()) {
      broken = true;
      return unavailable('The SQL parser failed and is no longer usable.');
    }
    if (err instanceof RangeError) {
      return refuse('sql_rejected', 'The SQL query is nested too deeply to analyse.', ['sql.too_deep']);
    }
    return refuse('sql_rejected', 'The SQL parser could not read the query.', ['sql.parse_error']);
  }
}

const STRIP_KEYS = new Set(['location', 'stmt_location', 'stmt_len', 'name_location']);

/**
 * The fingerprint's text: exactly `JSON.stringify({ v, stmt }, replacer)` with a replacer that
 * drops STRIP_KEYS and writes every A_Const as "?" (the definition `sqlt1:` fingerprints in policy
 * data rest on, kept byte for byte; test/sql-fingerprint.test.ts compares the two). Written out
 * because a replacer makes JSON.stringify call back into JS for every key: this is 2-3× faster.
 * The tree is libpg-query's JSON.parse output, so it holds only plain JSON values.
 */
export function fingerprintText(version: number, stmt: unknown): string {
  return stmt === undefined ? `{"v":${JSON.stringify(version)}}` : `{"v":${JSON.stringify(version)},"stmt":${fingerprintJson(stmt)}}`;
}

const quotedKeys = new Map<string, string>();

function fingerprintJson(x: unknown): string {
  if (typeof x !== 'object' || x === null) return JSON.stringify(x) ?? 'null';
  if (Array.isArray(x)) {
    let out = '[';
    for (let i = 0; i < x.length; i++) {
      const v: unknown = x[i];
      out += (i === 0 ? '' : ',') + (v === undefined ? 'null' : fingerprintJson(v));
    }
    return out + ']';
  }
  let out = '{';
  let first = true;
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (STRIP_KEYS.has(k)) continue;
    const v = k === 'A_Const' ? '?' : o[k];
    if (v === undefined) continue;
    let q = quotedKeys.get(k);
    if (q === undefined) {
      q = JSON.stringify(k);
      if (quotedKeys.size < 4096) quotedKeys.set(k, q);
    }
    out += (first ? '' : ',') + q + ':' + fingerprintJson(v);
    first = false;
  }
  return out + '}';
}

function fingerprintOf(version: number, stmt: unknown): string {
  const json = fingerprintText(version, stmt);
  // crypto.hash (one-shot, faster) exists from Node 20.12; package.json allows 20.11.
  const hex = typeof nodeCrypto.hash === 'function' ? nodeCrypto.hash('sha256', json, 'hex') : nodeCrypto.createHash('sha256').update(json).digest('hex');
  return 'sqlt1:' + hex;
}

function constantLimit(select: Record<string, unknown>): number | undefined {
  if (select.limitOption !== 'LIMIT_OPTION_COUNT' && select.limitOption !== 'LIMIT_OPTION_WITH_TIES') return undefined;
  const count = select.limitCount as Record<string, Record<string, unknown>> | undefined;
  const c = count?.A_Const;
  if (c === undefined || c.isnull === true) return undefined;
  const ival = c.ival as Record<string, unknown> | undefined;
  if (ival === undefined) return undefined;
  return typeof ival.ival === 'number' ? ival.ival : 0;
}

function parseAndWalk(text: string, scan: SqlScan, maxTreeDepth: number, maxNodes: number, timings: SqlTimings | undefined): Parsed {
  let t = timings ? performance.now() : 0;
  const tree = parseTree(text);
  if (timings) {
    const now = performance.now();
    timings.libpgQuery = now - t;
    t = now;
  }
  if (tree.stmts.length === 0) refuse('sql_rejected', 'The SQL query is empty or only comments.', ['sql.empty']);
  if (tree.stmts.length > 1) {
    refuse('sql_rejected', `Exactly one statement is allowed; PostgreSQL sees ${tree.stmts.length}.`, ['sql.multi_statement'], {
      statements: tree.stmts.length,
    });
  }
  const stmt = tree.stmts[0]?.stmt;
  const walk = new SqlWalker({ maxTreeDepth, maxNodes }).walkStatement(stmt);
  const select = (stmt as { SelectStmt: Record<string, unknown> }).SelectStmt;
  const parsed: Parsed = { walk, scan, fingerprint: fingerprintOf(tree.version, stmt), limit: constantLimit(select), stmt };
  if (timings) timings.walk = performance.now() - t;
  return parsed;
}

function functionSetOf(list: readonly string[] | undefined): ReadonlySet<string> {
  if (list === undefined || list === DEFAULT_SQL_FUNCTIONS) return defaultFunctionSet;
  if (!Array.isArray(list)) throw new TypeError('functions must be an array of strings');
  // Only a frozen list can be memoised: a caller may change its own array between calls.
  if (!Object.isFrozen(list)) return new Set(list);
  let set = functionSets.get(list);
  if (set === undefined) {
    set = new Set(list);
    functionSets.set(list, set);
  }
  return set;
}

function functionAllowed(f: FunctionRef, allowed: ReadonlySet<string>): boolean {
  if (f.schema === null) return allowed.has(f.name);
  if (f.schema === 'pg_catalog') return allowed.has(f.name) || allowed.has(`pg_catalog.${f.name}`);
  return allowed.has(`${f.schema}.${f.name}`);
}

/** pg_* schemas and information_schema; case-insensitive, so a look-alike user schema is refused too. */
function isCatalogSchema(schema: string): boolean {
  const lower = schema.toLowerCase();
  return lower.startsWith('pg_') || lower === 'information_schema';
}

/** PostgreSQL truncates identifiers to 63 bytes; the scanner keeps what was written. */
function identifierWritten(name: string, identifiers: ReadonlySet<string>): boolean {
  if (identifiers.has(name)) return true;
  if (Buffer.byteLength(name) < 63) return false;
  for (const id of identifiers) {
    if (id.length >= name.length && id.startsWith(name) && Buffer.byteLength(id) > 63) return true;
  }
  return false;
}

function decideAgreement(text: string, parsed: Parsed, timings: SqlTimings | undefined, deparsed = false): NonNullable<Parsed['agreement']> {
  const { walk, scan } = parsed;
  // The scanner's independent reading: one statement, and every name libpg-query found written as
  // an identifier outside strings and comments.
  if (scan.statements !== 1) {
    return {
      kind: 'deny',
      message: `The lexical scan sees ${scan.statements} statements where PostgreSQL sees 1.`,
      detail: { scanner_statements: scan.statements },
    };
  }
  for (const r of walk.rangeVars) {
    for (const part of r.schema === null ? [r.name] : [r.schema, r.name]) {
      if (!identifierWritten(part, scan.identifiers)) {
        return { kind: 'deny', message: `The relation name ${part} is not written as an identifier in the text.`, detail: { name: part } };
      }
    }
  }
  for (const f of walk.functions) {
    if (f.form === 'syntax') continue;
    for (const part of f.schema === null ? [f.name] : [f.schema, f.name]) {
      if (!identifierWritten(part, scan.identifiers)) {
        return { kind: 'deny', message: `The function name ${part} is not written as an identifier in the text.`, detail: { name: part } };
      }
    }
  }
  // node-sql-parser reads a backslash in a standard string as an escape; PostgreSQL (with
  // standard_conforming_strings on) as a character. It is asked about the text with those
  // backslashes neutralised, so that it reads what PostgreSQL reads, and its check stays sound.
  const neutralised = scan.stringBackslashes.length > 0;
  const opinion = secondOpinion(neutralised ? neutraliseStringBackslashes(text, scan.stringBackslashes) : text, walk);
  if (timings) timings.nodeSqlParser = opinion.ms;
  if (opinion.status === 'agree') return { kind: 'both' };
  if (opinion.status === 'disagree') {
    return { kind: 'deny', message: `The two SQL parsers read the query differently (${opinion.detail}).`, detail: { second_opinion: 'disagree' } };
  }
  // After neutralisation a backslash in a standard string is no longer a hazard for the tolerance
  // rule below; every other hazard (E'', U&'', dollar quotes, nested comments, a stray backslash) is.
  const remaining = [...scan.hazards].filter((h) => !(neutralised && h === 'backslash_in_string') && !(deparsed && h === 'escape_string'));
  if (remaining.length > 0) {
    const hazards = remaining.sort() as LexicalHazard[];
    return {
      kind: 'deny',
      message: `node-sql-parser cannot parse the query and it contains constructs SQL lexers disagree on (${hazards.join(', ')}).`,
      detail: { second_opinion: 'unparsed', hazards },
    };
  }
  return { kind: 'lexical' };
}

/**
 * Analyse one SQL text. Returns the facts and the exact text to execute, or throws DenialError
 * (`sql_rejected` with one reason from SQL_REASON_CODES; `unavailable` if the parser is not loaded
 * or broke). Any other exception would be a bug.
 */
export function analyseSql(text: string, opts: SqlOptions = {}): SqlAnalysis {
  const timings = opts.timings;
  const t0 = timings ? performance.now() : 0;
  if (timings) Object.assign(timings, { hygiene: 0, libpgQuery: 0, walk: 0, nodeSqlParser: 0, total: 0, cached: false });
  if (!loaded) unavailable('The SQL parser is not loaded (call initSqlAnalysis at start-up).');
  if (broken) unavailable('The SQL parser failed earlier and is no longer usable.');
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_SQL_BYTES;
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_SQL_DEPTH;
  const maxTokens = opts.maxTokens ?? DEFAULT_MAX_SQL_TOKENS;
  const maxTreeDepth = opts.maxTreeDepth ?? DEFAULT_MAX_TREE_DEPTH;
  const maxNodes = opts.maxNodes ?? DEFAULT_MAX_NODES;
  const defaultSchema = defaultSchemaOf(opts);
  const useCache = opts.cache !== false;

  let parsed = useCache && typeof text === 'string' && text.length <= maxBytes ? cache.get(text) : undefined;
  if (parsed !== undefined) {
    // A cached parse passed hygiene and the walk under some limits; re-check this call's limits.
    if (parsed.scan.bytes > maxBytes) refuse('sql_rejected', `The SQL query is longer than ${maxBytes} bytes.`, ['sql.too_long'], { max_bytes: maxBytes });
    if (parsed.scan.depth > maxDepth)
      refuse('sql_rejected', `The SQL query nests parentheses or brackets deeper than ${maxDepth}.`, ['sql.too_deep'], { max_depth: maxDepth });
    if (parsed.scan.tokens > maxTokens)
      refuse('sql_rejected', `The SQL query has more than ${maxTokens} tokens.`, ['sql.too_complex'], { max_tokens: maxTokens });
    if (parsed.walk.depth > maxTreeDepth)
      refuse('sql_rejected', `The SQL query's parse tree is nested deeper than ${maxTreeDepth} levels.`, ['sql.too_deep'], { max_tree_depth: maxTreeDepth });
    if (parsed.walk.nodes > maxNodes)
      refuse('sql_rejected', `The SQL query's parse tree has more than ${maxNodes} nodes.`, ['sql.too_complex'], { max_nodes: maxNodes });
    cache.delete(text);
    cache.set(text, parsed);
    if (timings) timings.cached = true;
  } else {
    const scan = checkSqlHygiene(text, { maxBytes, maxDepth, maxTokens });
    if (timings) timings.hygiene = performance.now() - t0;
    parsed = parseAndWalk(text, scan, maxTreeDepth, maxNodes, timings);
    if (useCache) {
      cache.set(text, parsed);
      if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    }
  }
  const { walk } = parsed;

  // Relations: unqualified names resolve through search_path = pg_catalog, <defaultSchema>: an
  // unqualified pg_* name may be a catalog (every pg_catalog relation is named pg_*), so it is
  // reported under both schemas and the policy must allow both.
  const tables = new Set<string>();
  const catalogs: string[] = [];
  for (const r of walk.relations) {
    const candidates =
      r.schema !== null
        ? [`${r.schema}.${r.name}`]
        : r.name.startsWith('pg_')
          ? [`pg_catalog.${r.name}`, `${defaultSchema}.${r.name}`]
          : [`${defaultSchema}.${r.name}`];
    if (r.schema !== null ? isCatalogSchema(r.schema) : r.name.toLowerCase().startsWith('pg_')) catalogs.push(candidates[0] as string);
    for (const c of candidates) tables.add(c.toLowerCase());
  }
  if (catalogs.length > 0 && opts.allowCatalogs !== true) {
    refuse('sql_rejected', `System catalogs are not allowed (${catalogs.sort().join(', ')}).`, ['sql.catalog_not_allowed'], {
      tables: catalogs.map((c) => c.toLowerCase()),
    });
  }

  const allowed = functionSetOf(opts.functions);
  const functions = new Set<string>();
  for (const f of walk.functions) {
    const shown = f.schema === null || f.schema === 'pg_catalog' ? f.name : `${f.schema}.${f.name}`;
    if (!functionAllowed(f, allowed)) {
      const message =
        f.form === 'attribute'
          ? `The attribute-notation reference .${shown} may call the function ${shown}, which is not allowed (PostgreSQL reads (x).${shown} as ${shown}(x)).`
          : `The function ${shown} is not allowed.`;
      refuse('sql_rejected', message, ['sql.function_not_allowed'], { function: shown, form: f.form });
    }
    functions.add(shown.toLowerCase());
  }

  const agreement =
    opts.deparsed === true
      ? (parsed.deparsedAgreement ??= decideAgreement(text, parsed, timings, true))
      : (parsed.agreement ??= decideAgreement(text, parsed, timings));
  if (agreement.kind === 'deny') refuse('sql_rejected', agreement.message, ['sql.parser_disagreement'], agreement.detail);
  if (opts.agreement === 'strict' && agreement.kind !== 'both') {
    refuse('sql_rejected', 'node-sql-parser cannot parse the query, and strict agreement is required.', ['sql.parser_disagreement'], {
      second_opinion: 'unparsed',
    });
  }

  const facts: SqlQueryFacts = {
    statements: 1,
    kind: 'select',
    tables: [...tables].sort(),
    functions: [...functions].sort(),
    columns: walk.columns,
    params: walk.params,
    ...(parsed.limit === undefined ? {} : { limit: parsed.limit }),
    fingerprint: parsed.fingerprint,
    agreement: agreement.kind,
  };
  if (timings) timings.total = performance.now() - t0;
  const p = parsed;
  return {
    facts,
    text,
    relations: walk.relations,
    calls: walk.functions,
    get columnUses() {
      return (p.columnUses ??= columnUsesOf(p.stmt));
    },
    stmt: p.stmt,
  };
}

/** True when `err` is the analyser's refusal (as opposed to a bug). */
export function isSqlDenial(err: unknown): err is DenialError {
  return err instanceof DenialError;
}
