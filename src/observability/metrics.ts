import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditLog, Appended } from '../audit/audit-log.js';
import { parseAuditFields } from '../audit/record-type.js';
import type { Pools } from '../execution/pools.js';

/**
 * Prometheus series on a per-app Registry (never the global one: two apps in one process, as in
 * tests, must not share counters). Tool outcomes are observed where every call ends up — the
 * audit append — so a call is counted exactly when it is recorded, whatever stage stopped it.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'mcp_requests_total',
    help: 'Tool calls by tool and outcome status',
    labelNames: ['tool', 'status'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'mcp_request_duration_seconds',
    help: 'Tool call duration through the gate',
    labelNames: ['tool'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'mcp_policy_decisions_total',
    help: 'Policy decisions by decision and denial code',
    labelNames: ['decision', 'code'] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'mcp_rate_limited_total',
    help: 'Calls refused by a rate limit, and HTTP requests refused by the authentication lockout',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });
  readonly activeConnections = new Gauge({ name: 'mcp_active_connections', help: 'Open HTTP connections', registers: [this.registry] });
  readonly auditAppend = new Histogram({
    name: 'mcp_audit_append_duration_seconds',
    help: 'Audit append latency (as durable as the configured mode)',
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly auditFsync = new Histogram({
    name: 'mcp_audit_fsync_duration_seconds',
    help: 'fdatasync of the audit log (file backend; one sync covers every record written since the last)',
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly auditAppendFailures = new Counter({
    name: 'mcp_audit_append_failures_total',
    help: 'Audit appends that failed (the call was answered audit_unavailable or retried without its arguments)',
    registers: [this.registry],
  });
  readonly slowCalls = new Counter({
    name: 'mcp_slow_calls_total',
    help: 'Calls slower than their observability.slow_call_ms threshold, by tool (each also logged once)',
    labelNames: ['tool'] as const,
    registers: [this.registry],
  });
  readonly policyReloads = new Counter({
    name: 'mcp_policy_reload_total',
    help: 'Policy loads that examined a new policy (boot, SIGHUP, a changed bundle), by result (loaded, unchanged, refused) and refusal reason',
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry],
  });
  readonly authOutcomes = new Counter({
    name: 'mcp_auth_total',
    help: 'HTTP bearer authentication outcomes',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });

  /**
   * Names that get their own `tool` label: the registered tools (and the transports' `http:…`
   * pseudo-tools). Records keep an unknown name as given; as a label it would add a set of series
   * per invented name without bound, so every other name shares one label value.
   */
  private readonly knownTools: ReadonlySet<string> | undefined;

  constructor(pools?: Pools, gateCounts?: () => Record<string, number>, knownTools?: Iterable<string>) {
    this.knownTools = knownTools ? new Set(knownTools) : undefined;
    collectDefaultMetrics({ register: this.registry, prefix: 'bulwark_' });
    if (pools) {
      const poolGauge = (name: string, help: string, field: 'size' | 'ready' | 'busy' | 'queued' | 'spawned') =>
        new Gauge({
          name,
          help,
          labelNames: ['pool'] as const,
          registers: [this.registry],
          collect() {
            for (const st of pools.stats()) if (st) this.set({ pool: st.name }, st[field]);
          },
        });
      poolGauge('mcp_worker_pool_size', 'Workers in each pool', 'size');
      poolGauge('mcp_worker_pool_busy', 'Busy workers in each pool', 'busy');
      poolGauge('mcp_worker_pool_queued', 'Calls waiting for a worker', 'queued');
      poolGauge('mcp_worker_pool_spawned', 'Workers spawned since start', 'spawned');
      new Gauge({
        name: 'mcp_worker_kills',
        help: 'Workers killed since start, by pool and reason',
        labelNames: ['pool', 'reason'] as const,
        registers: [this.registry],
        collect() {
          for (const st of pools.stats()) {
            if (!st) continue;
            for (const [reason, n] of Object.entries(st.killed)) this.set({ pool: st.name, reason }, n);
          }
        },
      });
      new Gauge({
        name: 'mcp_pool_healthy',
        help: 'Whether each worker pool can start workers (0 while in a crash loop: workers keep dying at start)',
        labelNames: ['pool'] as const,
        registers: [this.registry],
        collect() {
          for (const st of pools.stats()) if (st) this.set({ pool: st.name }, st.healthy ? 1 : 0);
        },
      });
      new Counter({
        name: 'mcp_pool_worker_restarts_total',
        help: 'Workers replaced, by pool and why the old one ended (start_failed, crashed, oom, timeout, cancelled, exited)',
        labelNames: ['pool', 'reason'] as const,
        registers: [this.registry],
        collect() {
          // The pools count; the series mirrors their totals (monotonic, so still a counter).
          this.reset();
          for (const st of pools.stats()) {
            if (!st) continue;
            for (const [reason, n] of Object.entries(st.restarts)) this.inc({ pool: st.name, reason }, n);
          }
        },
      });
    }
    if (gateCounts) {
      new Gauge({
        name: 'mcp_gate_stage_total',
        help: 'Gate stage outcomes (stage × pass|deny|error) since start',
        labelNames: ['stage', 'outcome'] as const,
        registers: [this.registry],
        collect() {
          for (const [k, v] of Object.entries(gateCounts())) {
            const [stage, outcome] = k.split('.');
            this.set({ stage: stage ?? k, outcome: outcome ?? '' }, v);
          }
        },
      });
    }
  }

  /** `mcp_policy_info`: 1 with the serving policy's revisions as labels (0 while no policy could load). */
  observePolicy(info: () => { revision: string; bundleRevision: string; source: string; ready: boolean }): void {
    new Gauge({
      name: 'mcp_policy_info',
      help: 'The policy serving calls: revision (sha256 of wasm and data, as records name it), bundle_revision (the bundle manifest), source',
      labelNames: ['revision', 'bundle_revision', 'source'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        const i = info();
        this.set({ revision: i.revision, bundle_revision: i.bundleRevision, source: i.source }, i.ready ? 1 : 0);
      },
    });
  }

  /** The `tool` label for a call to `name`: the name itself when it is a registered tool, else one shared value. */
  toolLabel(name: string): string {
    const known = this.knownTools ? this.knownTools.has(name) || name.startsWith('http:') : name !== '' && !name.startsWith('"');
    return known ? name.slice(0, 64) : UNKNOWN_TOOL_LABEL;
  }

  /** Observe one recorded call from its audit fields (records that are not a call's outcome are not calls). */
  observeRecord(fields: Readonly<Record<string, unknown>>): void {
    const parsed = parseAuditFields(fields);
    if (!parsed.ok || parsed.fields.event !== undefined) return;
    const { outcome, decision } = parsed.fields;
    if (!outcome) return;
    const tool = this.toolLabel(parsed.fields.tool ?? '');
    this.requests.inc({ tool, status: outcome.status ?? 'unknown' });
    if (outcome.duration_ms !== undefined) this.duration.observe({ tool }, outcome.duration_ms / 1000);
    if (decision) this.decisions.inc({ decision: decision.allow ? 'allow' : 'deny', code: outcome.code ?? 'none' });
    if (outcome.code === 'rate_limited') {
      // rate.principal, rate.principal_tool, rate.upstream_principal … → the bucket's scope.
      const first = outcome.reasons?.find((r) => r.startsWith('rate.'));
      this.rateLimited.inc({ scope: first ? first.slice(5, 69) : 'unknown' });
    }
  }
}

/** The `tool` label of calls to names that are not registered tools. */
export const UNKNOWN_TOOL_LABEL = '(unknown)';

/** The audit log, with each append timed and each recorded call counted. */
export function instrumentAudit(audit: AuditLog, metrics: Metrics): AuditLog {
  return {
    get writable() {
      return audit.writable;
    },
    get lastSeq() {
      return audit.lastSeq;
    },
    async append(fields: Readonly<Record<string, unknown>>): Promise<Appended> {
      const end = metrics.auditAppend.startTimer();
      let appended: Appended;
      try {
        appended = await audit.append(fields);
      } catch (err) {
        // Not counted as a call here: the gate may retry the append (without unhashable
        // arguments), and a call that ends unrecorded is counted by that final attempt or not at all.
        metrics.auditAppendFailures.inc();
        throw err;
      } finally {
        end();
      }
      metrics.observeRecord(fields);
      return appended;
    },
    close: () => audit.close(),
  };
}
