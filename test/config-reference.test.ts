/**
 * The configuration reference (docs/configuration.md) is generated from the zod schema by
 * scripts/gen-config-reference.mjs: it must be current, every key must carry a `.describe()` text,
 * and bulwark.example.yaml must be a valid config that shows every top-level section.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { configSchema } from '../src/config/schema.js';
import { loadConfig } from '../src/config/loader.js';
import { ROOT } from './helpers/fixtures.js';

interface Row {
  path: string;
  type: string;
  default: string;
  description?: string;
  section: boolean;
}
interface Generator {
  collectKeys(schema: unknown): Row[];
  undocumentedKeys(schema: unknown): string[];
  renderReference(schema: unknown): string;
}

const script = path.join(ROOT, 'scripts', 'gen-config-reference.mjs');
const gen = (await import(pathToFileURL(script).href)) as Generator;
const docPath = path.join(ROOT, 'docs', 'configuration.md');

t.test('every config key has a description', async (t) => {
  const rows = gen.collectKeys(configSchema);
  t.ok(rows.length >= 150, `the walk found the keys (${rows.length})`);
  t.same(gen.undocumentedKeys(configSchema), [], 'keys without .describe() in src/config/schema.ts');
});

t.test('docs/configuration.md is what the generator makes from the schema', async (t) => {
  const current = fs.existsSync(docPath) ? fs.readFileSync(docPath, 'utf8') : '';
  t.ok(current === gen.renderReference(configSchema), 'docs/configuration.md is stale: run `npm run build && node scripts/gen-config-reference.mjs`');
  const check = spawnSync(process.execPath, [script, '--check'], { cwd: ROOT, encoding: 'utf8' });
  t.equal(check.status, 0, `--check: ${check.stdout}${check.stderr}`);
});

t.test('the reference lists each key with its type and default, and says that limits.tiers replaces the default map', async (t) => {
  const doc = fs.readFileSync(docPath, 'utf8');
  for (const section of Object.keys(configSchema.shape)) t.match(doc, new RegExp(`^## ${section}$`, 'm'), `a section for ${section}`);
  t.match(doc, /^\| `server\.http\.port` \| integer 0–65_535 \| `8765` \| .+ \|$/m, 'type, range and default');
  t.match(doc, /^\| `auth\.store` \| `file` \\\| `postgres` \| `"file"` \| .+ \|$/m, 'an enum');
  t.match(doc, /^\| `apis\.<name>\.base_url` \| URL \| \*\(required\)\* \| .+ \|$/m, 'keys under names the operator picks');
  t.match(doc, /^\| `audit\.witnesses\[\]\.key` \| string \| \*\(required\)\* \| .+ \|$/m, 'keys of list items');
  t.match(doc, /^\| `observability\.slow_call_ms` \| integer 0–3_600_000 \| `1000` \|/m);
  const tiers = doc.split('\n').find((l) => l.startsWith('| `limits.tiers` |')) ?? '';
  t.match(tiers, /REPLACES the whole default map/, 'limits.tiers: replacing, not merging');
  t.match(tiers, /"standard":\{"capacity":100/, 'with the default map shown');
});

t.test('a stale or undescribed schema is caught', async (t) => {
  const { z } = await import('zod');
  const extended = configSchema.extend({ extra: z.object({ described: z.number().default(1).describe('yes'), bare: z.string().optional() }).default({}) });
  t.same(gen.undocumentedKeys(extended), ['extra', 'extra.bare'], 'a section and a key without text are named');
  t.not(gen.renderReference(extended), gen.renderReference(configSchema), 'a new key changes the reference');
});

t.test('bulwark.example.yaml parses under the schema and shows every top-level section', async (t) => {
  const file = path.join(ROOT, 'bulwark.example.yaml');
  const { config } = loadConfig({ file, env: { ...process.env, BULWARK_DATA: path.join(ROOT, 'demo', 'workspace') } });
  t.ok(config.filesystem.roots.length > 0);
  const doc = parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  t.same(Object.keys(doc).sort(), Object.keys(configSchema.shape).sort(), 'every section, and nothing else');
  // The defaults it states are the defaults (the loopback principal once said reader/standard).
  const defaults = configSchema.parse({});
  t.same(config.principals, defaults.principals, 'principals as the defaults');
  t.same(Object.keys(config.limits.tiers).sort(), Object.keys(defaults.limits.tiers).sort(), 'the default tiers, all listed');
  for (const name of Object.keys(defaults.limits.tiers)) {
    const [a, b] = [config.limits.tiers[name]!, defaults.limits.tiers[name]!];
    t.equal(a.capacity, b.capacity, `${name}: capacity`);
    t.ok(Math.abs(a.refill_per_s - b.refill_per_s) / b.refill_per_s < 0.001, `${name}: refill_per_s within 0.1% of the default`);
  }
  for (const key of ['server', 'auth', 'database', 'javascript', 'execution', 'observability'] as const) {
    const stated = config[key] as Record<string, unknown>;
    const def = defaults[key] as Record<string, unknown>;
    for (const [k, v] of Object.entries(stated)) {
      if (key === 'observability' && k === 'slow_call_ms_by_tool') continue; // an example of overrides
      if (key === 'database' && k === 'embedded') continue;
      t.same(v, def[k], `${key}.${k} is the default`);
    }
  }
  const text = fs.readFileSync(file, 'utf8');
  for (const key of [
    'auth.store',
    'auth.postgres_url',
    'limits.store',
    'limits.redis_url',
    'audit.rotation',
    'audit.checkpoint',
    'observability.slow_call_ms',
  ]) {
    const leaf = key.split('.').at(-1) as string;
    t.match(text, new RegExp(`^\\s*#?\\s*${leaf}:`, 'm'), `${key} is shown (live or commented)`);
  }
});
