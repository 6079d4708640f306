import fs from 'node:fs';
import type { Config } from '../config/schema.js';
import { keyState, readKeyFile } from '../auth/api-keys.js';
import { JwtVerifier } from '../auth/oauth.js';
import { keysFileOf } from '../auth/key-store-open.js';
import { PostgresKeyStore } from '../auth/postgres-key-store.js';

export interface DoctorCheck {
  check: string;
  ok: boolean;
  detail: string;
}

/** `bulwark doctor`: the key store, the OAuth verifier, and PostgreSQL when configured. */
export async function authDoctorChecks(config: Readonly<Config>, configDir: string): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  if (config.auth.store === 'postgres' && config.auth.postgres_url) {
    const store = new PostgresKeyStore(config.auth.postgres_url);
    try {
      const snap = await store.poll('');
      const keys = snap?.keys ?? [];
      const active = keys.filter((k) => keyState(k) === 'active').length;
      const problems = await store.privilegeProblems();
      if (config.auth.http === 'api_key' && !config.auth.oauth && active === 0)
        problems.push('no active key: every HTTP request will be refused (bulwark keys create)');
      checks.push({
        check: 'keys',
        ok: problems.length === 0,
        detail: `${store.where}: ${problems.length ? problems.join('; ') : `${active} active of ${keys.length} (auth.http ${config.auth.http})`}`,
      });
    } catch (err) {
      checks.push({
        check: 'keys',
        ok: false,
        detail: `${store.where}: ${(err as Error).message} — apply sql/api-keys-postgres.sql (bulwark keys install-schema) and grant bulwark_keys_reader to this login`,
      });
    } finally {
      await store.close();
    }
  }
  const file = keysFileOf(config, configDir);
  if (config.auth.store === 'file' && (config.auth.http === 'api_key' || fs.existsSync(file))) {
    try {
      const keys = readKeyFile(file).keys;
      const active = keys.filter((k) => keyState(k) === 'active').length;
      const mode = fs.existsSync(file) ? fs.statSync(file).mode & 0o777 : 0o600;
      const problems: string[] = [];
      if (mode & 0o077) problems.push(`mode ${mode.toString(8)} (should be 600: chmod 600 ${file})`);
      if (config.auth.http === 'api_key' && !config.auth.oauth && active === 0)
        problems.push('no active key: every HTTP request will be refused (bulwark keys create)');
      checks.push({
        check: 'keys',
        ok: problems.length === 0,
        detail: problems.length ? `${file}: ${problems.join('; ')}` : `${file}: ${active} active of ${keys.length} (auth.http ${config.auth.http})`,
      });
    } catch (err) {
      checks.push({ check: 'keys', ok: false, detail: `${file}: ${(err as Error).message}` });
    }
  }
  if (config.auth.oauth) {
    try {
      new JwtVerifier(config.auth.oauth, configDir);
      checks.push({ check: 'oauth', ok: true, detail: `issuer ${config.auth.oauth.issuer}, audience ${config.auth.oauth.audience}` });
    } catch (err) {
      checks.push({ check: 'oauth', ok: false, detail: `JWKS: ${(err as Error).message}` });
    }
  }
  if (config.database.url) {
    const { PgExecutor } = await import('../tools/database/pg-executor.js');
    const { sqlSessionSettings } = await import('../analysis/sql.js');
    const pool = config.database.pool;
    const db = new PgExecutor({
      url: config.database.url,
      maxConnections: 1,
      idleTimeoutS: pool.idle_timeout_s,
      maxLifetimeS: pool.max_lifetime_s,
      connectTimeoutS: Math.min(5, pool.connect_timeout_s),
      session: sqlSessionSettings({ defaultSchema: config.database.default_schema }),
    });
    try {
      await db.ping();
      checks.push({ check: 'database', ok: true, detail: 'PostgreSQL answered select 1' });
      const problems = await db.roleProblems();
      checks.push({
        check: 'database role',
        ok: problems.length === 0,
        detail: problems.length
          ? `${problems.join('; ')} — set the role up with sql/database-readonly-role.sql`
          : 'SELECT only: no superuser, no TEMP, no write grants or owned tables, side-effecting functions not executable',
      });
    } catch (err) {
      // The URL holds a password: report the error only.
      checks.push({ check: 'database', ok: false, detail: `PostgreSQL unreachable: ${(err as Error).message}` });
    } finally {
      await db.close().catch(() => undefined);
    }
  }
  return checks;
}
