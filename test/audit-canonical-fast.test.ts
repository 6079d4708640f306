import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { recordBody, sealRecord } from '../src/audit/seal-record.js';
import { canonicalJson, canonicalJsonFast, canonicalJsonGeneral, canonicalJsonWith, CanonicalJsonError } from '../src/audit/canonical-json.js';
import { chainHash, GENESIS_PREV, LineBuffer, sealLine, unsealLine } from '../src/audit/chain.js';
import { Frontier, leafHash, rootOfHashes } from '../src/audit/merkle.js';
import { verifyFile } from '../src/audit/verify.js';
import { makeSandbox } from './helpers/fixtures.js';

// The writer's fast paths (canonical JSON, records sealed into one buffer, the latin1 Merkle
// frontier) against the general path and the plain definitions: byte-identical output, and the
// same refusal (reason and message) for everything the general path refuses.

type Outcome = { ok: true; text: string } | { ok: false; reason: string; message: string };

function outcome(f: () => string): Outcome {
  try {
    return { ok: true, text: f() };
  } catch (err) {
    if (!(err instanceof CanonicalJsonError)) throw err;
    return { ok: false, reason: err.reason, message: err.message };
  }
}

function same(a: Outcome, b: Outcome): boolean {
  return a.ok && b.ok ? a.text === b.text : !a.ok && !b.ok && a.reason === b.reason && a.message === b.message;
}

class Point {
  constructor(readonly x = 1) {}
}

// Strings: every code unit (lone surrogates, controls, quotes, backslashes, U+2028), text that
// merely looks like an escape, and well-formed pairs.
const str = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 8 }),
  fc.constantFrom('', '\ud800', '\udc00', 'a\ud83d', '\ude00b', '\ud83d\ude00', '\\ud800', '"\\\u0000\u001f\u007f\u2028\u2029', 'é€😀'),
);

// Numbers of every kind: unsafe integers, -0, subnormals, NaN and the infinities.
const num = fc.oneof(
  fc.integer(),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.double(),
  fc.constantFrom(-0, 0.1, 1e21, 1e-7, 5e-324, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), Number.MAX_VALUE, Number.NaN, Infinity, -Infinity),
);

// Values the general path refuses or that are not JSON at all.
const odd = fc.constantFrom<unknown>(undefined, () => 1, Symbol('s'), 10n, new Date(0), new Map(), new Point(), Buffer.from('x'), /x/);

const key = fc.oneof(str, fc.constantFrom('seq', 'v', 'ts', 'prev', '__proto__', '10', '9', 'a', 'B', 'é', '😀', 'constructor'));

/** A plain object with keys in the generated (random) insertion order; `__proto__` as an own key. */
function objectOf(entries: [string, unknown][], nullProto: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = nullProto ? Object.create(null) : {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    num,
    str,
    odd,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.tuple(fc.array(fc.tuple(key, tie('value')), { maxLength: 6 }), fc.boolean()).map(([e, n]) => objectOf(e, n)),
  ),
}));

/** Only what the writer accepts: the fast path must handle all of it itself. */
const { good } = fc.letrec((tie) => ({
  good: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d) || Number.isSafeInteger(d)),
    fc.string({ unit: 'binary', maxLength: 12 }).filter((s) => !/\p{Cs}/u.test(s)),
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.array(tie('good'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 6 }), tie('good'), { maxKeys: 6 }),
  ),
}));

function nest(depth: number, inner: unknown, arrays: boolean): unknown {
  let v = inner;
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { k: v };
  return v;
}

t.test("property: the fast path produces the general path's bytes, or leaves the decision to it", async (t) => {
  let decided = 0;
  fc.assert(
    fc.property(value, (v) => {
      const general = outcome(() => canonicalJsonGeneral(v));
      const fastOnly = canonicalJsonFast(v);
      if (fastOnly !== undefined) {
        decided++;
        if (!general.ok || general.text !== fastOnly) return false;
      } else if (general.ok) {
        // The fast path declines only what the general path refuses.
        return false;
      }
      return same(
        outcome(() => canonicalJson(v)),
        general,
      );
    }),
    { numRuns: 20_000 },
  );
  t.ok(decided > 5_000, `${decided} values decided by the fast path alone`);
});

t.test('property: every value the writer accepts is decided by the fast path itself', async (t) => {
  fc.assert(
    fc.property(good, (v) => canonicalJsonFast(v) === canonicalJsonGeneral(v)),
    { numRuns: 10_000 },
  );
  t.pass('10000 values');
});

