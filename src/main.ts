import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type LoadedConfig } from './config/loader.js';
import { PACKAGE_ROOT } from './config/package-paths.js';
import { createLogger } from './observability/logger.js';
import { createApp, loadPolicyEngine, toolEnvFor } from './app.js';
import { NO_POOLS } from './execution/pools.js';
import { serveStdio } from './transport/stdio.js';
import { serveHttp } from './transport/http/server.js';
import { AUDIT_HELP, runAuditCli } from './cli/audit-commands.js';
import { KEYS_HELP, runKeysCli } from './cli/keys-commands.js';
import { WITNESS_HELP, runWitnessCli } from './cli/witness-commands.js';
import { authDoctorChecks } from './auth/doctor.js';
import type { HttpServerHandle } from './transport/http/server.js';
import { findOpa, OPA_VERSION } from './cli/opa.js';
import { dryRun } from './gate/run.js';
import { initSqlAnalysis } from './analysis/sql.js';
import type { Principal } from './core/call.js';
import { buildRegistry } from './tools/registry.js';
import { MemoryRateStore } from './limits/rate-store.js';
import { GateMetrics } from './observability/gate-metrics.js';
import type { GateDeps } from './gate/deps.js';
import type { AuditLog } from './audit/audit-log.js';
import { asStartupError, listenError, preflightAudit, StartupError } from './cli/startup-checks.js';
import { preflightListen } from './transport/listen-probe.js';

/** Exit codes (documented in README): 0 ok, 1 check failed, 2 usage or config error, 70 internal. */
const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;

const HELP: Record<string, string> = {
  main: `bulwark — a security-hardened MCP server

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
`,
  serve: `Usage: bulwark serve [--config FILE] [--root DIR]... [--http [HOST:]PORT]

  --config FILE   YAML configuration (default: embedded defaults)
  --root DIR      a filesystem root (repeatable; replaces filesystem.roots)
  --http [H:]P    serve Streamable HTTP on HOST:PORT (default host 127.0.0.1) instead of stdio
`,
  policy: `Usage:
  bulwark policy build                 opa build the Rego in policies/ to policies/policy.wasm
  bulwark policy test                  opa test policies/ (with coverage)
  bulwark policy eval --tool NAME [--args JSON] [--config FILE] [--root DIR]... [--roles a,b] [--principal ID] [--json]
                                       what would the gate decide for this call? (nothing is executed or recorded)
`,
  audit: AUDIT_HELP,
  keys: KEYS_HELP,
  witness: WITNESS_HELP,
  doctor: `Usage: bulwark doctor [--config FILE] [--root DIR]... [--json]\n  Checks: config, policy, audit, keys (auth.keys_file), oauth (JWKS), database (PostgreSQL ping), roots\n`,
};

function load(values: { config?: string | undefined; root?: string[] | undefined; http?: string | undefined }): LoadedConfig {
  return loadConfig({ file: values.config, roots: values.root, http: values.http });
}

