import { parseSync } from 'libpg-query';
import { DenialError, refuse } from '../core/denial.js';

/**
 * Column lineage over libpg-query's tree of an accepted SELECT (issue 13 item 1): for every output
 * column, the base columns ("schema.table.column", lower-case) its value derives from and whether it
 * is a bare copy of one column; and the base columns the query compares, filters, groups or orders
 * by (`used`). Unqualified and qualified references are resolved as PostgreSQL resolves them,
 * against the catalog's real column lists, CTEs (PostgreSQL's scoping), subqueries, joins (USING,
 * NATURAL), LATERAL and function items.
 *
 * The rules, each chosen so that an error can only over-approximate (refuse more), never hide a
 * source:
 * - A value is a *copy* only when it is exactly a column reference (through aliases, subqueries,
 *   CTEs, UNION ALL arms that are all copies). Any function, cast, operator, CASE, aggregate, window
 *   function, sublink or whole-row reference makes it *derived*, with the sources of everything
 *   inside it (FILTER, aggregate ORDER BY and window clauses included).
 * - `used` takes every column under WHERE, JOIN ON / USING / NATURAL, GROUP BY, HAVING, ORDER BY,
 *   DISTINCT (ON), window definitions, LIMIT / OFFSET, comparing set operations (all but UNION
 *   ALL), at any depth (a subquery's WHERE is a predicate too), and the outputs of sublinks used
 *   there. A predicate oracle inside an output (`CASE WHEN email LIKE ...`) makes the output derived.
 * - A single name resolves to a column first and to a whole row second (PostgreSQL's order); a
 *   whole row (`c`, `row_to_json(c)`, `c.*` inside an expression) derives from every column.
 * - A name found nowhere, or in two places at one level, refuses (`sql.column_unresolved`,
 *   `sql.column_ambiguous`); a relation the catalog does not know refuses (`sql.catalog_unknown_table`).
 * - A function in FROM is opaque: its columns derive from all its arguments, and a name not found
 *   in a known relation at that level resolves to it.
 * - A view or materialized view is expanded (issue 13, views): its definition, as the catalog read
 *   it with `pg_get_viewdef` under the search_path the analyser assumes (so a name printed bare
 *   resolves as this module resolves a bare name), is parsed with libpg-query and its outputs'
 *   lineage computed with these same rules, recursively through views of views; each view column
 *   then carries its base columns and copy/derived flag, and every column the definition uses in a
 *   predicate counts as used by the query that reads the view (a view filtering on a masked column
 *   answers questions about it). A definition that cannot be read, parsed or followed, a cycle, or
 *   nesting deeper than MAX_VIEW_DEPTH refuses (`sql.view_unsupported`). Views in pg_catalog and
 *   information_schema are not expanded (the catalog offers no definition for them): they are read
 *   as relations, as before; in a user view over system catalogs, their columns derive from no
 *   base column unless database.allow_catalogs loads them (no column rule can name one otherwise). `security_barrier`, `security_invoker` and `WITH CHECK OPTION` change
 *   how the server plans or writes through a view, not which base columns a read derives from, so
 *   they make no difference here.
 */

export const LINEAGE_REASON_CODES = {
  'sql.column_unresolved': 'A column reference matches no column of the relations in scope (checked against the catalog).',
  'sql.column_ambiguous': 'A column or relation name matches more than one candidate at the same level.',
  'sql.catalog_unknown_table': "A relation the query reads is not in the database's catalog (after a refresh).",
  'sql.catalog_unavailable': "The database's catalog could not be read, so columns cannot be resolved (denial code `unavailable`).",
  'sql.lineage_unsupported':
    'A construct the lineage analysis cannot follow (a forward or mutual reference between recursive CTEs, a recursion that does not settle).',
  'sql.view_unsupported':
    "A view or materialized view the query reads cannot be followed to its base columns (its definition is unavailable, does not parse as one SELECT, has a column count other than the view's, reads itself through other views, is nested too deep, or its own lineage is refused); refused whether or not masks apply.",
  'sql.row_filter_view':
    'The query reads, through a view or materialized view, a table the policy filters by rows for this principal; the filter cannot be applied inside the view, so the query is refused.',
} as const;

/** Views of views are followed this deep (a view reading only base tables has depth 1). */
export const MAX_VIEW_DEPTH = 16;

/** The database's column lists: ordered column names of "schema.table" (lower-case keys as PostgreSQL folds them). */
export interface SqlCatalog {
  /** Bumped on every refresh: lineage cached against a version is recomputed after. */
  readonly version: number;
  columns(schema: string, table: string): readonly string[] | undefined;
  /** True when `schema.table` exists (unqualified names resolve through pg_catalog first). */
  has(schema: string, table: string): boolean;
  /**
   * For a view or materialized view: its definition (one SELECT, names qualified where they are not
   * visible on the analyser's search_path, as `pg_get_viewdef` prints them), or null when it is a
   * view whose definition could not be read reliably (refused). Undefined for any other relation.
   */
  viewDefinition?(schema: string, table: string): string | null | undefined;
}

/** A view the query reads (directly or inside another view) and what it reaches. */
export interface LineageView {
  /** "schema.view", lower-case. */
  readonly view: string;
  /** Relations its definition reads, transitively (base tables and the views between), sorted. */
  readonly tables: readonly string[];
  /** Base columns the query reached through it (its outputs' and predicates' sources the query's lineage carries), sorted. */
  readonly columns: readonly string[];
}

