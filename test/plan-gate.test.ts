/**
 * The cost gate's shared judge (sandbox/db/plan-gate.ts), which both executors use: how EXPLAIN's
 * answer is read (anything unreadable fails closed), where the limits fall, what the detail holds,
 * and how a refusal that crossed the embedded worker's process boundary is given back.
 * The executors themselves are driven against the real servers in plan-limits-default.test.ts and
 * sql-leftovers-cost.test.ts.
 */
import t from 'tap';
import { DenialError, deny } from '../src/core/denial.js';
import { explainText, judgePlan, planDenialAsGiven, planOf } from '../sandbox/db/plan-gate.js';

const plan = (cost: unknown, rows: unknown) => [{ 'QUERY PLAN': [{ Plan: { 'Node Type': 'Seq Scan', 'Total Cost': cost, 'Plan Rows': rows } }] }];
const refusal = (f: () => unknown): DenialError => {
  try {
    f();
  } catch (err) {
    if (err instanceof DenialError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
};

t.test('the plan is read as postgres.js (text) and PGlite (parsed) hand it over', async (t) => {
  t.same(planOf(plan(12.5, 3)), { cost: 12.5, rows: 3 });
  t.same(planOf([{ 'QUERY PLAN': JSON.stringify(plan(7, 1)[0]!['QUERY PLAN']) }]), { cost: 7, rows: 1 });
  t.equal(explainText('-- c\nSELECT 1'), 'explain (format json)\n-- c\nSELECT 1', 'our prefix on its own line, the text unchanged');
});

t.test('an unreadable plan fails closed: sql.plan_unreadable', async (t) => {
  const unreadable: [string, Record<string, unknown>[]][] = [
    ['no rows', []],
    ['no QUERY PLAN column', [{ plan: 1 }]],
    ['malformed JSON text', [{ 'QUERY PLAN': '[{"Plan": {' }]],
    ['not an array', [{ 'QUERY PLAN': { Plan: { 'Total Cost': 1, 'Plan Rows': 1 } } }]],
    ['no Plan', [{ 'QUERY PLAN': [{}] }]],
    ['Plan is null', [{ 'QUERY PLAN': [null] }]],
    ['cost as text', plan('1', 1)],
    ['rows missing', plan(1, undefined)],
    ['NaN', plan(Number.NaN, 1)],
    ['infinite cost', plan(Number.POSITIVE_INFINITY, 1)],
    ['negative rows', plan(1, -1)],
  ];
  for (const [name, rows] of unreadable) {
    const e = refusal(() => judgePlan(rows, { maxCost: 10 }, performance.now()));
    t.equal(e.denial.code, 'sql_rejected', name);
    t.same(e.denial.reasons, ['sql.plan_unreadable'], name);
  }
});

t.test('limits: equal passes, over refuses with the estimate and the limits in the message and the detail', async (t) => {
  const at = judgePlan(plan(100, 10), { maxCost: 100, maxRows: 10 }, performance.now());
  t.match(at, { total_cost: 100, rows: 10, ms: Number });
  t.ok(at.ms >= 0);
  const cost = refusal(() => judgePlan(plan(100.5, 1), { maxCost: 100, maxRows: 10 }, performance.now()));
  t.same(cost.denial.reasons, ['sql.cost_exceeded']);
  t.same(cost.denial.detail, { plan_cost: 100.5, plan_rows: 1, max_plan_cost: 100, max_plan_rows: 10 });
  t.match(cost.denial.message, /\(estimated cost 100\.5 > 100\)/);
  const rows = refusal(() => judgePlan(plan(1, 11), { maxRows: 10 }, performance.now()));
  t.same(rows.denial.detail, { plan_cost: 1, plan_rows: 11, max_plan_rows: 10 }, 'only the limits that were set');
  t.match(rows.denial.message, /\(estimated rows 11 > 10\)/);
  const both = refusal(() => judgePlan(plan(1e20, 1e20), { maxCost: 1, maxRows: 1 }, performance.now()));
  t.match(both.denial.message, /estimated cost 100000000000000000000 > 1, estimated rows 100000000000000000000 > 1/, "the message keeps the planner's figures");
  t.same(
    both.denial.detail,
    { plan_cost: Number.MAX_SAFE_INTEGER, plan_rows: Number.MAX_SAFE_INTEGER, max_plan_cost: 1, max_plan_rows: 1 },
    'the detail (recorded in canonical JSON) holds no integer beyond 2^53',
  );
  const huge = judgePlan(plan(2 ** 60, 2 ** 60), {}, performance.now());
  t.equal(huge.total_cost, Number.MAX_SAFE_INTEGER, 'nor does the estimate of a query that runs');
  t.equal(huge.rows, Number.MAX_SAFE_INTEGER);
  const limit = refusal(() => judgePlan(plan(2 ** 60, 1), { maxCost: 2 ** 55 }, performance.now()));
  t.equal(limit.denial.detail?.max_plan_cost, Number.MAX_SAFE_INTEGER, 'nor a limit beyond 2^53');
});

t.test("a refusal from the embedded worker is given back as the real server's", async (t) => {
  const metrics = { cpu_ms: 1.5, heap_bytes: 123, duration_ms: 2, queued_ms: 0, worker_pid: 42 };
  const over = deny('sql_rejected', 'too expensive', ['sql.cost_exceeded'], { plan_cost: 5, plan_rows: 1, max_plan_cost: 1, ...metrics });
  t.same(planDenialAsGiven(over), {
    code: 'sql_rejected',
    message: 'too expensive',
    reasons: ['sql.cost_exceeded'],
    detail: { plan_cost: 5, plan_rows: 1, max_plan_cost: 1 },
  });
  const unreadable = deny('sql_rejected', 'unreadable', ['sql.plan_unreadable'], metrics);
  t.same(
    planDenialAsGiven(unreadable),
    { code: 'sql_rejected', message: 'unreadable', reasons: ['sql.plan_unreadable'] },
    'no detail, as PgExecutor gives none',
  );
  const other = deny('tool_error', 'rejected', ['db.query_error'], { sqlstate: '42703', ...metrics });
  t.equal(planDenialAsGiven(other), other, 'any other denial unchanged');
});
