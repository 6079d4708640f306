/**
 * Column lineage through views (issue 13, "schema.table.column column rules don't follow into
 * views"), with a fixed catalog whose view definitions are written as PostgreSQL's
 * pg_get_viewdef prints them (copied from a real server: names qualified only where they are not
 * visible on the analyser's search_path, columns qualified by their relation, a trailing `;`):
 *
 * - a view column maps to base columns with copy/derived preserved (renamed copies stay copies,
 *   expressions are derived), through views of views, materialized views, views in other schemas,
 *   views renaming their columns (CREATE VIEW v(a, b)), CTEs inside a definition shadowing a table;
 * - columns a definition uses in WHERE / JOIN count as used by the query that reads the view;
 * - the masks over that lineage: a renamed copy through a view is masked, an expression refused,
 *   a view filtering on a masked column refused as a predicate use;
 * - a cycle, a definition that does not parse, is not one SELECT, has the wrong column count, is
 *   unavailable, or nesting deeper than MAX_VIEW_DEPTH refuses with `sql.view_unsupported`;
 * - viewsRead: the views a query names with the tables they reach (even when the query's own
 *   lineage fails) and rowFilteredViews, the row-filter check the tool runs;
 * - each view's lineage is computed once per catalog version.
 */
import t from 'tap';
import { analyseSql, initSqlAnalysis } from '../src/analysis/sql.js';
import {
  LINEAGE_REASON_CODES,
  lineageOf,
  MAX_VIEW_DEPTH,
  relationsUnknown,
  rowFilteredViews,
  staticCatalog,
  viewsRead,
  type Lineage,
  type SqlCatalog,
} from '../src/analysis/sql-lineage.js';
import { planMasks } from '../src/analysis/sql-masks.js';
import { DenialError } from '../src/core/denial.js';
import { searchPathAsAssumed } from '../src/tools/database/catalog.js';

const TABLES: Record<string, string[]> = {
  'public.customers': ['id', 'name', 'region', 'email'],
  'public.orders': ['id', 'customer_id', 'total', 'status'],
  'analytics.events': ['id', 'user_id'],
  'pg_catalog.pg_class': [],
  'public.contacts': ['name', 'contact'],
  'public.contacts2': ['c2'],
  'public.lowered': ['id', 'le'],
  'analytics.north': ['name', 'email'],
  'public.corp': ['id', 'name'],
  'public.ev': ['id', 'user_id'],
  'public.cteview': ['id'],
  'Sales.V': ['Id'],
  'public.renamed': ['a', 'b'],
  'public.everything': ['id', 'name', 'region', 'email'],
  'public.either': ['email'],
  'public.spend': ['customer_id', 'spent'],
  'public.cyc_a': ['x'],
  'public.cyc_b': ['x'],
  'public.broken': ['x'],
  'public.two': ['x'],
  'public.unread': ['x'],
  'public.wrongcount': ['x', 'y'],
  'public.over_broken': ['x'],
  'public.sysview': ['relname'],
};