export interface LineageOutput {
  readonly name: string;
  readonly columns: readonly string[];
  /** Every value is a bare copy of one of `columns` (several only through set-operation arms). */
  readonly copy: boolean;
}

export interface Lineage {
  readonly outputs: readonly LineageOutput[];
  /** Base columns used in predicates, joins, grouping, ordering, windows, DISTINCT, set comparisons. */
  readonly used: readonly string[];
}

type Node = Record<string, unknown>;
type Sources = ReadonlySet<string>;

interface Col {
  readonly name: string;
  readonly sources: Sources;
  readonly copy: boolean;
}

/** One relation-like range entry (table, subquery, CTE, function, aliased join), reachable by name. */
interface Item {
  readonly name: string;
  /** For a table read by its own name: its schema, so `schema.table.column` resolves. */
  readonly schema?: string;
  readonly cols: readonly Col[];
  /** A function in FROM: the column list is a guess; any name resolves to a value derived from `all`. */
  readonly opaque?: Sources;
}

/** A FROM entry: the items it makes reachable by name, and its columns in `*` order. */
interface Entry {
  readonly items: readonly Item[];
  readonly cols: readonly Col[];
  readonly opaque?: Sources;
}

/** One query level's FROM scope, with its parent (correlation) and, for LATERAL, its left siblings. */
interface Scope {
  readonly entries: readonly Entry[];
  readonly parent: Scope | null;
}

type CteBinding = { readonly cols: readonly Col[] } | 'pending';

interface Ctes {
  readonly map: ReadonlyMap<string, CteBinding>;
  readonly parent: Ctes | null;
}

const EMPTY: Sources = new Set();
const UNNAMED = '?column?';
const FALLBACK = Symbol('fallback');

/** A value a name may denote when no column has that name for sure (function items, unnamed columns). */
function fallback(name: string, sources: Sources): Col {
  return Object.assign({ name, sources, copy: false }, { [FALLBACK]: true });
}

function isFallback(c: Col): boolean {
  return FALLBACK in c;
}
const MAX_RECURSION_ROUNDS = 8;

function str(n: unknown): string | undefined {
  const s = (n as Node | undefined)?.String as Node | undefined;
  return typeof s?.sval === 'string' ? s.sval : undefined;
}

function union(...sets: Sources[]): Set<string> {
  const out = new Set<string>();
  for (const s of sets) for (const x of s) out.add(x);
  return out;
}

function allSources(cols: readonly Col[]): Set<string> {
  return union(...cols.map((c) => c.sources));
}

function unresolved(message: string, detail: Record<string, unknown>): never {
  return refuse('sql_rejected', message, ['sql.column_unresolved'], detail);
}

function ambiguous(message: string, detail: Record<string, unknown>): never {
  return refuse('sql_rejected', message, ['sql.column_ambiguous'], detail);
}

function unsupported(message: string): never {
  return refuse('sql_rejected', `Column lineage cannot follow the query: ${message}.`, ['sql.lineage_unsupported']);
}

/** Functions in the allow-list whose FROM form has named output columns other than the function's name. */
const FUNCTION_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  json_each: ['key', 'value'],
  json_each_text: ['key', 'value'],
  jsonb_each: ['key', 'value'],
  jsonb_each_text: ['key', 'value'],
  json_array_elements: ['value'],
  json_array_elements_text: ['value'],
  jsonb_array_elements: ['value'],
  jsonb_array_elements_text: ['value'],
};

/**
 * PostgreSQL's FigureColname for an unnamed target: the name a subquery/CTE/result column gets.
 * Returns [name, strength] (2: a real name, 1: a type name or `case`, 0: `?column?`).
 */
function figureName(node: unknown): [string, number] {
  if (typeof node !== 'object' || node === null) return ['?column?', 0];
  const n = node as Node;
  const ref = n.ColumnRef as Node | undefined;
  if (ref) {
    const last = lastString((ref.fields as unknown[]) ?? []);
    return last === undefined ? ['?column?', 0] : [last, 2];
  }
  const ind = n.A_Indirection as Node | undefined;
  if (ind) {
    const last = lastString((ind.indirection as unknown[]) ?? []);
    if (last !== undefined) return [last, 2];
    return figureName(ind.arg);
  }
  const fn = n.FuncCall as Node | undefined;
  if (fn) {
    const names = (fn.funcname as unknown[]) ?? [];
    const last = str(names[names.length - 1]);
    return last === undefined ? ['?column?', 0] : [last, 2];
  }
  const cast = n.TypeCast as Node | undefined;
  if (cast) {
    const inner = figureName(cast.arg);
    if (inner[1] > 1) return inner;
    const names = ((cast.typeName as Node | undefined)?.names as unknown[]) ?? [];
    const last = str(names[names.length - 1]);
    return last === undefined ? inner : [last, 1];
  }
  const collate = n.CollateClause as Node | undefined;
  if (collate) return figureName(collate.arg);
  const expr = n.A_Expr as Node | undefined;
  if (expr?.kind === 'AEXPR_NULLIF') return ['nullif', 2];
  if (n.CaseExpr) return ['case', 1];
  if (n.A_ArrayExpr) return ['array', 2];
  if (n.RowExpr) return ['row', 2];
  if (n.CoalesceExpr) return ['coalesce', 2];
  const mm = n.MinMaxExpr as Node | undefined;
  if (mm) return [mm.op === 'IS_GREATEST' ? 'greatest' : 'least', 2];
  if (n.GroupingFunc) return ['grouping', 2];
  const svf = n.SQLValueFunction as Node | undefined;
  if (svf && typeof svf.op === 'string') {
    const name = svf.op.replace(/^SVFOP_/, '').toLowerCase();
    return [name.replace(/_n$/, ''), 2];
  }
  const sub = n.SubLink as Node | undefined;
  if (sub) {
    if (sub.subLinkType === 'EXISTS_SUBLINK') return ['exists', 2];
    if (sub.subLinkType === 'ARRAY_SUBLINK') return ['array', 2];
    if (sub.subLinkType === 'EXPR_SUBLINK') {
      const sel = (sub.subselect as Node | undefined)?.SelectStmt as Node | undefined;
      const first = leftmost(sel)?.targetList as Node[] | undefined;
      const rt = first?.[0]?.ResTarget as Node | undefined;
      if (rt && typeof rt.name === 'string') return [rt.name, 2];
      return rt ? figureName(rt.val) : ['?column?', 0];
    }
  }
  return ['?column?', 0];
}

