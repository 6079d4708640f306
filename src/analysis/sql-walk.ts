import { refuse } from '../core/denial.js';

/**
 * The walk over libpg-query's raw parse tree (PostgreSQL 17 grammar, JSON form). Deny by default, at
 * two levels:
 *
 * - node kinds: only the kinds a plain SELECT needs are known here; any other kind anywhere (a
 *   statement other than SELECT, XMLTABLE, JSON_TABLE, the SQL/JSON and XML expression forms, a kind
 *   a future parser version adds) is refused;
 * - fields: for every known kind, each object-valued field is either walked or known to be inert; an
 *   object-valued field we do not know is refused too, so a parser upgrade that hangs an expression
 *   somewhere new cannot smuggle a function call past the walk.
 *
 * The walk collects what the policy decides on (relations, functions) without deciding on allow-lists
 * itself: sql.ts applies the caller's options to what is collected, so a collected walk can be cached
 * and reused under different options.
 *
 * JSON shape notes (libpg-query 17): a field typed `Node *` is wrapped (`{"FuncCall": {...}}`), a field
 * typed as a specific struct (TypeName, Alias, WindowDef in FuncCall.over, SelectStmt in larg/rarg) is
 * not; a NULL inside a list is `{}`; protobuf defaults (0, false, "") are omitted.
 */

export interface NameRef {
  /** Schema as PostgreSQL folded it (case preserved for quoted identifiers); null when unqualified. */
  readonly schema: string | null;
  readonly name: string;
}

export interface FunctionRef extends NameRef {
  /**
   * - 'call': written as a call, `f(...)`, in any position (FROM, TABLESAMPLE method included);
   * - 'syntax': written by the grammar rather than as an identifier: SQL-syntax forms (EXTRACT,
   *   TRIM, SUBSTRING ... FROM, AT TIME ZONE, SIMILAR TO), COALESCE/GREATEST/LEAST/NULLIF/GROUPING and
   *   CURRENT_DATE-like value functions, reported under their PostgreSQL name (trim → btrim);
   * - 'attribute': PostgreSQL's attribute notation, which calls a function without parentheses:
   *   `(expr).f` is `f(expr)` for an expression of *any* type (`(0.1::float8).pg_sleep` sleeps,
   *   `('data_directory'::text).current_setting` reads a setting), and `t.f` is `f(t)` on the whole
   *   row of t. The raw tree shows these as field selection (A_Indirection) and column references
   *   (ColumnRef), so the walk reports them as possible calls.
   */
  readonly form: 'call' | 'syntax' | 'attribute';
}

export interface WalkResult {
  /** Relations read (CTE references resolved away), as written, de-duplicated. */
  readonly relations: readonly NameRef[];
  /** Every RangeVar as written, CTE references included: what node-sql-parser's table list holds. */
  readonly rangeVars: readonly NameRef[];
  readonly functions: readonly FunctionRef[];
  /** Column names referenced (last field of each column reference, '*' for a star), lower-cased. */
  readonly columns: readonly string[];
  /** Highest $n parameter number; 0 when none. */
  readonly params: number;
  /** Deepest node nesting met, and nodes visited. */
  readonly depth: number;
  readonly nodes: number;
}

export interface WalkLimits {
  readonly maxTreeDepth: number;
  readonly maxNodes: number;
}

/**
 * Functions that accept a whole row as their only required argument (first parameter record,
 * anyelement, "any", anycompatible, anynonarray or VARIADIC "any"; from pg_proc of PostgreSQL 18):
 * `t.f` on a relation or alias t may call them. Any other name after `t.` can only be a column, since
 * PostgreSQL has no implicit cast from a row type to another argument type. Extension and
 * user-defined functions taking a row type are not listed (a SELECT-only role cannot create them).
 */
export const ROW_CALLABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  'any_out',
  'anycompatible_out',
  'anycompatiblenonarray_out',
  'anyelement_out',
  'anynonarray_out',
  'concat',
  'hash_record',
  'hstore',
  'json_build_array',
  'json_build_object',
  'jsonb_build_array',
  'jsonb_build_object',
  'num_nonnulls',
  'num_nulls',
  'pg_collation_for',
  'pg_column_compression',
  'pg_column_size',
  'pg_column_toast_chunk_id',
  'pg_restore_attribute_stats',
  'pg_restore_relation_stats',
  'pg_typeof',
  'quote_literal',
  'quote_nullable',
  'record_out',
  'record_send',
  'row_to_json',
  'to_json',
  'to_jsonb',
]);

