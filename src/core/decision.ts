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
}

export interface Decision {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  readonly obligations: Obligations;
}
