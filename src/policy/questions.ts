import type { Analysed } from '../core/call.js';
import type { PolicyAnswerFacts, UrlFacts } from '../core/facts.js';
import type { PolicyEvaluator } from './engine.js';
import { policyInput } from './input.js';
import { PolicyError } from './types.js';

/** What a question answered: the caller records it (core/facts.ts) whatever it says. */
export type PolicyAnswer = PolicyAnswerFacts;

/**
 * The questions a tool asks the policy after its call was decided, shaped here like the call's own
 * question (policy/input.ts), so the policy sees one input format and a test of the policy covers
 * them too. They never throw: a policy that cannot answer refuses (fail closed) and says why in
 * `error`, so the answer can be recorded either way.
 */
export interface PolicyQuestions {
  /** describe_table's question for one table: list_tables shows only the tables it allows. */
  mayReadTable(call: Analysed, table: string): PolicyAnswer;
  /** The call's own question with a redirect hop's url facts in place of the first request's. */
  mayFollowHop(call: Analysed, hop: UrlFacts): PolicyAnswer;
}

export function policyQuestions(policy: PolicyEvaluator): PolicyQuestions {
  const ask = (question: Analysed): PolicyAnswer => {
    try {
      const decision = policy.decide(policyInput(question));
      return {
        allow: decision.allow,
        reasons: decision.reasons,
        ...(decision.allow && decision.obligations.approval ? { approval_required: true as const } : {}),
      };
    } catch (err) {
      return { allow: false, reasons: [], error: err instanceof PolicyError ? err.reason : 'policy.evaluation_failed' };
    }
  };
  return {
    // The facts describe_table's analyser produces for this table, so both tools get one answer.
    mayReadTable: (call, table) =>
      ask({ ...call, tool: 'describe_table', args: { table }, facts: { sql: { statements: 1, kind: 'describe', tables: [table], functions: [] } } }),
    mayFollowHop: (call, hop) => {
      // The answers to earlier hops are the record's, not part of this question.
      const { hops: _answered, ...url } = hop;
      return ask({ ...call, facts: { url } });
    },
  };
}