/** reg* object-identifier types: a cast to one looks a name up in the catalogs (`'pg_sleep'::regproc`). */
export const REG_TYPES: ReadonlySet<string> = new Set([
  'regclass',
  'regcollation',
  'regconfig',
  'regdictionary',
  'regnamespace',
  'regoper',
  'regoperator',
  'regproc',
  'regprocedure',
  'regrole',
  'regtype',
]);

const SQL_VALUE_FUNCTIONS: Readonly<Record<string, string>> = {
  SVFOP_CURRENT_DATE: 'current_date',
  SVFOP_CURRENT_TIME: 'current_time',
  SVFOP_CURRENT_TIME_N: 'current_time',
  SVFOP_CURRENT_TIMESTAMP: 'current_timestamp',
  SVFOP_CURRENT_TIMESTAMP_N: 'current_timestamp',
  SVFOP_LOCALTIME: 'localtime',
  SVFOP_LOCALTIME_N: 'localtime',
  SVFOP_LOCALTIMESTAMP: 'localtimestamp',
  SVFOP_LOCALTIMESTAMP_N: 'localtimestamp',
  SVFOP_CURRENT_ROLE: 'current_role',
  SVFOP_CURRENT_USER: 'current_user',
  SVFOP_USER: 'user',
  SVFOP_SESSION_USER: 'session_user',
  SVFOP_CURRENT_CATALOG: 'current_catalog',
  SVFOP_CURRENT_SCHEMA: 'current_schema',
};

/** Node kinds that are refused by name, with the construct named in the message. */
const NAMED_REFUSALS: Readonly<Record<string, string>> = {
  RangeTableFunc: 'XMLTABLE',
  RangeTableFuncCol: 'XMLTABLE',
  JsonTable: 'JSON_TABLE',
  XmlExpr: 'XML expressions',
  XmlSerialize: 'XMLSERIALIZE',
  JsonFuncExpr: 'JSON_QUERY/JSON_VALUE/JSON_EXISTS',
  JsonObjectConstructor: 'JSON_OBJECT(... : ...)',
  JsonArrayConstructor: 'JSON_ARRAY(...)',
  JsonArrayQueryConstructor: 'JSON_ARRAY(SELECT ...)',
  JsonObjectAgg: 'JSON_OBJECTAGG',
  JsonArrayAgg: 'JSON_ARRAYAGG',
  JsonParseExpr: 'JSON(...)',
  JsonScalarExpr: 'JSON_SCALAR',
  JsonSerializeExpr: 'JSON_SERIALIZE',
  JsonIsPredicate: 'IS JSON',
  SetToDefault: 'DEFAULT',
  MultiAssignRef: 'multiple assignment',
  MergeSupportFunc: 'MERGE_ACTION()',
};

/** How a field is walked. */
const enum K {
  /** A wrapped node (or `{}`), walked as an expression. */
  Expr,
  /** A list of wrapped nodes, walked as expressions. */
  Exprs,
  /** A list of String nodes (qualified names, operator names, column name lists). */
  Names,
  /** An unwrapped TypeName. */
  Type,
  /** An unwrapped WindowDef. */
  Window,
  /** A wrapped node that must be a SelectStmt (a subquery: a new query level). */
  Select,
  /** Inert data: constant values, aliases. */
  Skip,
}

type Spec = Readonly<Record<string, K>>;

