import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { configSchema, type Config } from './schema.js';
import { DEFAULT_POLICY_DATA, DEFAULT_POLICY_WASM, DEMO_WORKSPACE } from './package-paths.js';

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadOptions {
  /** Path of a YAML file; absent means embedded defaults. */
  file?: string | undefined;
  /** `--root` directories; when given they replace filesystem.roots. */
  roots?: readonly string[] | undefined;
  /** `--http [HOST:]PORT`. */
  http?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig {
  readonly config: Readonly<Config>;
  /** Where it came from, for `doctor` and start-up logs; never the secrets. */
  readonly source: string;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replace `${NAME}` in every string scalar; a missing variable is an error naming the key path. */
function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, at: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) {
        problems.push(`${at || '(root)'}: environment variable ${name} is not set`);
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, `${at}[${i}]`, problems));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, at ? `${at}.${k}` : k, problems);
    return out;
  }
  return value;
}

function describeIssue(issue: ZodIssue): string {
  const where = issue.path.length ? issue.path.map(String).join('.') : '(root)';
  if (issue.code === 'unrecognized_keys') return `${where}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_type') return `${where}: expected ${issue.expected}, got ${issue.received}`;
  if (issue.code === 'invalid_enum_value') return `${where}: expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
  return `${where}: ${issue.message}`;
}

function parseHttp(spec: string): { host?: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(spec);
  if (!m) throw new ConfigError([`--http: expected [HOST:]PORT, got ${JSON.stringify(spec)}`]);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError([`--http: port ${port} is out of range`]);
  return m[1] ? { host: m[1].replace(/^\[|\]$/g, ''), port } : { port };
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`]);
  }
  // Aliases are capped and duplicate keys are errors: a config must mean one thing.
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) throw new ConfigError(doc.errors.map((e) => `${file}: ${e.message.split('\n')[0]}`));
  try {
    return doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw new ConfigError([`${file}: ${(err as Error).message}`]);
  }
}

/** Load, substitute, validate, resolve paths, freeze. Throws ConfigError listing every problem. */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const raw = opts.file ? readYaml(opts.file) : {};
  const substituted = substituteEnv(raw, env, '', problems);
  if (problems.length) throw new ConfigError(problems);

  const parsed = configSchema.safeParse(substituted);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map(describeIssue));
  const config = parsed.data;
  const base = opts.file ? path.dirname(path.resolve(opts.file)) : process.cwd();
  const resolve = (p: string) => path.resolve(base, p);

  if (opts.http !== undefined) {
    const { host, port } = parseHttp(opts.http);
    config.server.transport = 'http';
    config.server.http.port = port;
    if (host) config.server.http.host = host;
  }
  const roots = opts.roots?.length ? opts.roots.map((r) => path.resolve(r)) : config.filesystem.roots.map(resolve);
  config.filesystem.roots = roots.length ? roots : [DEMO_WORKSPACE];
  config.filesystem.roots = config.filesystem.roots.map((root, i) => {
    // Roots are compared by real path, so resolve links in the operator's own configuration once.
    try {
      const real = fs.realpathSync.native(root);
      if (!fs.statSync(real).isDirectory()) problems.push(`filesystem.roots[${i}]: ${root} is not a directory`);
      return real;
    } catch {
      problems.push(`filesystem.roots[${i}]: ${root} does not exist`);
      return root;
    }
  });
  config.policy.wasm = config.policy.wasm ? resolve(config.policy.wasm) : DEFAULT_POLICY_WASM;
  config.policy.data = config.policy.data ? resolve(config.policy.data) : DEFAULT_POLICY_DATA;
  config.audit.path = resolve(config.audit.path);
  if (!config.limits.tiers[config.limits.default_tier]) problems.push(`limits.default_tier: no tier named "${config.limits.default_tier}" in limits.tiers`);
  for (const [tool, spec] of Object.entries(config.limits.per_tool)) {
    if (typeof spec === 'string' && !config.limits.tiers[spec]) problems.push(`limits.per_tool.${tool}: no tier named "${spec}" in limits.tiers`);
  }
  for (const [name, p] of Object.entries(config.principals)) {
    if (!config.limits.tiers[p.tier]) problems.push(`principals.${name}.tier: no tier named "${p.tier}" in limits.tiers`);
  }
  if (problems.length) throw new ConfigError(problems);
  return { config: deepFreeze(config), source: opts.file ? path.resolve(opts.file) : 'embedded defaults' };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