/** PostgreSQL's FigureColname takes the last String among the fields (skipping `*` and subscripts). */
function lastString(items: readonly unknown[]): string | undefined {
  let name: string | undefined;
  for (const i of items) name = str(i) ?? name;
  return name;
}

function leftmost(sel: Node | undefined): Node | undefined {
  let s = sel;
  while (s && s.op !== undefined && s.op !== 'SETOP_NONE') s = (s.larg as Node | undefined) ?? undefined;
  return s;
}

function renamed(cols: readonly Col[], alias: Node | undefined): Col[] {
  const names = ((alias?.colnames as unknown[]) ?? []).map(str);
  if (names.length > cols.length) unresolved(`The alias lists ${names.length} column names for ${cols.length} columns.`, {});
  return cols.map((c, i) => (names[i] === undefined ? c : { ...c, name: names[i] as string }));
}

/** A view's lineage: its columns (named as the catalog names them), the definition's uses and reads. */
interface ViewLineage {
  readonly cols: readonly Col[];
  readonly used: Sources;
  /** Relations the definition reads, transitively ("schema.table", lower-case). */
  readonly tables: Sources;
  /** 1 + the depth of the deepest view it reads. */
  readonly depth: number;
}

class LineageWalk {
  readonly used = new Set<string>();
  /** Relations read (catalog relations, not CTEs), through views too: "schema.table", lower-case. */
  readonly tables = new Set<string>();
  viewDepth = 0;

  constructor(
    private readonly catalog: SqlCatalog,
    private readonly defaultSchema: string,
    /** The views being expanded around this walk ("schema\0name"), outermost first: a cycle check. */
    private readonly expanding: readonly string[] = [],
  ) {}

  /** The output columns of one SELECT (plain, set operation or VALUES), recording its uses. */
  select(sel: Node, scope: Scope | null, ctes: Ctes | null): Col[] {
    const withClause = sel.withClause as Node | undefined;
    let here = ctes;
    if (withClause) here = this.bindCtes(withClause, scope, ctes);
    let out: Col[];
    if (sel.op !== undefined && sel.op !== 'SETOP_NONE') {
      const left = this.select(sel.larg as Node, scope, here);
      const right = this.select(sel.rarg as Node, scope, here);
      if (left.length !== right.length) unresolved('The arms of a set operation have different column counts.', {});
      out = left.map((c, i) => {
        const r = right[i] as Col;
        const sources = union(c.sources, r.sources);
        // A copy only if every arm carrying a column copies it bare.
        const copy = (c.copy || c.sources.size === 0) && (r.copy || r.sources.size === 0) && sources.size > 0;
        return { name: c.name, sources, copy };
      });
      // Every set operation but UNION ALL compares rows: each output is used.
      if (!(sel.op === 'SETOP_UNION' && sel.all === true)) for (const c of out) this.use(c.sources);
      this.orderAndLimit(sel, out, null, here);
      return out;
    }
    if (Array.isArray(sel.valuesLists) && sel.valuesLists.length > 0) {
      const rows = (sel.valuesLists as Node[]).map((l) => ((l.List as Node | undefined)?.items as unknown[]) ?? []);
      const width = rows[0]?.length ?? 0;
      out = [];
      for (let i = 0; i < width; i++) {
        const sources = union(...rows.map((r) => this.expr(r[i], scope, here).sources));
        out.push({ name: `column${i + 1}`, sources, copy: false });
      }
      this.orderAndLimit(sel, out, null, here);
      return out;
    }
    const entries: Entry[] = [];
    for (const f of (sel.fromClause as unknown[]) ?? []) {
      // LATERAL (and every function in FROM) sees the entries to its left.
      entries.push(this.fromItem(f as Node, scope, { entries: [...entries], parent: scope }, here));
    }
    const level: Scope = { entries, parent: scope };
    out = [];
    for (const t of (sel.targetList as Node[]) ?? []) {
      const rt = t.ResTarget as Node;
      const val = rt.val as Node;
      const ref = val?.ColumnRef as Node | undefined;
      const fields = (ref?.fields as Node[] | undefined) ?? [];
      if (ref && fields.length > 0 && 'A_Star' in (fields[fields.length - 1] as Node)) {
        out.push(...this.star(fields.slice(0, -1), level));
        continue;
      }
      const v = this.expr(val, level, here);
      const name = typeof rt.name === 'string' ? rt.name : figureName(val)[0];
      out.push({ name, sources: v.sources, copy: v.copy });
    }
    if (sel.whereClause) this.use(this.expr(sel.whereClause, level, here).sources);
    if (sel.havingClause) this.use(this.expr(sel.havingClause, level, here).sources);
    for (const g of (sel.groupClause as unknown[]) ?? []) this.use(this.byOutputOrInput(g, out, level, here));
    for (const w of (sel.windowClause as unknown[]) ?? []) this.use(this.expr(w, level, here).sources);
    const distinct = sel.distinctClause as unknown[] | undefined;
    if (Array.isArray(distinct) && distinct.length > 0) {
      // Plain DISTINCT is [{}]: it compares every output. DISTINCT ON lists expressions.
      const on = distinct.filter((d) => typeof d === 'object' && d !== null && Object.keys(d).length > 0);
      if (on.length === 0) for (const c of out) this.use(c.sources);
      for (const d of on) this.use(this.byOutputOrInput(d, out, level, here));
    }
    this.orderAndLimit(sel, out, level, here);
    return out;
  }