const EXPR_SPECS: Readonly<Record<string, Spec>> = {
  ResTarget: { val: K.Expr, indirection: K.Exprs },
  ColumnRef: { fields: K.Exprs },
  A_Star: {},
  String: {},
  Integer: {},
  Float: {},
  Boolean: {},
  BitString: {},
  A_Const: { ival: K.Skip, fval: K.Skip, sval: K.Skip, boolval: K.Skip, bsval: K.Skip },
  ParamRef: {},
  A_Expr: { name: K.Names, lexpr: K.Expr, rexpr: K.Expr },
  List: { items: K.Exprs },
  BoolExpr: { args: K.Exprs },
  NullTest: { arg: K.Expr },
  BooleanTest: { arg: K.Expr },
  SubLink: { testexpr: K.Expr, operName: K.Names, subselect: K.Select },
  CaseExpr: { arg: K.Expr, args: K.Exprs, defresult: K.Expr },
  CaseWhen: { expr: K.Expr, result: K.Expr },
  CoalesceExpr: { args: K.Exprs },
  MinMaxExpr: { args: K.Exprs },
  RowExpr: { args: K.Exprs, colnames: K.Names },
  A_ArrayExpr: { elements: K.Exprs },
  A_Indirection: { arg: K.Expr, indirection: K.Exprs },
  A_Indices: { lidx: K.Expr, uidx: K.Expr },
  TypeCast: { arg: K.Expr, typeName: K.Type },
  CollateClause: { arg: K.Expr, collname: K.Names },
  FuncCall: { funcname: K.Names, args: K.Exprs, agg_order: K.Exprs, agg_filter: K.Expr, over: K.Window },
  NamedArgExpr: { arg: K.Expr },
  SQLValueFunction: {},
  GroupingFunc: { args: K.Exprs },
  GroupingSet: { content: K.Exprs },
  SortBy: { node: K.Expr, useOp: K.Names },
  WindowDef: { partitionClause: K.Exprs, orderClause: K.Exprs, startOffset: K.Expr, endOffset: K.Expr },
};

const TYPE_NAME_SPEC: Spec = { names: K.Names, typmods: K.Exprs, arrayBounds: K.Skip };
const COLUMN_DEF_SPEC: Spec = { typeName: K.Type, collClause: K.Skip };
const CTE_SPEC: Spec = {
  aliascolnames: K.Names,
  ctequery: K.Skip, // walked by visitWith
  search_clause: K.Skip, // column names only
  cycle_clause: K.Skip, // walked by visitWith
  ctecolnames: K.Names,
  ctecoltypes: K.Skip,
  ctecoltypmods: K.Skip,
  ctecolcollations: K.Skip,
};
const SELECT_KEYS: ReadonlySet<string> = new Set([
  'distinctClause',
  'intoClause',
  'targetList',
  'fromClause',
  'whereClause',
  'groupClause',
  'havingClause',
  'windowClause',
  'valuesLists',
  'sortClause',
  'limitOffset',
  'limitCount',
  'lockingClause',
  'withClause',
  'larg',
  'rarg',
]);

/** A WITH scope: the CTE names visible at this query level, then the enclosing levels'. */
interface Scope {
  readonly names: ReadonlySet<string>;
  readonly parent: Scope | null;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unsupported(what: string): never {
  return refuse('sql_rejected', `The SQL query uses ${what}, which the analyser does not allow.`, ['sql.construct_not_allowed'], { construct: what });
}

function notSelect(kind: string): never {
  return refuse('sql_rejected', `Only SELECT queries are allowed; found ${kind}.`, ['sql.not_select'], { statement: kind });
}

/** The single key of a wrapped node, or null for `{}` (NULL). */
function kindOf(wrapped: unknown): string | null {
  if (!isObj(wrapped)) return unsupported('an unexpected parse tree shape');
  let kind: string | null = null;
  for (const k in wrapped) {
    if (kind !== null) return unsupported('an unexpected parse tree shape');
    kind = k;
  }
  return kind;
}

function badName(): never {
  return refuse(
    'sql_rejected',
    'The SQL query uses an identifier the analyser cannot represent unambiguously (a name with "." or "*", or a three-part name).',
    ['sql.identifier_unsupported'],
  );
}

function checkIdent(s: string): string {
  if (s.includes('.') || s.includes('*') || s === '') badName();
  return s;
}

/** String nodes of a name list. */
function names(list: unknown): string[] {
  if (!Array.isArray(list)) return unsupported('an unexpected parse tree shape');
  const out: string[] = [];
  for (const item of list) {
    if (!isObj(item) || !isObj(item.String)) return unsupported('an unexpected name form');
    const s = item.String.sval;
    out.push(typeof s === 'string' ? s : '');
  }
  return out;
}

export class SqlWalker {
  private readonly relations = new Map<string, NameRef>();
  private readonly rangeVars = new Map<string, NameRef>();
  private readonly functions = new Map<string, FunctionRef>();
  private readonly columns = new Set<string>();
  private params = 0;
  private nodes = 0;
  private deepest = 0;

  constructor(private readonly limits: WalkLimits) {}

