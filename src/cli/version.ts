import { PACKAGE_VERSION } from '../config/package-paths.js';
import { EXIT } from './exit-codes.js';

export function runVersion(): number {
  process.stdout.write(`${PACKAGE_VERSION}\n`);
  return EXIT.ok;
}