  private orderAndLimit(sel: Node, out: readonly Col[], level: Scope | null, ctes: Ctes | null): void {
    for (const s of (sel.sortClause as Node[]) ?? []) {
      const sortBy = s.SortBy as Node | undefined;
      this.use(this.byOutputOrInput(sortBy?.node, out, level, ctes));
    }
    if (sel.limitCount) this.use(this.expr(sel.limitCount, level, ctes).sources);
    if (sel.limitOffset) this.use(this.expr(sel.limitOffset, level, ctes).sources);
  }

  /**
   * ORDER BY / GROUP BY / DISTINCT ON items: a position names an output; a bare name may name an
   * output or an input column (PostgreSQL prefers one or the other by clause): both are counted.
   */
  private byOutputOrInput(node: unknown, out: readonly Col[], level: Scope | null, ctes: Ctes | null): Sources {
    const n = node as Node | undefined;
    const c = n?.A_Const as Node | undefined;
    const ival = (c?.ival as Node | undefined)?.ival;
    if (c && (typeof ival === 'number' || c.ival !== undefined)) {
      const pos = typeof ival === 'number' ? ival : 0;
      const o = out[pos - 1];
      return o ? o.sources : EMPTY;
    }
    const ref = n?.ColumnRef as Node | undefined;
    const fields = (ref?.fields as unknown[]) ?? [];
    if (ref && fields.length === 1 && str(fields[0]) !== undefined) {
      const name = str(fields[0]) as string;
      const outs = out.filter((o) => o.name === name);
      if (level === null) {
        if (outs.length === 0) unresolved(`The ORDER BY name ${name} is not an output column.`, { column: name });
        return allSources(outs);
      }
      const input = this.tryResolve([name], level);
      if (input === undefined && outs.length === 0) unresolved(`The column ${name} is not in scope.`, { column: name });
      return union(allSources(outs), input?.sources ?? EMPTY);
    }
    if (n?.GroupingSet) return this.expr(n, level, ctes).sources;
    return this.expr(node, level, ctes).sources;
  }

  private bindCtes(withClause: Node, scope: Scope | null, parent: Ctes | null): Ctes {
    const map = new Map<string, CteBinding>();
    const ctes: Ctes = { map, parent };
    const list = ((withClause.ctes as Node[]) ?? []).map((c) => c.CommonTableExpr as Node);
    const recursive = withClause.recursive === true;
    if (recursive) for (const c of list) map.set(String(c.ctename), 'pending');
    for (const c of list) {
      const name = String(c.ctename);
      const query = (c.ctequery as Node).SelectStmt as Node;
      if (!recursive) {
        map.set(name, { cols: renamed(this.select(query, scope, ctes), { colnames: c.aliascolnames }) });
        continue;
      }
      // A recursive CTE: start from the non-recursive arm, then re-evaluate until the sources settle.
      const start = query.op === 'SETOP_UNION' ? (query.larg as Node) : query;
      map.set(name, 'pending');
      let cols = renamed(this.select(start, scope, ctes), { colnames: c.aliascolnames }).map((x) => ({ ...x, copy: false }));
      for (let round = 0; ; round++) {
        if (round >= MAX_RECURSION_ROUNDS) unsupported(`the recursive CTE ${name} does not settle`);
        map.set(name, { cols });
        const next = renamed(this.select(query, scope, ctes), { colnames: c.aliascolnames }).map((x) => ({ ...x, copy: false }));
        const grew = next.some((x, i) => x.sources.size !== (cols[i]?.sources.size ?? -1));
        cols = next;
        if (!grew) break;
      }
      map.set(name, { cols });
    }
    return ctes;
  }

  private cte(name: string, ctes: Ctes | null): CteBinding | undefined {
    for (let c = ctes; c; c = c.parent) {
      const b = c.map.get(name);
      if (b !== undefined) return b;
    }
    return undefined;
  }

  private fromItem(f: Node, scope: Scope | null, lateral: Scope, ctes: Ctes | null): Entry {
    const rv = f.RangeVar as Node | undefined;
    if (rv) return this.relation(rv, ctes);
    const sub = f.RangeSubselect as Node | undefined;
    if (sub) {
      const alias = sub.alias as Node | undefined;
      const sel = (sub.subquery as Node).SelectStmt as Node;
      const cols = renamed(this.select(sel, sub.lateral === true ? lateral : scope, ctes), alias);
      const name = typeof alias?.aliasname === 'string' ? alias.aliasname : '';
      return { items: name ? [{ name, cols }] : [], cols };
    }
    const join = f.JoinExpr as Node | undefined;
    if (join) return this.join(join, scope, lateral, ctes);
    const fn = f.RangeFunction as Node | undefined;
    if (fn) return this.functionItem(fn, lateral, ctes);
    const sample = f.RangeTableSample as Node | undefined;
    if (sample) {
      for (const a of (sample.args as unknown[]) ?? []) this.use(this.expr(a, scope, ctes).sources);
      return this.fromItem(sample.relation as Node, scope, lateral, ctes);
    }
    return unsupported(`the FROM item ${Object.keys(f)[0] ?? '?'}`);
  }

