import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { redactUrl } from '../config/redact-url.js';
import type { KeyRecord } from './api-keys.js';
import type { KeySnapshot, KeyStore } from './key-store.js';

/** sql/api-keys-postgres.sql in the package (dist/src/auth → three levels up). */
export const KEYS_POSTGRES_SQL = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'sql', 'api-keys-postgres.sql');

const CHANNEL = 'bulwark_api_keys';

type Sql = postgres.Sql<Record<string, never>>;

interface Row {
  id: string;
  principal: string;
  roles: string[];
  tier: string;
  created: Date;
  expires: Date | null;
  revoked: Date | null;
  hash: string;
  /** null on a table created before attributes existed (see poll). */
  attributes: Record<string, string | string[]> | null;
}

/** Apply sql/api-keys-postgres.sql (as an administrator, once; idempotent). */
export async function installKeysSchema(adminUrl: string): Promise<void> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    await sql.unsafe(fs.readFileSync(KEYS_POSTGRES_SQL, 'utf8'));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * API keys in PostgreSQL (sql/api-keys-postgres.sql), shared by every replica. A poll is one
 * indexed `max(rev)` (plus a count, so a row removed by an owner who dropped the guard is seen
 * too); the table is re-read only when that stamp moves. Servers LISTEN for changes so a
 * revocation is usually seen at once; polling is the bound when a notification is lost.
 */
export class PostgresKeyStore implements KeyStore {
  readonly kind = 'postgres' as const;
  readonly where: string;
  private readonly sql: Sql;
  private listening: { unlisten(): Promise<void> } | undefined;

  constructor(url: string) {
    this.where = redactUrl(url);
    this.sql = postgres(url, { max: 2, onnotice: () => undefined, connect_timeout: 5, idle_timeout: 60, max_lifetime: 1800 }) as unknown as Sql;
  }

  async poll(stamp: string): Promise<KeySnapshot | null> {
    const [head] = await this.sql`SELECT coalesce(max(rev), 0)::text AS rev, count(*)::text AS n FROM bulwark_api_key`;
    const now = `${head?.rev}:${head?.n}`;
    if (now === stamp) return null;
    // to_jsonb(k)->'attributes' reads the column where it exists and null on a table from before it
    // (install-schema adds it): servers upgraded before the schema keep accepting keys.
    const rows = (await this.sql`
      SELECT id, principal, roles, tier, created, expires, revoked, hash, to_jsonb(k) -> 'attributes' AS attributes FROM bulwark_api_key k`) as unknown as Row[];
    return { stamp: now, keys: rows.map(toRecord) };
  }

  async add(r: KeyRecord): Promise<void> {
    if (r.attributes !== undefined && Object.keys(r.attributes).length > 0) {
      try {
        await this.sql`
          INSERT INTO bulwark_api_key (id, principal, roles, tier, created, expires, revoked, hash, attributes)
          VALUES (${r.id}, ${r.principal}, ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(r.roles)}::text::jsonb)), ${r.tier}, ${r.created}, ${r.expires}, ${r.revoked}, ${r.hash}, ${JSON.stringify(r.attributes)}::text::jsonb)`;
      } catch (err) {
        if ((err as { code?: string }).code === '42703') {
          throw new Error('the bulwark_api_key table has no attributes column yet: run `bulwark keys install-schema ADMIN_URL` once to add it', { cause: err });
        }
        throw err;
      }
      return;
    }
    await this.sql`
      INSERT INTO bulwark_api_key (id, principal, roles, tier, created, expires, revoked, hash)
      VALUES (${r.id}, ${r.principal}, ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(r.roles)}::text::jsonb)), ${r.tier}, ${r.created}, ${r.expires}, ${r.revoked}, ${r.hash})`;
  }

  async revoke(id: string, at: Date): Promise<boolean> {
    // Revoking twice keeps the first time; the guard trigger forbids moving it anyway.
    const [row] = await this.sql`SELECT revoked FROM bulwark_api_key WHERE id = ${id}`;
    if (!row) return false;
    if (row.revoked === null) await this.sql`UPDATE bulwark_api_key SET revoked = ${at.toISOString()} WHERE id = ${id} AND revoked IS NULL`;
    return true;
  }

  async lastUsed(): Promise<Record<string, string>> {
    const rows = await this.sql`SELECT id, last_used FROM bulwark_api_key_usage`;
    return Object.fromEntries(rows.map((r) => [r.id as string, (r.last_used as Date).toISOString()]));
  }

  async recordUsage(times: ReadonlyMap<string, number>): Promise<void> {
    if (times.size === 0) return;
    // Arrays go as JSON: postgres.js sends a one-element sql.array() as a bare literal.
    const rows = [...times].map(([id, ms]) => ({ id, at: new Date(ms).toISOString() }));
    await this.sql`
      INSERT INTO bulwark_api_key_usage (id, last_used)
      SELECT u.id, u.at::timestamptz FROM jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) AS u(id text, at text)
      JOIN bulwark_api_key k ON k.id = u.id
      ON CONFLICT (id) DO UPDATE SET last_used = greatest(bulwark_api_key_usage.last_used, EXCLUDED.last_used)`;
  }

  /** What the connected login may do beyond reading keys and recording use (for `bulwark doctor`). */
  async privilegeProblems(): Promise<string[]> {
    const [p] = await this.sql`
      SELECT has_table_privilege('bulwark_api_key', 'INSERT') AS ins,
             has_table_privilege('bulwark_api_key', 'UPDATE') AS upd,
             has_table_privilege('bulwark_api_key', 'DELETE') AS del,
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS super,
             EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                      WHERE attrelid = to_regclass('bulwark_api_key') AND attname = 'attributes' AND NOT attisdropped) AS attrs`;
    const out: string[] = [];
    if (p?.super) out.push('the login is a superuser: use one granted bulwark_keys_reader only');
    else if (p?.ins || p?.upd || p?.del)
      out.push('the login can create or change keys: servers need bulwark_keys_reader only (bulwark_keys_admin is for operators)');
    // Servers read such a table (keys without attributes), but no key with attributes can be made.
    if (p && !p.attrs) out.push('the key table predates key attributes: run `bulwark keys install-schema ADMIN_URL` once to add the column');
    return out;
  }

  async watch(onChange: () => void): Promise<void> {
    // postgres.js re-LISTENs after a reconnect and calls onlisten again: re-read then too,
    // since notifications sent while disconnected are lost.
    this.listening = await this.sql.listen(
      CHANNEL,
      () => onChange(),
      () => onChange(),
    );
  }

  async close(): Promise<void> {
    await this.listening?.unlisten().catch(() => undefined);
    await this.sql.end({ timeout: 5 });
  }
}

function toRecord(r: Row): KeyRecord {
  return {
    id: r.id,
    principal: r.principal,
    roles: r.roles,
    tier: r.tier,
    created: r.created.toISOString(),
    expires: r.expires ? r.expires.toISOString() : null,
    revoked: r.revoked ? r.revoked.toISOString() : null,
    hash: r.hash,
    ...(r.attributes !== null && Object.keys(r.attributes).length > 0 ? { attributes: r.attributes } : {}),
  };
}
