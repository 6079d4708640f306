import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { AuditUnavailableError } from '../src/audit/audit-log.js';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { canonicalJson, CanonicalJsonError } from '../src/audit/canonical-json.js';
import { chainHash, GENESIS_PREV, unsealLine } from '../src/audit/chain.js';
import { verifyFile } from '../src/audit/verify.js';
import { BIN, makeSandbox } from './helpers/fixtures.js';
import { inProcessGate } from './helpers/gate.js';

t.test('canonical JSON follows RFC 8785 rules and refuses what cannot be hashed reproducibly', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1.5, y: -0 } }), '{"a":[true,null,"x"],"b":1,"c":{"y":0,"z":1.5}}');
  t.equal(canonicalJson({ '\u00e9': 1, e: 2, '\ud83d\ude00': 3 }), '{"e":2,"\u00e9":1,"\ud83d\ude00":3}', 'keys sorted by UTF-16 code units');
  t.equal(canonicalJson(1.5e-7), '1.5e-7');
  t.throws(() => canonicalJson(1e21), new CanonicalJsonError('unsafe_integer', ''), 'integers beyond 2^53 are refused, not rounded');
  t.equal(canonicalJson('\u2028"\\'), '"\u2028\\"\\\\"');
  for (const [bad, reason] of [
    [{ n: 2 ** 53 }, 'unsafe_integer'],
    [{ n: Number.NaN }, 'non_finite'],
    [{ s: 'a\ud800b' }, 'lone_surrogate'],
    [{ [String.fromCharCode(0xdc00)]: 1 }, 'lone_surrogate'],
    [{ d: new Date() }, 'not_plain'],
    [{ f: () => 1 }, 'unsupported_type'],
  ] as const) {
    t.throws(() => canonicalJson(bad), new CanonicalJsonError(reason, ''), reason);
  }
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  t.throws(() => canonicalJson(deep), new CanonicalJsonError('too_deep', ''));
});

async function writeLog(file: string, n: number): Promise<void> {
  const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 10 });
  await Promise.all(Array.from({ length: n }, (_, i) => log.append({ request_id: `r${i}`, tool: 'read_file', outcome: { status: 'ok' } })));
  await log.close();
}

function lines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

t.test('the chain: seq from 1, prev links, hash over the stored bytes, resumes after restart', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'a.jsonl');
  await writeLog(file, 20);
  await writeLog(file, 5);
  const ls = lines(file);
  t.equal(ls.length, 25);
  let prev = GENESIS_PREV;
  ls.forEach((l, i) => {
    const s = unsealLine(l)!;
    const rec = JSON.parse(s.body);
    t.equal(rec.seq, i + 1);
    t.equal(rec.prev, prev);
    t.equal(s.hash, chainHash(prev, s.body));
    prev = s.hash;
  });
  const r = await verifyFile(file);
  t.equal(r.ok, true);
  t.equal(r.records, 25);
  t.equal((fs.statSync(file).mode & 0o777).toString(8), '600', 'the log is private to its owner');
});

const TAMPERS: [string, (ls: string[]) => string, string, number][] = [
  [
    'a byte changed',
    (ls) => {
      ls[4] = ls[4]!.replace('"read_file"', '"read_filf"');
      return ls.join('\n') + '\n';
    },
    'modified',
    5,
  ],
  [
    'a record deleted',
    (ls) => {
      ls.splice(6, 1);
      return ls.join('\n') + '\n';
    },
    'deleted',
    7,
  ],
  // A swap is named as such (seq 4 arrives before seq 3, and seq 3 follows), not as a deletion.
  [
    'two records swapped',
    (ls) => {
      [ls[2], ls[3]] = [ls[3]!, ls[2]!];
      return ls.join('\n') + '\n';
    },
    'reordered',
    3,
  ],
  // A copy of record 5 placed after it is an inserted record (identical hash), not a reordering.
  [
    'a record duplicated',
    (ls) => {
      ls.splice(5, 0, ls[4]!);
      return ls.join('\n') + '\n';
    },
    'inserted',
    6,
  ],
  ['the last record torn', (ls) => ls.join('\n').slice(0, -20), 'truncated', 10],
  [
    'garbage inserted',
    (ls) => {
      ls.splice(3, 0, '{"hello":"world"}');
      return ls.join('\n') + '\n';
    },
    'malformed',
    4,
  ],
  [
    'a record re-hashed after an edit',
    (ls) => {
      // The attacker recomputes the edited record's own hash: the next record's prev no longer matches.
      const s = unsealLine(ls[4]!)!;
      const rec = JSON.parse(s.body);
      rec.tool = 'something_else';
      const body = canonicalJson(rec);
      ls[4] = `${body.slice(0, -1)},"hash":"${chainHash(rec.prev, body)}"}`;
      return ls.join('\n') + '\n';
      // The bad record is the edited one (line 5), found because line 6 still chains from the original.
    },
    'modified',
    5,
  ],
];

