import type { StageName } from '../core/stages.js';
export type StageOutcome = 'pass' | 'deny' | 'error';

/**
 * A counter per stage and outcome (Envoy ext_authz style), so a fail-closed path that fires shows
 * up in numbers, not only in logs. Exported to Prometheus by the metrics issue.
 */
export class GateMetrics {
  readonly counts = new Map<string, number>();
  count(stage: StageName, outcome: StageOutcome): void {
    const key = `${stage}.${outcome}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }
}
