#!/usr/bin/env node
// Generates docs/configuration.md from the zod schema that validates bulwark.yaml (the compiled
// dist/src/config/schema.js, so run `npm run build` first): every key with its type, default and
// the text of its `.describe()`. The schema is the one source; test/config-reference.test.ts fails
// when the file is stale or a key has no description.
//
// Usage: node scripts/gen-config-reference.mjs [--check] [--out FILE]
//   --check   do not write; exit 1 if FILE differs from what would be generated (or keys lack text)
//   --out     the file to write or check (default docs/configuration.md)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Wrappers that change neither the shape nor the meaning of a key, outermost first. */
function unwrap(schema) {
  let s = schema;
  let description;
  let defaultValue;
  let hasDefault = false;
  let optional = false;
  for (;;) {
    description ??= s.description;
    const t = s._def.typeName;
    if (t === 'ZodDefault') {
      if (!hasDefault) defaultValue = s._def.defaultValue();
      hasDefault = true;
      s = s._def.innerType;
    } else if (t === 'ZodOptional' || t === 'ZodNullable') {
      optional = true;
      s = s._def.innerType;
    } else if (t === 'ZodEffects') {
      s = s._def.schema;
    } else if (t === 'ZodBranded' || t === 'ZodReadonly' || t === 'ZodCatch') {
      s = t === 'ZodBranded' ? s._def.type : s._def.innerType;
    } else if (t === 'ZodPipeline') {
      s = s._def.in;
    } else {
      return { inner: s, description, hasDefault, defaultValue, optional };
    }
  }
}

function numberType(s) {
  const checks = s._def.checks ?? [];
  const int = checks.some((c) => c.kind === 'int');
  let min = checks.find((c) => c.kind === 'min');
  const max = checks.find((c) => c.kind === 'max');
  let range = '';
  // An integer above 0 is an integer from 1.
  if (int && min && !min.inclusive && Number.isInteger(min.value)) min = { ...min, value: min.value + 1, inclusive: true };
  const fmt = (n) => (Number.isInteger(n) && Math.abs(n) >= 10_000 ? n.toLocaleString('en-US').replaceAll(',', '_') : String(n));
  if (min && max) range = min.inclusive ? ` ${fmt(min.value)}–${fmt(max.value)}` : ` > ${fmt(min.value)}, ≤ ${fmt(max.value)}`;
  else if (min) range = min.value === 0 && min.inclusive ? ' ≥ 0' : ` ${min.inclusive ? '≥' : '>'} ${fmt(min.value)}`;
  else if (max) range = ` ${max.inclusive ? '≤' : '<'} ${fmt(max.value)}`;
  return `${int ? 'integer' : 'number'}${range}`;
}

function stringType(s) {
  const checks = s._def.checks ?? [];
  if (checks.some((c) => c.kind === 'url')) return 'URL';
  return 'string';
}

/** A short type name for a schema (no recursion into objects: those get their own rows). */
function typeName(schema) {
  const { inner } = unwrap(schema);
  switch (inner._def.typeName) {
    case 'ZodString':
      return stringType(inner);
    case 'ZodNumber':
      return numberType(inner);
    case 'ZodBoolean':
      return 'boolean';
    case 'ZodEnum':
      return inner._def.values.map((v) => `\`${v}\``).join(' | ');
    case 'ZodLiteral':
      return `\`${JSON.stringify(inner._def.value)}\``;
    case 'ZodArray':
      return `list of ${typeName(inner._def.type)}`;
    case 'ZodRecord':
      return `map: name → ${typeName(inner._def.valueType)}`;
    case 'ZodObject':
      return 'object';
    case 'ZodUnion':
      return inner._def.options.map((o) => typeName(o)).join(' or ');
    case 'ZodUnknown':
    case 'ZodAny':
      return 'any';
    default:
      throw new Error(`gen-config-reference: no rendering for ${inner._def.typeName}`);
  }
}

function isObject(schema) {
  return unwrap(schema).inner._def.typeName === 'ZodObject';
}

/** A list whose items are objects (audit.witnesses): their keys get rows of their own. */
function listOfObjects(schema) {
  const { inner } = unwrap(schema);
  return inner._def.typeName === 'ZodArray' && isObject(inner._def.type) ? inner._def.type : undefined;
}

/** A record whose values are objects: its keys are names the operator picks (apis, tiers). */
function recordOfObjects(schema) {
  const { inner } = unwrap(schema);
  return inner._def.typeName === 'ZodRecord' && isObject(inner._def.valueType) ? inner._def.valueType : undefined;
}

function formatDefault(u) {
  if (!u.hasDefault) return u.optional ? '*(unset)*' : '*(required)*';
  const v = u.defaultValue;
  // An object section's default is `{}`: its keys' own defaults apply (listed in their rows).
  if (u.inner._def.typeName === 'ZodObject' && v && typeof v === 'object' && Object.keys(v).length === 0) return '*(see keys)*';
  const text = JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isInteger(x) ? Number(x.toPrecision(6)) : x));
  return `\`${text.replaceAll('|', '\\|')}\``;
}

