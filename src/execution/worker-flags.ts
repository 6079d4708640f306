import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { PACKAGE_ROOT } from '../config/package-paths.js';
import { containingRoot } from '../analysis/path.js';

/** What every worker must read to load itself: its compiled code and its dependencies. */
export function codeReadFlags(): string[] {
  // No file entries here: in Node 20 a single-file entry also lets "/" be opened (dist/ carries
  // its own package.json for that reason; see scripts/write-dist-package.mjs).
  // Modules load by their real path: a symlinked node_modules (pnpm, a shared checkout) must be
  // allowed where it really is.
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return p;
    }
  };
  return [
    ...new Set([
      path.join(PACKAGE_ROOT, 'dist'),
      real(path.join(PACKAGE_ROOT, 'dist')),
      path.join(PACKAGE_ROOT, 'node_modules'),
      real(path.join(PACKAGE_ROOT, 'node_modules')),
    ]),
  ].map((p) => `--allow-fs-read=${p}/*`);
}

/**
 * Filesystem workers may read the roots and nothing else (but their own code and
 * /proc/self/fd, the door the descriptor-relative opens go through). A root nested in another
 * is covered by it; listing both trips an assertion in Node 20's permission tree.
 */
export function filesystemWorkerFlags(config: Readonly<Config>): string[] {
  const roots = [...config.filesystem.roots].sort((a, b) => a.length - b.length);
  const outer: string[] = [];
  for (const r of roots) if (!containingRoot(r, outer)) outer.push(r);
  return [
    '--experimental-permission',
    ...codeReadFlags(),
    ...outer.map((r) => `--allow-fs-read=${r === '/' ? '/*' : `${r}/*`}`),
    '--allow-fs-read=/proc/self/fd/*',
    `--max-old-space-size=${config.execution.filesystem_pool.heap_mb}`,
  ];
}

/**
 * JavaScript workers read only their own code; the isolate inside has no Node API at all.
 * isolated-vm needs --no-node-snapshot on Node 20 and, under the permission model, --allow-addons.
 */
export function javascriptWorkerFlags(config: Readonly<Config>): string[] {
  return [
    '--experimental-permission',
    '--allow-addons',
    ...codeReadFlags(),
    '--no-node-snapshot',
    `--max-old-space-size=${config.execution.javascript_pool.heap_mb}`,
  ];
}

/** The embedded database's worker reads only its own code (PGlite's wasm ships in node_modules). */
export function embeddedDatabaseWorkerFlags(heapMb: number): string[] {
  return ['--experimental-permission', ...codeReadFlags(), `--max-old-space-size=${heapMb}`];
}
