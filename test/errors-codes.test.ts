import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { DENIAL_CODE_LIST } from '../src/core/codes.js';
import { ROOT } from './helpers/fixtures.js';

// Renaming or removing a code breaks clients and dashboards: this pin makes it deliberate.
const PINNED = [
  'unauthenticated',
  'rate_limited',
  'invalid_input',
  'sql_rejected',
  'path_rejected',
  'url_rejected',
  'policy_denied',
  'policy_error',
  'timeout',
  'resource_exceeded',
  'tool_error',
  'unavailable',
  'audit_unavailable',
  'cancelled',
  'internal_error',
  'approval_required',
  'approval_declined',
  'request_state_invalid',
];

t.same(DENIAL_CODE_LIST, PINNED, 'the denial code table is pinned');

t.test('SECURITY.md lists every code', async (t) => {
  const doc = fs.readFileSync(path.join(ROOT, 'SECURITY.md'), 'utf8');
  for (const code of PINNED) t.match(doc, new RegExp(`\\|\\s*\`${code}\`\\s*\\|`), `${code} in the SECURITY.md table`);
});

t.test('every code the source produces is in the registry', async (t) => {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.ts')) files.push(path.join(d, e.name));
    }
  };
  walk(path.join(ROOT, 'src'));
  walk(path.join(ROOT, 'sandbox'));
  const used = new Set<string>();
  for (const f of files) {
    for (const m of fs.readFileSync(f, 'utf8').matchAll(/\b(?:deny|refuse)\('([a-z_]+)'/g)) used.add(m[1] as string);
  }
  t.ok(used.size >= 8, `found ${used.size} codes in use`);
  for (const c of used) t.ok(PINNED.includes(c), `${c} is registered`);
});
