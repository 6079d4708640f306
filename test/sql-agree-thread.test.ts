import { createRequire } from 'node:module';
import t from 'tap';
import { analyseSql, clearSqlAnalysisCache, initSqlAnalysis, type SqlOptions, type SqlTimings } from '../src/analysis/sql.js';
import {
  setSecondOpinionMode,
  startSecondOpinionThread,
  stopSecondOpinionThread,
  submitSecondOpinion,
  takeSecondOpinion,
} from '../src/analysis/sql-agree-thread.js';
import { DenialError } from '../src/core/denial.js';
import { ATTACKS, LEGIT, LOOKALIKES } from './sql-corpus.js';

/**
 * node-sql-parser's reading on its own thread (src/analysis/sql-agree-thread.ts) must give exactly
 * the verdicts an inline read gives, and any trouble with the thread must fall back to the inline
 * read, never to a missing second opinion.
 */

await initSqlAnalysis();

const requireHere = createRequire(import.meta.url);
const PARSER_MODULE = requireHere.resolve('node-sql-parser/build/postgresql');

type Verdict =
  { ok: true; agreement: string; tables: readonly string[]; functions: readonly string[] } | { ok: false; code: string; reasons: readonly string[] };

function verdict(sql: string, opts: SqlOptions = {}, timings?: SqlTimings): Verdict {
  try {
    const a = analyseSql(sql, { ...opts, cache: false, ...(timings ? { timings } : {}) });
    return { ok: true, agreement: a.facts.agreement, tables: a.facts.tables, functions: a.facts.functions };
  } catch (err) {
    if (err instanceof DenialError) return { ok: false, code: err.denial.code, reasons: err.denial.reasons };
    throw err;
  }
}

const CORPUS = [...ATTACKS, ...LOOKALIKES, ...LEGIT];

t.test('the thread answers: this thread never loads node-sql-parser, and the stage timings show its parse', async (t) => {
  setSecondOpinionMode('thread');
  const timings = {} as SqlTimings;
  for (let i = 0; i < 20; i++) t.same(verdict('SELECT id, name FROM users WHERE id = $1', {}, timings).ok, true);
  t.equal(requireHere.cache[PARSER_MODULE], undefined, 'node-sql-parser was not loaded on the analysing thread');
  t.ok(timings.nodeSqlParser > 0, `node-sql-parser parsed for ${timings.nodeSqlParser.toFixed(3)} ms`);
  t.ok(timings.nodeSqlParserWait !== undefined, 'the wait is reported');
});

t.test('every corpus text gets the same verdict from the thread as from an inline read', async (t) => {
  t.ok(CORPUS.length > 150, `${CORPUS.length} texts`);
  const threaded = CORPUS.map((c) => verdict(c.sql, c.opts));
  setSecondOpinionMode('inline');
  const inline = CORPUS.map((c) => verdict(c.sql, c.opts));
  setSecondOpinionMode('thread');
  let refusedForDisagreement = 0;
  for (let i = 0; i < CORPUS.length; i++) {
    t.same(threaded[i], inline[i], (CORPUS[i] as { name: string }).name);
    const v = threaded[i] as Verdict;
    if (!v.ok && v.reasons.includes('sql.parser_disagreement')) refusedForDisagreement++;
  }
  // The corpus holds texts only the second opinion refuses: the thread's reading decided those.
  t.ok(refusedForDisagreement >= 3, `${refusedForDisagreement} texts refused because the parsers disagree`);
});

t.test('a text refused before the agreement step leaves its reading behind; the next text still gets its own', async (t) => {
  setSecondOpinionMode('thread');
  clearSqlAnalysisCache();
  // Refused on the function allow-list after the text was handed to the thread.
  const refused = verdict('SELECT pg_sleep(10)');
  t.same(refused.ok, false);
  // A text the second opinion refuses, right after: it must not be judged on the previous reading.
  const bad = verdict("SELECT '\\' ; DROP TABLE users; -- '");
  t.same(bad.ok, false);
  t.ok(!bad.ok && bad.reasons.length === 1, 'refused with one reason');
  // And a legitimate text after that.
  const good = verdict('SELECT count(*) FROM orders WHERE total > 10');
  t.same(good, { ok: true, agreement: 'both', tables: ['public.orders'], functions: ['count'] });
  // Alternate refused and accepted texts many times: every verdict matches the inline one.
  const texts = ['SELECT pg_read_file($1)', 'SELECT id FROM users', 'SELECT lo_import($1)', "SELECT name FROM users WHERE name LIKE 'a%'"];
  const expected = texts.map((s) => {
    setSecondOpinionMode('inline');
    const v = verdict(s);
    setSecondOpinionMode('thread');
    return v;
  });
  for (let i = 0; i < 200; i++) t.same(verdict(texts[i % 4] as string), expected[i % 4], `round ${i}`);
});

t.test('a stopped or missing thread falls back to the inline read, with the same verdicts', async (t) => {
  setSecondOpinionMode('thread');
  await stopSecondOpinionThread();
  const sample = [...ATTACKS.slice(0, 30), ...LEGIT.slice(0, 30)];
  const without = sample.map((c) => verdict(c.sql, c.opts));
  await startSecondOpinionThread();
  const withThread = sample.map((c) => verdict(c.sql, c.opts));
  t.same(without, withThread);
  t.ok(
    without.some((v) => v.ok),
    'some accepted',
  );
});

t.test('a text too large for the shared buffer is read inline', async (t) => {
  setSecondOpinionMode('thread');
  const big = `SELECT 1 AS ${'x'.repeat((1 << 20) + 1)}`;
  const ticket = submitSecondOpinion(big);
  t.equal(ticket.seq, 0, 'not handed to the thread');
  const reading = takeSecondOpinion(ticket);
  t.ok(typeof reading.parsed === 'boolean', 'read here instead');
  t.same(verdict('SELECT 1 AS one').ok, true, 'the thread still answers afterwards');
});