const VIEWS: Record<string, string | null> = {
  'public.contacts': ' SELECT customers.name,\n    customers.email AS contact\n   FROM customers;',
  'public.contacts2': ' SELECT contacts.contact AS c2\n   FROM contacts;',
  'public.lowered': ' SELECT customers.id,\n    lower(customers.email) AS le\n   FROM customers;',
  'analytics.north': " SELECT c.name,\n    c.email\n   FROM customers c\n  WHERE (c.region = 'north'::text);",
  'public.corp': " SELECT customers.id,\n    customers.name\n   FROM customers\n  WHERE (customers.email ~~ '%@corp'::text);",
  'public.ev': ' SELECT e.id,\n    e.user_id\n   FROM (analytics.events e\n     JOIN customers c ON ((c.id = e.user_id)));',
  'public.cteview': ' WITH customers AS (\n         SELECT 1 AS id\n        )\n SELECT customers.id\n   FROM customers;',
  'Sales.V': ' SELECT customers.id AS "Id"\n   FROM customers;',
  // CREATE VIEW renamed(a, b) AS SELECT id, email FROM customers: the catalog's names win.
  'public.renamed': ' SELECT customers.id AS a,\n    customers.email AS b\n   FROM customers;',
  'public.everything': ' SELECT customers.id,\n    customers.name,\n    customers.region,\n    customers.email\n   FROM customers;',
  'public.either': ' SELECT customers.email\n   FROM customers\nUNION ALL\n SELECT contacts.contact AS email\n   FROM contacts;',
  'public.spend': ' SELECT orders.customer_id,\n    sum(orders.total) AS spent\n   FROM orders\n  GROUP BY orders.customer_id;',
  'public.cyc_a': ' SELECT cyc_b.x\n   FROM cyc_b;',
  'public.cyc_b': ' SELECT cyc_a.x\n   FROM cyc_a;',
  'public.broken': ' SELEC x FROM;',
  'public.two': ' SELECT 1 AS x; SELECT 2 AS x;',
  'public.unread': null,
  'public.wrongcount': ' SELECT customers.id AS x\n   FROM customers;',
  'public.over_broken': ' SELECT broken.x\n   FROM broken;',
  // Over a system catalog: without database.allow_catalogs the catalog holds no system columns, so
  // its columns derive from no base column (no rule can name one there).
  'public.sysview': ' SELECT pg_class.relname\n   FROM pg_class;',
};

// A chain of views d0 (over customers) ... d20 (over d19): d<k> has depth k + 1.
for (let k = 0; k <= 20; k++) {
  TABLES[`public.d${k}`] = ['email'];
  VIEWS[`public.d${k}`] = k === 0 ? ' SELECT customers.email\n   FROM customers;' : ` SELECT d${k - 1}.email\n   FROM d${k - 1};`;
}

let version = 1;
const CATALOG = staticCatalog(TABLES, version, VIEWS);

const E = 'public.customers.email';
const C = (col: string) => `public.customers.${col}`;

function lin(sql: string, catalog: SqlCatalog = CATALOG): Lineage {
  return lineageOf(analyseSql(sql).stmt, catalog, 'public');
}

function refusal(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof DenialError) return [err.denial.code, ...err.denial.reasons];
    throw err;
  }
  return ['no refusal'];
}

t.before(async () => {
  await initSqlAnalysis();
});

