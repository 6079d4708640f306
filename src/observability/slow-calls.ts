import type { Config } from '../config/schema.js';
import type { Facts } from '../core/facts.js';
import type { StageName } from '../core/stages.js';
import type { Logger } from './logger.js';
import { UNKNOWN_TOOL_LABEL, type Metrics } from './metrics.js';

/**
 * Slow-call monitoring: a call that took longer than its threshold (observability.slow_call_ms,
 * or the tool's entry in slow_call_ms_by_tool) is logged once, at warn, with the time each gate
 * stage took, and counted in mcp_slow_calls_total{tool}.
 *
 * The line says *what* was slow in the analysers' words — the SQL fingerprint, the canonical path,
 * the upstream and path, the code's hash — and never the raw arguments: arguments carry secrets
 * and personal data, and a log line is read by more people than the audit log.
 */

/** One finished call, as the gate saw it when it answered. */
export interface FinishedCall {
  readonly requestId: string;
  readonly tool: string;
  /** Whether `tool` names a registered tool (an unknown name is caller text, logged as a placeholder). */
  readonly toolKnown: boolean;
  readonly principal?: string | undefined;
  readonly status: string;
  /** The denial code, when the call was refused or failed. */
  readonly code?: string | undefined;
  readonly durationMs: number;
  readonly stageMs: Readonly<Partial<Record<StageName, number>>>;
  /** What analysis found (absent when the call stopped before it). */
  readonly facts?: Facts | undefined;
}

export interface SlowCallDeps {
  readonly config: Readonly<Config>;
  readonly logger: Logger;
  readonly prom?: Metrics | undefined;
}

/** The threshold for `tool` in milliseconds; 0 means the tool is never reported as slow. */
export function slowCallThresholdMs(config: Readonly<Config>, tool: string): number {
  const byTool = config.observability.slow_call_ms_by_tool;
  // Own properties only: a tool named `constructor` must not find Object.prototype's.
  return Object.hasOwn(byTool, tool) ? (byTool[tool] as number) : config.observability.slow_call_ms;
}

/**
 * What the call touched, from its facts: identifiers an operator can search for, never argument
 * text. A call that stopped before analysis has none.
 */
export function slowCallSubject(facts: Facts | undefined): Record<string, unknown> {
  if (!facts) return {};
  const out: Record<string, unknown> = {};
  const { sql, path, url, code } = facts;
  if (sql) {
    if ('fingerprint' in sql) out.sql_fingerprint = sql.fingerprint;
    if ('tables' in sql) out.sql_tables = [...sql.tables];
  }
  if (path) out.path = path.canonical;
  if (url) {
    out.upstream = url.upstream;
    out.method = url.method;
    // The path below the upstream's base; the query string is left out (tokens travel there).
    out.upstream_path = url.path;
  }
  if (code) out.code_sha256 = code.sha256;
  return out;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

/**
 * Report `call` if it was slow: one warn line and one count. Returns whether it did. Never
 * throws: a failing logger must not cost the call its answer.
 */
export function reportIfSlow(call: FinishedCall, deps: SlowCallDeps): boolean {
  try {
    const threshold = slowCallThresholdMs(deps.config, call.tool);
    if (threshold === 0 || call.durationMs <= threshold) return false;
    const stages: Record<string, number> = {};
    for (const [stage, ms] of Object.entries(call.stageMs)) if (ms !== undefined) stages[stage] = round(ms);
    deps.prom?.slowCalls.inc({ tool: deps.prom.toolLabel(call.tool) });
    deps.logger.warn('slow call', {
      request_id: call.requestId,
      tool: call.toolKnown ? call.tool : UNKNOWN_TOOL_LABEL,
      ...(call.principal === undefined ? {} : { principal: call.principal }),
      status: call.status,
      code: call.code ?? null,
      duration_ms: round(call.durationMs),
      threshold_ms: threshold,
      stages_ms: stages,
      ...slowCallSubject(call.facts),
    });
    return true;
  } catch {
    // Monitoring is best effort; the call has been answered and recorded already.
    return false;
  }
}
