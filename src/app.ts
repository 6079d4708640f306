import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { LoadedConfig } from './config/loader.js';
import type { Logger } from './observability/logger.js';
import { GateMetrics } from './observability/gate-metrics.js';
import { UnavailablePolicy, type PolicyEvaluator } from './policy/engine.js';
import { LivePolicy, PolicyReloader, type ReloadOutcome } from './policy/reload.js';
import { policySourceFromConfig } from './policy/reload-sources.js';
import { PolicyError } from './policy/types.js';
import { buildRegistry } from './tools/registry.js';
import { MemoryRateStore } from './limits/rate-store.js';
import path from 'node:path';
import { AuditLog } from './audit/open-audit-log.js';
import { auditOptionsFromConfig, policyArchiveDir } from './audit/config.js';
import { openPolicyArchive, type PolicyArchive } from './policy/archive.js';
import type { GateDeps } from './gate/deps.js';
import type { ToolEnv } from './tools/types.js';
import { createPools, type Pools } from './execution/pools.js';
import { initSqlAnalysis, sqlSessionSettings } from './analysis/sql.js';
import { PgExecutor } from './tools/database/pg-executor.js';
import { EmbeddedExecutor } from './tools/database/embedded-executor.js';
import { EmbeddedDatabasePool } from './execution/embedded-database-pool.js';
import { policyQuestions } from './policy/questions.js';
import { buildToolCatalogue } from './server/mcp-server.js';
import { ApiRuntime } from './tools/api/runtime.js';
import { AuthRuntime } from './auth/runtime.js';
import { instrumentAudit, Metrics } from './observability/metrics.js';
import type { ReadinessCheck } from './transport/served-app.js';
import { requestStateCodecFor } from './gate/request-state.js';
import type { ExtraMethods } from './server/extra-methods.js';
import { conformanceExtraMethods } from './server/conformance-methods.js';
import { UNLISTED_CONFORMANCE_TOOLS } from './tools/conformance/family.js';

/**
 * What `bulwark serve --profile` selects. `conformance` is test-only: it adds the official MCP
 * conformance suite's fixtures (tools, resources, prompts) as a gated family, and the policy allows
 * that family only under it. The CLI refuses it outside a loopback test setup (cli/profile.ts).
 */
export type ServeProfile = 'default' | 'conformance';

export interface AppOptions {
  readonly profile?: ServeProfile | undefined;
}

export interface App {
  readonly deps: GateDeps;
  readonly catalogue: readonly Tool[];
  /** One check per dependency the configured tools need, in the order /ready lists them. */
  readonly readiness: readonly ReadinessCheck[];
  /** Loads the policy again (SIGHUP); file and HTTP bundle sources also reload on their own. */
  readonly policyReloader: PolicyReloader;
  /** Methods beyond tools/* (the conformance profile's resources, prompts, completion, logging). */
  readonly extraMethods?: ExtraMethods | undefined;
  close(): Promise<void>;
}

/**
 * The config's filesystem settings folded into policy data (from a file or a bundle; the config wins),
 * and the serving profile: `data.bulwark.profile` comes from the CLI flag alone (a data file or bundle
 * that sets it is overridden), so only `serve --profile conformance` lets the policy allow that family.
 */
export function withConfigOverlay(source: unknown, loaded: LoadedConfig, profile: ServeProfile = 'default'): unknown {
  const data = structuredClone(source ?? {}) as Record<string, any>;
  if (profile === 'conformance') {
    data.bulwark ??= {};
    data.bulwark.profile = profile;
  } else if (data.bulwark && typeof data.bulwark === 'object') {
    // A data file or bundle cannot turn the profile on; without the flag the key is absent, as before.
    delete data.bulwark.profile;
  }
  const blocked = loaded.config.filesystem.blocked_extensions;
  if (blocked) {
    data.bulwark ??= {};
    data.bulwark.filesystem = { ...(data.bulwark.filesystem ?? {}), blocked_extensions: blocked.map((e) => e.toLowerCase()) };
  }
  return data;
}

