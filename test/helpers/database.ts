import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import postgres from 'postgres';
import { ROOT } from './fixtures.js';

export interface TestDatabase {
  /** URL of the SELECT-only role Bulwark connects as. */
  readonly readerUrl: string;
  /** Superuser URL of the same database (for checks the reader cannot make). */
  readonly adminUrl: string;
  readonly name: string;
  drop(): Promise<void>;
}

function requirePgUrl(): string {
  const url = process.env.PGURL;
  if (!url) throw new Error('PGURL is not set: run the suite with `npm test`, which starts a real PostgreSQL');
  return url;
}

const SEED = `
CREATE SCHEMA analytics; CREATE SCHEMA hr; CREATE SCHEMA "Sales";
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, nickname text, email text, deleted boolean NOT NULL DEFAULT false);
CREATE TABLE archived_users (id int PRIMARY KEY);
CREATE TABLE banned_users (user_id int);
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL, email text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), status text NOT NULL DEFAULT 'paid');
CREATE TABLE sales (region text, product text, amount numeric);
CREATE TABLE events (id int PRIMARY KEY, user_id int, payload jsonb);
CREATE TABLE metrics (a numeric, b numeric);
CREATE TABLE analytics.events (id int, user_id int);
CREATE TABLE "Sales"."Orders" ("Id" int);
CREATE TABLE hr.salaries (employee text, salary numeric);
CREATE TABLE canary (id int PRIMARY KEY, v text);
INSERT INTO users SELECT g, 'user' || g, CASE WHEN g % 3 = 0 THEN 'nick' || g END, 'user' || g || '@example.com', g % 10 = 0 FROM generate_series(1, 40) g;
INSERT INTO archived_users SELECT g FROM generate_series(100, 104) g;
INSERT INTO banned_users VALUES (1), (2);
INSERT INTO customers SELECT g, 'customer' || g, (ARRAY['north','south','east','west'])[1 + g % 4], 'c' || g || '@example.com' FROM generate_series(1, 20) g;
INSERT INTO orders SELECT g, 1 + g % 20, (g * 7 % 500) + 0.5, timestamptz '2024-01-01' + (g || ' hours')::interval, CASE WHEN g % 5 = 0 THEN 'refunded' ELSE 'paid' END FROM generate_series(1, 200) g;
INSERT INTO sales SELECT (ARRAY['north','south'])[1 + g % 2], (ARRAY['a','b','c'])[1 + g % 3], g FROM generate_series(1, 30) g;
INSERT INTO events SELECT g, 1 + g % 40, jsonb_build_object('kind', CASE WHEN g % 2 = 0 THEN 'click' ELSE 'view' END, 'event', 'e' || g, 'user', jsonb_build_object('id', g, 'email', 'u' || g || '@x'), 'a', jsonb_build_object('b', 'deep')) FROM generate_series(1, 50) g;
INSERT INTO metrics VALUES (1, 2.5), (-3, 0), (4, -1.5);
INSERT INTO analytics.events SELECT g, g FROM generate_series(1, 10) g;
INSERT INTO "Sales"."Orders" VALUES (1);
INSERT INTO hr.salaries VALUES ('alice', 100000), ('bob', 90000);
INSERT INTO canary SELECT g, md5(g::text) FROM generate_series(1, 100) g;
ANALYZE;
`;

/** A fresh database with sample data and a SELECT-only role set up by sql/database-readonly-role.sql. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const base = new URL(requirePgUrl());
  const suffix = crypto.randomBytes(4).toString('hex');
  const name = `bulwark_test_${suffix}`;
  const role = `bulwark_reader_${suffix}`;
  const password = crypto.randomBytes(12).toString('hex');
  const admin = postgres(base.toString(), { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const adminUrl = new URL(base.toString());
  adminUrl.pathname = `/${name}`;
  const db = postgres(adminUrl.toString(), { max: 1, onnotice: () => undefined });
  await db.unsafe(SEED);
  await db.end();
  // The shipped role script, run the way an operator would run it.
  execFileSync(
    'psql',
    [
      adminUrl.toString(),
      '-v',
      'ON_ERROR_STOP=1',
      '-q',
      '-v',
      `role=${role}`,
      '-v',
      `password=${password}`,
      '-v',
      'schemas=public,analytics',
      '-f',
      path.join(ROOT, 'sql', 'database-readonly-role.sql'),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const readerUrl = new URL(adminUrl.toString());
  readerUrl.username = role;
  readerUrl.password = password;
  return {
    readerUrl: readerUrl.toString(),
    adminUrl: adminUrl.toString(),
    name,
    drop: async () => {
      const a = postgres(base.toString(), { max: 1, onnotice: () => undefined });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.unsafe(`DROP ROLE IF EXISTS ${role}`);
      await a.end();
    },
  };
}