async function cmdServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, root: { type: 'string', multiple: true }, http: { type: 'string' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) return help('serve');
  const loaded = load(values);
  preflightAudit(loaded.config);
  await preflightListen(loaded.config);
  const logger = createLogger(loaded.config.observability.log_level);
  let app: Awaited<ReturnType<typeof createApp>>;
  try {
    app = await createApp(loaded, logger);
  } catch (err) {
    throw asStartupError(err) ?? err;
  }
  logger.info('configuration loaded', { source: loaded.source, roots: loaded.config.filesystem.roots, audit: loaded.config.audit.path });
  let httpHandle: HttpServerHandle | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    // Stop accepting, let in-flight calls finish (and be recorded) up to 10 s, then close the
    // audit log (final checkpoint) and the pools.
    await httpHandle?.close(10_000).catch((err: Error) => logger.error('http close failed', { error: err.message }));
    await app.close();
    process.exit(EXIT.ok);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  if (loaded.config.server.transport === 'http') {
    let h: HttpServerHandle;
    try {
      h = await serveHttp(app);
    } catch (err) {
      const refused = listenError(loaded.config, err);
      if (!refused) throw err;
      await app.close();
      throw refused;
    }
    httpHandle = h;
    logger.info('serving MCP over Streamable HTTP', { url: h.url });
    // Humans start this with `npm start`: tell them how to connect (on stderr, like every log).
    process.stderr.write(`\nBulwark is listening on ${h.url}\n` +
      `  Connect an MCP client (Streamable HTTP) to that URL, e.g.\n` +
      `    npx @modelcontextprotocol/inspector --transport http --server-url ${h.url}\n` +
      `  Health: ${h.url.replace(/\/mcp$/, '')}/health   Ready: ${h.url.replace(/\/mcp$/, '')}/ready\n` +
      `  Roots: ${loaded.config.filesystem.roots.join(', ')}   Audit log: ${loaded.config.audit.path}\n\n`);
    await new Promise(() => undefined);
  } else {
    const { closed } = await serveStdio(app);
    await closed;
    await app.close();
  }
  return EXIT.ok;
}

function runOpa(args: string[]): number {
  const opa = findOpa();
  if (!opa) {
    process.stderr.write(`bulwark: opa ${OPA_VERSION} not found; run \`bash scripts/toolchain.sh\`\n`);
    return EXIT.usage;
  }
  const r = spawnSync(opa, args, { stdio: 'inherit', cwd: PACKAGE_ROOT });
  return r.status === 0 ? EXIT.ok : EXIT.failed;
}

async function cmdPolicy(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') return help('policy');
  if (sub === 'build') {
    const r = spawnSync('bash', [path.join(PACKAGE_ROOT, 'scripts', 'build-policy.sh')], { stdio: 'inherit', cwd: PACKAGE_ROOT });
    return r.status === 0 ? EXIT.ok : EXIT.failed;
  }
  if (sub === 'test') return runOpa(['test', 'policies/', '-v']);
  if (sub === 'eval') return policyEval(rest);
  process.stderr.write(`bulwark policy: unknown subcommand ${sub}\n`);
  return help('policy', EXIT.usage);
}

async function policyEval(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      tool: { type: 'string' }, args: { type: 'string' }, config: { type: 'string' }, root: { type: 'string', multiple: true },
      roles: { type: 'string' }, principal: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help || !values.tool) return help('policy', values.help ? EXIT.ok : EXIT.usage);
  let args: unknown = {};
  try {
    args = values.args ? JSON.parse(values.args) : {};
  } catch {
    process.stderr.write('bulwark policy eval: --args is not valid JSON\n');
    return EXIT.usage;
  }
  const loaded = load(values);
  const logger = createLogger('error');
  const { policy, data } = await loadPolicyEngine(loaded, logger);
  const deps: GateDeps = {
    config: loaded.config, logger, policy, tools: buildRegistry(),
    toolEnv: toolEnvFor(loaded, logger, data, NO_POOLS), buckets: new MemoryRateStore(),
    audit: undefined as unknown as AuditLog, metrics: new GateMetrics(),
  };
  const context = { transport: 'stdio' as const, requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal };
  const asPrincipal = (p: Principal): Principal => ({ ...p, ...(values.principal ? { id: values.principal } : {}), ...(values.roles ? { roles: values.roles.split(',').filter(Boolean) } : {}) });
  // The same stages a call passes, up to the decision: SQL needs its parser like a server does.
  await initSqlAnalysis();
  const out = await dryRun({ tool: values.tool, args, context }, deps, { asPrincipal });
  return printEval({ ...out, ...(out.decision ? { policy_revision: policy.revision } : {}) }, values.json);
}

