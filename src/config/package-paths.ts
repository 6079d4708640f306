import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The installed package's root: compiled code lives in dist/src/config, so walk up three levels. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const DEFAULT_POLICY_WASM = path.join(PACKAGE_ROOT, 'policies', 'policy.wasm');
export const DEFAULT_POLICY_DATA = path.join(PACKAGE_ROOT, 'policies', 'data.json');
export const DEMO_WORKSPACE = path.join(PACKAGE_ROOT, 'demo', 'workspace');

/** package.json is the one place the version is written; the CLI and the MCP handshake read it from here. */
function readPackageVersion(): string {
  const file = path.join(PACKAGE_ROOT, 'package.json');
  const pkg: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  const version = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? pkg.version : undefined;
  if (typeof version !== 'string' || !version) throw new Error(`${file} has no "version"`);
  return version;
}

export const PACKAGE_VERSION = readPackageVersion();
