/**
 * Row filters by a principal attribute (test/principal-attributes*.test.ts): policy data that
 * filters public.customers by `attributes.region` (role `regional`) or by the list
 * `attributes.regions` (role `multi_region`), and query shapes whose every returned customer must
 * be in the caller's regions, checked against the real table read as its owner.
 */
import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ROOT } from './fixtures.js';
import { errorOf, requestIdOf, type ToolError } from './bearer.js';

export const BY_REGION = { table: 'public.customers', column: 'region', op: '=', value: { principal: 'attributes.region' } } as const;
export const BY_REGIONS = { table: 'public.customers', column: 'region', op: 'in', value: { principal: 'attributes.regions' } } as const;

/** The shipped policy data, plus the two roles (granted the database tools, customers and orders). */
export function regionalPolicyData(): Record<string, any> {
  const data = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as { bulwark: Record<string, any> };
  const tools = { tools: ['describe_table', 'list_tables', 'query_database'] };
  data.bulwark.roles.regional = tools;
  data.bulwark.roles.multi_region = tools;
  data.bulwark.database.tables.regional = ['public.customers', 'public.orders'];
  data.bulwark.database.tables.multi_region = ['public.customers', 'public.orders'];
  data.bulwark.database.row_filters = { ...(data.bulwark.database.row_filters ?? {}), regional: [BY_REGION], multi_region: [BY_REGIONS] };
  return data;
}

export function writePolicyData(dir: string): string {
  const file = path.join(dir, 'regional-data.json');
  fs.writeFileSync(file, JSON.stringify(regionalPolicyData()));
  return file;
}

/** Customer id → region, read as the table's owner (no filter). */
export async function customerRegions(adminUrl: string): Promise<Map<number, string>> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    const rows = await sql`SELECT id, region FROM customers ORDER BY id`;
    return new Map(rows.map((r) => [r.id as number, r.region as string]));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Customer ids that have at least one order, read as the owner. */
export async function customersWithOrders(adminUrl: string): Promise<Set<number>> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    const rows = await sql`SELECT DISTINCT customer_id FROM orders`;
    return new Set(rows.map((r) => r.customer_id as number));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export interface Shape {
  readonly name: string;
  readonly sql: string;
  /** Every shape returns a column `cid` (a customer id); `expect` gives the ids allowed regions must yield. */
  readonly expect: (inRegion: readonly number[], withOrders: ReadonlySet<number>) => number[];
}

const all = (ids: readonly number[]): number[] => [...ids].sort((a, b) => a - b);

/** Query shapes: plain, join, subqueries, CTE, set operations, LATERAL, aggregates. */
export const SHAPES: readonly Shape[] = [
  { name: 'plain', sql: 'SELECT id AS cid, region FROM customers', expect: all },
  { name: 'qualified and aliased', sql: 'SELECT c.id AS cid FROM public.customers AS c', expect: all },
  { name: 'quoted, case-varied', sql: 'SELECT "C".id AS cid FROM "customers" "C"', expect: all },
  {
    name: 'join',
    sql: 'SELECT DISTINCT c.id AS cid FROM orders o JOIN customers c ON c.id = o.customer_id',
    expect: (ids, withOrders) => all(ids.filter((i) => withOrders.has(i))),
  },
  {
    name: 'left join from customers',
    sql: 'SELECT DISTINCT c.id AS cid FROM customers c LEFT JOIN orders o ON o.customer_id = c.id',
    expect: all,
  },
  { name: 'subquery in FROM', sql: 'SELECT s.id AS cid FROM (SELECT * FROM customers) s', expect: all },
  {
    name: 'IN subquery',
    sql: 'SELECT DISTINCT customer_id AS cid FROM orders WHERE customer_id IN (SELECT id FROM customers)',
    expect: (ids, withOrders) => all(ids.filter((i) => withOrders.has(i))),
  },
  {
    name: 'EXISTS subquery',
    sql: 'SELECT DISTINCT o.customer_id AS cid FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)',
    expect: (ids, withOrders) => all(ids.filter((i) => withOrders.has(i))),
  },
  { name: 'scalar subquery', sql: 'SELECT (SELECT max(id) FROM customers) AS cid', expect: (ids) => (ids.length ? [Math.max(...ids)] : []) },
  { name: 'CTE', sql: 'WITH c AS (SELECT id, region FROM customers) SELECT id AS cid FROM c', expect: all },
  { name: 'CTE named like the table', sql: 'WITH customers AS (SELECT * FROM customers) SELECT id AS cid FROM customers', expect: all },
  {
    name: 'UNION',
    sql: 'SELECT id AS cid FROM customers WHERE id <= 10 UNION SELECT id FROM customers WHERE id > 10',
    expect: all,
  },
  { name: 'UNION ALL with a constant arm', sql: 'SELECT id AS cid FROM customers UNION ALL SELECT -1 WHERE false', expect: all },
  { name: 'INTERSECT', sql: 'SELECT id AS cid FROM customers INTERSECT SELECT id FROM customers', expect: all },
  {
    name: 'LATERAL',
    sql: 'SELECT DISTINCT l.id AS cid FROM orders o, LATERAL (SELECT id FROM customers c WHERE c.id = o.customer_id) l',
    expect: (ids, withOrders) => all(ids.filter((i) => withOrders.has(i))),
  },
  { name: 'TABLE', sql: 'SELECT id AS cid FROM (TABLE customers) t', expect: all },
  { name: 'an OR that would widen a naive filter', sql: "SELECT id AS cid FROM customers WHERE region = 'north' OR true", expect: all },
];

export interface ShapeRun {
  readonly name: string;
  readonly got: number[];
  readonly want: number[];
  readonly error?: ToolError;
}

/** Run every shape as `client` and return what came back and what the principal's regions allow. */
export async function runShapes(
  client: Client,
  regions: readonly string[],
  truth: ReadonlyMap<number, string>,
  withOrders: ReadonlySet<number>,
): Promise<ShapeRun[]> {
  const inRegion = [...truth].filter(([, r]) => regions.includes(r)).map(([id]) => id);
  const out: ShapeRun[] = [];
  for (const s of SHAPES) {
    const r = await client.callTool({ name: 'query_database', arguments: { sql: s.sql, params: [] } });
    const error = errorOf(r as never);
    const rows = ((r.structuredContent as { rows?: Record<string, unknown>[] } | undefined)?.rows ?? []).map((x) => Number(x.cid));
    out.push({
      name: s.name,
      got: [...new Set(rows)].filter((x) => !Number.isNaN(x)).sort((a, b) => a - b),
      want: s.expect(inRegion, withOrders),
      ...(error ? { error } : {}),
    });
  }
  return out;
}

/** Call query_database and return the denial and the request id (for the audit record). */
export async function refusalOf(
  client: Client,
  sql: string,
  extra: Record<string, unknown> = {},
): Promise<{ error: ToolError | undefined; requestId: string }> {
  const r = await client.callTool({ name: 'query_database', arguments: { sql, params: [] }, ...extra });
  return { error: errorOf(r as never), requestId: requestIdOf(r as never) };
}