  /** Walk one top-level statement (the `stmt` of libpg-query's `stmts[0]`). */
  walkStatement(stmt: unknown): WalkResult {
    const kind = kindOf(stmt);
    if (kind !== 'SelectStmt') notSelect(kind ?? 'an empty statement');
    this.visitSelect((stmt as Obj).SelectStmt, null, 1);
    return {
      relations: [...this.relations.values()],
      rangeVars: [...this.rangeVars.values()],
      functions: [...this.functions.values()],
      columns: [...this.columns].sort(),
      params: this.params,
      depth: this.deepest,
      nodes: this.nodes,
    };
  }

  private enter(depth: number): void {
    if (depth > this.deepest) {
      this.deepest = depth;
      if (depth > this.limits.maxTreeDepth) {
        refuse('sql_rejected', `The SQL query's parse tree is nested deeper than ${this.limits.maxTreeDepth} levels.`, ['sql.too_deep'], {
          max_tree_depth: this.limits.maxTreeDepth,
        });
      }
    }
    if (++this.nodes > this.limits.maxNodes) {
      refuse('sql_rejected', `The SQL query's parse tree has more than ${this.limits.maxNodes} nodes.`, ['sql.too_complex'], {
        max_nodes: this.limits.maxNodes,
      });
    }
  }

  private addFunction(schema: string | null, name: string, form: FunctionRef['form']): void {
    if (schema !== null) checkIdent(schema);
    checkIdent(name);
    const key = `${form}\u0000${schema ?? ''}\u0000${name}`;
    if (!this.functions.has(key)) this.functions.set(key, { schema, name, form });
  }

  private addFunctionNames(parts: string[], form: 'call' | 'syntax'): void {
    if (parts.length === 1) this.addFunction(null, parts[0] as string, form);
    else if (parts.length === 2) {
      const schema = parts[0] as string;
      // The grammar writes SQL-syntax forms as pg_catalog.<name>; report them by their bare name.
      this.addFunction(form === 'syntax' && schema === 'pg_catalog' ? null : schema, parts[1] as string, form);
    } else badName();
  }

  // ---------------------------------------------------------------------------------------------
  // Queries and scopes

  private visitSelect(body: unknown, scope: Scope | null, depth: number): void {
    this.enter(depth);
    if (!isObj(body)) return unsupported('an unexpected parse tree shape');
    for (const key in body) {
      const v = body[key];
      if (!SELECT_KEYS.has(key) && typeof v === 'object' && v !== null) unsupported(`a SELECT clause the analyser does not know (${key})`);
    }
    if (body.intoClause !== undefined) refuse('sql_rejected', 'SELECT INTO creates a table; only plain SELECT is allowed.', ['sql.select_into']);
    if (body.lockingClause !== undefined) {
      refuse('sql_rejected', 'Locking clauses (FOR UPDATE/SHARE) are not allowed.', ['sql.locking_clause']);
    }
    const inner = body.withClause !== undefined ? this.visitWith(body.withClause, scope, depth + 1) : scope;
    if (body.larg !== undefined || body.rarg !== undefined) {
      // A set operation: both arms see this level's WITH; each may have its own.
      this.visitSelect(body.larg, inner, depth + 1);
      this.visitSelect(body.rarg, inner, depth + 1);
    }
    const d = depth + 1;
    this.exprList(body.distinctClause, inner, d);
    this.exprList(body.targetList, inner, d);
    if (body.fromClause !== undefined) {
      if (!Array.isArray(body.fromClause)) unsupported('an unexpected parse tree shape');
      for (const item of body.fromClause) this.visitFrom(item, inner, d);
    }
    this.expr(body.whereClause, inner, d);
    this.exprList(body.groupClause, inner, d);
    this.expr(body.havingClause, inner, d);
    this.exprList(body.windowClause, inner, d);
    this.exprList(body.valuesLists, inner, d);
    this.exprList(body.sortClause, inner, d);
    this.expr(body.limitOffset, inner, d);
    this.expr(body.limitCount, inner, d);
  }

