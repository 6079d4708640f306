/**
 * The `sqlt1:` fingerprint is an identifier policy data rests on (`database.cheap_queries`), so its
 * text must stay exactly what it was defined as: JSON.stringify of { v, stmt } with a replacer that
 * drops locations and writes every A_Const as "?". fingerprintText writes that text out by hand
 * (faster); here it is compared with the definition over every query of the SQL corpus, over
 * arbitrary JSON trees, and against fingerprints recorded before it was written out.
 */
import t from 'tap';
import fc from 'fast-check';
import { parseSync } from 'libpg-query';
import { analyseSql, fingerprintText, initSqlAnalysis } from '../src/analysis/sql.js';
import { ATTACKS, LEGIT, LOOKALIKES, SCOPES } from './sql-corpus.js';

const STRIP = new Set(['location', 'stmt_location', 'stmt_len', 'name_location']);
const definition = (v: number, stmt: unknown): string => JSON.stringify({ v, stmt }, (k, x: unknown) => (STRIP.has(k) ? undefined : k === 'A_Const' ? '?' : x));

t.before(async () => {
  await initSqlAnalysis();
});

t.test('the same text as the definition for every statement of the SQL corpus', async (t) => {
  let compared = 0;
  for (const { sql } of [...LEGIT, ...LOOKALIKES, ...ATTACKS, ...SCOPES]) {
    let tree: { version: number; stmts: { stmt: unknown }[] };
    try {
      tree = parseSync(sql) as typeof tree;
    } catch {
      continue; // attacks that do not parse have no fingerprint
    }
    for (const { stmt } of tree.stmts) {
      const want = definition(tree.version, stmt);
      if (fingerprintText(tree.version, stmt) !== want) {
        t.fail(`differs for ${JSON.stringify(sql).slice(0, 120)}`);
        return;
      }
      compared++;
    }
  }
  t.ok(compared > 150, `${compared} statements compared`);
});

t.test('the same text as the definition for arbitrary JSON trees holding the special keys', async (t) => {
  const key = fc.oneof(
    fc.constantFrom('location', 'stmt_location', 'stmt_len', 'name_location', 'A_Const', 'ColumnRef', '', '"q"', '\u2028', '0', '12'),
    fc.string(),
  );
  const tree = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      fc.jsonValue({ maxDepth: 1 }),
      fc.array(tie('node'), { maxLength: 4 }),
      fc.dictionary(key, tie('node'), { maxKeys: 5 }),
    ),
  })).node;
  fc.assert(
    fc.property(fc.integer(), tree, (v, stmt) => fingerprintText(v, stmt) === definition(v, stmt)),
    { numRuns: 3000 },
  );
  t.pass('3000 trees');
});

t.test('fingerprints recorded before the text was written out are unchanged', async (t) => {
  t.equal(analyseSql('SELECT * FROM users WHERE id = 1 LIMIT 10').facts.fingerprint, 'sqlt1:efc59beb7e25aea5a2fe7ffb462213ddc5648ecc5368a88083e68e7da5c21e35');
  t.equal(analyseSql('SELECT id, name FROM users WHERE id = $1').facts.fingerprint, 'sqlt1:dcae0de93f1b8fc7b2c425c013742575ccee00d38aec41f87ebfdc1f27d1c3b7');
});
