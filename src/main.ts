import { runAuditCli } from './cli/audit-commands.js';
import { configWithBase } from './cli/config-options.js';
import { runDoctor } from './cli/doctor.js';
import { failureOf } from './cli/exit-codes.js';
import { runHelp, runUnknownCommand } from './cli/help.js';
import { runKeysCli } from './cli/keys-commands.js';
import { runPolicyCli } from './cli/policy-commands.js';
import { runServe } from './cli/serve.js';
import { runVersion } from './cli/version.js';
import { runWitnessCli } from './cli/witness-commands.js';

/** The first word picks the command (src/cli/); each parses its own options and returns its exit code. */
async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return runServe(rest);
    case 'policy':
      return runPolicyCli(rest);
    case 'audit':
      return runAuditCli(rest, configWithBase);
    case 'keys':
      return runKeysCli(rest, configWithBase);
    case 'witness':
      return runWitnessCli(rest);
    case 'doctor':
      return runDoctor(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      return runHelp(cmd);
    case '--version':
      return runVersion();
    default:
      return runUnknownCommand(cmd);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const { message, code } = failureOf(err);
    process.stderr.write(`bulwark: ${message}\n`);
    process.exit(code);
  },
);