  /**
   * WITH: a CTE is visible to the query body and, without RECURSIVE, to the CTEs after it in the same
   * list (not to itself: `WITH pg_user AS (SELECT * FROM pg_user)` reads the real pg_user); with
   * RECURSIVE, to every member of the list including itself. Returns the body's scope.
   */
  private visitWith(withClause: unknown, scope: Scope | null, depth: number): Scope {
    this.enter(depth);
    if (!isObj(withClause) || !Array.isArray(withClause.ctes)) return unsupported('an unexpected WITH clause');
    for (const key in withClause) {
      if (key !== 'ctes' && typeof withClause[key] === 'object') unsupported('an unexpected WITH clause');
    }
    const ctes: Obj[] = [];
    for (const wrapped of withClause.ctes) {
      if (kindOf(wrapped) !== 'CommonTableExpr') unsupported('an unexpected WITH clause');
      const cte = (wrapped as Obj).CommonTableExpr;
      if (!isObj(cte) || typeof cte.ctename !== 'string') return unsupported('an unexpected WITH clause');
      this.checkFields(cte, CTE_SPEC, scope, depth + 1);
      ctes.push(cte);
    }
    const all = new Set(ctes.map((c) => c.ctename as string));
    const recursive = withClause.recursive === true;
    const seen = new Set<string>();
    for (const cte of ctes) {
      const visible: Scope = { names: recursive ? all : new Set(seen), parent: scope };
      const kind = kindOf(cte.ctequery);
      if (kind !== 'SelectStmt') notSelect(kind === null ? 'an empty WITH query' : `a data-modifying WITH query (${kind})`);
      this.visitSelect((cte.ctequery as Obj).SelectStmt, visible, depth + 2);
      if (cte.cycle_clause !== undefined) {
        const cycle = cte.cycle_clause;
        if (!isObj(cycle)) return unsupported('an unexpected CYCLE clause');
        this.expr(cycle.cycle_mark_value, visible, depth + 2);
        this.expr(cycle.cycle_mark_default, visible, depth + 2);
      }
      seen.add(cte.ctename as string);
    }
    return { names: all, parent: scope };
  }

  private isCte(name: string, scope: Scope | null): boolean {
    for (let s = scope; s !== null; s = s.parent) if (s.names.has(name)) return true;
    return false;
  }

  private relation(rv: unknown, scope: Scope | null, depth: number): void {
    this.enter(depth);
    if (!isObj(rv)) return unsupported('an unexpected parse tree shape');
    for (const key in rv) {
      if (key !== 'alias' && typeof rv[key] === 'object' && rv[key] !== null) unsupported('an unexpected relation form');
    }
    if (rv.catalogname !== undefined) badName();
    const schema = typeof rv.schemaname === 'string' ? checkIdent(rv.schemaname) : null;
    const name = typeof rv.relname === 'string' ? checkIdent(rv.relname) : badName();
    const key = `${schema ?? ''}\u0000${name}`;
    if (!this.rangeVars.has(key)) this.rangeVars.set(key, { schema, name });
    if (schema === null && this.isCte(name, scope)) return;
    if (!this.relations.has(key)) this.relations.set(key, { schema, name });
  }

  // ---------------------------------------------------------------------------------------------
  // FROM items