  private relation(rv: Node, ctes: Ctes | null): Entry {
    const relname = String(rv.relname);
    const alias = rv.alias as Node | undefined;
    const schemaname = typeof rv.schemaname === 'string' ? rv.schemaname : undefined;
    if (schemaname === undefined) {
      const b = this.cte(relname, ctes);
      if (b === 'pending') unsupported(`a reference to the recursive CTE ${relname} before it is defined`);
      if (b !== undefined) {
        const cols = renamed(b.cols, alias);
        return { items: [{ name: typeof alias?.aliasname === 'string' ? alias.aliasname : relname, cols }], cols };
      }
    }
    // search_path = pg_catalog, <defaultSchema>: an unqualified name is a catalog relation if one exists.
    const schema = schemaname ?? (this.catalog.has('pg_catalog', relname) ? 'pg_catalog' : this.defaultSchema);
    const names = this.catalog.columns(schema, relname);
    if (names === undefined) {
      return refuse('sql_rejected', `The relation ${schema}.${relname} is not in the database's catalog.`, ['sql.catalog_unknown_table'], {
        table: `${schema}.${relname}`.toLowerCase(),
      });
    }
    const base = `${schema}.${relname}`.toLowerCase();
    this.tables.add(base);
    const definition = this.catalog.viewDefinition?.(schema, relname);
    let own: readonly Col[];
    if (definition === undefined) {
      own = names.map((c) => ({ name: c, sources: new Set([`${base}.${c.toLowerCase()}`]), copy: true }));
    } else {
      const v = viewLineage(this.catalog, this.defaultSchema, schema, relname, names, definition, this.expanding);
      for (const t of v.tables) this.tables.add(t);
      this.use(v.used);
      this.viewDepth = Math.max(this.viewDepth, v.depth);
      own = v.cols;
    }
    const cols = renamed(own, alias);
    const item: Item = typeof alias?.aliasname === 'string' ? { name: alias.aliasname, cols } : { name: relname, schema, cols };
    return { items: [item], cols };
  }

  private join(join: Node, scope: Scope | null, lateral: Scope, ctes: Ctes | null): Entry {
    const left = this.fromItem(join.larg as Node, scope, lateral, ctes);
    // The right side of a join may be LATERAL over the left.
    const right = this.fromItem(join.rarg as Node, scope, { entries: [...lateral.entries, left], parent: lateral.parent }, ctes);
    let using = ((join.usingClause as unknown[]) ?? []).map((u) => str(u) as string);
    if (join.isNatural === true) {
      const rightNames = new Set(right.cols.map((c) => c.name));
      using = [...new Set(left.cols.map((c) => c.name).filter((n) => rightNames.has(n)))];
    }
    const merged: Col[] = [];
    for (const name of using) {
      const l = left.cols.filter((c) => c.name === name);
      const r = right.cols.filter((c) => c.name === name);
      if (l.length !== 1 || r.length !== 1) ambiguous(`The join column ${name} must appear exactly once on each side.`, { column: name });
      const lc = l[0] as Col;
      const rc = r[0] as Col;
      this.use(union(lc.sources, rc.sources));
      // USING yields the left value (inner, left join), the right one (right join), or COALESCE (full).
      if (join.jointype === 'JOIN_FULL') merged.push({ name, sources: union(lc.sources, rc.sources), copy: false });
      else merged.push(join.jointype === 'JOIN_RIGHT' ? rc : lc);
    }
    const usingSet = new Set(using);
    const cols = [...merged, ...left.cols.filter((c) => !usingSet.has(c.name)), ...right.cols.filter((c) => !usingSet.has(c.name))];
    const opaque = left.opaque || right.opaque ? union(left.opaque ?? EMPTY, right.opaque ?? EMPTY) : undefined;
    const here: Scope = { entries: [{ items: [...left.items, ...right.items], cols, ...(opaque ? { opaque } : {}) }], parent: lateral.parent };
    if (join.quals) this.use(this.expr(join.quals, here, ctes).sources);
    const alias = join.alias as Node | undefined;
    if (alias && typeof alias.aliasname === 'string') {
      const named = renamed(cols, alias);
      return { items: [{ name: alias.aliasname, cols: named, ...(opaque ? { opaque } : {}) }], cols: named, ...(opaque ? { opaque } : {}) };
    }
    // JOIN ... USING (...) AS j names the merged columns only.
    const usingAlias = join.join_using_alias as Node | undefined;
    const extra: Item[] = usingAlias && typeof usingAlias.aliasname === 'string' ? [{ name: usingAlias.aliasname, cols: merged }] : [];
    return { items: [...left.items, ...right.items, ...extra], cols, ...(opaque ? { opaque } : {}) };
  }

