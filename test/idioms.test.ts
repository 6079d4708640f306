import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from './helpers/fixtures.js';

// STYLE.md habit 5: the dangerous idioms are allowed only where the safe helper lives.
function sources(): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push({ file: path.relative(ROOT, p), text: fs.readFileSync(p, 'utf8') });
    }
  };
  walk(path.join(ROOT, 'src'));
  walk(path.join(ROOT, 'sandbox'));
  return out;
}

const files = sources();

t.test('node:vm is not a boundary and appears nowhere', async (t) => {
  for (const { file, text } of files) t.notMatch(text, /from ['"](node:)?vm['"]|require\(['"](node:)?vm['"]\)/, file);
});

t.test('user SQL reaches postgres.js only through the executor, never through the simple protocol', async (t) => {
  const users = files
    .filter((f) => /\.unsafe\(/.test(f.text))
    .map((f) => f.file)
    .sort();
  // pg-executor: its own constant BEGIN/SET LOCAL text, and the analysed text with bound params;
  // the audit backend and the key store: their own schema files.
  t.same(users, ['src/audit/postgres-log.ts', 'src/auth/postgres-key-store.ts', 'src/tools/database/pg-executor.ts']);
  const ex = files.find((f) => f.file === 'src/tools/database/pg-executor.ts')!.text;
  t.match(ex, /conn\.unsafe\(text, params as Param\[\], \{ prepare: false \}\)/, 'the call text always goes with its parameter array');
});

t.test('DNS and sockets only in the URL analyser, the API tools and the transports', async (t) => {
  const allowed = /^(src\/analysis\/url\.ts|src\/analysis\/ip-ranges\.ts|src\/tools\/api\/|src\/transport\/|src\/limits\/redis|src\/auth\/)/;
  for (const { file, text } of files) {
    if (/from ['"](node:)?(dns|net|dgram)['"]|from ['"]undici['"]/.test(text)) t.match(file, allowed, `${file} may use dns/net/undici`);
  }
});

t.test('only src/execution starts the server child processes (the CLI runs opa in the foreground)', async (t) => {
  const allowed = /^(src\/execution\/|src\/cli\/)/;
  const starters = files.filter((f) => /from ['"](node:)?(child_process|worker_threads|cluster)['"]/.test(f.text)).map((f) => f.file);
  t.ok(
    starters.some((f) => f.startsWith('src/execution/')),
    'the pools are found (the pattern still matches)',
  );
  for (const file of starters) t.match(file, allowed, `${file} may start processes`);
});

t.test('user paths are never compared with startsWith', async (t) => {
  for (const f of ['src/analysis/path.ts', 'sandbox/fs/pinned-open.ts', 'sandbox/fs/walk.ts']) {
    const text = files.find((x) => x.file === f)!.text;
    t.notMatch(text, /\.startsWith\(root|canonical\.startsWith|real\.startsWith|lexical\.startsWith/, `${f} compares paths by components`);
  }
});