  private visitFrom(wrapped: unknown, scope: Scope | null, depth: number): void {
    const kind = kindOf(wrapped);
    if (kind === null) return unsupported('an empty FROM item');
    const body = (wrapped as Obj)[kind];
    if (!isObj(body)) return unsupported('an unexpected parse tree shape');
    switch (kind) {
      case 'RangeVar':
        return this.relation(body, scope, depth);
      case 'RangeSubselect': {
        this.enter(depth);
        this.onlyFields(body, ['subquery', 'alias']);
        const sub = kindOf(body.subquery);
        if (sub !== 'SelectStmt') notSelect(sub ?? 'an empty subquery');
        return this.visitSelect((body.subquery as Obj).SelectStmt, scope, depth + 1);
      }
      case 'JoinExpr':
        this.enter(depth);
        this.onlyFields(body, ['larg', 'rarg', 'quals', 'usingClause', 'alias', 'join_using_alias']);
        this.visitFrom(body.larg, scope, depth + 1);
        this.visitFrom(body.rarg, scope, depth + 1);
        this.expr(body.quals, scope, depth + 1);
        if (body.usingClause !== undefined) names(body.usingClause);
        return;
      case 'RangeFunction': {
        // FROM f(...), ROWS FROM (f(...), g(...)), LATERAL f(...): each item is a List of
        // [function expression, column definition list or {}].
        this.enter(depth);
        this.onlyFields(body, ['functions', 'alias', 'coldeflist']);
        if (!Array.isArray(body.functions)) return unsupported('an unexpected function in FROM');
        for (const item of body.functions) {
          if (kindOf(item) !== 'List') return unsupported('an unexpected function in FROM');
          const items = ((item as Obj).List as Obj).items;
          if (!Array.isArray(items) || items.length < 1 || items.length > 2) return unsupported('an unexpected function in FROM');
          this.expr(items[0], scope, depth + 1);
          const coldefs = items[1];
          if (coldefs !== undefined && kindOf(coldefs) !== null) {
            if (kindOf(coldefs) !== 'List') return unsupported('an unexpected column definition list');
            this.columnDefs(((coldefs as Obj).List as Obj).items, scope, depth + 1);
          }
        }
        if (body.coldeflist !== undefined) this.columnDefs(body.coldeflist, scope, depth + 1);
        return;
      }
      case 'RangeTableSample': {
        this.enter(depth);
        this.onlyFields(body, ['relation', 'method', 'args', 'repeatable']);
        if (kindOf(body.relation) !== 'RangeVar') return unsupported('TABLESAMPLE on something other than a table');
        this.relation((body.relation as Obj).RangeVar, scope, depth + 1);
        // The sampling method is a function (a tsm_handler): the function allow-list decides
        // (bernoulli and system are the built-ins; tsm_system_rows & co are extensions).
        this.addFunctionNames(names(body.method), 'call');
        this.exprList(body.args, scope, depth + 1);
        this.expr(body.repeatable, scope, depth + 1);
        return;
      }
      default:
        if (Object.hasOwn(NAMED_REFUSALS, kind)) return unsupported(NAMED_REFUSALS[kind] as string);
        return unsupported(`${kind} in FROM`);
    }
  }

