import crypto from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { canonicalJson, CanonicalJsonError, parseStrict } from '../src/audit/canonical-json.js';
import {
  consistencyRanges,
  EMPTY_ROOT,
  Frontier,
  inclusionRanges,
  leafHash,
  RangeHasher,
  rootFromInclusion,
  verifyConsistency,
  verifyInclusion,
} from '../src/audit/merkle.js';
import {
  checkpointText,
  generateKey,
  keyId,
  openNote,
  parseCheckpointText,
  parseSignerKey,
  parseVerifierKey,
  readCheckpointNote,
  signNote,
  trusted,
} from '../src/audit/note.js';

// An independent Merkle tree: RFC 9162 §2.1.1 written out with createHash, sharing nothing with merkle.ts.
const sha = (...parts: Buffer[]) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
function naiveRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return sha(Buffer.from([0]), leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(Buffer.from([1]), naiveRoot(leaves.slice(0, k)), naiveRoot(leaves.slice(k)));
}
/** RFC 9162 §2.1.3.1 PATH, recursively over the leaves themselves. */
function naivePath(m: number, leaves: Buffer[]): Buffer[] {
  if (leaves.length <= 1) return [];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return m < k ? [...naivePath(m, leaves.slice(0, k)), naiveRoot(leaves.slice(k))] : [...naivePath(m - k, leaves.slice(k)), naiveRoot(leaves.slice(0, k))];
}
/** RFC 9162 §2.1.4.1 SUBPROOF. */
function naiveSubproof(m: number, leaves: Buffer[], b: boolean): Buffer[] {
  const n = leaves.length;
  if (m === n) return b ? [] : [naiveRoot(leaves)];
  let k = 1;
  while (k * 2 < n) k *= 2;
  return m <= k
    ? [...naiveSubproof(m, leaves.slice(0, k), b), naiveRoot(leaves.slice(k))]
    : [...naiveSubproof(m - k, leaves.slice(k), false), naiveRoot(leaves.slice(0, k))];
}

const leavesOf = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`{"seq":${i + 1},"x":"${'y'.repeat(i % 7)}"}`));

function hashesOfRanges(leaves: Buffer[], ranges: { start: number; end: number }[]): Buffer[] {
  const h = new RangeHasher(ranges);
  leaves.forEach((l, i) => h.add(i, leafHash(l)));
  return h.results();
}

t.test('frontier root equals the naive RFC 9162 root for every size 0..64', async (t) => {
  t.same(EMPTY_ROOT, sha(), 'MTH of the empty list is SHA-256 of nothing');
  const f = new Frontier();
  const leaves = leavesOf(64);
  t.same(f.root(), naiveRoot([]));
  for (let n = 1; n <= 64; n++) {
    f.appendLeaf(leaves[n - 1]!);
    t.ok(f.root().equals(naiveRoot(leaves.slice(0, n))), `size ${n}`);
    t.ok(Frontier.fromState(n, f.state).root().equals(f.root()), 'a frontier restored from its state folds to the same root');
  }
  t.throws(() => Frontier.fromState(5, [Buffer.alloc(32)]), /5 has 2 nodes/);
});

