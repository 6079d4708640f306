/** What the policy answered for one call: the gate, the executor and the audit record read it. */
export interface Obligations {
  readonly max_bytes?: number;
  readonly timeout_ms?: number;
  readonly max_rows?: number;
  readonly memory_mb?: number;
  /** The SQL cost gate: refuse plans whose estimated total cost / rows exceed these (query_database). */
  readonly max_plan_cost?: number;
  readonly max_plan_rows?: number;
  readonly redact_columns?: readonly string[];
  /**
   * Row predicates for query_database, as data (table, column, op, value). Passed through as the
   * policy wrote them: the SQL gate (src/analysis/sql-row-filter.ts) validates every entry and
   * refuses the call on anything it cannot apply, so a malformed filter never widens a query.
   */
  readonly row_filters?: readonly unknown[];
  /**
   * A human must approve this exact call (principal, tool, arguments hash) before it runs: the gate
   * asks the client (gate/approval.ts) and denies `approval_required` when it cannot.
   */
  readonly approval?: ApprovalObligation;
  /**
   * Per protected base column ("schema.table.column"): {action: mask | allow | refuse, predicates}
   * for query_database, applied over the query's lineage (src/analysis/sql-masks.ts validates it).
   */
  readonly column_rules?: Readonly<Record<string, unknown>>;
}

/** Who may approve (roles, shown to the human), why (shown to the human), and how long the approval window is. */
export interface ApprovalObligation {
  readonly approvers: readonly string[];
  readonly reason: string;
  /** Milliseconds the human has to answer (2025-11-25) or the client to retry (2026-07-28). */
  readonly ttl_ms: number;
}

export interface Decision {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  readonly obligations: Obligations;
}
