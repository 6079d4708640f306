import fs from 'node:fs';
import readline from 'node:readline';
import { chainHash, GENESIS_PREV, unsealLine } from './chain.js';

export type DamageKind = 'malformed' | 'modified' | 'deleted' | 'reordered' | 'inserted' | 'truncated';

export interface VerifyProblem {
  readonly line: number;
  readonly seq?: number;
  readonly kind: DamageKind;
  readonly message: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly path: string;
  readonly records: number;
  readonly last_seq: number;
  readonly last_hash: string;
  readonly problem?: VerifyProblem;
}

/**
 * Stream the log and stop at the first damage. Each line's hash is recomputed over the exact bytes
 * stored (never a re-serialisation), each `prev` must be the hash of the line before it, and seq
 * must count up by one from 1.
 */
export async function verifyFile(file: string): Promise<VerifyReport> {
  const size = fs.statSync(file).size;
  let endsWithNewline = true;
  if (size > 0) {
    const fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, size - 1);
    fs.closeSync(fd);
    endsWithNewline = b[0] === 0x0a;
  }
  const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNo = 0;
  let prev = GENESIS_PREV;
  let expectedSeq = 1;
  let lastSeq = 0;
  const report = (problem: VerifyProblem): VerifyReport => {
    rl.close();
    return { ok: false, path: file, records: lineNo - 1, last_seq: lastSeq, last_hash: prev, problem };
  };
  let pendingLast: string | undefined;
  for await (const line of rl) {
    lineNo++;
    pendingLast = line;
    const sealed = unsealLine(line);
    let rec: { seq?: unknown; prev?: unknown } | undefined;
    try {
      rec = sealed ? (JSON.parse(sealed.body) as { seq?: unknown; prev?: unknown }) : undefined;
    } catch {
      rec = undefined;
    }
    if (!sealed || !rec || typeof rec.seq !== 'number' || typeof rec.prev !== 'string') {
      // A damaged final line without its newline is what a crash mid-write leaves.
      const torn = !endsWithNewline && lineNo > 0;
      return report({ line: lineNo, kind: torn ? 'truncated' : 'malformed', message: torn ? 'the last record is incomplete' : 'not a sealed audit record' });
    }
    const seq = rec.seq;
    if (chainHash(rec.prev, sealed.body) !== sealed.hash) {
      return report({ line: lineNo, seq, kind: 'modified', message: 'the record does not match its hash' });
    }
    if (seq > expectedSeq) {
      return report({ line: lineNo, seq, kind: 'deleted', message: `expected seq ${expectedSeq}, found ${seq}: ${seq - expectedSeq} record(s) missing before this line` });
    }
    if (seq < expectedSeq) {
      return report({ line: lineNo, seq, kind: 'reordered', message: `expected seq ${expectedSeq}, found ${seq}` });
    }
    if (rec.prev !== prev) {
      return report({ line: lineNo, seq, kind: 'inserted', message: 'prev does not match the hash of the record before it (a record was replaced or inserted)' });
    }
    prev = sealed.hash;
    lastSeq = seq;
    expectedSeq = seq + 1;
  }
  void pendingLast;
  if (!endsWithNewline && lineNo > 0) {
    return { ok: false, path: file, records: lineNo - 1, last_seq: lastSeq, last_hash: prev, problem: { line: lineNo, seq: lastSeq, kind: 'truncated', message: 'the last record has no terminating newline' } };
  }
  return { ok: true, path: file, records: lineNo, last_seq: lastSeq, last_hash: prev };
}
