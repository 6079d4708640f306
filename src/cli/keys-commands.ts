import { parseArgs } from 'node:util';
import type { Config } from '../config/schema.js';
import { keyState, mintKey, parseDuration } from '../auth/api-keys.js';
import type { KeyStore } from '../auth/key-store.js';
import { openKeyStore } from '../auth/key-store-open.js';
import { installKeysSchema } from '../auth/postgres-key-store.js';
import { attributesProblems, type AttributeValue, type PrincipalAttributes } from '../core/principal-attributes.js';

export const KEYS_HELP = `Usage:
  bulwark keys create --principal ID --roles a,b [--tier NAME] [--expires 90d] [--attr NAME=VALUE ...]
                      [--store FILE|URL] [--config FILE] [--json]
                      print a new API key once (bwk_<id>_<secret>); only an argon2id hash is stored.
                      --attr sets a verified principal attribute (repeatable; the same NAME again
                      makes a list): the policy reads input.principal.attributes.NAME and row
                      filters take {"principal": "attributes.NAME"}. NAME is lower-case
                      [a-z][a-z0-9_]*, a VALUE at most 256 characters; fixed for the key's life
  bulwark keys list   [--store FILE|URL] [--config FILE] [--json]
                      id, principal, roles, tier, attributes, created, expires, revoked, last_used
                      (never secrets)
  bulwark keys revoke KEY_ID [--store FILE|URL] [--config FILE] [--json]
                      a running server stops accepting the key within auth.reload_check_ms (default 1 s)
  bulwark keys install-schema ADMIN_URL
                      apply sql/api-keys-postgres.sql (tables, guard triggers, roles bulwark_keys_reader
                      and bulwark_keys_admin) as an administrator; idempotent

The store is auth.store: the file auth.keys_file (relative to the config file; default
.bulwark/keys.json, changed under a lock file) or PostgreSQL at auth.postgres_url (use a login
granted bulwark_keys_admin). --store overrides it: a file path or a postgres:// URL.
Exit codes: 0 ok; 1 no such key or the store failed; 2 usage or configuration error.
`;

const ROLE_RE = /^[A-Za-z0-9._:-]{1,64}$/;

