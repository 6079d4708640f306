import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { PACKAGE_ROOT } from '../config/package-paths.js';
import { containingRoot } from '../analysis/path.js';
import { abiIsolatedVmPrefix, abiIsolatedVmDir } from '../core/isolated-vm-location.js';

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

/**
 * The permission model's switch: stable `--permission` from Node 22 (Node 24 refuses the old
 * name at start), `--experimental-permission` on Node 20 (which does not know the new one).
 */
export function permissionFlag(nodeMajor: number = NODE_MAJOR): string {
  return nodeMajor >= 22 ? '--permission' : '--experimental-permission';
}

/** Real path when it resolves: the permission model checks the path a module loads from. */
function real(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** What every worker must read to load itself: its compiled code and its dependencies. */
export function codeReadFlags(): string[] {
  // No file entries here: in Node 20 a single-file entry also lets "/" be opened (dist/ carries
  // its own package.json for that reason; see scripts/write-dist-package.mjs).
  // Modules load by their real path: a symlinked node_modules (pnpm, a shared checkout) must be
  // allowed where it really is.
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
    permissionFlag(),
    ...codeReadFlags(),
    ...outer.map((r) => `--allow-fs-read=${r === '/' ? '/*' : `${r}/*`}`),
    '--allow-fs-read=/proc/self/fd/*',
    `--max-old-space-size=${config.execution.filesystem_pool.heap_mb}`,
  ];
}

/**
 * What loading isolated-vm reads beyond dist/ and node_modules/, for the running Node:
 * - the per-ABI build from scripts/node24.sh, when there is one for this ABI (7.x on Node 24);
 * - on Node >= 24 (isolated-vm 7, whose loader is node-gyp-build), `/etc/alpine-release`: the loader
 *   probes it to tell musl from glibc, and under the permission model an unlisted path throws
 *   ERR_ACCESS_DENIED instead of answering "absent". One file, read-only; Node 20's 5.x does not
 *   read it, so Node 20 workers do not get it.
 */
export function isolatedVmReadFlags(nodeMajor: number = NODE_MAJOR, packageRoot: string = PACKAGE_ROOT): string[] {
  const flags: string[] = [];
  if (abiIsolatedVmDir(packageRoot)) {
    const prefix = abiIsolatedVmPrefix(packageRoot);
    for (const p of new Set([prefix, real(prefix)])) flags.push(`--allow-fs-read=${p}/*`);
  }
  if (nodeMajor >= 24) flags.push('--allow-fs-read=/etc/alpine-release');
  return flags;
}

/**
 * JavaScript workers read only their own code; the isolate inside has no Node API at all.
 * isolated-vm needs --no-node-snapshot on Node 20 and, under the permission model, --allow-addons.
 */
export function javascriptWorkerFlags(config: Readonly<Config>): string[] {
  return [
    permissionFlag(),
    '--allow-addons',
    ...codeReadFlags(),
    ...isolatedVmReadFlags(),
    '--no-node-snapshot',
    `--max-old-space-size=${config.execution.javascript_pool.heap_mb}`,
  ];
}

/** The embedded database's worker reads only its own code (PGlite's wasm ships in node_modules). */
export function embeddedDatabaseWorkerFlags(heapMb: number): string[] {
  return [permissionFlag(), ...codeReadFlags(), `--max-old-space-size=${heapMb}`];
}