t.test('a view column maps to its base columns, copy or derived', async (t) => {
  const cases: [string, Lineage][] = [
    // The example: a renamed copy through a view is still a bare copy of customers.email.
    ['SELECT contact FROM contacts', { outputs: [{ name: 'contact', columns: [E], copy: true }], used: [] }],
    [
      'SELECT * FROM contacts',
      {
        outputs: [
          { name: 'name', columns: [C('name')], copy: true },
          { name: 'contact', columns: [E], copy: true },
        ],
        used: [],
      },
    ],
    ['SELECT x.contact AS y FROM public.contacts x', { outputs: [{ name: 'y', columns: [E], copy: true }], used: [] }],
    ['SELECT c2 FROM contacts2', { outputs: [{ name: 'c2', columns: [E], copy: true }], used: [] }],
    ['SELECT le FROM lowered', { outputs: [{ name: 'le', columns: [E], copy: false }], used: [] }],
    ['SELECT id FROM lowered', { outputs: [{ name: 'id', columns: [C('id')], copy: true }], used: [] }],
    ['SELECT email FROM analytics.north', { outputs: [{ name: 'email', columns: [E], copy: true }], used: [C('region')] }],
    ['SELECT name FROM corp', { outputs: [{ name: 'name', columns: [C('name')], copy: true }], used: [E] }],
    [
      'SELECT user_id FROM ev',
      { outputs: [{ name: 'user_id', columns: ['analytics.events.user_id'], copy: true }], used: ['analytics.events.user_id', C('id')] },
    ],
    ['SELECT id FROM cteview', { outputs: [{ name: 'id', columns: [], copy: false }], used: [] }],
    ['SELECT "Id" FROM "Sales"."V"', { outputs: [{ name: 'Id', columns: [C('id')], copy: true }], used: [] }],
    ['SELECT b FROM renamed', { outputs: [{ name: 'b', columns: [E], copy: true }], used: [] }],
    ['SELECT email FROM either', { outputs: [{ name: 'email', columns: [E], copy: true }], used: [] }],
    ['SELECT relname FROM sysview', { outputs: [{ name: 'relname', columns: [], copy: false }], used: [] }],
    ['SELECT spent FROM spend', { outputs: [{ name: 'spent', columns: ['public.orders.total'], copy: false }], used: ['public.orders.customer_id'] }],
    ['SELECT email FROM d15', { outputs: [{ name: 'email', columns: [E], copy: true }], used: [] }],
    // Whole rows, expressions and predicates over view columns reach the base columns.
    ['SELECT c FROM contacts c', { outputs: [{ name: 'c', columns: [E, C('name')], copy: false }], used: [] }],
    ['SELECT lower(contact) AS l FROM contacts', { outputs: [{ name: 'l', columns: [E], copy: false }], used: [] }],
    ["SELECT name FROM contacts WHERE contact LIKE 'c1%'", { outputs: [{ name: 'name', columns: [C('name')], copy: true }], used: [E] }],
    [
      'SELECT o.total FROM orders o JOIN contacts c ON c.name = o.status',
      { outputs: [{ name: 'total', columns: ['public.orders.total'], copy: true }], used: [C('name'), 'public.orders.status'] },
    ],
    ['WITH w AS (SELECT * FROM contacts) SELECT contact FROM w', { outputs: [{ name: 'contact', columns: [E], copy: true }], used: [] }],
    [
      'SELECT contact FROM contacts UNION SELECT name FROM customers',
      { outputs: [{ name: 'contact', columns: [E, C('name')], copy: true }], used: [E, C('name')] },
    ],
  ];
  for (const [sql, want] of cases) t.same(lin(sql), want, sql);
});

t.test('masks over lineage through views', async (t) => {
  const plan = (sql: string) => planMasks(lin(sql), new Map(), ['email']);
  t.same(plan('SELECT name, contact FROM contacts').outputs, [{ index: 1, name: 'contact' }], 'a renamed copy through a view is masked');
  t.same(plan('SELECT c2 FROM contacts2').masked, [E], 'through a view of a view too');
  t.same(plan('SELECT b FROM renamed').outputs, [{ index: 0, name: 'b' }], 'a view that renames its columns');
  t.same(plan('SELECT * FROM everything').outputs, [{ index: 3, name: 'email' }], 'a star over a view');
  t.same(plan('SELECT email FROM d15').masked, [E], 'fifteen views deep');
  t.same(
    refusal(() => plan('SELECT le FROM lowered')),
    ['sql_rejected', 'sql.masked_column_use'],
    'an expression column in a (materialized) view',
  );
  t.same(
    refusal(() => plan('SELECT name FROM corp')),
    ['sql_rejected', 'sql.column_in_predicate'],
    'a view filtering on the masked column',
  );
  t.same(
    refusal(() => plan('SELECT c FROM contacts c')),
    ['sql_rejected', 'sql.masked_column_use'],
    'a whole row of a view',
  );
  t.same(
    refusal(() => plan("SELECT name FROM contacts WHERE contact = 'x'")),
    ['sql_rejected', 'sql.column_in_predicate'],
    'a predicate on a view column',
  );
  t.same(plan('SELECT user_id FROM ev').outputs, [], 'a view over other columns needs no mask');
  t.same(plan('SELECT id FROM cteview').touched, [], 'a CTE in the definition shadows the table');
});