for (const [label, tamper, kind, line] of TAMPERS) {
  t.test(`verify finds ${label}`, async (t) => {
    const sb = makeSandbox();
    t.teardown(sb.cleanup);
    const file = path.join(sb.dir, 'log.jsonl');
    await writeLog(file, 10);
    fs.writeFileSync(file, tamper(lines(file)));
    const r = await verifyFile(file);
    t.equal(r.ok, false);
    t.equal(r.problem?.kind, kind);
    t.equal(r.problem?.line, line);
    const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', file], { encoding: 'utf8' });
    t.equal(cli.status, 1, 'CLI exits 1');
    t.match(cli.stdout, `line ${line}`, 'and names the line');
  });
}

t.test('a torn last record is set aside at start-up and the chain resumes from the last intact one', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'torn.jsonl');
  await writeLog(file, 3);
  fs.appendFileSync(file, '{"partial":');
  const warnings: string[] = [];
  const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 10, onWarning: (m) => warnings.push(m) });
  const a = await log.append({ request_id: 'after', tool: 'read_file' });
  await log.close();
  t.equal(a.seq, 5, 'seq 4 is the recovery record, the next call gets 5');
  t.match(warnings.join('\n'), /torn/, 'recovery is reported');
  const ls = lines(file);
  t.equal(ls.length, 5);
  const rec = JSON.parse(unsealLine(ls[3]!)!.body);
  t.equal(rec.event, 'audit.recovery');
  t.equal(rec.recovery.action, 'set_aside');
  t.equal(rec.recovery.bytes, '{"partial":'.length);
  const aside = fs.readdirSync(sb.dir).filter((f) => f.startsWith('torn.jsonl.torn-'));
  t.equal(aside.length, 1, 'the torn bytes are kept beside the log');
  t.equal(fs.readFileSync(path.join(sb.dir, aside[0]!), 'utf8'), '{"partial":', 'byte for byte');
  t.equal(rec.recovery.set_aside, aside[0]);
  t.equal((await verifyFile(file)).ok, true, 'nothing chained over the torn bytes');
  t.ok(AuditUnavailableError, 'still exported');
});

t.test('a failed audit write withholds the result (disk full)', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  fs.mkdirSync(path.dirname(sb.auditPath), { recursive: true });
  fs.symlinkSync('/dev/full', sb.auditPath);
  const gate = await inProcessGate(sb.configPath);
  t.teardown(() => gate.close().catch(() => undefined));
  const o = await gate.call('read_file', { path: 'hello.txt' });
  t.equal(o.denial?.code, 'audit_unavailable');
  t.equal(o.result, undefined, 'the file content never reaches the client');
  const again = await gate.call('read_file', { path: 'hello.txt' });
  t.equal(again.denial?.code, 'audit_unavailable', 'and the log stays failed (no gap papered over)');
});

t.test('audit tail and show', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'log.jsonl');
  await writeLog(file, 12);
  const tail = spawnSync(process.execPath, [BIN, 'audit', 'tail', file, '-n', '3'], { encoding: 'utf8' });
  t.equal(tail.status, 0);
  t.same(
    tail.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).seq),
    [10, 11, 12],
  );
  const show = spawnSync(process.execPath, [BIN, 'audit', 'show', '7', file], { encoding: 'utf8' });
  t.equal(JSON.parse(show.stdout).seq, 7);
});