  private columnDefs(list: unknown, scope: Scope | null, depth: number): void {
    if (!Array.isArray(list)) return unsupported('an unexpected column definition list');
    for (const item of list) {
      if (kindOf(item) !== 'ColumnDef') return unsupported('an unexpected column definition list');
      const def = (item as Obj).ColumnDef;
      if (!isObj(def)) return unsupported('an unexpected column definition list');
      this.enter(depth);
      this.checkFields(def, COLUMN_DEF_SPEC, scope, depth + 1);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Expressions

  private exprList(list: unknown, scope: Scope | null, depth: number): void {
    if (list === undefined) return;
    if (!Array.isArray(list)) return unsupported('an unexpected parse tree shape');
    for (const item of list) this.expr(item, scope, depth);
  }

  private expr(wrapped: unknown, scope: Scope | null, depth: number): void {
    if (wrapped === undefined) return;
    const kind = kindOf(wrapped);
    if (kind === null) return;
    const body = (wrapped as Obj)[kind];
    if (!isObj(body)) return unsupported('an unexpected parse tree shape');
    if (kind === 'SelectStmt') return notSelect('a bare SELECT where an expression was expected');
    const spec = Object.hasOwn(EXPR_SPECS, kind) ? EXPR_SPECS[kind] : undefined;
    if (spec === undefined) {
      if (Object.hasOwn(NAMED_REFUSALS, kind)) return unsupported(NAMED_REFUSALS[kind] as string);
      if (kind.endsWith('Stmt')) return notSelect(kind);
      return unsupported(kind);
    }
    this.enter(depth);
    switch (kind) {
      case 'ColumnRef': {
        const fields = body.fields;
        if (Array.isArray(fields) && fields.length > 0) {
          const last = fields[fields.length - 1];
          if (isObj(last) && isObj(last.String) && typeof last.String.sval === 'string') {
            const name = last.String.sval;
            this.columns.add(name.toLowerCase());
            // t.f (or s.t.f) may be f(t) on the whole row of t.
            if (fields.length >= 2 && ROW_CALLABLE_FUNCTIONS.has(name)) this.addFunction(null, name, 'attribute');
          } else if (isObj(last) && 'A_Star' in last) this.columns.add('*');
        }
        break;
      }
      case 'A_Indirection':
        // (expr).f may be f(expr), whatever the type of expr: every field name is a possible call.
        if (Array.isArray(body.indirection)) {
          for (const item of body.indirection) {
            if (isObj(item) && isObj(item.String) && typeof item.String.sval === 'string') this.addFunction(null, item.String.sval, 'attribute');
          }
        }
        break;
      case 'ParamRef':
        if (typeof body.number === 'number' && body.number > this.params) this.params = body.number;
        break;
      case 'FuncCall':
        this.addFunctionNames(names(body.funcname), body.funcformat === 'COERCE_SQL_SYNTAX' ? 'syntax' : 'call');
        break;
      case 'A_Expr':
        if (body.kind === 'AEXPR_NULLIF') this.addFunction(null, 'nullif', 'syntax');
        if (body.kind === 'AEXPR_SIMILAR' && kindOf(body.rexpr) === 'FuncCall') {
          // x SIMILAR TO p [ESCAPE e] is x ~ pg_catalog.similar_to_escape(p [, e]), written by the grammar.
          const call = (body.rexpr as Obj).FuncCall as Obj;
          const fn = names(call.funcname);
          if (fn.length === 2 && fn[0] === 'pg_catalog' && fn[1] === 'similar_to_escape') {
            this.checkFields(call, EXPR_SPECS.FuncCall as Spec, scope, depth + 1, ['funcname']);
            this.addFunction(null, 'similar_to_escape', 'syntax');
            names(body.name);
            this.expr(body.lexpr, scope, depth + 1);
            return;
          }
        }
        break;
      case 'CoalesceExpr':
        this.addFunction(null, 'coalesce', 'syntax');
        break;
      case 'MinMaxExpr':
        this.addFunction(null, body.op === 'IS_LEAST' ? 'least' : 'greatest', 'syntax');
        break;
      case 'GroupingFunc':
        this.addFunction(null, 'grouping', 'syntax');
        break;
      case 'SQLValueFunction': {
        const op = String(body.op);
        const fn = Object.hasOwn(SQL_VALUE_FUNCTIONS, op) ? SQL_VALUE_FUNCTIONS[op] : undefined;
        if (fn === undefined) return unsupported(`the SQL value function ${String(body.op)}`);
        this.addFunction(null, fn, 'syntax');
        break;
      }
      default:
        break;
    }
    this.checkFields(body, spec, scope, depth + 1);
  }

  /** Refuse object-valued fields outside `allowed` (inert scalars are always fine). */
  private onlyFields(body: Obj, allowed: readonly string[]): void {
    for (const key in body) {
      const v = body[key];
      if (typeof v === 'object' && v !== null && !allowed.includes(key)) unsupported(`an unexpected field (${key})`);
    }
  }

  /** Walk the fields of a node by its spec; refuse an object-valued field the spec does not know. */
  private checkFields(body: Obj, spec: Spec, scope: Scope | null, depth: number, skip: readonly string[] = []): void {
    for (const key in body) {
      const v = body[key];
      if (typeof v !== 'object' || v === null) continue;
      if (!Object.hasOwn(spec, key)) return unsupported(`an unexpected field (${key})`);
      const kind = spec[key];
      if (skip.includes(key)) continue;
      switch (kind) {
        case K.Expr:
          this.expr(v, scope, depth);
          break;
        case K.Exprs:
          this.exprList(v, scope, depth);
          break;
        case K.Names:
          names(v);
          break;
        case K.Type:
          this.typeName(v, scope, depth);
          break;
        case K.Window:
          if (!isObj(v)) return unsupported('an unexpected window definition');
          this.enter(depth);
          this.checkFields(v, EXPR_SPECS.WindowDef as Spec, scope, depth + 1);
          break;
        case K.Select: {
          const sub = kindOf(v);
          if (sub !== 'SelectStmt') notSelect(sub ?? 'an empty subquery');
          this.visitSelect((v as Obj).SelectStmt, scope, depth);
          break;
        }
        case K.Skip:
          break;
      }
    }
  }

  private typeName(tn: unknown, scope: Scope | null, depth: number): void {
    if (!isObj(tn)) return unsupported('an unexpected type name');
    this.enter(depth);
    const parts = names(tn.names ?? []);
    const last = (parts[parts.length - 1] ?? '').toLowerCase();
    if (REG_TYPES.has(last)) {
      refuse('sql_rejected', `Casts to ${last} (catalog lookups by name) are not allowed.`, ['sql.reg_cast'], { type: last });
    }
    if (tn.pct_type === true) unsupported('%TYPE');
    this.checkFields(tn, TYPE_NAME_SPEC, scope, depth + 1);
  }
}