t.test('inclusion proofs verify for every leaf of trees of size 1..33, and fail when tampered', async (t) => {
  for (let n = 1; n <= 33; n++) {
    const leaves = leavesOf(n);
    const root = naiveRoot(leaves);
    for (let m = 0; m < n; m++) {
      const proof = hashesOfRanges(leaves, inclusionRanges(m, n));
      const expect = naivePath(m, leaves);
      if (!proof.every((p, i) => p.equals(expect[i]!)) || proof.length !== expect.length) t.fail(`path differs from the naive PATH at n=${n} m=${m}`);
      if (!verifyInclusion(m, n, leafHash(leaves[m]!), proof, root)) t.fail(`n=${n} m=${m} does not verify`);
      // Tampered leaf, tampered path element, wrong index, wrong size: all fail.
      if (verifyInclusion(m, n, leafHash(Buffer.concat([leaves[m]!, Buffer.from(' ')])), proof, root)) t.fail(`tampered leaf verified at n=${n} m=${m}`);
      if (proof.length) {
        const bad = proof.map((p) => Buffer.from(p));
        bad[bad.length - 1]![0]! ^= 1;
        if (verifyInclusion(m, n, leafHash(leaves[m]!), bad, root)) t.fail(`tampered path verified at n=${n} m=${m}`);
        if (verifyInclusion(m, n, leafHash(leaves[m]!), proof.slice(1), root)) t.fail(`short path verified at n=${n} m=${m}`);
      }
      if (n > 1 && verifyInclusion((m + 1) % n, n, leafHash(leaves[m]!), proof, root)) t.fail(`wrong index verified at n=${n} m=${m}`);
      // The path of tree n against the root of tree n+1 (the size is bound through the root).
      if (verifyInclusion(m, n + 1, leafHash(leaves[m]!), proof, naiveRoot(leavesOf(n + 1)))) t.fail(`wrong size verified at n=${n} m=${m}`);
    }
  }
  t.equal(rootFromInclusion(3, 3, leafHash(Buffer.from('x')), []), undefined, 'an index outside the tree is refused');
  t.pass('561 (leaf, tree) pairs checked');
});

t.test('consistency proofs verify between every pair of sizes up to 33, and fail when tampered', async (t) => {
  const all = leavesOf(33);
  for (let n = 1; n <= 33; n++) {
    const leaves = all.slice(0, n);
    const newRoot = naiveRoot(leaves);
    for (let m = 1; m <= n; m++) {
      const oldRoot = naiveRoot(leaves.slice(0, m));
      const proof = m === n ? [] : hashesOfRanges(leaves, consistencyRanges(m, n));
      const expect = naiveSubproof(m, leaves, true);
      if (proof.length !== expect.length || !proof.every((p, i) => p.equals(expect[i]!))) t.fail(`proof differs from SUBPROOF at ${m}→${n}`);
      if (!verifyConsistency(m, n, proof, oldRoot, newRoot)) t.fail(`${m}→${n} does not verify`);
      if (m < n) {
        const forked = [...leaves.slice(0, m - 1), Buffer.from('forged'), ...leaves.slice(m)];
        if (verifyConsistency(m, n, proof, oldRoot, naiveRoot(forked))) t.fail(`a fork verified at ${m}→${n}`);
        if (proof.length) {
          const bad = proof.map((p) => Buffer.from(p));
          bad[0]![5]! ^= 0x80;
          if (verifyConsistency(m, n, bad, oldRoot, newRoot)) t.fail(`a tampered proof verified at ${m}→${n}`);
        }
        if (verifyConsistency(m, n, proof, naiveRoot(leaves.slice(0, m - 1).concat([Buffer.from('z')])), newRoot))
          t.fail(`a wrong old root verified at ${m}→${n}`);
      }
    }
  }
  t.notOk(verifyConsistency(0, 3, [], sha(), sha()), 'size 0 has no proof');
  t.notOk(verifyConsistency(4, 3, [], sha(), sha()), 'shrinking is never consistent');
  t.pass('every pair checked');
});

