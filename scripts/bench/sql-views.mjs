// Lineage through views (issue 13, views): the cost of resolving a query that reads a view against
// the same query written on the base table. Each sample is lineageOf + viewsRead on an analysed
// statement (what query_database computes per new statement and catalog version), against a fixed
// catalog whose view definitions are pg_get_viewdef text.
// - `base`: SELECT name, email AS contact FROM customers (no view);
// - `view`: SELECT name, contact FROM contacts (one view over customers);
// - `view3`: SELECT name, addr FROM deep2 (deep2 -> deep1 -> contacts2 -> contacts -> customers).
// `warm`: the views' lineage is cached for the catalog version (the common case: one computation
// per view per catalog refresh); `cold`: a new catalog version every sample, so every definition
// on the way is parsed (libpg-query) and walked again (what the first query after a refresh pays).
//
// Standalone: `npx tsc -p . && node scripts/bench/sql-views.mjs` prints the JSON. BENCH_QUICK=1 shrinks it.
import { pathToFileURL } from 'node:url';
import { dist, summarise } from './lib.mjs';

const { analyseSql, initSqlAnalysis } = await import(dist('src/analysis/sql.js'));
const { lineageOf, staticCatalog, viewsRead } = await import(dist('src/analysis/sql-lineage.js'));

const TABLES = {
  'public.customers': ['id', 'name', 'region', 'email'],
  'public.contacts': ['name', 'contact'],
  'public.contacts2': ['c2', 'name'],
  'public.deep1': ['c2', 'name'],
  'public.deep2': ['addr', 'name'],
  'pg_catalog.pg_class': [],
};
const VIEWS = {
  'public.contacts': ' SELECT customers.name,\n    customers.email AS contact\n   FROM customers;',
  'public.contacts2': ' SELECT contacts.contact AS c2,\n    contacts.name\n   FROM contacts;',
  'public.deep1': ' SELECT contacts2.c2,\n    contacts2.name\n   FROM contacts2;',
  'public.deep2': ' SELECT deep1.c2 AS addr,\n    deep1.name\n   FROM deep1;',
};
const SHAPES = {
  base: 'SELECT name, email AS contact FROM customers',
  view: 'SELECT name, contact FROM contacts',
  view3: 'SELECT name, addr FROM deep2',
};

function resolve(stmt, catalog) {
  const lineage = lineageOf(stmt, catalog, 'public');
  return viewsRead(stmt, catalog, 'public', lineage);
}

export async function benchSqlViews({ quick = false } = {}) {
  await initSqlAnalysis();
  const samples = quick ? 500 : 5000;
  let version = 1;
  const warmCatalog = staticCatalog(TABLES, version, VIEWS);
  const out = {};
  for (const [name, sql] of Object.entries(SHAPES)) {
    const { stmt } = analyseSql(sql);
    for (let i = 0; i < 200; i++) resolve(stmt, warmCatalog);
    const warm = [];
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      resolve(stmt, warmCatalog);
      warm.push(performance.now() - t0);
    }
    const cold = [];
    for (let i = 0; i < samples; i++) {
      const catalog = staticCatalog(TABLES, ++version, VIEWS);
      const t0 = performance.now();
      resolve(stmt, catalog);
      cold.push(performance.now() - t0);
    }
    out[name] = { warm: summarise(warm, 'us'), cold: summarise(cold, 'us') };
  }
  out.view_added_warm_p50_us = Math.round((out.view.warm.p50 - out.base.warm.p50) * 1000) / 1000;
  out.view_added_cold_p50_us = Math.round((out.view.cold.p50 - out.base.cold.p50) * 1000) / 1000;
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${JSON.stringify(await benchSqlViews({ quick: process.env.BENCH_QUICK === '1' }), null, 2)}\n`);
}
