import { refuse, type Denial } from '../../src/core/denial.js';

/**
 * The cost gate, shared by both executors (src/tools/database/pg-executor.ts on PostgreSQL,
 * sandbox/db/pglite-worker.ts on the embedded PGlite): what is sent, how the plan is read and how
 * it is judged, so the two refuse the same plans with the same denial and report the same facts.
 */

/** Limits on the planner's estimate for the top plan node (the policy's max_plan_cost / max_plan_rows). */
export interface PlanLimits {
  readonly maxCost?: number | undefined;
  readonly maxRows?: number | undefined;
}

/** The planner's estimate, as EXPLAIN (FORMAT JSON) gave it, and what asking cost. */
export interface PlanEstimate {
  readonly total_cost: number;
  readonly rows: number;
  readonly ms: number;
}

/**
 * The EXPLAIN sent before the query: our constant prefix, then exactly the analysed text (through
 * the extended protocol, with the same parameters). The newline ends a trailing `--` comment of
 * ours, never the call's. EXPLAIN without ANALYZE plans and does not execute; the analyser accepted
 * exactly one SELECT (VALUES and TABLE included), which is what EXPLAIN accepts.
 */
export function explainText(text: string): string {
  return `explain (format json)\n${text}`;
}

/** The keys a cost-gate denial carries in its detail (and the record's `facts.sql.plan`). */
const PLAN_DETAIL_KEYS = ['plan_cost', 'plan_rows', 'max_plan_cost', 'max_plan_rows'] as const;

const unreadable = (): never => refuse('sql_rejected', 'The query plan could not be read, so the cost gate refuses the query.', ['sql.plan_unreadable']);

/** The top plan node's estimate from EXPLAIN (FORMAT JSON)'s rows; anything unreadable fails closed. */
export function planOf(rows: readonly Record<string, unknown>[]): { cost: number; rows: number } {
  let doc = rows[0]?.['QUERY PLAN'];
  // postgres.js hands the json column over as text (no type parsers), PGlite as a parsed value.
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc) as unknown;
    } catch {
      unreadable();
    }
  }
  const first: unknown = Array.isArray(doc) ? doc[0] : undefined;
  const plan: unknown = typeof first === 'object' && first !== null ? (first as { Plan?: unknown }).Plan : undefined;
  const fields = typeof plan === 'object' && plan !== null ? (plan as Record<string, unknown>) : {};
  const cost = fields['Total Cost'];
  const n = fields['Plan Rows'];
  if (typeof cost !== 'number' || typeof n !== 'number' || !Number.isFinite(cost) || !Number.isFinite(n) || cost < 0 || n < 0) return unreadable();
  return { cost, rows: n };
}

/**
 * An estimate as the record can hold it. The audit record's canonical JSON refuses integers beyond
 * 2^53 (they do not round-trip through every JSON reader), and a record that holds one loses all
 * its facts; the planner's figures for a cross join are far beyond (10^20 rows for four 100k-row
 * tables). Such an estimate is given as 2^53 − 1, "at least this much", which still exceeds any
 * limit a policy sets; the refusal's message keeps the planner's own figure.
 */
export function recordable(n: number): number {
  return n > Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER : n;
}

/**
 * Judges EXPLAIN's answer against the limits: the estimate (with `ms`, the time since `startedAt`,
 * a performance.now() value taken before the EXPLAIN was sent), or a refusal (`sql_rejected`,
 * `sql.cost_exceeded`) whose message and detail carry the estimate and the limits it exceeded.
 * The comparison uses the planner's figures; the estimate and the detail carry recordable ones.
 */
export function judgePlan(rows: readonly Record<string, unknown>[], limits: PlanLimits, startedAt: number): PlanEstimate {
  const top = planOf(rows);
  const estimate: PlanEstimate = {
    total_cost: recordable(top.cost),
    rows: recordable(top.rows),
    ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
  };
  const over: string[] = [];
  if (limits.maxCost !== undefined && top.cost > limits.maxCost) over.push(`estimated cost ${top.cost} > ${limits.maxCost}`);
  if (limits.maxRows !== undefined && top.rows > limits.maxRows) over.push(`estimated rows ${top.rows} > ${limits.maxRows}`);
  if (over.length > 0) {
    refuse('sql_rejected', `The query's plan is too expensive to run (${over.join(', ')}); narrow it (filters, LIMIT, fewer joins).`, ['sql.cost_exceeded'], {
      plan_cost: estimate.total_cost,
      plan_rows: estimate.rows,
      ...(limits.maxCost === undefined ? {} : { max_plan_cost: recordable(limits.maxCost) }),
      ...(limits.maxRows === undefined ? {} : { max_plan_rows: recordable(limits.maxRows) }),
    });
  }
  return estimate;
}

/**
 * A cost-gate denial as the executor gave it, for one that crossed a process boundary: the worker
 * pool adds the worker's metrics to every denial's detail, and these must read exactly as the
 * real server's (tools.ts records the detail as the call's `facts.sql.plan`). Other denials are
 * returned unchanged.
 */
export function planDenialAsGiven(denial: Denial): Denial {
  if (denial.reasons.includes('sql.plan_unreadable')) {
    const { detail: _metrics, ...rest } = denial;
    return rest;
  }
  if (!denial.reasons.includes('sql.cost_exceeded')) return denial;
  const detail: Record<string, unknown> = {};
  for (const k of PLAN_DETAIL_KEYS) if (denial.detail && k in denial.detail) detail[k] = denial.detail[k];
  return { ...denial, detail };
}