const cell = (text) => String(text).replaceAll('\n', ' ').replaceAll('|', '\\|').replace(/\s+/g, ' ').trim();

/**
 * Every key under `schema` (an object), depth first in schema order: `{ path, type, default,
 * description, section }` where section marks an object whose keys follow.
 */
export function collectKeys(schema, prefix = '') {
  const rows = [];
  const shape = unwrap(schema).inner._def.shape();
  for (const [key, child] of Object.entries(shape)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const u = unwrap(child);
    const values = recordOfObjects(child);
    const items = listOfObjects(child);
    if (items) {
      rows.push({ path, type: 'list of objects', default: formatDefault(u), description: u.description, section: true });
      rows.push(...collectKeys(items, `${path}[]`));
    } else if (values) {
      rows.push({ path, type: `map: name → object`, default: formatDefault(u), description: u.description, section: true });
      rows.push(...collectKeys(values, `${path}.<name>`));
    } else if (isObject(child)) {
      rows.push({ path, type: 'object', default: formatDefault(u), description: u.description, section: true });
      rows.push(...collectKeys(child, path));
    } else {
      rows.push({ path, type: typeName(child), default: formatDefault(u), description: u.description, section: false });
    }
  }
  return rows;
}

/** Keys whose schema carries no `.describe()` text. */
export function undocumentedKeys(schema) {
  return collectKeys(schema)
    .filter((r) => !r.description || !r.description.trim())
    .map((r) => r.path);
}

/** The Markdown reference for `schema` (the config schema: an object of sections). */
export function renderReference(schema) {
  const rows = collectKeys(schema);
  const top = rows.filter((r) => !r.path.includes('.'));
  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated by scripts/gen-config-reference.mjs from src/config/schema.ts: do not edit by hand. -->',
    '<!-- Regenerate with `npm run build && node scripts/gen-config-reference.mjs`. -->',
    '',
    'Bulwark reads one YAML file (`bulwark.yaml`, or `--config FILE`) and validates it against this schema at',
    'start-up: an unknown key, a value of the wrong type or out of range stops the process with the key path',
    'before anything is served. Every key is optional unless marked *(required)*; an omitted key takes the',
    'default shown. `${NAME}` anywhere in a value is replaced by the environment variable `NAME` (a missing',
    'variable is an error naming the key): keep secrets there. Relative paths are resolved against the folder',
    'of the config file. `bulwark.example.yaml` is a commented example of every section.',
    '',
    "A default of *(see keys)* means the section is filled from its keys' defaults; *(unset)* means the key",
    'has no value unless given. In a `map: name → …` the names are yours (an upstream, a tier); a map given in',
    'the file replaces the default map as a whole, it is not merged with it.',
    '',
    '## Sections',
    '',
    ...top.map((r) => `- [\`${r.path}\`](#${r.path}): ${cell(r.description ?? '')}`),
    '',
  ];
  for (const section of top) {
    out.push(`## ${section.path}`, '', cell(section.description ?? ''), '');
    out.push('| Key | Type | Default | Description |', '|---|---|---|---|');
    for (const r of rows.filter((x) => x.path === section.path || x.path.startsWith(`${section.path}.`))) {
      out.push(`| \`${r.path}\` | ${cell(r.type)} | ${r.default} | ${cell(r.description ?? '')} |`);
    }
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

export async function loadSchema(root = ROOT) {
  const file = join(root, 'dist', 'src', 'config', 'schema.js');
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  return (await import(pathToFileURL(file).href)).configSchema;
}

async function main(argv) {
  const check = argv.includes('--check');
  const outIdx = argv.indexOf('--out');
  const target = outIdx >= 0 ? resolve(argv[outIdx + 1]) : join(ROOT, 'docs', 'configuration.md');
  const schema = await loadSchema();
  const missing = undocumentedKeys(schema);
  if (missing.length) {
    console.error(`gen-config-reference: keys without a .describe() text in src/config/schema.ts:\n  ${missing.join('\n  ')}`);
    if (check) return 1;
  }
  const text = renderReference(schema);
  if (check) {
    const current = existsSync(target) ? readFileSync(target, 'utf8') : '';
    if (current !== text) {
      console.error(`gen-config-reference: ${target} is stale; run \`node scripts/gen-config-reference.mjs\``);
      return 1;
    }
    console.log(`gen-config-reference: ${target} is up to date`);
    return 0;
  }
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, text);
  console.log(`gen-config-reference: wrote ${target} (${text.split('\n').filter((l) => l.startsWith('| `')).length} keys)`);
  return missing.length ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
