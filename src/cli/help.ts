import { EXIT } from './exit-codes.js';

export const MAIN_HELP = `bulwark — a security-hardened MCP server

Usage: bulwark <command> [options]

Commands:
  serve                 Serve MCP over stdio (default) or Streamable HTTP (--http)
  policy build|test|eval  Build the Rego policy to wasm, run opa test, or ask what the gate would decide
  audit verify|tail|show|export|prove|keygen
                        Check the log (chain, checkpoints), read it, prove inclusion, make keys
  keys create|list|revoke
                        Manage API keys for HTTP (auth.http: api_key)
  witness serve|keygen  A C2SP tlog-witness that cosigns audit checkpoints which extend what it saw
  doctor                Check config, policy and audit log, and say what is wrong

Run \`bulwark <command> --help\` for a command's options.
Exit codes: 0 success; 1 a check failed (audit damaged, doctor found a problem, policy test failed);
2 usage or configuration error; 70 internal error.
`;

/** Asked-for help goes to stdout and exits 0; help shown because of a usage error goes to stderr. */
export function printHelp(text: string, code: number = EXIT.ok): number {
  (code === EXIT.ok ? process.stdout : process.stderr).write(text);
  return code;
}

/** `bulwark`, `bulwark help`, `--help`, `-h`: bare `bulwark` is a usage error (exit 2). */
export function runHelp(cmd: string | undefined): number {
  return printHelp(MAIN_HELP, cmd === undefined ? EXIT.usage : EXIT.ok);
}

export function runUnknownCommand(cmd: string): number {
  process.stderr.write(`bulwark: unknown command ${cmd}\n`);
  return printHelp(MAIN_HELP, EXIT.usage);
}
