import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { createLogger } from '../observability/logger.js';
import { loadPolicyEngine, toolEnvFor } from '../app.js';
import { NO_POOLS } from '../execution/pools.js';
import { dryRun } from '../gate/run.js';
import { initSqlAnalysis } from '../analysis/sql.js';
import type { Principal } from '../core/call.js';
import { buildRegistry } from '../tools/registry.js';
import { MemoryRateStore } from '../limits/rate-store.js';
import { GateMetrics } from '../observability/gate-metrics.js';
import type { GateDeps } from '../gate/deps.js';
import type { AuditLog } from '../audit/audit-log.js';
import { loadFromOptions } from './config-options.js';
import { EXIT } from './exit-codes.js';
import { printHelp } from './help.js';
import { POLICY_HELP } from './policy-help.js';
import { attributesOf } from './keys-commands.js';

/**
 * `bulwark policy eval`: what the gate would decide for one call, by the gate's own stages up to
 * `decide` (gate/run.ts dryRun). Nothing is executed, recorded or counted. Exit 0 allow, 1 deny.
 */
export async function runPolicyEval(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      tool: { type: 'string' },
      args: { type: 'string' },
      config: { type: 'string' },
      root: { type: 'string', multiple: true },
      roles: { type: 'string' },
      principal: { type: 'string' },
      attr: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help || !values.tool) return printHelp(POLICY_HELP, values.help ? EXIT.ok : EXIT.usage);
  let args: unknown;
  try {
    args = values.args ? JSON.parse(values.args) : {};
  } catch {
    process.stderr.write('bulwark policy eval: --args is not valid JSON\n');
    return EXIT.usage;
  }
  // As `keys create --attr` would store them: the same rules, so a dry run sees what a key could carry.
  const attributes = values.attr ? attributesOf(values.attr) : undefined;
  if (typeof attributes === 'string') {
    process.stderr.write(`bulwark policy eval: --attr: ${attributes}\n`);
    return EXIT.usage;
  }
  const loaded = loadFromOptions(values);
  const logger = createLogger('error');
  const { policy, data } = await loadPolicyEngine(loaded, logger);
  const deps: GateDeps = {
    config: loaded.config,
    logger,
    policy,
    tools: buildRegistry(),
    toolEnv: toolEnvFor(loaded, logger, data, NO_POOLS),
    buckets: new MemoryRateStore(),
    // A dry run stops before execute and record: no stage reads the audit log.
    audit: undefined as unknown as AuditLog,
    metrics: new GateMetrics(),
  };
  const context = { transport: 'stdio' as const, requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal };
  const asPrincipal = (p: Principal): Principal => ({
    ...p,
    ...(values.principal ? { id: values.principal } : {}),
    ...(values.roles ? { roles: values.roles.split(',').filter(Boolean) } : {}),
    ...(attributes ? { attributes } : {}),
  });
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
