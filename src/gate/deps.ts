import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { PolicyEvaluator } from '../policy/engine.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { ToolEnv } from '../tools/types.js';
import type { RateStore } from '../limits/rate-store.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { GateMetrics } from '../observability/gate-metrics.js';
import type { AuthRuntime } from '../auth/runtime.js';
import type { Metrics } from '../observability/metrics.js';

/** Everything the gate needs, built once at boot. */
export interface GateDeps {
  readonly config: Readonly<Config>;
  readonly logger: Logger;
  readonly policy: PolicyEvaluator;
  readonly tools: ToolRegistry;
  readonly toolEnv: ToolEnv;
  /** The gate's buckets: per principal, and per principal and tool; memory or Redis (limits.store). */
  readonly buckets: RateStore;
  readonly audit: AuditLog;
  readonly metrics: GateMetrics;
  /** Bearer authentication for HTTP (absent in tools that build deps without a server). */
  readonly auth?: AuthRuntime;
  /** Prometheus series (absent outside a server). */
  readonly prom?: Metrics;
}
