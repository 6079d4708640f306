import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

// The policy decides on the directory being searched; what it blocks inside that directory
// (names like .ssh or .env, extensions like .pem) must not be read by the search either.
t.test('search_files skips names and extensions the policy blocks', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  fs.mkdirSync(path.join(sb.root, '.ssh'));
  fs.writeFileSync(path.join(sb.root, '.ssh', 'config'), 'needle-in-ssh\n');
  fs.writeFileSync(path.join(sb.root, '.env'), 'needle-in-env\n');
  fs.writeFileSync(path.join(sb.root, 'server.pem'), 'needle-in-pem\n');
  fs.writeFileSync(path.join(sb.root, 'plain.txt'), 'needle-in-plain\n');
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close());
  const o = await gate.call('search_files', { path: '.', query: 'needle-in', include_hidden: true });
  t.equal(o.status, 'ok');
  const s = o.result!.structured as { matches: { path: string }[]; skipped: Record<string, number> };
  t.same(
    s.matches.map((m) => m.path),
    ['plain.txt'],
  );
  t.ok((s.skipped.blocked_name ?? 0) >= 1, 'blocked names counted');
  t.equal(s.skipped.blocked_extension, 1, 'the .pem file was skipped');
  // Reading them directly is the policy's call, and it says no.
  for (const p of ['.env', 'server.pem', '.ssh/config']) {
    const r = await gate.call('read_file', { path: p });
    t.equal(r.denial?.code, 'policy_denied', p);
  }
});
