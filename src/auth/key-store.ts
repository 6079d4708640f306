import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { addKeyToFile, readKeyFile, readUsage, revokeKey, usageFileOf, writeAtomic, type KeyRecord } from './api-keys.js';
import { PostgresKeyStore } from './postgres-key-store.js';

/** What a server reads: every key, and a stamp that changes whenever any key does. */
export interface KeySnapshot {
  readonly stamp: string;
  readonly keys: readonly KeyRecord[];
}

/**
 * Where API keys live. The file store serves one machine; the PostgreSQL store serves replicas
 * (a key created or revoked once reaches every server). Servers only read keys and record
 * last use; `bulwark keys` adds and revokes.
 */
export interface KeyStore {
  readonly kind: 'file' | 'postgres';
  /** Where, for messages: a path, or a URL without its password. */
  readonly where: string;
  /** The keys, or null when nothing changed since `stamp`. Throws when the store cannot be read. */
  poll(stamp: string): Promise<KeySnapshot | null>;
  add(record: KeyRecord): Promise<void>;
  revoke(id: string, at: Date): Promise<boolean>;
  lastUsed(): Promise<Record<string, string>>;
  recordUsage(times: ReadonlyMap<string, number>): Promise<void>;
  /** Call `onChange` as soon as the store learns of a change (PostgreSQL NOTIFY); polling stays the bound. */
  watch(onChange: () => void): Promise<void>;
  close(): Promise<void>;
}

export class FileKeyStore implements KeyStore {
  readonly kind = 'file' as const;

  constructor(readonly file: string) {}

  get where(): string {
    return this.file;
  }

  async poll(stamp: string): Promise<KeySnapshot | null> {
    let now: string;
    try {
      const st = fs.statSync(this.file);
      now = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      now = 'missing';
    }
    if (now === stamp) return null;
    return { stamp: now, keys: now === 'missing' ? [] : readKeyFile(this.file).keys };
  }

  add(record: KeyRecord): Promise<void> {
    return addKeyToFile(this.file, record);
  }

  revoke(id: string, at: Date): Promise<boolean> {
    return revokeKey(this.file, id, at);
  }

  async lastUsed(): Promise<Record<string, string>> {
    return readUsage(this.file);
  }

  async recordUsage(times: ReadonlyMap<string, number>): Promise<void> {
    // Merge with what is on disk: two servers (or a restart) must not move a time backwards.
    const merged = new Map<string, number>();
    for (const [id, iso] of Object.entries(readUsage(this.file))) {
      const t = Date.parse(iso);
      if (Number.isFinite(t)) merged.set(id, t);
    }
    for (const [id, t] of times) merged.set(id, Math.max(t, merged.get(id) ?? 0));
    const out = Object.fromEntries([...merged].map(([id, ms]) => [id, new Date(ms).toISOString()]));
    writeAtomic(usageFileOf(this.file), `${JSON.stringify(out)}\n`);
  }

  async watch(): Promise<void> {
    // The mtime poll is cheap enough; no watcher (fs.watch misses atomic renames on some systems).
  }

  async close(): Promise<void> {}
}

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
