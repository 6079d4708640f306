import type { KeyRecord } from './api-keys.js';

/** What a server reads: every key, and a stamp that changes whenever any key does. */
export interface KeySnapshot {
  readonly stamp: string;
  readonly keys: readonly KeyRecord[];
}

/**
 * Where API keys live. The file store (key-store-file.ts) serves one machine; the PostgreSQL store
 * (postgres-key-store.ts) serves replicas (a key created or revoked once reaches every server);
 * key-store-open.ts opens the configured one. Servers only read keys and record last use;
 * `bulwark keys` adds and revokes.
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