  private functionItem(fn: Node, lateral: Scope, ctes: Ctes | null): Entry {
    const alias = fn.alias as Node | undefined;
    const parts = ((fn.functions as Node[]) ?? []).map((l) => ((l.List as Node | undefined)?.items as unknown[]) ?? []);
    const all = new Set<string>();
    const guessed: string[] = [];
    for (const [call, coldefs] of parts) {
      for (const s of this.expr(call, lateral, ctes).sources) all.add(s);
      const fc = (call as Node | undefined)?.FuncCall as Node | undefined;
      const fname = str(((fc?.funcname as unknown[]) ?? []).at(-1)) ?? '?column?';
      const defs = (Array.isArray(coldefs) ? coldefs : ((fn.coldeflist as unknown[]) ?? [])) as Node[];
      if (defs.length > 0) for (const d of defs) guessed.push(String((d.ColumnDef as Node | undefined)?.colname ?? '?column?'));
      else if (FUNCTION_COLUMNS[fname]) guessed.push(...(FUNCTION_COLUMNS[fname] as string[]));
      else if (fname === 'unnest' && ((fc?.args as unknown[]) ?? []).length > 1) for (const _ of (fc?.args as unknown[]) ?? []) guessed.push('unnest');
      else guessed.push(parts.length === 1 && typeof alias?.aliasname === 'string' && !alias.colnames ? alias.aliasname : fname);
    }
    if (fn.ordinality === true) guessed.push('ordinality');
    const cols = renamed(
      guessed.map((name) => ({ name, sources: all, copy: false })),
      alias,
    );
    const name = typeof alias?.aliasname === 'string' ? alias.aliasname : (guessed[0] ?? '?column?');
    return { items: [{ name, cols, opaque: all }], cols, opaque: all };
  }

  /** `*` or `t.*` in a target list: each column a copy (or as derived as it was in its source). */
  private star(qualifier: readonly Node[], level: Scope): Col[] {
    if (qualifier.length === 0) return level.entries.flatMap((e) => [...e.cols]);
    const item = this.findItem(
      qualifier.map((q) => str(q) as string),
      level,
    );
    if (item === undefined) unresolved(`No relation ${qualifier.map(str).join('.')} is in scope.`, {});
    return [...item.cols];
  }

  private findItem(path: readonly string[], scope: Scope | null): Item | undefined {
    const [a, b] = path.length === 2 ? path : [undefined, path[0]];
    for (let s = scope; s; s = s.parent) {
      const hits = s.entries.flatMap((e) => e.items.filter((i) => i.name === b && (a === undefined || i.schema === a)));
      if (hits.length > 1) ambiguous(`The relation name ${b} is used more than once at one level.`, { relation: b });
      if (hits.length === 1) return hits[0];
    }
    return undefined;
  }

  /** A column by name at one level (unqualified): exactly one match, or an opaque function item. */
  private unqualified(name: string, s: Scope): Col | undefined {
    const hits: Col[] = [];
    let opaque: Set<string> | undefined;
    for (const e of s.entries) {
      for (const c of e.cols) {
        if (c.name === name) hits.push(c);
        // A column whose name this module could not figure (PostgreSQL might name it after all):
        // a name not found elsewhere may be it, so it counts as a source, like a function item.
        else if (c.name === UNNAMED && hits.length === 0) opaque = union(opaque ?? EMPTY, c.sources);
      }
      if (e.opaque) opaque = union(opaque ?? EMPTY, e.opaque);
    }
    if (hits.length > 1) ambiguous(`The column name ${name} is ambiguous.`, { column: name });
    if (hits.length === 1) return hits[0];
    if (opaque) return fallback(name, opaque);
    return undefined;
  }

  /** Resolve a name path as a column (PostgreSQL's order), or undefined. */
  private tryResolve(fields: readonly string[], scope: Scope | null): Col | undefined {
    if (fields.length === 1) {
      // An uncertain match at an inner level does not stop the search: PostgreSQL may resolve the
      // name further out, so the value derives from both (never from fewer sources than the truth).
      let uncertain: Sources | undefined;
      for (let s = scope; s; s = s.parent) {
        const c = this.unqualified(fields[0] as string, s);
        if (c === undefined) continue;
        if (!isFallback(c)) {
          return uncertain ? { name: c.name, sources: union(uncertain, c.sources), copy: false } : c;
        }
        uncertain = union(uncertain ?? EMPTY, c.sources);
      }
      return uncertain ? fallback(fields[0] as string, uncertain) : undefined;
    }
    const item = this.findItem(fields.slice(0, -1), scope);
    if (item === undefined) return undefined;
    const name = fields[fields.length - 1] as string;
    const hits = item.cols.filter((c) => c.name === name);
    if (hits.length > 1) ambiguous(`The column ${fields.join('.')} is ambiguous.`, { column: fields.join('.') });
    if (hits.length === 1) return hits[0];
    if (item.opaque) return { name, sources: item.opaque, copy: false };
    // `t.f` is PostgreSQL's attribute notation for f(t) (the function allow-list checked f): a whole row.
    return { name, sources: allSources(item.cols), copy: false };
  }

  private columnRef(ref: Node, scope: Scope | null): { sources: Sources; copy: boolean } {
    const fields = (ref.fields as Node[]) ?? [];
    const star = fields.length > 0 && 'A_Star' in (fields[fields.length - 1] as Node);
    const names = (star ? fields.slice(0, -1) : fields).map((f) => str(f) as string);
    if (star) {
      // A star inside an expression (row(c.*), to_jsonb(c.*), count(c.*)): whole rows.
      if (names.length === 0) {
        const level = scope;
        if (level === null) unresolved('A * with no relation in scope.', {});
        return { sources: allSources(level.entries.flatMap((e) => [...e.cols])), copy: false };
      }
      const item = this.findItem(names, scope);
      if (item === undefined) unresolved(`No relation ${names.join('.')} is in scope.`, {});
      return { sources: union(allSources(item.cols), item.opaque ?? EMPTY), copy: false };
    }
    if (names.length > 3) unresolved(`The name ${names.join('.')} has too many parts.`, {});
    const col = this.tryResolve(names, scope);
    if (col) return { sources: col.sources, copy: col.copy };
    // Not a column: a whole-row reference to a relation (`c`, `row_to_json(c)`, `schema.table`).
    const item = this.findItem(names, scope);
    if (item) return { sources: union(allSources(item.cols), item.opaque ?? EMPTY), copy: false };
    return unresolved(`The column ${names.join('.')} is not in scope.`, { column: names.join('.').toLowerCase() });
  }

