import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../config/schema.js';
import { createKey, keyState, parseDuration, readKeyFile, readUsage, revokeKey } from '../auth/api-keys.js';
import { keysFileOf } from '../auth/runtime.js';

export const KEYS_HELP = `Usage:
  bulwark keys create --principal ID --roles a,b [--tier NAME] [--expires 90d] [--store FILE] [--config FILE] [--json]
                      print a new API key once (bwk_<id>_<secret>); only an argon2id hash is stored
  bulwark keys list   [--store FILE] [--config FILE] [--json]
                      id, principal, roles, tier, created, expires, revoked, last_used (never secrets)
  bulwark keys revoke KEY_ID [--store FILE] [--config FILE] [--json]
                      a running server stops accepting the key within auth.reload_check_ms (default 1 s)

The store defaults to auth.keys_file (relative to the config file; default .bulwark/keys.json).
Exit codes: 0 ok; 1 no such key; 2 usage or configuration error.
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
  const { config, baseDir } = loadConfig(values.config);
  const store = values.store ? path.resolve(values.store) : keysFileOf(config, baseDir);
  const out = (obj: unknown, text: string) => process.stdout.write(values.json ? `${JSON.stringify(obj)}\n` : text);

  switch (sub) {
    case 'create': {
      if (!values.principal || !/^[\x21-\x7e]{1,128}$/.test(values.principal)) return usage('--principal ID is required (printable ASCII, at most 128)');
      const roles = (values.roles ?? '').split(',').map((r) => r.trim()).filter(Boolean);
      if (!roles.length || roles.some((r) => !ROLE_RE.test(r))) return usage('--roles a,b is required (letters, digits, . _ : -)');
      const tier = values.tier ?? config.limits.default_tier;
      if (!config.limits.tiers[tier]) return usage(`--tier: no tier named "${tier}" in limits.tiers (${Object.keys(config.limits.tiers).join(', ')})`);
      let expiresInMs: number | undefined;
      try {
        expiresInMs = values.expires ? parseDuration(values.expires) : undefined;
      } catch (err) {
        return usage(`--expires: ${(err as Error).message}`);
      }
      const { token, record } = await createKey(store, { principal: values.principal, roles, tier, expiresInMs });
      const { hash: _hash, ...shown } = record;
      out({ key: token, ...shown, store }, `${token}\n\nKey ${record.id} for ${record.principal} (roles ${roles.join(',')}, tier ${tier}${record.expires ? `, expires ${record.expires}` : ''}).\nThis is the only time the key is shown; store it now. Store: ${store}\n`);
      return 0;
    }
    case 'list': {
      const usageTimes = readUsage(store);
      const rows = readKeyFile(store).keys.map((k) => ({
        id: k.id,
        principal: k.principal,
        roles: [...k.roles],
        tier: k.tier,
        created: k.created,
        expires: k.expires,
        revoked: k.revoked,
        last_used: usageTimes[k.id] ?? null,
        state: keyState(k),
      }));
      const lines = rows.map((r) => `${r.id}  ${r.state.padEnd(7)}  ${r.principal}  roles=${r.roles.join(',')}  tier=${r.tier}  created=${r.created}  expires=${r.expires ?? '-'}  revoked=${r.revoked ?? '-'}  last_used=${r.last_used ?? '-'}\n`);
      out({ store, keys: rows }, rows.length ? lines.join('') : `no keys in ${store}\n`);
      return 0;
    }
    case 'revoke': {
      const id = positionals[0];
      if (!id || positionals.length !== 1) return usage('revoke takes exactly one KEY_ID');
      const found = revokeKey(store, id);
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
