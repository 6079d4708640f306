import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseAuditLine } from '../../src/audit/record-type.js';
import { unwrapSpawnHook } from './child-env.js';

// Every test spawns servers or sandbox workers; none of them may inherit tap's spawn hook.
unwrapSpawnHook();

/** dist/test/helpers → the package root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'bulwark.js');

export interface Sandbox {
  readonly dir: string;
  /** The configured filesystem root (real path). */
  readonly root: string;
  /** A sibling folder outside the root, holding secrets a leak would expose. */
  readonly outside: string;
  readonly auditPath: string;
  readonly configPath: string;
  cleanup(): void;
}

export const SECRET = 'TOP-SECRET-CANARY-7f3a9c';

/** A fresh root with a few files, an outside folder with a canary, and a config pointing at them. */
export function makeSandbox(extraConfig: Record<string, unknown> = {}): Sandbox {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-test-')));
  const root = path.join(dir, 'data');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(path.join(root, 'sub', 'deeper'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(root, 'hello.txt'), 'hello, world\n');
  fs.writeFileSync(path.join(root, 'sub', 'notes.md'), '# Notes\nalpha\nbeta needle gamma\n');
  fs.writeFileSync(path.join(root, 'sub', 'deeper', 'data.json'), '{"k": 1}\n');
  fs.writeFileSync(path.join(outside, 'secret.txt'), `${SECRET}\n`);
  const auditPath = path.join(dir, 'audit', 'audit.jsonl');
  const configPath = path.join(dir, 'bulwark.yaml');
  const config = {
    audit: { path: auditPath },
    limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 } }, default_tier: 'local' },
    observability: { log_level: 'warn' },
    ...extraConfig,
    // Deep-merge the filesystem section so a test can set caps without losing its root.
    filesystem: { roots: [root], ...((extraConfig.filesystem as Record<string, unknown> | undefined) ?? {}) },
  };
  fs.writeFileSync(configPath, stringify(config));
  return { dir, root, outside, auditPath, configPath, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The records of a log the server wrote, each checked by the record parser first: a record the
 * writer produces that its own readers cannot read fails the test that wrote it. Every new log
 * starts with its genesis record (seq 1); it is left out here (`readAuditWithGenesis` keeps it).
 */
export function readAudit(file: string): Record<string, any>[] {
  return readAuditWithGenesis(file).filter((r) => r.event !== 'audit.genesis');
}

export function readAuditWithGenesis(file: string): Record<string, any>[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const parsed = parseAuditLine(l);
      if (!parsed.ok) throw new Error(`${file}: a record does not read (${parsed.error.kind}: ${parsed.error.message}): ${l.slice(0, 300)}`);
      return JSON.parse(l) as Record<string, any>;
    });
}
