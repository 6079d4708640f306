#!/usr/bin/env node
// Thin launcher: the compiled entry point lives in dist/ (npm run build).
import('../dist/src/main.js').catch((err) => {
  process.stderr.write(`bulwark: cannot start: ${err && err.message ? err.message : err}\n` + 'Run `npm run build` first if dist/ is missing.\n');
  process.exit(70);
});