  /** Sources of an expression; a copy only when it is exactly a column reference. */
  expr(node: unknown, scope: Scope | null, ctes: Ctes | null): { sources: Sources; copy: boolean } {
    if (typeof node !== 'object' || node === null) return { sources: EMPTY, copy: false };
    if (Array.isArray(node)) return { sources: union(...node.map((x) => this.expr(x, scope, ctes).sources)), copy: false };
    const n = node as Node;
    const ref = n.ColumnRef as Node | undefined;
    if (ref) return this.columnRef(ref, scope);
    const sub = n.SubLink as Node | undefined;
    if (sub) {
      const sel = (sub.subselect as Node).SelectStmt as Node;
      const outs = this.select(sel, scope, ctes);
      const test = this.expr(sub.testexpr, scope, ctes).sources;
      if (sub.subLinkType === 'EXISTS_SUBLINK') return { sources: EMPTY, copy: false };
      return { sources: union(test, allSources(outs)), copy: false };
    }
    const fn = n.FuncCall as Node | undefined;
    if (fn?.over) {
      // The window's PARTITION BY / ORDER BY orders or groups rows: used; its arguments flow into the value.
      this.use(this.expr(fn.over, scope, ctes).sources);
    }
    const sources = new Set<string>();
    for (const k in n) {
      const v = n[k];
      if (typeof v !== 'object' || v === null) continue;
      for (const s of this.expr(v, scope, ctes).sources) sources.add(s);
    }
    return { sources, copy: false };
  }

  private use(sources: Sources): void {
    for (const s of sources) this.used.add(s);
  }
}

/**
 * Each view's lineage, per catalog (a snapshot: its version and the default schema are checked).
 * A view's lineage does not depend on the query that reads it (a definition is self-contained and
 * its names resolve on a fixed search_path), so it is computed once per catalog version. Refusals
 * are not cached: they are rare and a refused query costs its parse again.
 */
const viewCache = new WeakMap<SqlCatalog, { version: number; defaultSchema: string; views: Map<string, ViewLineage> }>();

function viewRefused(view: string, why: string, detail: Record<string, unknown> = {}): never {
  return refuse('sql_rejected', `The view ${view} cannot be followed to its base columns: ${why}.`, ['sql.view_unsupported'], { view, ...detail });
}

/** The one SELECT of a view's definition (pg_get_viewdef text, with its trailing semicolon). */
function parseDefinition(view: string, definition: string): Node {
  let tree: { stmts?: { stmt?: Node }[] };
  try {
    tree = parseSync(definition) as { stmts?: { stmt?: Node }[] };
  } catch (err) {
    return viewRefused(view, `its definition does not parse (${String((err as Error).message).slice(0, 120)})`);
  }
  const stmts = tree.stmts ?? [];
  const sel = stmts.length === 1 ? (stmts[0]?.stmt?.SelectStmt as Node | undefined) : undefined;
  if (sel === undefined) return viewRefused(view, 'its definition is not one SELECT');
  return sel;
}

function viewLineage(
  catalog: SqlCatalog,
  defaultSchema: string,
  schema: string,
  name: string,
  names: readonly string[],
  definition: string | null,
  expanding: readonly string[],
): ViewLineage {
  const key = `${schema}\u0000${name}`;
  let cache = viewCache.get(catalog);
  if (cache === undefined || cache.version !== catalog.version || cache.defaultSchema !== defaultSchema) {
    cache = { version: catalog.version, defaultSchema, views: new Map() };
    viewCache.set(catalog, cache);
  }
  const hit = cache.views.get(key);
  if (hit) return hit;
  const view = `${schema}.${name}`.toLowerCase();
  if (expanding.includes(key)) viewRefused(view, 'it reads itself through the views it reads');
  if (expanding.length >= MAX_VIEW_DEPTH) viewRefused(view, `views are nested more than ${MAX_VIEW_DEPTH} deep`);
  if (definition === null) viewRefused(view, 'its definition could not be read on the search_path the analyser assumes');
  const sel = parseDefinition(view, definition);
  const walk = new LineageWalk(catalog, defaultSchema, [...expanding, key]);
  let out: Col[];
  try {
    out = walk.select(sel, null, null);
  } catch (err) {
    if (!(err instanceof DenialError) || err.denial.reasons.includes('sql.view_unsupported')) throw err;
    return viewRefused(view, err.denial.message, { reasons: err.denial.reasons });
  }
  if (out.length !== names.length) viewRefused(view, `its definition has ${out.length} columns, the view ${names.length}`);
  const depth = walk.viewDepth + 1;
  if (depth > MAX_VIEW_DEPTH) viewRefused(view, `views are nested more than ${MAX_VIEW_DEPTH} deep`);
  // The catalog's names are the view's columns (CREATE VIEW v(a, b) renames; pg_get_viewdef prints them as aliases anyway).
  const cols = out.map((c, i) => ({ name: names[i] as string, sources: c.sources, copy: c.copy && c.sources.size > 0 }));
  const v: ViewLineage = { cols, used: walk.used, tables: walk.tables, depth };
  cache.views.set(key, v);
  return v;
}

