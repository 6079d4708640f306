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
}

export interface Decision {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  readonly obligations: Obligations;
}
