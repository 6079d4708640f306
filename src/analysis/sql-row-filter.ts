import * as nodeCrypto from 'node:crypto';
import { deparseSync, loadModule as loadDeparserModule } from '@libpg-query/parser';
import { parseSync } from 'libpg-query';
import { refuse } from '../core/denial.js';
import { ATTRIBUTE_NAME, type PrincipalAttributes } from '../core/principal-attributes.js';
import { analyseSql, type SqlAnalysis, type SqlOptions } from './sql.js';

/**
 * Row filters from policy (issue 13 item 3), applied by rewriting libpg-query's parse tree.
 *
 * The policy returns predicates as data, never SQL text: `{table, column, op, value}` with `op` one
 * of `=`, `<>`, `in`, `is_null`, `is_not_null` and `value` either `{"const": v}` (a string, a
 * finite number, a boolean; a non-empty list of them for `in`) or `{"principal": attr}` (an
 * attribute of the verified principal: `id`, `tier`, `auth`; `roles`, a list, for `in`; or
 * `attributes.<name>`, one of the principal's verified attributes (src/core/principal-attributes.ts:
 * from its API key, its access token's mapped claims or the configured local principal). A string
 * attribute goes with `=`, `<>` or `in`, a list attribute with `in` only; a principal without the
 * attribute is refused, never served unfiltered).
 *
 * Every reference to a filtered table in the accepted SELECT — FROM, JOIN, a subquery in FROM,
 * WHERE or the select list, a CTE body, either arm of a set operation, LATERAL, EXISTS / IN
 * sublinks — is replaced in the tree by
 *
 *   (SELECT * FROM <the same RangeVar> AS bulwark_rf WHERE bulwark_rf.<column> <op> $k ...) AS <alias>
 *
 * where <alias> is the reference's own alias (with its column list) or else the table's name, so
 * the rest of the query resolves as before. Values are bound as parameters after the caller's
 * ($n+1, ...), so no value is ever written into SQL text; identifiers are node fields the deparser
 * quotes. A name a CTE shadows (`WITH orders AS (...) ... FROM orders`) is the CTE, not the table,
 * with PostgreSQL's scoping (the same as sql-walk.ts); the CTE's own body is rewritten where it
 * reads the table. Table names match case-insensitively, so a quoted look-alike is filtered too
 * (over-filtering fails safe: at worst the filter's column is missing and the query is refused).
 *
 * The rewritten tree is deparsed by PostgreSQL's own deparser (libpg_query's, shipped with
 * @libpg-query/parser), and the text goes through the full analysis again (hygiene, libpg-query,
 * the walk, the node-sql-parser agreement check, the caller's allow-lists), so what runs is what
 * an accepted query looks like. Two more checks make the rewrite itself fail closed:
 * - fidelity: the deparsed text parses back to the rewritten tree (locations aside);
 * - the postcondition: in that re-parsed tree every reference to a filtered table sits alone in a
 *   filter subquery whose predicate is exactly the one built for that table.
 * Anything the gate cannot apply is refused: a malformed obligation or an operator outside the
 * list (`policy_error`, `sql.row_filter_invalid`), a principal attribute the principal lacks
 * (`policy_error`, `sql.row_filter_attribute`), a reference the rewrite cannot wrap, such as
 * TABLESAMPLE on a filtered table, or a failed check (`sql_rejected`, `sql.row_filter_unsupported`).
 * A column that does not exist shows only when the query runs (the server's 42703 names
 * `bulwark_rf.<column>`); the tool maps that to `policy_error`, `sql.row_filter_column`.
 *
 * What a row filter cannot cover: relations other than the named table that expose the same rows
 * (a view, a materialised view, a child or parent table read without ONLY) must be filtered
 * themselves or denied by the policy's table list.
 */

