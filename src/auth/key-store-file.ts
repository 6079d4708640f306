import fs from 'node:fs';
import { addKeyToFile, readKeyFile, readUsage, revokeKey, usageFileOf, writeAtomic, type KeyRecord } from './api-keys.js';
import type { KeySnapshot, KeyStore } from './key-store.js';

/** API keys in a JSON file, with last use in a file beside it: one machine's servers. */
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