t.test('views that cannot be followed are refused', async (t) => {
  const refused: [string, string][] = [
    ['SELECT x FROM cyc_a', 'a cycle'],
    ['SELECT x FROM broken', 'a definition that does not parse'],
    ['SELECT x FROM two', 'a definition of two statements'],
    ['SELECT x FROM unread', 'a definition the catalog could not read under the assumed search_path'],
    ['SELECT x FROM wrongcount', 'a definition with a column count other than the view'],
    ['SELECT x FROM over_broken', 'a view over a refused view'],
    ['SELECT email FROM d16', `views nested more than ${MAX_VIEW_DEPTH} deep`],
    ['SELECT email FROM d20', 'much deeper'],
  ];
  for (const [sql, what] of refused)
    t.same(
      refusal(() => lin(sql)),
      ['sql_rejected', 'sql.view_unsupported'],
      `${sql}: ${what}`,
    );
  t.same(
    refusal(() => viewsRead(analyseSql('SELECT x FROM cyc_b').stmt, CATALOG, 'public')),
    ['sql_rejected', 'sql.view_unsupported'],
    'viewsRead refuses too',
  );
  try {
    lin('SELECT x FROM over_broken');
  } catch (err) {
    t.equal((err as DenialError).denial.detail?.view, 'public.broken', 'the refusal names the view at fault');
  }
  // Deterministic: d15 is fine whether or not deeper views were tried first.
  t.same(lin('SELECT email FROM d15').outputs[0]?.columns, [E]);
  t.ok(LINEAGE_REASON_CODES['sql.view_unsupported'] && LINEAGE_REASON_CODES['sql.row_filter_view'], 'both reasons are registered');
});

t.test('viewsRead: the views a query names, the tables they reach, the columns reached', async (t) => {
  const views = (sql: string, withLineage = true) => {
    const a = analyseSql(sql);
    return viewsRead(a.stmt, CATALOG, 'public', withLineage ? lineageOf(a.stmt, CATALOG, 'public') : undefined);
  };
  t.same(views('SELECT contact FROM contacts'), [{ view: 'public.contacts', tables: ['public.customers'], columns: [E] }]);
  t.same(
    views('SELECT name FROM contacts'),
    [{ view: 'public.contacts', tables: ['public.customers'], columns: [C('name')] }],
    'only the columns the query reached',
  );
  t.same(
    views('SELECT name FROM contacts', false),
    [{ view: 'public.contacts', tables: ['public.customers'], columns: [E, C('name')] }],
    'all of them without lineage',
  );
  t.same(views('SELECT c2 FROM contacts2'), [{ view: 'public.contacts2', tables: ['public.contacts', 'public.customers'], columns: [E] }], 'nested views');
  t.same(views('SELECT name FROM corp'), [{ view: 'public.corp', tables: ['public.customers'], columns: [E, C('name')] }], "the definition's predicate column");
  t.same(views('SELECT user_id FROM ev')[0]?.tables, ['analytics.events', 'public.customers'], 'a view over another schema');
  t.same(views('SELECT "Id" FROM "Sales"."V"')[0]?.view, 'sales.v', 'a view in a quoted schema');
  t.same(views('SELECT id FROM customers WHERE id IN (SELECT id FROM lowered)')[0]?.view, 'public.lowered', 'in a sublink');
  t.same(views('SELECT id FROM cteview'), [{ view: 'public.cteview', tables: [], columns: [] }], 'the CTE is not the table');
  t.same(views('SELECT id, name FROM customers'), [], 'no views');
  // The query's own lineage fails (an unknown column), the views it reads are still known.
  const a = analyseSql('SELECT nosuch FROM contacts');
  t.same(
    refusal(() => lineageOf(a.stmt, CATALOG, 'public')),
    ['sql_rejected', 'sql.column_unresolved'],
  );
  t.same(viewsRead(a.stmt, CATALOG, 'public')[0]?.tables, ['public.customers']);
  // A CTE named like a view is counted as the view (more, never less).
  t.same(views('WITH contacts AS (SELECT 1 AS contact) SELECT contact FROM contacts')[0]?.view, 'public.contacts');
});