export const ROW_FILTER_REASON_CODES = {
  'sql.row_filter_invalid':
    'The policy returned a row_filters obligation the gate cannot read (shape, table or column name, operator, value) (denial code `policy_error`).',
  'sql.row_filter_attribute': 'A row filter takes its value from a principal attribute this principal does not carry (denial code `policy_error`).',
  'sql.row_filter_column': 'A row filter names a column the filtered table does not have (found when the query ran; denial code `policy_error`).',
  'sql.row_filter_unsupported': 'The query reads a filtered table in a way the rewrite cannot wrap (TABLESAMPLE), or the rewritten query failed its checks.',
  'sql.row_filter_unavailable': 'The PostgreSQL deparser the rewrite needs is not loaded or failed (denial code `unavailable`).',
} as const;

export type RowFilterOp = '=' | '<>' | 'in' | 'is_null' | 'is_not_null';
type Scalar = string | number | boolean;
export type RowFilterValue = { readonly const: Scalar | readonly Scalar[] } | { readonly principal: string };

export interface RowFilter {
  /** "schema.table", lower-case. */
  readonly table: string;
  readonly column: string;
  readonly op: RowFilterOp;
  readonly value?: RowFilterValue;
}

/** The attributes of the verified principal a filter may read (src/core/call.ts Principal). */
export interface RowFilterPrincipal {
  readonly id: string;
  readonly roles: readonly string[];
  readonly auth: string;
  readonly tier: string;
  /** Read by `{"principal": "attributes.<name>"}`. */
  readonly attributes?: PrincipalAttributes | undefined;
}

export interface RowFilterResult {
  /** The text to run: the deparsed, re-analysed rewrite. */
  readonly text: string;
  /** The caller's parameters followed by the filters' values. */
  readonly params: readonly (Scalar | null)[];
  /** The re-analysis of `text`. */
  readonly analysis: SqlAnalysis;
  /** Filtered tables the query reads, sorted. */
  readonly tables: readonly string[];
  /** References rewritten into filter subqueries. */
  readonly references: number;
  /** sha256 (hex) of the analysed text and of the executed text. */
  readonly text_sha256: string;
  readonly executed_sha256: string;
}

/** The alias of the table inside each filter subquery; the predicate is qualified with it. */
export const ROW_FILTER_ALIAS = 'bulwark_rf';

const OPS: ReadonlySet<string> = new Set(['=', '<>', 'in', 'is_null', 'is_not_null']);
const IDENT = /^[a-z_][a-z0-9_$]{0,62}$/;
const TABLE = /^[a-z_][a-z0-9_$]{0,62}\.[a-z_][a-z0-9_$]{0,62}$/;
const MAX_FILTERS = 64;
const MAX_IN_VALUES = 1000;
const MAX_STRING = 4096;
/** Principal attributes by name; `roles` is a list (only for `in`). */
const PRINCIPAL_ATTRIBUTES: ReadonlySet<string> = new Set(['id', 'tier', 'auth', 'roles']);
/** `attributes.<name>`: one of the principal's verified attributes. */
const ATTRIBUTES_PREFIX = 'attributes.';

function knownAttribute(name: unknown): name is string {
  if (typeof name !== 'string') return false;
  if (PRINCIPAL_ATTRIBUTES.has(name)) return true;
  return name.startsWith(ATTRIBUTES_PREFIX) && ATTRIBUTE_NAME.test(name.slice(ATTRIBUTES_PREFIX.length));
}
const STRIP_KEYS = new Set(['location', 'stmt_location', 'stmt_len']);
/** libpg-query's JSON wraps a node as `{Kind: {...}}`; node kinds are PascalCase, fields are not. */
const NODE_KIND = /^[A-Z]/;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(message: string, detail?: Record<string, unknown>): never {
  return refuse('policy_error', `The policy's row filter cannot be applied: ${message}.`, ['sql.row_filter_invalid'], detail);
}

function unsupported(message: string, detail?: Record<string, unknown>): never {
  return refuse('sql_rejected', `The query cannot be filtered as the policy requires: ${message}.`, ['sql.row_filter_unsupported'], detail);
}

function scalarOk(v: unknown): v is Scalar {
  if (typeof v === 'string') return v.length <= MAX_STRING && !v.includes('\u0000');
  if (typeof v === 'number') return Number.isFinite(v);
  return typeof v === 'boolean';
}

/**
 * The policy's `row_filters` obligation, checked entry by entry. Anything unexpected refuses the
 * call (`policy_error`): a filter the gate cannot read must never be skipped.
 */
