import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The installed package's root: compiled code lives in dist/src/config, so walk up three levels. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const DEFAULT_POLICY_WASM = path.join(PACKAGE_ROOT, 'policies', 'policy.wasm');
export const DEFAULT_POLICY_DATA = path.join(PACKAGE_ROOT, 'policies', 'data.json');
export const DEMO_WORKSPACE = path.join(PACKAGE_ROOT, 'demo', 'workspace');
