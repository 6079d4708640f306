import { createRequire } from 'node:module';
import t from 'tap';
import { ivm } from '../sandbox/js/isolated-vm.js';

// npm 11 warns that these install scripts are "not covered by allowScripts"; on a machine where
// they did not run, the addons are missing. Fail loudly here rather than deep inside a tool.
const require = createRequire(import.meta.url);

// The copy the JavaScript worker loads: node_modules' on Node 20, the per-ABI build on Node 24.
t.test('isolated-vm is built and runs an isolate', async (t) => {
  const isolate = new ivm.Isolate({ memoryLimit: 16 });
  const ctx = isolate.createContextSync();
  t.equal(isolate.compileScriptSync('6 * 7').runSync(ctx), 42);
  isolate.dispose();
});

t.test('argon2 hashes and verifies', async (t) => {
  const argon2 = require('argon2') as typeof import('argon2');
  const h = await argon2.hash('secret', { type: argon2.argon2id });
  t.match(h, /^\$argon2id\$/);
  t.equal(await argon2.verify(h, 'secret'), true);
  t.equal(await argon2.verify(h, 'wrong'), false);
});