export function parseRowFilters(value: unknown): RowFilter[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return invalid('row_filters is not a list');
  if (value.length > MAX_FILTERS) invalid(`more than ${MAX_FILTERS} filters`);
  const out: RowFilter[] = [];
  for (const [i, f] of value.entries()) {
    if (!isObj(f)) return invalid(`entry ${i} is not an object`, { entry: i });
    for (const k of Object.keys(f)) if (!['table', 'column', 'op', 'value'].includes(k)) invalid(`entry ${i} has an unknown key ${k}`, { entry: i });
    const table = typeof f.table === 'string' ? f.table.toLowerCase() : '';
    if (!TABLE.test(table)) invalid(`entry ${i} does not name a table as schema.table`, { entry: i });
    const column = f.column;
    if (typeof column !== 'string' || !IDENT.test(column)) return invalid(`entry ${i} does not name a plain lower-case column`, { entry: i, table });
    const op = f.op;
    if (typeof op !== 'string' || !OPS.has(op)) return invalid(`entry ${i} has an operator outside =, <>, in, is_null, is_not_null`, { entry: i, table });
    const filterOp = op as RowFilterOp;
    if (filterOp === 'is_null' || filterOp === 'is_not_null') {
      if (f.value !== undefined) invalid(`entry ${i}: ${op} takes no value`, { entry: i, table });
      out.push({ table, column, op: filterOp });
      continue;
    }
    const v = f.value;
    if (!isObj(v) || Object.keys(v).length !== 1) return invalid(`entry ${i} needs a value {"const": ...} or {"principal": ...}`, { entry: i, table });
    if ('principal' in v) {
      if (!knownAttribute(v.principal)) {
        // An attribute name the gate does not know: the principal cannot carry it.
        return refuse(
          'policy_error',
          `The policy's row filter takes a value from the principal attribute ${JSON.stringify(v.principal)}, which principals do not carry${
            typeof v.principal === 'string' && ATTRIBUTE_NAME.test(v.principal) ? ` (a verified attribute is named "attributes.${v.principal}")` : ''
          }.`,
          ['sql.row_filter_attribute'],
          { entry: i, table, attribute: typeof v.principal === 'string' ? v.principal.slice(0, 64) : null },
        );
      }
      // roles is a list and goes with in only; id, tier and auth are one value each. An attribute's
      // shape is the principal's, so it is checked when the filter is applied.
      if (!v.principal.startsWith(ATTRIBUTES_PREFIX) && (v.principal === 'roles') !== (filterOp === 'in'))
        invalid(`entry ${i}: the principal's roles (a list) go with in, and only they`, { entry: i, table });
      out.push({ table, column, op: filterOp, value: { principal: v.principal } });
      continue;
    }
    if (!('const' in v)) return invalid(`entry ${i} needs a value {"const": ...} or {"principal": ...}`, { entry: i, table });
    const c = v.const;
    if (filterOp === 'in') {
      if (!Array.isArray(c) || c.length === 0 || c.length > MAX_IN_VALUES || !c.every(scalarOk)) {
        invalid(`entry ${i}: in takes a non-empty list of up to ${MAX_IN_VALUES} strings, numbers or booleans`, { entry: i, table });
      }
      out.push({ table, column, op: filterOp, value: { const: [...(c as Scalar[])] } });
    } else {
      if (!scalarOk(c)) return invalid(`entry ${i}: ${op} takes one string, finite number or boolean`, { entry: i, table });
      out.push({ table, column, op: filterOp, value: { const: c } });
    }
  }
  return out;
}

function principalValue(p: RowFilterPrincipal, attribute: string, table: string): Scalar | readonly Scalar[] {
  const own = (name: string): unknown => (p.attributes !== undefined && Object.hasOwn(p.attributes, name) ? p.attributes[name] : undefined);
  const v: unknown = attribute.startsWith(ATTRIBUTES_PREFIX)
    ? own(attribute.slice(ATTRIBUTES_PREFIX.length))
    : attribute === 'id'
      ? p.id
      : attribute === 'tier'
        ? p.tier
        : attribute === 'auth'
          ? p.auth
          : attribute === 'roles'
            ? p.roles
            : undefined;
  const present = Array.isArray(v) ? v.length > 0 && v.every((x) => typeof x === 'string' && scalarOk(x)) : typeof v === 'string' && v !== '' && scalarOk(v);
  if (!present) {
    refuse(
      'policy_error',
      `The policy's row filter on ${table} needs the principal's ${attribute}, which this principal does not carry.`,
      ['sql.row_filter_attribute'],
      {
        table,
        attribute,
      },
    );
  }
  return v as Scalar | readonly Scalar[];
}

