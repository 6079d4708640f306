import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoints } from './checkpoint.js';
import { scanLines, segmentName, type LogPaths } from './files.js';
import { consistencyRanges, Frontier, leafHash, RangeHasher, verifyConsistency, type Range } from './merkle.js';
import { buildConsistencyProof } from './proofs.js';
import { openNote, parseCheckpointText } from './note.js';
import { fileSegments } from './verify.js';
import { checkCosignatures, type WitnessVerifier } from './witness-cosignature.js';

/**
 * The log's side of C2SP tlog-witness: each new checkpoint goes to every configured witness with
 * a consistency proof from the size that witness last cosigned, and the cosignature/v1 lines that
 * come back are checked with the witness's key and stored beside the log in
 * `<stem>.cosignatures.jsonl`, one line per witness and checkpoint:
 *
 *   {"note": <the checkpoint note, log signature included>, "size": N, "witness": NAME, "cosignature": "— NAME …\n"}
 *
 * (the `note` field makes each line readable as a checkpoint too, so verify can hold the log to
 * every cosigned checkpoint even if the checkpoints file is rewritten). Submissions run one at a
 * time and in order, off the call path; a witness that is down only delays its cosignatures.
 */
export interface WitnessEndpoint {
  readonly name: string;
  /** The submission prefix: `<url>/add-checkpoint` is posted to. */
  readonly url: string;
  readonly key: WitnessVerifier;
}

export function cosignaturesPath(p: LogPaths): string {
  return path.join(p.dir, `${p.stem}.cosignatures.jsonl`);
}

export interface CosignatureLine {
  readonly note: string;
  readonly size: number;
  readonly witness: string;
  readonly cosignature: string;
}

export class WitnessClient {
  private chain: Promise<void> = Promise.resolve();
  /** The size each witness last cosigned (from the file at start, then from its answers). */
  private readonly known = new Map<string, number>();
  private readonly file: string;

  constructor(
    private readonly paths: LogPaths,
    private readonly witnesses: readonly WitnessEndpoint[],
    private readonly onWarning?: (message: string, detail: Record<string, unknown>) => void,
    private readonly timeoutMs = 5000,
  ) {
    this.file = cosignaturesPath(paths);
    try {
      for (const l of fs.readFileSync(this.file, 'utf8').split('\n')) {
        if (!l) continue;
        try {
          const c = JSON.parse(l) as CosignatureLine;
          if ((this.known.get(c.witness) ?? 0) < c.size) this.known.set(c.witness, c.size);
        } catch {
          // A torn last line commits to nothing.
        }
      }
    } catch {
      // No cosignatures yet.
    }
  }

  /** Queue a checkpoint note for every witness; resolves when all have answered or failed. */
  submit(note: string, size: number): Promise<void> {
    this.chain = this.chain.then(async () => {
      await Promise.all(
        this.witnesses.map((w) =>
          this.submitOne(w, note, size).catch((err: Error) => {
            this.onWarning?.('witness did not cosign the checkpoint', { witness: w.name, size, error: err.message });
          }),
        ),
      );
    });
    return this.chain;
  }

  /** Wait for every queued submission. */
  idle(): Promise<void> {
    return this.chain;
  }