t.test("refusals are exactly the general path's: lone surrogates, numbers, depth, types, length", async (t) => {
  const cases: unknown[] = [
    { s: 'a\ud800b' },
    { [String.fromCharCode(0xdc00)]: 1 },
    { [String.fromCharCode(0xdc00)]: undefined },
    ['\ud83d'],
    { n: 2 ** 53 },
    { n: -(2 ** 53) },
    { n: Number.NaN },
    [Infinity],
    { d: new Date() },
    { f: () => 1 },
    { b: 1n },
    undefined,
    Symbol('x'),
    { a: Number.NaN, b: '\ud800' },
    { b: Number.NaN, a: '\ud800' },
    nest(64, 1, true),
    nest(65, 1, true),
    nest(64, [undefined], true),
    nest(63, [undefined], true),
    nest(64, {}, false),
    nest(65, {}, false),
  ];
  for (const c of cases) {
    const g = outcome(() => canonicalJsonGeneral(c));
    const f = outcome(() => canonicalJson(c));
    t.ok(same(f, g), `${g.ok ? 'accepted' : g.reason}: ${JSON.stringify(f)}`);
  }
  for (const max of [0, 10, 107, 108, 109, 200, 300, 301]) {
    const v = { s: 'é'.repeat(50), t: 'x'.repeat(50) };
    t.ok(
      same(
        outcome(() => canonicalJson(v, max)),
        outcome(() => canonicalJsonGeneral(v, max)),
      ),
      `bound ${max}`,
    );
  }
});

// canonicalJsonWith(base, keys, values) is canonicalJson({ ...base, ...extra }).
const RECORD_KEYS = ['v', 'seq', 'ts', 'prev'] as const;
const extraKeyLists = [RECORD_KEYS, ['a'], ['prev', '__proto__'], []] as const;

t.test('property: canonicalJsonWith equals the general path over the spread object', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(key, value), { maxLength: 8 }),
      fc.boolean(),
      fc.nat({ max: extraKeyLists.length - 1 }),
      fc.array(fc.oneof(value, good), { minLength: 4, maxLength: 4 }),
      fc.option(fc.nat({ max: 400 })),
      (entries, nullProto, which, values, max) => {
        const base = objectOf(entries, nullProto);
        const keys = extraKeyLists[which] as readonly string[];
        const vals = values.slice(0, keys.length);
        const bound = max ?? Infinity;
        const merged = { ...base, ...Object.fromEntries(keys.map((k, i) => [k, vals[i]])) };
        return same(
          outcome(() => canonicalJsonWith(base, keys, vals, bound)),
          outcome(() => canonicalJsonGeneral(merged, bound)),
        );
      },
    ),
    { numRuns: 20_000 },
  );
  t.pass('20000 records');
});

t.test('canonicalJsonWith: shapes come and go (the plan cache), base objects of every kind', async (t) => {
  const keys = ['v', 'seq'];
  for (let round = 0; round < 3; round++) {
    for (let shape = 0; shape < 80; shape++) {
      const base: Record<string, unknown> = {};
      for (let k = shape % 7; k >= 0; k--) base[`k${(shape * 7 + k) % 23}`] = k % 2 ? `s${k}` : k;
      const vals = [1, shape];
      t.equal(canonicalJsonWith(base, keys, vals), canonicalJsonGeneral({ ...base, v: 1, seq: shape }));
    }
  }
  const weird: unknown[] = [new Point(5), ['x', 'y'], Object.assign(Object.create({ inherited: 1 }), { own: 2 }), JSON.parse('{"__proto__":{"a":1},"z":0}')];
  for (const b of weird) {
    t.equal(canonicalJsonWith(b as Record<string, unknown>, keys, [1, 2]), canonicalJsonGeneral({ ...(b as object), v: 1, seq: 2 }), JSON.stringify(b));
  }
  t.throws(() => canonicalJsonWith({ s: '\udfff' }, keys, [1, 2]), new CanonicalJsonError('lone_surrogate', ''));
  t.throws(() => canonicalJsonWith({}, keys, [1, 2 ** 60]), new CanonicalJsonError('unsafe_integer', ''));
  t.equal(canonicalJsonWith({}, ['a', 'a'], [1, 2]), canonicalJsonGeneral({ a: 2 }), 'a repeated extra key: the last value wins, as in a spread');
});