// ---------------------------------------------------------------------------------------------
// Tree building (libpg-query 17 JSON shapes)

function str(s: string): Obj {
  return { String: { sval: s } };
}

function columnRef(column: string): Obj {
  return { ColumnRef: { fields: [str(ROW_FILTER_ALIAS), str(column)] } };
}

function param(n: number): Obj {
  return { ParamRef: { number: n } };
}

/** The WHERE of one table's filter subquery; values become parameters numbered from `next`. */
function predicateOf(filters: readonly RowFilter[], principal: RowFilterPrincipal, params: (Scalar | null)[], firstParam: number): Obj {
  const terms: Obj[] = [];
  for (const f of filters) {
    const col = columnRef(f.column);
    if (f.op === 'is_null' || f.op === 'is_not_null') {
      terms.push({ NullTest: { arg: col, nulltesttype: f.op === 'is_null' ? 'IS_NULL' : 'IS_NOT_NULL' } });
      continue;
    }
    const value = f.value as RowFilterValue;
    const v = 'principal' in value ? principalValue(principal, value.principal, f.table) : value.const;
    const bind = (x: Scalar): Obj => {
      params.push(x);
      return param(firstParam + params.length - 1);
    };
    if (f.op === 'in') {
      const list = Array.isArray(v) ? (v as readonly Scalar[]) : [v as Scalar];
      terms.push({ A_Expr: { kind: 'AEXPR_IN', name: [str('=')], lexpr: col, rexpr: { List: { items: list.map(bind) } } } });
    } else {
      if (Array.isArray(v)) {
        if ('principal' in value) {
          refuse(
            'policy_error',
            `The policy's row filter on ${f.table} compares with ${f.op} to the principal's ${value.principal}, which is a list for this principal (a list goes with in).`,
            ['sql.row_filter_attribute'],
            { table: f.table, attribute: value.principal },
          );
        }
        return invalid(`${f.op} on ${f.table} needs one value`);
      }
      terms.push({ A_Expr: { kind: 'AEXPR_OP', name: [str(f.op)], lexpr: col, rexpr: bind(v as Scalar) } });
    }
  }
  return terms.length === 1 ? (terms[0] as Obj) : { BoolExpr: { boolop: 'AND_EXPR', args: terms } };
}

/**
 * @libpg-query/parser 17.6.10 (libpg_query 17-6.0) deparses every boolean constant as `false`:
 * `WHERE true` would run as `WHERE false`, `ON true` as `ON false` (found by the fidelity check
 * below, which refuses such a text). Boolean constants are therefore handed to it as the
 * equivalent `'t'::bool` / `'f'::bool`, which it writes faithfully; the fidelity check compares
 * against the tree with that substitution, so a deparser that gets anything else wrong still
 * fails closed.
 */
function spellBooleans(node: unknown): void {
  if (!Array.isArray(node) && !isObj(node)) return;
  const slots = node as Record<string | number, unknown>;
  for (const key of Array.isArray(node) ? node.keys() : Object.keys(node)) {
    const v = slots[key];
    if (isObj(v) && isObj(v.A_Const) && isObj(v.A_Const.boolval)) {
      const truth = v.A_Const.boolval.boolval === true;
      slots[key] = { TypeCast: { arg: { A_Const: { sval: { sval: truth ? 't' : 'f' } } }, typeName: { names: [str('bool')], typemod: -1 } } };
    } else spellBooleans(v);
  }
}

function stripped(node: unknown): string {
  return JSON.stringify(node, (key, value: unknown) => (STRIP_KEYS.has(key) ? undefined : value));
}

