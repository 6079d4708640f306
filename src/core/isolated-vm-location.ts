import fs from 'node:fs';
import path from 'node:path';

/**
 * isolated-vm is the one dependency bound to a Node ABI. package-lock.json carries 5.x, the Node 20
 * line; 7.x (Node >= 24) is built per ABI by scripts/node24.sh into
 * `<packageRoot>/.toolchain/isolated-vm/abi-<process.versions.modules>/node_modules/isolated-vm`.
 * Both the JavaScript worker (which loads it) and the parent (which allows the worker to read it)
 * ask here, so they agree on one folder.
 */
export function abiIsolatedVmPrefix(packageRoot: string, abi: string = process.versions.modules): string {
  return path.join(packageRoot, '.toolchain', 'isolated-vm', `abi-${abi}`);
}

/** The per-ABI isolated-vm for the running Node when one was built, else undefined (node_modules' copy loads). */
export function abiIsolatedVmDir(packageRoot: string, abi: string = process.versions.modules): string | undefined {
  const dir = path.join(abiIsolatedVmPrefix(packageRoot, abi), 'node_modules', 'isolated-vm');
  try {
    return fs.existsSync(path.join(dir, 'package.json')) ? dir : undefined;
  } catch {
    // Under the permission model existsSync throws ERR_ACCESS_DENIED for a path the worker was
    // not allowed: the parent allows the folder only when it exists, so this means "none".
    return undefined;
  }
}