/** Every RangeVar in a tree (any depth): the relations a statement names, CTE names included. */
function rangeVars(node: unknown, out: Node[]): Node[] {
  if (Array.isArray(node)) for (const x of node) rangeVars(x, out);
  else if (typeof node === 'object' && node !== null) {
    const n = node as Node;
    if (typeof n.RangeVar === 'object' && n.RangeVar !== null) out.push(n.RangeVar as Node);
    for (const k in n) rangeVars(n[k], out);
  }
  return out;
}

/**
 * The views and materialized views a statement names, each with the relations its definition reads
 * (transitively) and the base columns the query reached through it (`lineage`'s columns among the
 * view's; all of the view's when no lineage is known). Independent of the statement's own lineage,
 * so a query whose columns cannot be resolved still shows which tables it reaches through views
 * (row filters need that). A name a CTE shadows is counted as the view too (more, never less).
 * Refuses (`sql.view_unsupported`) a view it cannot follow.
 */
export function viewsRead(stmt: unknown, catalog: SqlCatalog, defaultSchema: string, lineage?: Lineage): LineageView[] {
  if (catalog.viewDefinition === undefined) return [];
  const reached = lineage ? new Set([...lineage.outputs.flatMap((o) => o.columns), ...lineage.used]) : undefined;
  const out = new Map<string, LineageView>();
  for (const rv of rangeVars(stmt, [])) {
    const relname = String(rv.relname);
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : catalog.has('pg_catalog', relname) ? 'pg_catalog' : defaultSchema;
    const definition = catalog.viewDefinition(schema, relname);
    const names = catalog.columns(schema, relname);
    if (definition === undefined || names === undefined) continue;
    const view = `${schema}.${relname}`.toLowerCase();
    if (out.has(view)) continue;
    const v = viewLineage(catalog, defaultSchema, schema, relname, names, definition, []);
    const columns = [...union(allSources(v.cols), v.used)].filter((c) => reached === undefined || reached.has(c));
    out.set(view, { view, tables: [...v.tables].sort(), columns: columns.sort() });
  }
  return [...out.values()].sort((a, b) => (a.view < b.view ? -1 : a.view > b.view ? 1 : 0));
}

/**
 * The relations in `tables` (the analyser's facts: every relation the statement reads, CTE names
 * excluded, lower-case) that the catalog does not know: created after it was read, or absent.
 * Such a relation may be a view over a row-filtered table, which viewsRead cannot see into.
 */
export function relationsUnknown(stmt: unknown, catalog: SqlCatalog, defaultSchema: string, tables: readonly string[]): string[] {
  const known = new Set<string>();
  for (const rv of rangeVars(stmt, [])) {
    const relname = String(rv.relname);
    if (typeof rv.schemaname === 'string') {
      if (catalog.columns(rv.schemaname, relname) !== undefined) known.add(`${rv.schemaname}.${relname}`.toLowerCase());
      continue;
    }
    const schema = catalog.has('pg_catalog', relname) ? 'pg_catalog' : defaultSchema;
    // The analyser reports an unqualified pg_* name under both schemas it could resolve to.
    if (catalog.columns(schema, relname) !== undefined) for (const s of ['pg_catalog', defaultSchema]) known.add(`${s}.${relname}`.toLowerCase());
  }
  return tables.filter((t) => !known.has(t));
}

/**
 * The row filters' tables the query reaches through the views it names (`views`), where the
 * rewrite cannot apply them: the query must be refused. A view the policy filters in its own right
 * is exempt: the rewrite wraps the query's references to it, and the policy chose that filter for
 * the view's rows (a view inside it is not exempt: its references are in no text the gate rewrites).
 */
export function rowFilteredViews(filteredTables: readonly string[], views: readonly LineageView[]): { view: string; table: string }[] {
  const filtered = new Set(filteredTables.map((t) => t.toLowerCase()));
  const hits: { view: string; table: string }[] = [];
  for (const v of views) {
    if (filtered.has(v.view)) continue;
    for (const t of v.tables) if (filtered.has(t)) hits.push({ view: v.view, table: t });
  }
  return hits;
}

/** Lineage of an accepted SELECT's tree (libpg-query's `stmt`), resolved against `catalog`. */
export function lineageOf(stmt: unknown, catalog: SqlCatalog, defaultSchema: string): Lineage {
  const sel = (stmt as Node | undefined)?.SelectStmt as Node | undefined;
  if (sel === undefined) return unsupported('the statement is not a SELECT');
  const walk = new LineageWalk(catalog, defaultSchema);
  const cols = walk.select(sel, null, null);
  return {
    outputs: cols.map((c) => ({ name: c.name, columns: [...c.sources].sort(), copy: c.copy && c.sources.size > 0 })),
    used: [...walk.used].sort(),
  };
}

/**
 * A catalog built from `{"schema.table": [columns...]}` (tests, the embedded database, benchmarks),
 * with `views` giving the definitions of those that are views (`null`: a view whose definition is unavailable).
 */
export function staticCatalog(
  tables: Readonly<Record<string, readonly string[]>>,
  version = 1,
  views: Readonly<Record<string, string | null>> = {},
): SqlCatalog {
  const map = new Map(Object.entries(tables));
  const defs = new Map(Object.entries(views));
  return {
    version,
    columns: (schema, table) => map.get(`${schema}.${table}`),
    has: (schema, table) => map.has(`${schema}.${table}`),
    viewDefinition: (schema, table) => defs.get(`${schema}.${table}`),
  };
}