// ---------------------------------------------------------------------------------------------
// The walk: every RangeVar of a filtered table, with CTE scoping

interface Scope {
  readonly names: ReadonlySet<string>;
  readonly parent: Scope | null;
}

function isCte(name: string, scope: Scope | null): boolean {
  for (let s = scope; s !== null; s = s.parent) if (s.names.has(name)) return true;
  return false;
}

class FilterWalk {
  references = 0;
  readonly tables = new Set<string>();

  constructor(
    private readonly filtered: ReadonlyMap<string, string>,
    private readonly defaultSchema: string,
    /**
     * 'find' only notes the filtered tables read; 'rewrite' replaces each reference; 'check'
     * refuses any reference that is not inside a filter subquery.
     */
    private readonly mode: 'find' | 'rewrite' | 'check',
  ) {}

  /** The filtered table a RangeVar reads, or null (not filtered, or a CTE in scope). */
  private tableOf(rv: Obj, scope: Scope | null): string | null {
    const name = rv.relname;
    if (typeof name !== 'string') return unsupported('a relation without a name');
    if (rv.catalogname !== undefined) return unsupported('a three-part relation name');
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : null;
    if (schema === null && isCte(name, scope)) return null;
    const candidates = [`${(schema ?? this.defaultSchema).toLowerCase()}.${name.toLowerCase()}`];
    if (schema === null && name.toLowerCase().startsWith('pg_')) candidates.push(`pg_catalog.${name.toLowerCase()}`);
    for (const c of candidates) if (this.filtered.has(c)) return c;
    return null;
  }

  visitSelect(body: unknown, scope: Scope | null): void {
    if (!isObj(body)) return unsupported('an unexpected parse tree shape');
    let inner = scope;
    if (body.withClause !== undefined) {
      const w = body.withClause;
      if (!isObj(w) || !Array.isArray(w.ctes)) return unsupported('an unexpected WITH clause');
      const ctes = w.ctes.map((c) => (isObj(c) && isObj(c.CommonTableExpr) ? c.CommonTableExpr : unsupported('an unexpected WITH clause')));
      const all = new Set(ctes.map((c) => (typeof c.ctename === 'string' ? c.ctename : unsupported('an unexpected WITH clause'))));
      const seen = new Set<string>();
      for (const cte of ctes) {
        const visible: Scope = { names: w.recursive === true ? all : new Set(seen), parent: scope };
        this.visitFields(cte, visible);
        seen.add(cte.ctename as string);
      }
      inner = { names: all, parent: scope };
    }
    for (const key of Object.keys(body)) {
      if (key === 'withClause') continue;
      if (key === 'larg' || key === 'rarg') this.visitSelect(body[key], inner);
      else this.visitSlot(body, key, inner);
    }
  }

  /** Visit every field of an object node (not a wrapped node). */
  private visitFields(node: Obj, scope: Scope | null): void {
    for (const key of Object.keys(node)) this.visitSlot(node, key, scope);
  }