  private async submitOne(w: WitnessEndpoint, note: string, size: number): Promise<void> {
    let old = this.known.get(w.name) ?? 0;
    if (old >= size) return;
    for (let attempt = 0; attempt < 2; attempt++) {
      const proof = old > 0 && old < size ? await this.consistencyProof(old, size, note) : [];
      const body = `old ${old}\n${proof.map((h) => `${h}\n`).join('')}\n${note}`;
      const res = await fetch(`${w.url.replace(/\/$/, '')}/add-checkpoint`, {
        method: 'POST',
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
        headers: { 'content-type': 'text/plain; charset=utf-8' },
      });
      const text = await res.text();
      if (res.status === 409 && (res.headers.get('content-type') ?? '').startsWith('text/x.tlog.size')) {
        // The witness knows another size: retry once from it (it may be behind or ahead of us).
        const theirs = Number(text.trim());
        if (!Number.isSafeInteger(theirs) || theirs < 0) throw new Error(`witness ${w.name}: bad 409 body`);
        if (theirs >= size) {
          this.known.set(w.name, theirs);
          return;
        }
        old = theirs;
        continue;
      }
      if (res.status !== 200) throw new Error(`witness ${w.name} answered ${res.status}: ${text.trim().slice(0, 200)}`);
      const lines = text.split('\n').filter(Boolean);
      const cpText = openNote(note, []).text;
      const mine = lines.filter((l) => checkCosignatures(cpText, [l], [w.key]).length === 1);
      if (!mine.length) throw new Error(`witness ${w.name} answered without a cosignature by its key`);
      const rec: CosignatureLine = { note, size, witness: w.name, cosignature: `${mine[0]}\n` };
      const fd = fs.openSync(this.file, 'a', 0o600);
      try {
        fs.writeSync(fd, `${JSON.stringify(rec)}\n`);
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      this.known.set(w.name, size);
      return;
    }
    throw new Error(`witness ${w.name}: size conflict persisted`);
  }

  /**
   * RFC 6962 consistency proof old → size. Every node of PROOF(m, D[n]) that lies in the old tree
   * is one of its frontier's perfect subtrees, and the rest are subtrees of the new leaves; so
   * from the checkpoint line at `old` (its frontier, checked against its signed root, and where
   * record `old` ends) only the records after it are read. The proof is checked against the two
   * roots before it is sent; if anything is missing it is built from the whole log instead.
   */
  async consistencyProof(old: number, size: number, note: string): Promise<string[]> {
    const newRoot = parseCheckpointText(openNote(note, []).text).root;
    try {
      const fast = this.proofFromCheckpoint(old, size, newRoot);
      if (fast) return fast;
    } catch {
      // Fall back to reading the whole log.
    }
    const { segments } = fileSegments(this.paths.active);
    const p = await buildConsistencyProof(segments, old, size, null, null);
    return [...p.proof];
  }

  private proofFromCheckpoint(old: number, size: number, newRoot: Buffer): string[] | undefined {
    const cp = loadCheckpoints(this.paths.checkpoints, [])
      .checkpoints.reverse()
      .find((c) => c.size === old && c.raw.seg !== undefined && c.raw.offset !== undefined && Array.isArray(c.raw.frontier));
    if (!cp) return undefined;
    const f = Frontier.fromState(
      old,
      cp.raw.frontier.map((b) => Buffer.from(b, 'base64')),
    );
    if (!f.root().equals(cp.root)) return undefined;
    // The frontier's subtrees, largest (leftmost) first: the binary decomposition of `old`.
    const known = new Map<string, Buffer>();
    const nodes = f.snapshot();
    let start = 0;
    let i = 0;
    for (let p = 2 ** Math.floor(Math.log2(old)); p >= 1; p /= 2) {
      if (old - start >= p) {
        known.set(`${start}:${start + p}`, nodes[i++] as Buffer);
        start += p;
      }
    }
    const ranges = consistencyRanges(old, size);
    const fresh = ranges.filter((r) => r.start >= old);
    const hasher = new RangeHasher(fresh);
    let index = old;
    const feed = (buf: Buffer, s: number, e: number): boolean => {
      if (index >= size) return false;
      hasher.add(index++, leafHash(buf.subarray(s, e)));
      return true;
    };
    const seg = cp.raw.seg as number;
    const sealed = path.join(this.paths.dir, segmentName(this.paths, seg));
    const { segments } = fileSegments(this.paths.active);
    // Record `old` ends at `offset` in the segment that starts at `seg` (sealed since, or still active).
    const first = segments.find((x) => x.first_seq === seg);
    if (!first) return undefined;
    const firstFile = fs.existsSync(sealed) ? sealed : this.paths.active;
    scanLines(firstFile, feed, cp.raw.offset as number);
    for (const x of segments) {
      if (x.first_seq <= seg || index >= size) continue;
      const file = x.name === path.basename(this.paths.active) ? this.paths.active : path.join(this.paths.dir, x.name);
      scanLines(file, feed);
    }
    if (index < size) return undefined;
    const fromNew = hasher.results();
    const proof: Buffer[] = [];
    let k = 0;
    for (const r of ranges as Range[]) {
      if (r.start >= old) proof.push(fromNew[k++] as Buffer);
      else {
        const h = known.get(`${r.start}:${r.end}`);
        if (!h) return undefined;
        proof.push(h);
      }
    }
    if (!verifyConsistency(old, size, proof, cp.root, newRoot)) return undefined;
    return proof.map((b) => b.toString('base64'));
  }
}
