import { createRequire } from 'node:module';
import type NodeSqlParser from 'node-sql-parser';
import type { WalkResult } from './sql-walk.js';

/**
 * The second opinion: node-sql-parser 5.4 (PostgreSQL dialect) parses the same text, and must see
 * one SELECT touching the same relations and calling the same functions as libpg-query's tree.
 *
 * Comparison rules (both sides normalised the same way):
 * - relations: every table reference as written, CTE references included (node-sql-parser lists
 *   those as tables too), as lower-case `schema::name` with `null` for an unqualified name; the sets
 *   must be equal. Comparing as written (no search_path resolution) is deliberate: both parsers read
 *   the same text, so any difference is a difference in how they read it.
 * - functions: lower-case last name component; the sets must be equal after removing, on both
 *   sides, the names that one parser writes as syntax and the other as a call (EXTRACT, TRIM,
 *   SUBSTRING ... FROM, AT TIME ZONE, SIMILAR TO, CURRENT_DATE-like keywords, EXISTS/ANY/ALL,
 *   ROLLUP/CUBE). Those are all keywords the grammar fixes, never a function an attacker can name, and
 *   the allow-list check on libpg-query's tree still applies to them.
 */

const OPTIONS = { database: 'postgresql' } as const;

/** Names left out of the function comparison on both sides (see above). */
export const SYNTAX_FUNCTION_NAMES: ReadonlySet<string> = new Set([
  'all',
  'any',
  'btrim',
  'cube',
  'current_catalog',
  'current_date',
  'current_role',
  'current_schema',
  'current_time',
  'current_timestamp',
  'current_user',
  'exists',
  'extract',
  'grouping',
  'is_normalized',
  'localtime',
  'localtimestamp',
  'ltrim',
  'normalize',
  'overlaps',
  'overlay',
  'pg_collation_for',
  'position',
  'rollup',
  'rtrim',
  'session_user',
  'similar_to_escape',
  'some',
  'substring',
  'system_user',
  'timezone',
  'trim',
  'user',
]);

export type SecondOpinion =
  | { readonly status: 'agree'; readonly ms: number }
  /** node-sql-parser could not parse the text (it lacks some PostgreSQL syntax). */
  | { readonly status: 'unparsed'; readonly detail: string; readonly ms: number }
  | { readonly status: 'disagree'; readonly detail: string; readonly ms: number };

type Obj = Record<string, unknown>;

function nameOf(node: Obj): string | null {
  const n = node.name;
  if (typeof n === 'string') return n;
  if (typeof n === 'object' && n !== null && Array.isArray((n as Obj).name)) {
    const parts = (n as Obj).name as unknown[];
    const last = parts[parts.length - 1];
    if (typeof last === 'object' && last !== null && typeof (last as Obj).value === 'string') return (last as Obj).value as string;
  }
  return null;
}

/** Function names anywhere in node-sql-parser's AST (iterative: its trees can be deep). */
function nspFunctions(ast: unknown): Set<string> | string {
  const out = new Set<string>();
  const stack: unknown[] = [ast];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x !== 'object' || x === null || seen.has(x)) continue;
    seen.add(x);
    if (Array.isArray(x)) {
      for (const v of x) stack.push(v);
      continue;
    }
    const node = x as Obj;
    if (node.type === 'function' || node.type === 'aggr_func' || node.type === 'window_func') {
      const name = nameOf(node);
      if (name === null) return `a ${String(node.type)} without a readable name`;
      const lower = name.toLowerCase();
      if (!SYNTAX_FUNCTION_NAMES.has(lower)) out.add(lower);
    }
    for (const k in node) stack.push(node[k]);
  }
  return out;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function describe(a: ReadonlySet<string>, b: ReadonlySet<string>): string {
  const onlyA = [...a].filter((x) => !b.has(x)).sort();
  const onlyB = [...b].filter((x) => !a.has(x)).sort();
  return `libpg-query only: [${onlyA.join(', ')}], node-sql-parser only: [${onlyB.join(', ')}]`;
}

/**
 * The text as node-sql-parser must read it to read it as PostgreSQL does: every backslash inside a
 * standard string (offsets from the scanner) replaced by another ordinary character. With
 * standard_conforming_strings on (the session setting the executor enforces), a backslash in '...'
 * is an ordinary character, so replacing it changes no token boundary for PostgreSQL; for
 * node-sql-parser, which reads it as an escape (`'\'` as an unterminated string holding a quote),
 * it removes the one reading on which the two lexers differ. The replacement is ASCII and one UTF-16
 * unit, so offsets, lengths and everything outside the strings stay exactly as written.
 */
