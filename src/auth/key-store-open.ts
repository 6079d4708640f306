import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { KeyStore } from './key-store.js';
import { FileKeyStore } from './key-store-file.js';
import { PostgresKeyStore } from './postgres-key-store.js';

/** The file store's path, as the config names it (relative to the config file's folder). */
export function keysFileOf(config: Readonly<Config>, configDir: string): string {
  return path.resolve(configDir, config.auth.keys_file);
}

/** The configured store; `override` (the CLI's --store) is a file path or a postgres:// URL. */
export function openKeyStore(config: Readonly<Config>, configDir: string, override?: string): KeyStore {
  if (override !== undefined) return isPostgresUrl(override) ? new PostgresKeyStore(override) : new FileKeyStore(path.resolve(override));
  if (config.auth.store === 'postgres') {
    if (!config.auth.postgres_url) throw new Error('auth.store is postgres but auth.postgres_url is not set');
    return new PostgresKeyStore(config.auth.postgres_url);
  }
  return new FileKeyStore(keysFileOf(config, configDir));
}

export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}