t.test('property: a record sealed in the line buffer is the line the definition gives', async (t) => {
  const lines = new LineBuffer();
  let prev = GENESIS_PREV;
  let seq = 0;
  const expected: Buffer[] = [];
  const frontier = new Frontier();
  const leaves: Buffer[] = [];
  // What the writer does at each write: the bytes are exactly the sealed lines, and leaves()
  // gives their leaf hashes, which go into the frontier (the buffer is left as it was).
  const flushInto = (f: Frontier): boolean => {
    const before = Buffer.from(lines.bytes());
    if (!before.equals(Buffer.concat(expected))) return false;
    const got: string[] = [];
    lines.leaves((l) => got.push(l));
    if (got.length !== expected.length) return false;
    const first = leaves.length - expected.length;
    for (let i = 0; i < got.length; i++) {
      if (!Buffer.from(got[i]!, 'latin1').equals(leaves[first + i]!)) return false;
      f.appendLatin1(got[i]!);
    }
    return lines.bytes().equals(before);
  };
  fc.assert(
    fc.property(
      fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), good, { maxKeys: 6 }),
      fc.nat({ max: 3000 }),
      fc.boolean(),
      (fields, pad, clear) => {
        if (clear) {
          if (!flushInto(frontier)) return false;
          lines.clear();
          expected.length = 0;
        }
        seq++;
        const ts = new Date(1_700_000_000_000 + seq).toISOString();
        const f = { ...fields, pad: 'é'.repeat(pad) };
        // The definition: canonical JSON of the spread record, hash over prev ‖ body, hash spliced in.
        const body = canonicalJsonGeneral({ ...f, v: 1, seq, ts, prev });
        const hash = chainHash(prev, body);
        const line = sealLine(body, hash);
        if (recordBody(f, seq, prev, ts, 65536) !== body) return false;
        const sealed = sealRecord(f, seq, prev, 65536, new Date(ts));
        if (sealed.line !== line || sealed.hash !== hash) return false;
        lines.seal(body, prev);
        if (lines.hash !== hash) return false;
        const leaf = leafHash(line);
        if (
          !leaf.equals(
            crypto
              .createHash('sha256')
              .update(Buffer.from([0]))
              .update(line, 'utf8')
              .digest(),
          )
        )
          return false;
        leaves.push(leaf);
        expected.push(Buffer.from(`${line}\n`, 'utf8'));
        prev = hash;
        return true;
      },
    ),
    { numRuns: 500 },
  );
  t.ok(flushInto(frontier), 'the buffer holds exactly the sealed lines, and leaves() their leaf hashes');
  t.ok(frontier.root().equals(rootOfHashes(leaves)), 'the latin1 frontier folds to the RFC 9162 root');
  t.ok(Frontier.fromState(frontier.size, frontier.state).root().equals(frontier.root()));
  t.same(
    frontier.snapshot(),
    frontier.snapshotLatin1().map((s) => Buffer.from(s, 'latin1')),
  );
});

t.test('the log refuses a record that cannot be hashed reproducibly and stays as it was', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'audit.jsonl');
  const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5 });
  await log.append({ tool: 'a' });
  for (const [bad, reason] of [
    [{ s: 'x\ud800' }, 'lone_surrogate'],
    [{ [String.fromCharCode(0xdbff)]: 1 }, 'lone_surrogate'],
    [{ n: 2 ** 53 }, 'unsafe_integer'],
    [{ n: -Infinity }, 'non_finite'],
    [{ d: new Date() }, 'not_plain'],
    [{ s: 'é'.repeat(40_000) }, 'too_long'],
  ] as const) {
    await t.rejects(log.append(bad), new CanonicalJsonError(reason, ''), reason);
  }
  const last = await log.append({ tool: 'b', ok: '\ud83d\ude00' });
  t.equal(last.seq, 2, 'refused records took no seq');
  await log.close();
  const stored = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  t.equal(stored.length, 2);
  let prev = GENESIS_PREV;
  for (const l of stored) {
    const { body, hash } = unsealLine(l)!;
    const rec = JSON.parse(body) as Record<string, unknown>;
    t.equal(canonicalJsonGeneral(rec), body, 'the stored body is what the general path gives for the record');
    t.equal(chainHash(prev, body), hash);
    prev = hash;
  }
  t.equal((await verifyFile(file, { strict: true })).ok, true);
});