export function neutraliseStringBackslashes(text: string, offsets: readonly number[]): string {
  if (offsets.length === 0) return text;
  let out = '';
  let from = 0;
  for (const k of offsets) {
    out += text.slice(from, k) + '_';
    from = k + 1;
  }
  return out + text.slice(from);
}

/** What node-sql-parser made of a text, reduced to what the comparison with libpg-query needs. */
export type NspReading =
  | { readonly parsed: false; readonly detail: string; readonly ms: number }
  | {
      readonly parsed: true;
      readonly ms: number;
      readonly statements: number;
      /** The one statement's type (when there is exactly one). */
      readonly type: string;
      readonly into: boolean;
      /** node-sql-parser's tableList entries, as it writes them (`verb::schema::table`). */
      readonly tableList: readonly string[];
      /** Lower-case function names (syntax names removed), or why they could not be read. */
      readonly functions: readonly string[] | string;
    };

// The PostgreSQL-only build, loaded on first use: 20 ms instead of 90 for every dialect, and a
// process that never analyses SQL (stdio without database tools, the CLI) never loads it.
const requireCjs = createRequire(import.meta.url);
let parser: InstanceType<typeof NodeSqlParser.Parser> | undefined;

/** node-sql-parser's reading of `text` (the parse is most of the second opinion's cost). */
export function readWithNodeSqlParser(text: string): NspReading {
  parser ??= new (requireCjs('node-sql-parser/build/postgresql') as { Parser: typeof NodeSqlParser.Parser }).Parser();
  const t0 = performance.now();
  let result: { tableList: string[]; ast: unknown };
  try {
    result = parser.parse(text, OPTIONS) as unknown as { tableList: string[]; ast: unknown };
  } catch (err) {
    const detail = err instanceof Error ? err.message.slice(0, 200) : String(err).slice(0, 200);
    return { parsed: false, detail, ms: performance.now() - t0 };
  }
  const ms = performance.now() - t0;
  const asts = (Array.isArray(result.ast) ? result.ast : [result.ast]).filter((a) => a !== null && a !== undefined);
  const ast = asts.length === 1 ? (asts[0] as Obj) : undefined;
  const into = ast?.into as Obj | null | undefined;
  const fns = ast === undefined ? [] : nspFunctions(ast);
  return {
    parsed: true,
    ms,
    statements: asts.length,
    type: ast === undefined ? '' : String(ast.type),
    into: into !== null && into !== undefined && Object.values(into).some((v) => v !== null && v !== undefined),
    tableList: Array.isArray(result.tableList) ? result.tableList.map(String) : [],
    functions: typeof fns === 'string' ? fns : [...fns],
  };
}

/** The second opinion on `text` against libpg-query's walk. */
export function secondOpinion(text: string, walk: WalkResult): SecondOpinion {
  return compareReading(readWithNodeSqlParser(text), walk);
}

/** Compare node-sql-parser's reading with libpg-query's walk of the same text. */
export function compareReading(reading: NspReading, walk: WalkResult): SecondOpinion {
  const { ms } = reading;
  if (!reading.parsed) return { status: 'unparsed', detail: reading.detail, ms };
  const disagree = (detail: string): SecondOpinion => ({ status: 'disagree', detail, ms });

  if (reading.statements !== 1) return disagree(`node-sql-parser sees ${reading.statements} statements`);
  if (reading.type !== 'select') return disagree(`node-sql-parser sees a ${reading.type} statement`);
  if (reading.into) return disagree('node-sql-parser sees SELECT INTO');

  const nspTables = new Set<string>();
  for (const entry of reading.tableList) {
    const [verb, schema, table] = entry.split('::');
    if (verb !== 'select') return disagree(`node-sql-parser sees a ${String(verb)} of ${String(table)}`);
    nspTables.add(`${String(schema).toLowerCase()}::${String(table).toLowerCase()}`);
  }
  const pgTables = new Set(walk.rangeVars.map((r) => `${(r.schema ?? 'null').toLowerCase()}::${r.name.toLowerCase()}`));
  if (!sameSet(pgTables, nspTables)) return disagree(`relations differ: ${describe(pgTables, nspTables)}`);

  if (typeof reading.functions === 'string') return disagree(reading.functions);
  const nspFns = new Set(reading.functions);
  const pgFns = new Set<string>();
  for (const f of walk.functions) {
    // Attribute notation is a column or field reference to node-sql-parser; compared as calls only.
    if (f.form === 'attribute') continue;
    const lower = f.name.toLowerCase();
    if (!SYNTAX_FUNCTION_NAMES.has(lower)) pgFns.add(lower);
  }
  if (!sameSet(pgFns, nspFns)) return disagree(`functions differ: ${describe(pgFns, nspFns)}`);
  return { status: 'agree', ms };
}
