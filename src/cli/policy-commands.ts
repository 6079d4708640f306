import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../config/package-paths.js';
import { findOpa, OPA_VERSION } from './opa.js';
import { EXIT } from './exit-codes.js';
import { printHelp } from './help.js';
import { runPolicyEval } from './policy-eval.js';
import { runPolicyBundleBuild } from './policy-bundle.js';
import { POLICY_HELP } from './policy-help.js';

function runOpa(args: string[]): number {
  const opa = findOpa();
  if (!opa) {
    process.stderr.write(`bulwark: opa ${OPA_VERSION} not found; run \`bash scripts/toolchain.sh\`\n`);
    return EXIT.usage;
  }
  const r = spawnSync(opa, args, { stdio: 'inherit', cwd: PACKAGE_ROOT });
  return r.status === 0 ? EXIT.ok : EXIT.failed;
}

export async function runPolicyCli(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') return printHelp(POLICY_HELP);
  // With --bundle: a signed OPA bundle for policy.bundle / policy.bundle_url; without: the committed policy.wasm.
  if (sub === 'build' && rest.some((a) => a === '--bundle' || a.startsWith('--bundle='))) return runPolicyBundleBuild(rest);
  if (sub === 'build') {
    const r = spawnSync('bash', [path.join(PACKAGE_ROOT, 'scripts', 'build-policy.sh')], { stdio: 'inherit', cwd: PACKAGE_ROOT });
    return r.status === 0 ? EXIT.ok : EXIT.failed;
  }
  if (sub === 'test') return runOpa(['test', 'policies/', '-v']);
  if (sub === 'eval') return runPolicyEval(rest);
  process.stderr.write(`bulwark policy: unknown subcommand ${sub}\n`);
  return printHelp(POLICY_HELP, EXIT.usage);
}