export async function runKeysCli(argv: string[], loadConfig: (file: string | undefined) => { config: Readonly<Config>; baseDir: string }): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    process.stdout.write(KEYS_HELP);
    return sub ? 0 : 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      principal: { type: 'string' },
      roles: { type: 'string' },
      tier: { type: 'string' },
      expires: { type: 'string' },
      attr: { type: 'string', multiple: true },
      store: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(KEYS_HELP);
    return 0;
  }
  const usage = (msg: string): number => {
    process.stderr.write(`bulwark keys: ${msg}\n`);
    return 2;
  };
  const out = (obj: unknown, text: string) => process.stdout.write(values.json ? `${JSON.stringify(obj)}\n` : text);
  if (sub === 'install-schema') {
    const url = positionals[0];
    if (!url || positionals.length !== 1 || !/^postgres(ql)?:\/\//.test(url)) return usage('install-schema takes exactly one postgres:// ADMIN_URL');
    try {
      await installKeysSchema(url);
    } catch (err) {
      // The URL holds a password: print the error only.
      process.stderr.write(`bulwark keys: install-schema failed: ${(err as Error).message}\n`);
      return 1;
    }
    out({ installed: true }, "installed sql/api-keys-postgres.sql; grant bulwark_keys_reader to the servers' login and bulwark_keys_admin to operators\n");
    return 0;
  }
  const { config, baseDir } = loadConfig(values.config);
  let keyStore: KeyStore;
  try {
    keyStore = openKeyStore(config, baseDir, values.store);
  } catch (err) {
    return usage((err as Error).message);
  }
  const store = keyStore.where;
  try {
    return await runVerb(sub, keyStore, store);
  } catch (err) {
    process.stderr.write(`bulwark keys: ${sub} failed on ${store}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await keyStore.close();
  }

  async function runVerb(sub: string, keyStore: KeyStore, store: string): Promise<number> {
    switch (sub) {
      case 'create': {
        if (!values.principal || !/^[\x21-\x7e]{1,128}$/.test(values.principal)) return usage('--principal ID is required (printable ASCII, at most 128)');
        const roles = (values.roles ?? '')
          .split(',')
          .map((r) => r.trim())
          .filter(Boolean);
        if (!roles.length || roles.some((r) => !ROLE_RE.test(r))) return usage('--roles a,b is required (letters, digits, . _ : -)');
        const tier = values.tier ?? config.limits.default_tier;
        if (!config.limits.tiers[tier]) return usage(`--tier: no tier named "${tier}" in limits.tiers (${Object.keys(config.limits.tiers).join(', ')})`);
        let expiresInMs: number | undefined;
        try {
          expiresInMs = values.expires ? parseDuration(values.expires) : undefined;
        } catch (err) {
          return usage(`--expires: ${(err as Error).message}`);
        }
        const attributes = attributesOf(values.attr ?? []);
        if (typeof attributes === 'string') return usage(`--attr: ${attributes}`);
        const { token, record } = await mintKey({ principal: values.principal, roles, tier, expiresInMs, attributes });
        await keyStore.add(record);
        const { hash: _hash, ...shown } = record;
        out(
          { key: token, ...shown, store },
          `${token}\n\nKey ${record.id} for ${record.principal} (roles ${roles.join(',')}, tier ${tier}${record.attributes ? `, attributes ${showAttributes(record.attributes)}` : ''}${record.expires ? `, expires ${record.expires}` : ''}).\nThis is the only time the key is shown; store it now. Store: ${store}\n`,
        );
        return 0;
      }
      case 'list': {
        const usageTimes = await keyStore.lastUsed();
        const snapshot = await keyStore.poll('');
        const rows = (snapshot?.keys ?? []).map((k) => ({
          id: k.id,
          principal: k.principal,
          roles: [...k.roles],
          tier: k.tier,
          attributes: { ...(k.attributes ?? {}) },
          created: k.created,
          expires: k.expires,
          revoked: k.revoked,
          last_used: usageTimes[k.id] ?? null,
          state: keyState(k),
        }));
        const lines = rows.map(
          (r) =>
            `${r.id}  ${r.state.padEnd(7)}  ${r.principal}  roles=${r.roles.join(',')}  tier=${r.tier}  attributes=${showAttributes(r.attributes)}  created=${r.created}  expires=${r.expires ?? '-'}  revoked=${r.revoked ?? '-'}  last_used=${r.last_used ?? '-'}\n`,
        );
        out({ store, keys: rows }, rows.length ? lines.join('') : `no keys in ${store}\n`);
        return 0;
      }
      case 'revoke': {
        const id = positionals[0];
        if (!id || positionals.length !== 1) return usage('revoke takes exactly one KEY_ID');
        const found = await keyStore.revoke(id, new Date());
        if (!found) {
          process.stderr.write(`bulwark keys: no key ${JSON.stringify(id)} in ${store}\n`);
          return 1;
        }
        out({ revoked: id, store }, `revoked ${id}\n`);
        return 0;
      }
      default:
        return usage(`unknown verb ${JSON.stringify(sub)}\n${KEYS_HELP}`);
    }
  }
}

/**
 * `--attr NAME=VALUE`, repeatable; the same NAME again makes a list. Returns the attributes, or
 * what is wrong with them (checked with the same rules the server applies when it reads the key).
 */
export function attributesOf(flags: readonly string[]): PrincipalAttributes | string {
  const out = new Map<string, string[]>();
  for (const flag of flags) {
    const i = flag.indexOf('=');
    if (i <= 0) return `expected NAME=VALUE, got ${JSON.stringify(flag.slice(0, 80))}`;
    const name = flag.slice(0, i);
    out.set(name, [...(out.get(name) ?? []), flag.slice(i + 1)]);
  }
  const attributes: Record<string, AttributeValue> = {};
  for (const [name, values] of out) attributes[name] = values.length === 1 ? (values[0] as string) : values;
  const problems = attributesProblems(attributes);
  return problems.length > 0 ? problems.join('; ') : attributes;
}

/** `region="eu",teams=["a","b"]` (JSON values) for one line of `keys list`; `-` when there are none. */
function showAttributes(a: PrincipalAttributes): string {
  const entries = Object.entries(a);
  if (entries.length === 0) return '-';
  return entries.map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify([...v])}`).join(',');
}
