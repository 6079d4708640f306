import { refuse } from '../core/denial.js';
import type { Lineage } from './sql-lineage.js';

/**
 * Masks as policy over lineage (issue 13 item 2). The policy returns, per sensitive base column,
 * what may happen to it (`column_rules` obligation, policies/sql_columns.rego):
 *
 *   mask:   a bare copy in the result is replaced by the mask; any derived value is refused
 *           (no mask of `lower(email)`, `email::int` or `count(DISTINCT email)` is safe);
 *   allow:  copies and derived values pass;
 *   refuse: any appearance in the result refuses the query;
 *
 * and `predicates` (default false): whether it may appear where the query compares, filters,
 * joins, groups, orders or deduplicates (lineage's `used`). The simple form, `redact_columns`
 * (column names), is `mask` without predicates for every base column of that name the policy did
 * not rule on itself, so an older policy keeps working.
 */

export const MASK_REASON_CODES = {
  'sql.masked_column_use': 'An output derives from a masked column other than as a bare copy (renamed copies are masked; computed values are refused).',
  'sql.column_refused': "An output carries a column the policy's column_rules refuse.",
  'sql.column_in_predicate':
    'A protected column is used in WHERE, JOIN, GROUP BY, ORDER BY, HAVING, a window, DISTINCT or a comparing set operation, and the policy does not allow it there.',
  'sql.column_rules_invalid': 'The policy returned a column_rules obligation the gate cannot read (denial code `policy_error`).',
  'sql.mask_mismatch': "The result's columns do not match the analysed outputs, so masks cannot be placed (fail closed).",
} as const;

export type ColumnAction = 'mask' | 'allow' | 'refuse';

export interface ColumnRule {
  readonly action: ColumnAction;
  readonly predicates: boolean;
}

/** What the policy decided for one query: which outputs to mask, and what the record keeps. */
export interface MaskPlan {
  /** Output positions (0-based) to replace by the mask, with their expected names. */
  readonly outputs: readonly { readonly index: number; readonly name: string }[];
  /** Base columns masked in the result. */
  readonly masked: readonly string[];
  /** Protected base columns the query used in predicates (allowed there by the policy). */
  readonly used: readonly string[];
  /** Protected base columns the query read at all (for the database error-text rule). */
  readonly touched: readonly string[];
}

const ACTIONS = new Set<ColumnAction>(['mask', 'allow', 'refuse']);
const COLUMN_KEY = /^[^.\s]+\.[^.\s]+\.[^.\s]+$/;

/** Shape-check the obligation (`{"schema.table.column": {"action", "predicates"}}`); malformed refuses. */
export function parseColumnRules(value: unknown): Map<string, ColumnRule> {
  const out = new Map<string, ColumnRule>();
  if (value === undefined) return out;
  const bad = (why: string): never => refuse('policy_error', `The policy's column_rules cannot be applied: ${why}.`, ['sql.column_rules_invalid']);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('not an object');
  for (const [key, rule] of Object.entries(value as Record<string, unknown>)) {
    if (!COLUMN_KEY.test(key)) bad(`${JSON.stringify(key)} is not schema.table.column`);
    if (typeof rule !== 'object' || rule === null) bad(`the rule for ${key} is not an object`);
    const r = rule as Record<string, unknown>;
    if (!ACTIONS.has(r.action as ColumnAction)) bad(`the action for ${key} is not mask, allow or refuse`);
    if (r.predicates !== undefined && typeof r.predicates !== 'boolean') bad(`predicates for ${key} is not a boolean`);
    out.set(key.toLowerCase(), { action: r.action as ColumnAction, predicates: r.predicates === true });
  }
  return out;
}

function ruleFor(column: string, rules: ReadonlyMap<string, ColumnRule>, redacted: ReadonlySet<string>): ColumnRule | undefined {
  const rule = rules.get(column);
  if (rule) return rule;
  const name = column.slice(column.lastIndexOf('.') + 1);
  return redacted.has(name) ? { action: 'mask', predicates: false } : undefined;
}

/**
 * Apply the rules to one query's lineage. Refuses (`sql_rejected`, naming the columns) a derived
 * value of a masked column, any output of a refused column, and a predicate use the policy does not
 * allow; otherwise says which outputs to mask.
 */
export function planMasks(lineage: Lineage, rules: ReadonlyMap<string, ColumnRule>, redactColumns: readonly string[]): MaskPlan {
  const redacted = new Set(redactColumns.map((c) => c.toLowerCase()));
  if (rules.size === 0 && redacted.size === 0) return { outputs: [], masked: [], used: [], touched: [] };
  const outputs: { index: number; name: string }[] = [];
  const masked = new Set<string>();
  const touched = new Set<string>();
  const derived = new Set<string>();
  const refused = new Set<string>();
  lineage.outputs.forEach((o, index) => {
    let mask = false;
    for (const c of o.columns) {
      const rule = ruleFor(c, rules, redacted);
      if (!rule) continue;
      touched.add(c);
      if (rule.action === 'refuse') refused.add(c);
      else if (rule.action === 'mask') {
        if (o.copy) {
          mask = true;
          masked.add(c);
        } else derived.add(c);
      }
    }
    if (mask) outputs.push({ index, name: o.name });
  });
  const predicateUse = new Set<string>();
  const used = new Set<string>();
  for (const c of lineage.used) {
    const rule = ruleFor(c, rules, redacted);
    if (!rule) continue;
    touched.add(c);
    if (rule.predicates) used.add(c);
    else predicateUse.add(c);
  }
  if (refused.size > 0) {
    const cols = [...refused].sort();
    refuse('sql_rejected', `The policy does not allow the column(s) ${cols.join(', ')} in results.`, ['sql.column_refused'], { columns: cols });
  }
  if (derived.size > 0) {
    const cols = [...derived].sort();
    refuse(
      'sql_rejected',
      `The masked column(s) ${cols.join(', ')} may only be selected as they are (a bare copy, which is masked), not computed on.`,
      ['sql.masked_column_use'],
      { columns: cols },
    );
  }
  if (predicateUse.size > 0) {
    const cols = [...predicateUse].sort();
    refuse(
      'sql_rejected',
      `The column(s) ${cols.join(', ')} may not be used to filter, join, group, order or deduplicate (the policy does not allow it).`,
      ['sql.column_in_predicate'],
      { columns: cols },
    );
  }
  return { outputs, masked: [...masked].sort(), used: [...used].sort(), touched: [...touched].sort() };
}

/**
 * Check that the result's columns are the analysed outputs (count, and the name of every output to
 * mask), so that a mask lands where the lineage said; anything else refuses before rows leave.
 */
export function checkMaskPlacement(plan: MaskPlan, outputCount: number, resultNames: readonly string[]): void {
  if (plan.outputs.length === 0) return;
  if (resultNames.length !== outputCount || plan.outputs.some((o) => resultNames[o.index] !== o.name)) {
    refuse('sql_rejected', 'The result does not have the columns the analysis expected, so masked columns cannot be placed.', ['sql.mask_mismatch'], {
      expected: outputCount,
      got: resultNames.length,
    });
  }
}
