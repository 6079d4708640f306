/**
 * Loads isolated-vm for the Node that runs this worker: the per-ABI build from scripts/node24.sh
 * when there is one for this ABI (7.x on Node 24), else node_modules' copy (5.x from the lock on
 * Node 20; 7.x in the container image, whose build stage swaps it in).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type IvmModule from 'isolated-vm';
import { abiIsolatedVmDir } from '../../src/core/isolated-vm-location.js';

const require = createRequire(import.meta.url);

/** Compiled to dist/sandbox/js/: the package root is three levels up. */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Where the loaded isolated-vm lives (a package folder), for diagnostics and tests. */
export const isolatedVmSource: string = abiIsolatedVmDir(PACKAGE_ROOT) ?? path.dirname(require.resolve('isolated-vm/package.json'));

function load(): typeof IvmModule {
  try {
    return require(isolatedVmSource) as typeof IvmModule;
  } catch (err) {
    // Typically node_modules' 5.x on Node 24 (ERR_DLOPEN_FAILED): say which copy and what fixes it.
    throw new Error(
      `isolated-vm at ${isolatedVmSource} does not load on Node ${process.versions.node} (ABI ${process.versions.modules}): ${(err as Error).message.split('\n')[0]}; on Node 24 run scripts/node24.sh`,
      { cause: err },
    );
  }
}

export const ivm = load();
