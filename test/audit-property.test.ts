import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { generateKey, parseVerifierKey } from '../src/audit/note.js';
import { verifyFile } from '../src/audit/verify.js';
import { makeSandbox } from './helpers/fixtures.js';

const KEY = generateKey('bulwark-prop');
const VERIFIERS = [parseVerifierKey(KEY.encoded)];
const RUNS = 100;

/** JSON the writer accepts: valid Unicode strings, safe numbers, bounded depth and size. */
const { value: jsonValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 12 }).filter((s) => !/\p{Cs}/u.test(s)),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
}));

const recordArb = fc.record({
  request_id: fc.string({ unit: 'grapheme', maxLength: 20 }),
  tool: fc.constantFrom('read_file', 'list_dir', 'query', '<script>', 'x"y'),
  args: fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), jsonValue, { maxKeys: 5 }),
  outcome: fc.record({ status: fc.constantFrom('ok', 'denied', 'error'), reasons: fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }) }),
});

const caseArb = fc.record({
  recs: fc.array(recordArb, { minLength: 1, maxLength: 8 }),
  flip: fc.record({ line: fc.nat(), offset: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  del: fc.nat(),
  swap: fc.tuple(fc.nat(), fc.nat()),
});

function split(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let s = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x0a) {
      out.push(buf.subarray(s, i));
      s = i + 1;
    }
  }
  return out;
}
const join = (ls: Buffer[]) => Buffer.concat(ls.flatMap((l) => [l, Buffer.from('\n')]));

t.test(`verify accepts every log the writer produces, and rejects every byte flip, line deletion and line swap (${RUNS} runs)`, async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  let n = 0;
  const kinds = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(caseArb, async ({ recs, flip, del, swap }) => {
      const dir = path.join(sb.dir, `log${n++}`);
      const file = path.join(dir, 'audit.jsonl');
      const log = await AuditLog.open({
        path: file,
        durability: 'async',
        batchMs: 5,
        checkpoint: { signer: KEY, everyRecords: 3, everyMs: 60_000, origin: 'bulwark/audit/prop' },
      });
      for (const r of recs) await log.append(r);
      await log.close();
      const opts = { publicKeys: VERIFIERS };
      const good = await verifyFile(file, opts);
      if (!good.ok || good.records !== recs.length) throw new Error(`a written log did not verify: ${JSON.stringify(good.problem)}`);
      const original = fs.readFileSync(file);
      const lines = split(original);
      const reject = async (what: string, bytes: Buffer) => {
        fs.writeFileSync(file, bytes);
        const v = await verifyFile(file, opts);
        fs.writeFileSync(file, original);
        if (v.ok) throw new Error(`${what} was accepted`);
        kinds.set(v.problem!.kind, (kinds.get(v.problem!.kind) ?? 0) + 1);
      };
      // A byte flip inside one record line.
      const li = flip.line % lines.length;
      const line = Buffer.from(lines[li]!);
      const at = flip.offset % line.length;
      line[at] = line[at]! ^ flip.xor;
      await reject(`flipping byte ${at} of line ${li + 1} by ${flip.xor}`, join(lines.map((l, k) => (k === li ? line : l))));
      // Deleting one line.
      const di = del % lines.length;
      await reject(`deleting line ${di + 1} of ${lines.length}`, join(lines.filter((_, k) => k !== di)));
      // Swapping two lines.
      if (lines.length >= 2) {
        const a = swap[0] % lines.length;
        let b = swap[1] % lines.length;
        if (a === b) b = (a + 1) % lines.length;
        const sw = [...lines];
        [sw[a], sw[b]] = [sw[b]!, sw[a]!];
        await reject(`swapping lines ${a + 1} and ${b + 1}`, join(sw));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} logs accepted; damage kinds reported: ${JSON.stringify(Object.fromEntries(kinds))}`);
});
