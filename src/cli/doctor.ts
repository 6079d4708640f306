import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { LoadedConfig } from '../config/loader.js';
import { createLogger } from '../observability/logger.js';
import { loadPolicyEngine } from '../app.js';
import { UnavailablePolicy } from '../policy/engine.js';
import { authDoctorChecks, type DoctorCheck } from './doctor-auth.js';
import { loadFromOptions } from './config-options.js';
import { EXIT } from './exit-codes.js';
import { printHelp } from './help.js';

export const DOCTOR_HELP =
  'Usage: bulwark doctor [--config FILE] [--root DIR]... [--json]\n' +
  '  Checks: config, policy, audit, keys (auth.keys_file), oauth (JWKS), database (PostgreSQL ping), roots\n';

async function policyCheck(loaded: LoadedConfig): Promise<DoctorCheck> {
  const { policy } = await loadPolicyEngine(loaded, createLogger('error'));
  if (policy instanceof UnavailablePolicy) return { check: 'policy', ok: false, detail: `${policy.error.message} — rebuild with \`bulwark policy build\`` };
  return { check: 'policy', ok: policy.ready, detail: `revision ${policy.revision}` };
}

function auditCheck(loaded: LoadedConfig): DoctorCheck {
  const dir = path.dirname(loaded.config.audit.path);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.accessSync(dir, fs.constants.W_OK);
    return { check: 'audit', ok: true, detail: `${loaded.config.audit.path} (${loaded.config.audit.durability})` };
  } catch (err) {
    return { check: 'audit', ok: false, detail: `cannot write ${dir}: ${(err as Error).message}` };
  }
}

function rootChecks(loaded: LoadedConfig): DoctorCheck[] {
  return loaded.config.filesystem.roots.map((root) => {
    try {
      fs.accessSync(root, fs.constants.R_OK | fs.constants.X_OK);
      return { check: 'root', ok: true, detail: root };
    } catch (err) {
      return { check: 'root', ok: false, detail: `${root}: ${(err as Error).message}` };
    }
  });
}

/** `bulwark doctor`: every check runs and is reported, so one run lists everything that is wrong. Exit 1 if any failed. */
export async function runDoctor(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, root: { type: 'string', multiple: true }, json: { type: 'boolean' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) return printHelp(DOCTOR_HELP);
  const checks: DoctorCheck[] = [];
  let loaded: LoadedConfig | undefined;
  try {
    loaded = loadFromOptions(values);
    checks.push({ check: 'config', ok: true, detail: loaded.source });
  } catch (err) {
    checks.push({ check: 'config', ok: false, detail: (err as Error).message });
  }
  if (loaded) {
    checks.push(await policyCheck(loaded));
    checks.push(auditCheck(loaded));
    const configDir = loaded.source === 'embedded defaults' ? process.cwd() : path.dirname(loaded.source);
    checks.push(...(await authDoctorChecks(loaded.config, configDir)));
    checks.push(...rootChecks(loaded));
  }
  const ok = checks.every((c) => c.ok);
  if (values.json) process.stdout.write(`${JSON.stringify({ ok, checks })}\n`);
  else for (const c of checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'} ${c.check.padEnd(7)} ${c.detail}\n`);
  return ok ? EXIT.ok : EXIT.failed;
}