function configDirOf(loaded: LoadedConfig): string {
  return loaded.source === 'embedded defaults' ? process.cwd() : path.dirname(loaded.source);
}

/**
 * The policy the config names (a signed bundle file or URL, or the committed wasm and data), loaded
 * once before this returns. When it cannot load, the server stays up, reports not-ready and denies
 * every call with policy_error (fail closed) until a reload succeeds.
 */
export async function openPolicy(loaded: LoadedConfig, logger: Logger, archive?: PolicyArchive, profile: ServeProfile = 'default'): Promise<PolicyReloader> {
  const source = await policySourceFromConfig(loaded.config.policy, configDirOf(loaded));
  const reloader = new PolicyReloader({
    live: new LivePolicy(new UnavailablePolicy(new PolicyError('policy.not_loaded', 'the policy has not been loaded yet'))),
    source,
    overlay: (data) => withConfigOverlay(data, loaded, profile),
    maxInputBytes: loaded.config.limits.max_policy_input_bytes,
    archive,
    logger,
  });
  await reloader.reload('boot');
  return reloader;
}

/** The policy as loaded now, for one-shot commands (doctor, policy eval): no watching, no reloads. */
export async function loadPolicyEngine(loaded: LoadedConfig, logger: Logger): Promise<{ policy: PolicyEvaluator; data: unknown }> {
  const reloader = await openPolicy(loaded, logger);
  return { policy: reloader.live.pin(), data: reloader.loadedData };
}

function stringListOf(data: unknown, key: 'blocked_extensions' | 'blocked_names'): string[] {
  const list = (data as { bulwark?: { filesystem?: Record<string, unknown> } })?.bulwark?.filesystem?.[key];
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string').map((x) => x.toLowerCase()) : [];
}

/** The policy's data also tells executors what to skip inside an allowed directory. */
export function toolEnvFor(loaded: LoadedConfig, logger: Logger, data: unknown, pools: Pools): ToolEnv {
  const ext = stringListOf(data, 'blocked_extensions').map((e) => (e.startsWith('.') ? e : `.${e}`));
  return { config: loaded.config, logger, blockedExtensions: ext, blockedNames: stringListOf(data, 'blocked_names'), pools };
}