t.test('rowFilteredViews: a filtered table behind a view', async (t) => {
  const v = viewsRead(analyseSql('SELECT c2 FROM contacts2 JOIN orders ON true').stmt, CATALOG, 'public');
  t.same(rowFilteredViews(['public.customers'], v), [{ view: 'public.contacts2', table: 'public.customers' }]);
  t.same(rowFilteredViews(['public.contacts'], v), [{ view: 'public.contacts2', table: 'public.contacts' }], 'a filter on a view read through another view');
  t.same(rowFilteredViews(['public.orders'], v), [], 'a table the query reads directly is for the rewrite');
  t.same(rowFilteredViews(['PUBLIC.CUSTOMERS'], v).length, 1, 'case-insensitive');
  t.same(rowFilteredViews(['public.customers', 'public.contacts2'], v), [], 'a view the policy filters in its own right: the rewrite wraps it');
  t.same(
    rowFilteredViews(['public.customers', 'public.contacts'], v),
    [
      { view: 'public.contacts2', table: 'public.contacts' },
      { view: 'public.contacts2', table: 'public.customers' },
    ],
    'a filtered view inside a named view is not exempt',
  );
});

t.test("each view's lineage is computed once per catalog version", async (t) => {
  let reads = 0;
  const counting = (v: number): SqlCatalog => {
    const base = staticCatalog(TABLES, v, VIEWS);
    return {
      version: v,
      columns: (s, n) => base.columns(s, n),
      has: (s, n) => base.has(s, n),
      viewDefinition: (s, n) => {
        reads++;
        return base.viewDefinition?.(s, n);
      },
    };
  };
  const cat = counting(++version);
  lin('SELECT c2 FROM contacts2', cat);
  const first = reads;
  t.ok(first >= 2, 'both views were looked up');
  for (let i = 0; i < 5; i++) lin('SELECT c2 FROM contacts2', cat);
  // Each later query looks its one view up (to know it is a view) but parses and walks nothing below it.
  t.equal(reads - first, 5, 'no nested definition is read again');
  const next = counting(++version);
  lin('SELECT c2 FROM contacts2', next);
  t.ok(reads - first - 5 >= 2, 'a new catalog version computes afresh');
});

t.test('definitions are trusted only when printed under the search_path lineage assumes', async (t) => {
  t.ok(searchPathAsAssumed('pg_catalog public', 'public'));
  t.ok(searchPathAsAssumed('pg_catalog analytics', 'analytics'));
  t.ok(searchPathAsAssumed('pg_catalog', 'public'), 'the default schema missing (or not usable): bare names are pg_catalog names');
  t.ok(searchPathAsAssumed('pg_temp_3 pg_catalog public', 'public'), "the session's temporary schema aside");
  t.notOk(searchPathAsAssumed('public pg_catalog', 'public'), 'another order');
  t.notOk(searchPathAsAssumed('pg_catalog public', 'analytics'), 'another schema');
  t.notOk(searchPathAsAssumed('pg_catalog analytics public', 'analytics'), 'one schema more');
  t.notOk(searchPathAsAssumed('', 'public'), 'nothing');
});

t.test('relationsUnknown: relations read that the catalog does not know', async (t) => {
  const unknown = (sql: string) => {
    const a = analyseSql(sql, { allowCatalogs: true });
    return relationsUnknown(a.stmt, CATALOG, 'public', a.facts.tables);
  };
  t.same(unknown('SELECT * FROM newview'), ['public.newview']);
  t.same(unknown('SELECT * FROM customers JOIN analytics.fresh USING (id)'), ['analytics.fresh']);
  t.same(unknown('SELECT * FROM customers, contacts'), [], 'tables and views the catalog knows');
  t.same(unknown('SELECT relname FROM pg_class'), [], 'an unqualified pg_* name reported under both schemas');
  t.same(unknown('WITH newview AS (SELECT 1 AS x) SELECT x FROM newview'), [], 'a CTE is not a relation');
  t.same(
    unknown('SELECT * FROM newview, LATERAL (WITH newview AS (SELECT 1 AS x) SELECT x FROM newview) s'),
    ['public.newview'],
    'a CTE of the same name elsewhere does not hide it',
  );
});
