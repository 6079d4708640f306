import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { PolicyEvaluator } from '../policy/engine.js';
import { policyQuestions, type PolicyQuestions } from '../policy/questions.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { ToolEnv } from '../tools/types.js';
import type { RateStore } from '../limits/rate-store.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { GateMetrics } from '../observability/gate-metrics.js';
import type { AuthRuntime } from '../auth/runtime.js';
import type { Metrics } from '../observability/metrics.js';
import type { RequestStateCodec } from './request-state.js';

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
  /**
   * The tool environment that goes with one loaded policy (its data's blocked names, its questions),
   * when the policy can be reloaded (app.ts); absent or undefined: `toolEnv` with that policy's questions.
   */
  readonly toolEnvOf?: (policy: PolicyEvaluator) => ToolEnv | undefined;
  /**
   * Seals and opens 2026-07-28 requestState (gate/request-state.ts) with the configured key; absent:
   * a random key for this process.
   */
  readonly requestState?: RequestStateCodec;
}

const questionsOf = new WeakMap<PolicyEvaluator, PolicyQuestions>();

/**
 * The deps one call runs with: a live policy (policy/reload.ts) read once, as the call enters, so
 * every stage, the tools' own questions and the record use the revision the call started with even
 * if a reload swaps the policy meanwhile.
 */
export function pinPolicy(deps: GateDeps): GateDeps {
  const pinned = deps.policy.pin?.();
  if (!pinned || pinned === deps.policy) return deps;
  const env = deps.toolEnvOf?.(pinned);
  if (env) return { ...deps, policy: pinned, toolEnv: env };
  if (!deps.toolEnv.policy) return { ...deps, policy: pinned };
  let questions = questionsOf.get(pinned);
  if (!questions) questionsOf.set(pinned, (questions = policyQuestions(pinned)));
  return { ...deps, policy: pinned, toolEnv: { ...deps.toolEnv, policy: questions } };
}