t.test('C2SP signed notes: key ids, signatures, checkpoint bodies', async (t) => {
  const k = generateKey('bulwark-test');
  const v = parseVerifierKey(k.encoded);
  t.match(k.encoded, /^bulwark-test\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/);
  t.match(k.encodedPrivate, /^PRIVATE\+KEY\+bulwark-test\+[0-9a-f]{8}\+/);
  t.same(parseSignerKey(k.encodedPrivate).encoded, k.encoded, 'the signer key derives the same verifier key');
  // keyid = SHA-256(name || 0x0A || 0x01 || pubkey)[:4]
  const pub = Buffer.from(/^[^+]+\+[0-9a-f]{8}\+(.*)$/.exec(k.encoded)![1]!, 'base64').subarray(1);
  t.same(
    keyId('bulwark-test', pub),
    crypto
      .createHash('sha256')
      .update(Buffer.concat([Buffer.from('bulwark-test\n'), Buffer.from([1]), pub]))
      .digest()
      .subarray(0, 4),
  );
  const text = checkpointText({
    origin: 'bulwark/audit/default',
    size: 42,
    root: Buffer.alloc(32, 7),
    chainHead: 'a'.repeat(64),
    time: '2025-01-01T00:00:00.000Z',
  });
  t.equal(text, `bulwark/audit/default\n42\n${Buffer.alloc(32, 7).toString('base64')}\nchain ${'a'.repeat(64)}\ntime 2025-01-01T00:00:00.000Z\n`);
  const note = signNote(text, [k]);
  const sigLine = note.split('\n\n')[1]!;
  t.match(sigLine, /^\u2014 bulwark-test [A-Za-z0-9+/]+=*\n$/, 'signature line: em dash, name, base64');
  const raw = Buffer.from(sigLine.trim().split(' ')[2]!, 'base64');
  t.equal(raw.length, 68, '4-byte key id + 64-byte Ed25519 signature');
  t.same(raw.subarray(0, 4), v.id);
  t.ok(
    crypto.verify(
      null,
      Buffer.from(text),
      crypto.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pub]), format: 'der', type: 'spki' }),
      raw.subarray(4),
    ),
    'the signature is plain Ed25519 over the text bytes',
  );
  const cp = readCheckpointNote(note, [v]);
  t.equal(cp.size, 42);
  t.equal(cp.chainHead, 'a'.repeat(64));
  t.ok(trusted(cp));
  const tampered = note.replace('\n42\n', '\n43\n');
  t.notOk(trusted(readCheckpointNote(tampered, [v])), 'a changed body fails');
  const other = generateKey('bulwark-test');
  t.equal(openNote(note, [parseVerifierKey(other.encoded)]).signatures[0]!.valid, undefined, 'same name, other key: unknown, not valid');
  t.notOk(trusted(readCheckpointNote(note, [parseVerifierKey(other.encoded)])));
  const rotated = signNote(text, [k, other]);
  t.ok(trusted(readCheckpointNote(rotated, [v])), 'a note signed by old and new keys verifies under the old key');
  t.same(parseCheckpointText(text).root, Buffer.alloc(32, 7));
  t.throws(() => parseCheckpointText('o\n01\nAAAA\n'), /malformed/);
  t.throws(() => parseVerifierKey(k.encoded.replace(/\+[0-9a-f]{8}\+/, '+00000000+')), /does not match/);
});

// Property: what canonicalJson accepts round-trips to identical bytes, and parseStrict agrees.
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme' }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

t.test('property: canonical JSON round trip is byte-identical', async (t) => {
  fc.assert(
    fc.property(jsonValue, (v) => {
      let text: string;
      try {
        text = canonicalJson(v);
      } catch (err) {
        // Refusals are only for the documented reasons.
        return err instanceof CanonicalJsonError && ['unsafe_integer', 'lone_surrogate', 'too_deep'].includes(err.reason);
      }
      const back = JSON.parse(text) as unknown;
      const again = canonicalJson(back);
      const strict = canonicalJson(parseStrict(text));
      return again === text && strict === text && Buffer.from(text, 'utf8').toString('utf8') === text;
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 generated values');
});

t.test('parseStrict refuses duplicate keys, and canonicalJson bounds the length', async (t) => {
  t.throws(() => parseStrict('{"a":1,"a":2}'), new CanonicalJsonError('duplicate_key', ''));
  t.throws(() => parseStrict('{"x":{"seq":1,"seq":2}}'), new CanonicalJsonError('duplicate_key', ''));
  t.same(parseStrict('[{"a":1},{"a":2}]'), [{ a: 1 }, { a: 2 }], 'same key in sibling objects is fine');
  t.same(parseStrict('{"a\\"b":1,"a\\\\":2}'), { 'a"b': 1, 'a\\': 2 }, 'escaped quotes inside keys are handled');
  t.throws(() => parseStrict('{"n":9007199254740993}'), new CanonicalJsonError('unsafe_integer', ''));
  t.throws(() => canonicalJson({ s: 'x'.repeat(70_000) }, 65536), new CanonicalJsonError('too_long', ''));
  t.equal(canonicalJson({ s: 'é'.repeat(100) }, 300).length, 108);
  t.throws(() => canonicalJson({ s: 'é'.repeat(200) }, 300), new CanonicalJsonError('too_long', ''), 'the bound counts UTF-8 bytes');
});