  /** The value at container[key]: replaced when it is a reference to a filtered table. */
  private visitSlot(container: Obj | unknown[], key: string | number, scope: Scope | null): void {
    const v = (container as Record<string | number, unknown>)[key];
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) this.visitSlot(v, i, scope);
      return;
    }
    if (!isObj(v)) return;
    // A wrapped node is `{Kind: body}` with a PascalCase node kind; anything else (an alias, a
    // WindowDef, a struct with one field such as `{relation: {RangeVar: ...}}`) is a struct whose
    // fields are slots in their own right, so no RangeVar can hide one level down.
    const keys = Object.keys(v);
    const kind = keys.length === 1 ? (keys[0] as string) : '';
    if (!NODE_KIND.test(kind)) return this.visitFields(v, scope);
    const body = v[kind];
    if (kind === 'SelectStmt') return this.visitSelect(body, scope);
    if (kind === 'RangeVar' && isObj(body)) {
      const table = this.tableOf(body, scope);
      if (table === null) return;
      if (this.mode === 'check') {
        return unsupported('a reference to a filtered table is not inside its filter after the rewrite', { table });
      }
      if (this.mode === 'rewrite') (container as Record<string | number, unknown>)[key] = this.wrap(body, table);
      this.references += 1;
      this.tables.add(table);
      return;
    }
    if (kind === 'RangeTableSample' && isObj(body)) {
      const rel = body.relation;
      if (isObj(rel) && isObj(rel.RangeVar) && this.tableOf(rel.RangeVar, scope) !== null) {
        return unsupported('TABLESAMPLE on a filtered table', { table: this.tableOf(rel.RangeVar, scope) });
      }
    }
    if (kind === 'RangeSubselect' && isObj(body) && this.mode === 'check' && this.isFilterSubquery(body, scope)) {
      this.references += 1;
      return;
    }
    if (isObj(body)) this.visitFields(body, scope);
  }

  private wrap(rv: Obj, table: string): Obj {
    const { alias, location: _location, ...rest } = rv;
    const select = {
      targetList: [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }],
      fromClause: [{ RangeVar: { ...rest, alias: { aliasname: ROW_FILTER_ALIAS } } }],
      whereClause: JSON.parse(this.filtered.get(table) as string) as unknown,
      limitOption: 'LIMIT_OPTION_DEFAULT',
      op: 'SETOP_NONE',
    };
    return { RangeSubselect: { subquery: { SelectStmt: select }, alias: isObj(alias) ? alias : { aliasname: rv.relname } } };
  }

  /** The postcondition's shape: `(SELECT * FROM <t> AS bulwark_rf WHERE <t's predicate>)`, nothing else. */
  private isFilterSubquery(rs: Obj, scope: Scope | null): boolean {
    const sub = isObj(rs.subquery) ? rs.subquery.SelectStmt : undefined;
    if (!isObj(sub) || rs.lateral === true) return false;
    const keys = Object.keys(sub).sort().join(',');
    if (keys !== 'fromClause,limitOption,op,targetList,whereClause') return false;
    if (sub.op !== 'SETOP_NONE' || sub.limitOption !== 'LIMIT_OPTION_DEFAULT') return false;
    if (stripped(sub.targetList) !== stripped([{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }])) return false;
    const from = sub.fromClause;
    if (!Array.isArray(from) || from.length !== 1 || !isObj(from[0]) || !isObj(from[0].RangeVar)) return false;
    const rv = from[0].RangeVar;
    if (!isObj(rv.alias) || rv.alias.aliasname !== ROW_FILTER_ALIAS || rv.alias.colnames !== undefined) return false;
    const table = this.tableOf(rv, scope);
    return table !== null && stripped(sub.whereClause) === this.filtered.get(table);
  }
}

// ---------------------------------------------------------------------------------------------

let deparserLoaded: Promise<void> | undefined;

/**
 * Deparsed texts that passed the fidelity and postcondition checks, by the rewritten tree
 * (locations aside, predicates included). libpg_query's deparser costs milliseconds per call in
 * this WebAssembly build (about 0.7 ms for `SELECT a FROM b`, 7-10 ms for a filtered join), and
 * both checks are pure functions of that tree and the text. The tree is a function of the query
 * text, the filters' shape and the parameter numbering only (values are parameters), so the
 * cache holds no principal's values. The full re-analysis runs on every call, hit or not.
 */
const verified = new Map<string, string>();
const VERIFIED_CACHE_SIZE = 512;

/** Load the deparser's WebAssembly module once (on the first query that needs a rewrite). */
export function loadRowFilterDeparser(): Promise<void> {
  deparserLoaded ??= loadDeparserModule().catch((err: unknown) => {
    deparserLoaded = undefined;
    throw err;
  });
  return deparserLoaded;
}

function sha256(text: string): string {
  return nodeCrypto.createHash('sha256').update(text).digest('hex');
}

function treeOf(text: string): { version: number; stmt: Obj } {
  let tree: { version?: unknown; stmts?: { stmt?: unknown }[] };
  try {
    tree = parseSync(text) as typeof tree;
  } catch {
    return unsupported('the query does not parse back');
  }
  const stmt = tree?.stmts?.[0]?.stmt;
  if (!Array.isArray(tree.stmts) || tree.stmts.length !== 1 || !isObj(stmt)) return unsupported('the query does not parse back to one statement');
  return { version: Number(tree.version), stmt };
}