export async function createApp(loaded: LoadedConfig, logger: Logger, options: AppOptions = {}): Promise<App> {
  const { config } = loaded;
  const profile = options.profile ?? 'default';
  const configDir = configDirOf(loaded);
  // The requestState key is read first: a missing or short key stops the boot before anything is opened.
  const requestState = requestStateCodecFor(config, configDir);
  // Every revision is archived before it serves (boot and each reload), so every decision can be replayed.
  const policyArchive = openPolicyArchive(policyArchiveDir(config.audit, configDir));
  const policyReloader = await openPolicy(loaded, logger, policyArchive, profile);
  const policy = policyReloader.live;
  const data = policyReloader.loadedData;
  // Upstream configuration errors surface here, before anything is opened.
  const api = ApiRuntime.create(config, logger);
  // The metrics registry is built after the pools; syncs before then are not observed.
  let observeSync: ((seconds: number) => void) | undefined;
  const audit = await AuditLog.open({
    ...auditOptionsFromConfig(config.audit, configDir, (message, detail) => logger.warn(message, detail)),
    onSync: (s) => observeSync?.(s),
    policyRevision: policy.revision,
  });
  const pools = await createPools(config, logger);
  await initSqlAnalysis().catch((err: Error) => logger.error('the SQL parser failed to load; database calls will be refused', { error: err.message }));
  const session = sqlSessionSettings({ defaultSchema: config.database.default_schema });
  const database = config.database.url
    ? new PgExecutor({
        url: config.database.url,
        maxConnections: config.database.pool.max,
        idleTimeoutS: config.database.pool.idle_timeout_s,
        maxLifetimeS: config.database.pool.max_lifetime_s,
        connectTimeoutS: config.database.pool.connect_timeout_s,
        session,
        // One line when the database goes away and one when it is back, not one per call.
        onStateChange: (state, d) =>
          state === 'down' ? logger.warn('database unreachable; calls answer unavailable', d) : logger.info('database reachable again', d),
      })
    : config.database.embedded
      ? new EmbeddedExecutor(new EmbeddedDatabasePool(logger), session.search_path as string)
      : undefined;
  const gateMetrics = new GateMetrics();
  const tools = buildRegistry({ apis: Object.keys(config.apis ?? {}).length > 0, conformance: profile === 'conformance' });
  const prom = new Metrics(pools, () => gateMetrics.snapshot(), tools.keys());
  observeSync = (s) => prom.auditFsync.observe(s);
  const countReload = (o: ReloadOutcome): void => {
    if (o.examined) prom.policyReloads.inc({ result: o.result, reason: o.reason ?? '' });
  };
  if (policyReloader.last) countReload(policyReloader.last);
  policyReloader.onOutcome(countReload);
  prom.observePolicy(() => ({ revision: policy.revision, bundleRevision: policy.bundleRevision, source: policyReloader.source.kind, ready: policy.ready }));
  const auth = new AuthRuntime(config, configDir, logger);
  await auth.start();
  // Each loaded policy brings its own data (blocked names the executors skip): tools get the environment of the policy that decided the call.
  const envOf = (engine: PolicyEvaluator, policyData: unknown): ToolEnv => ({
    ...toolEnvFor(loaded, logger, policyData, pools),
    database,
    policy: policyQuestions(engine),
    api,
  });
  const toolEnvs = new WeakMap<PolicyEvaluator, ToolEnv>([[policy.pin(), envOf(policy.pin(), data)]]);
  // Observers run in the same tick as the swap, so no call can pin the new policy before its environment exists.
  policyReloader.onOutcome((o) => {
    if (o.result === 'loaded') toolEnvs.set(policy.pin(), envOf(policy.pin(), policyReloader.loadedData));
  });
  const deps: GateDeps = {
    config,
    logger,
    policy,
    tools,
    toolEnv: { ...toolEnvFor(loaded, logger, data, pools), database, policy: policyQuestions(policy), api },
    toolEnvOf: (engine) => toolEnvs.get(engine),
    // With limits.store: redis the gate shares the API gateway's Redis buckets, so replicas share limits.
    buckets: config.limits.store === 'redis' ? api.rate : new MemoryRateStore(),
    audit: instrumentAudit(audit, prom),
    metrics: gateMetrics,
    auth,
    prom,
    requestState,
  };
  const readiness: ReadinessCheck[] = [
    { name: 'policy', check: () => policy.ready },
    { name: 'audit', check: () => deps.audit.writable },
    { name: 'filesystem_pool', check: () => pools.filesystem.healthy },
    { name: 'javascript_pool', check: () => pools.javascript.healthy },
  ];
  if (database instanceof PgExecutor) readiness.push({ name: 'database', check: () => database.ping().then(() => true) });
  if (database instanceof EmbeddedExecutor) readiness.push({ name: 'database', check: () => database.healthy });
  // One Redis serves the gate's buckets (limits.store), the API gateway's and its cache.
  if (config.limits.store === 'redis' || config.limits.api_cache.store === 'redis') readiness.push({ name: 'redis', check: () => api.redisHealthy() });
  if (config.auth.http === 'api_key') readiness.push({ name: 'key_store', check: () => auth.storeFresh });
  policyReloader.start();
  return {
    deps,
    // The profile's method pseudo-tools are gated like tools but answer their own methods, not tools/call listings.
    catalogue: buildToolCatalogue(deps).filter((t) => !UNLISTED_CONFORMANCE_TOOLS.has(t.name)),
    readiness,
    policyReloader,
    ...(profile === 'conformance' ? { extraMethods: conformanceExtraMethods(deps) } : {}),
    close: async () => {
      await policyReloader.close();
      await auth.close();
      await pools.close();
      await api.close();
      await database?.close();
      await audit.close();
    },
  };
}