function printEval(out: Record<string, unknown>, json: boolean | undefined): number {
  const allowed = !out.denial;
  if (json) process.stdout.write(`${JSON.stringify({ allow: allowed, ...out })}\n`);
  else process.stdout.write(`${allowed ? 'ALLOW' : 'DENY'}\n${JSON.stringify(out, null, 2)}\n`);
  return allowed ? EXIT.ok : EXIT.failed;
}

async function cmdAudit(argv: string[]): Promise<number> {
  // Verbs, options and help live in src/cli/audit-commands.ts; the config gives the defaults.
  return runAuditCli(argv, (file) => ({ config: loadConfig({ file }).config, baseDir: file ? path.dirname(path.resolve(file)) : process.cwd() }));
}

async function cmdKeys(argv: string[]): Promise<number> {
  return runKeysCli(argv, (file) => ({ config: loadConfig({ file }).config, baseDir: file ? path.dirname(path.resolve(file)) : process.cwd() }));
}

async function cmdDoctor(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, root: { type: 'string', multiple: true }, json: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) return help('doctor');
  const checks: { check: string; ok: boolean; detail: string }[] = [];
  let loaded: LoadedConfig | undefined;
  try {
    loaded = load(values);
    checks.push({ check: 'config', ok: true, detail: loaded.source });
  } catch (err) {
    checks.push({ check: 'config', ok: false, detail: (err as Error).message });
  }
  if (loaded) {
    const { policy } = await loadPolicyEngine(loaded, createLogger('error'));
    checks.push({ check: 'policy', ok: policy.ready, detail: policy.ready ? `revision ${policy.revision}` : `${(policy as unknown as { error: Error }).error.message} — rebuild with \`bulwark policy build\`` });
    const dir = path.dirname(loaded.config.audit.path);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.accessSync(dir, fs.constants.W_OK);
      checks.push({ check: 'audit', ok: true, detail: `${loaded.config.audit.path} (${loaded.config.audit.durability})` });
    } catch (err) {
      checks.push({ check: 'audit', ok: false, detail: `cannot write ${dir}: ${(err as Error).message}` });
    }
    checks.push(...(await authDoctorChecks(loaded.config, loaded.source === 'embedded defaults' ? process.cwd() : path.dirname(loaded.source))));
    for (const root of loaded.config.filesystem.roots) {
      try {
        fs.accessSync(root, fs.constants.R_OK | fs.constants.X_OK);
        checks.push({ check: 'root', ok: true, detail: root });
      } catch (err) {
        checks.push({ check: 'root', ok: false, detail: `${root}: ${(err as Error).message}` });
      }
    }
  }
  const ok = checks.every((c) => c.ok);
  if (values.json) process.stdout.write(`${JSON.stringify({ ok, checks })}\n`);
  else for (const c of checks) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'} ${c.check.padEnd(7)} ${c.detail}\n`);
  return ok ? EXIT.ok : EXIT.failed;
}

function help(topic: string, code: number = EXIT.ok): number {
  (code === EXIT.ok ? process.stdout : process.stderr).write(HELP[topic] ?? HELP.main!);
  return code;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'serve':
      return cmdServe(rest);
    case 'policy':
      return cmdPolicy(rest);
    case 'audit':
      return cmdAudit(rest);
    case 'keys':
      return cmdKeys(rest);
    case 'witness':
      return runWitnessCli(rest);
    case 'doctor':
      return cmdDoctor(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      return help('main', cmd === undefined ? EXIT.usage : EXIT.ok);
    case '--version':
      process.stdout.write('0.1.0\n');
      return EXIT.ok;
    default:
      process.stderr.write(`bulwark: unknown command ${cmd}\n`);
      return help('main', EXIT.usage);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof StartupError) {
      process.stderr.write(`bulwark: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`bulwark: ${err.message}\n`);
      process.exit(EXIT.usage);
    }
    if (err instanceof TypeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`bulwark: ${err.message}\n`);
      process.exit(EXIT.usage);
    }
    process.stderr.write(`bulwark: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(EXIT.internal);
  },
);