/** The last dotted part of a "schema.table" name (over-approximate for names with dots in them). */
function tablePart(qualified: string): string {
  return qualified.slice(qualified.lastIndexOf('.') + 1);
}

/**
 * Apply the policy's row filters to an analysed query. Returns null when the query reads no
 * filtered table (it runs as analysed); otherwise the rewritten, deparsed and re-analysed text
 * with its parameters. Throws DenialError for anything it cannot apply (see the module comment).
 * `text` must be the text analyseSql accepted under `opts`; call loadRowFilterDeparser() first.
 * `tablesRead`, the analysis's `facts.tables`, lets a query that names no filtered table skip the
 * re-parse and the probe: every reference the probe could find is a relation the analysis lists
 * (the table allow-list rests on that), and only the table part of the names is compared, so a
 * doubt (another schema, a quoted name) still goes through the probe.
 */
export function applyRowFilters(
  text: string,
  params: readonly (Scalar | null)[],
  filters: readonly RowFilter[],
  principal: RowFilterPrincipal,
  opts: SqlOptions = {},
  tablesRead?: readonly string[],
): RowFilterResult | null {
  if (filters.length === 0) return null;
  if (tablesRead !== undefined) {
    const read = new Set(tablesRead.map(tablePart));
    if (!filters.some((f) => read.has(tablePart(f.table)))) return null;
  }
  const defaultSchema = opts.defaultSchema ?? 'public';
  const byTable = new Map<string, RowFilter[]>();
  for (const f of filters) byTable.set(f.table, [...(byTable.get(f.table) ?? []), f]);

  // Which filtered tables the query reads decides which predicates (and parameters) exist.
  const probe = new FilterWalk(new Map([...byTable.keys()].map((t) => [t, ''])), defaultSchema, 'find');
  const { version, stmt } = treeOf(text);
  probe.visitSelect(stmt.SelectStmt, null);
  if (probe.references === 0) return null;

  const extra: (Scalar | null)[] = [];
  const predicates = new Map<string, string>();
  for (const table of [...probe.tables].sort()) {
    predicates.set(table, stripped(predicateOf(byTable.get(table) as RowFilter[], principal, extra, params.length + 1)));
  }
  const walk = new FilterWalk(predicates, defaultSchema, 'rewrite');
  walk.visitSelect(stmt.SelectStmt, null);
  spellBooleans(stmt);

  const key = stripped(stmt);
  let executed = verified.get(key);
  if (executed === undefined) {
    try {
      executed = deparseSync({ version, stmts: [{ stmt }] } as unknown as Parameters<typeof deparseSync>[0]);
    } catch (err) {
      if (deparserLoaded === undefined) {
        return refuse('unavailable', 'The SQL deparser is not loaded.', ['sql.row_filter_unavailable']);
      }
      return unsupported(`PostgreSQL's deparser could not write the rewritten query (${err instanceof Error ? err.message.slice(0, 200) : 'error'})`);
    }
    // Fidelity: the text says exactly what the rewritten tree says.
    const back = treeOf(executed);
    if (stripped(back.stmt) !== key) return unsupported('the deparsed query does not parse back to the rewritten tree');
    // The postcondition, on the tree of the text that will run.
    const check = new FilterWalk(predicates, defaultSchema, 'check');
    check.visitSelect(back.stmt.SelectStmt, null);
    if (check.references !== walk.references) return unsupported('the rewritten query does not hold one filter per reference');
    verified.set(key, executed);
    if (verified.size > VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value as string);
  } else {
    verified.delete(key);
    verified.set(key, executed);
  }

  // The full analysis again, on the text that will run, under the caller's options.
  const analysis = analyseSql(executed, { ...opts, deparsed: true });
  if (analysis.facts.params !== params.length + extra.length) return unsupported('the rewritten query does not use the expected parameters');
  return {
    text: executed,
    params: [...params, ...extra],
    analysis,
    tables: [...walk.tables].sort(),
    references: walk.references,
    text_sha256: sha256(text),
    executed_sha256: sha256(executed),
  };
}
