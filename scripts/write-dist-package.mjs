// dist/ gets its own package.json so Node finds the module type without reading the project's
// package.json: sandbox workers run under the permission model, and allowing that single file
// makes Node 20's permission tree allow opening "/" as well.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
fs.mkdirSync(dist, { recursive: true });
fs.writeFileSync(path.join(dist, 'package.json'), `${JSON.stringify({ type: 'module', private: true }, null, 2)}\n`);
