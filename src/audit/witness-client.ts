import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoints } from './checkpoint.js';
import { scanLines, segmentName, type LogPaths } from './files.js';
import { consistencyRanges, Frontier, leafHash, RangeHasher, verifyConsistency, type Range } from './merkle.js';
import { buildConsistencyProof } from './proofs.js';
import { openNote, parseCheckpointText } from './note.js';
import { fileSegments } from './verify.js';
import { checkCosignatures, type WitnessEndpoint } from './witness-cosignature.js';

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
export type { WitnessEndpoint } from './witness-cosignature.js';

export function cosignaturesPath(p: LogPaths): string {
  return path.join(p.dir, `${p.stem}.cosignatures.jsonl`);
}

export interface CosignatureLine {
  readonly note: string;
  readonly size: number;
  readonly witness: string;
  readonly cosignature: string;
}

/**
 * Where a backend keeps the cosignatures and how it proves consistency: the file log's side is
 * below (FileWitnessSide); the PostgreSQL log's is in postgres-witness.ts.
 */
export interface WitnessLogSide {
  /** The largest size each witness has cosigned, as stored. */
  known(): Promise<ReadonlyMap<string, number>>;
  /** Store a checked cosignature durably. */
  store(line: CosignatureLine): Promise<void>;
  /** RFC 6962 consistency proof old → size (base64 hashes), `note` being the checkpoint at `size`. */
  consistencyProof(old: number, size: number, note: string): Promise<string[]>;
}

export class WitnessClient {
  private chain: Promise<void> = Promise.resolve();
  /** The size each witness last cosigned (from the store at first use, then from its answers). */
  private known: Map<string, number> | undefined;
  private readonly side: WitnessLogSide;

  constructor(
    where: LogPaths | WitnessLogSide,
    private readonly witnesses: readonly WitnessEndpoint[],
    private readonly onWarning?: (message: string, detail: Record<string, unknown>) => void,
    private readonly timeoutMs = 5000,
  ) {
    this.side = 'active' in where ? new FileWitnessSide(where) : where;
  }

  /** Queue a checkpoint note for every witness; resolves when all have answered or failed. */
  submit(note: string, size: number): Promise<void> {
    this.chain = this.chain.then(async () => {
      try {
        this.known ??= new Map(await this.side.known());
      } catch (err) {
        this.onWarning?.('witness cosignatures could not be read; checkpoints are not submitted', { size, error: (err as Error).message });
        return;
      }
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

  consistencyProof(old: number, size: number, note: string): Promise<string[]> {
    return this.side.consistencyProof(old, size, note);
  }

  private async submitOne(w: WitnessEndpoint, note: string, size: number): Promise<void> {
    const known = this.known as Map<string, number>;
    let old = known.get(w.name) ?? 0;
    if (old >= size) return;
    for (let attempt = 0; attempt < 2; attempt++) {
      const proof = old > 0 && old < size ? await this.side.consistencyProof(old, size, note) : [];
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
          known.set(w.name, theirs);
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
      await this.side.store({ note, size, witness: w.name, cosignature: `${mine[0]}\n` });
      known.set(w.name, size);
      return;
    }
    throw new Error(`witness ${w.name}: size conflict persisted`);
  }
}

/**
 * The consistency proof old → size from the frontier at `old` (checked against its signed root by
 * the caller) and the leaves after it, which `scanAfter` feeds in order from `old`. Every node of
 * PROOF(m, D[n]) that lies in the old tree is one of the frontier's perfect subtrees, and the rest
 * are subtrees of the new leaves. Undefined when the leaves fall short or the proof does not check.
 */
export async function proofFromFrontier(
  f: Frontier,
  oldRoot: Buffer,
  size: number,
  newRoot: Buffer,
  scanAfter: (feed: (leaf: Uint8Array) => boolean) => Promise<void> | void,
): Promise<string[] | undefined> {
  const old = f.size;
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
  const hasher = new RangeHasher(ranges.filter((r) => r.start >= old));
  let index = old;
  await scanAfter((leaf) => {
    if (index >= size) return false;
    hasher.add(index++, leafHash(leaf));
    return true;
  });
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
  if (!verifyConsistency(old, size, proof, oldRoot, newRoot)) return undefined;
  return proof.map((b) => b.toString('base64'));
}

/** The file log's side: `<stem>.cosignatures.jsonl`, proofs from the checkpoints file and segments. */
export class FileWitnessSide implements WitnessLogSide {
  private readonly file: string;

  constructor(private readonly paths: LogPaths) {
    this.file = cosignaturesPath(paths);
  }

  async known(): Promise<ReadonlyMap<string, number>> {
    const known = new Map<string, number>();
    try {
      for (const l of fs.readFileSync(this.file, 'utf8').split('\n')) {
        if (!l) continue;
        try {
          const c = JSON.parse(l) as CosignatureLine;
          if ((known.get(c.witness) ?? 0) < c.size) known.set(c.witness, c.size);
        } catch {
          // A torn last line commits to nothing.
        }
      }
    } catch {
      // No cosignatures yet.
    }
    return known;
  }

  async store(rec: CosignatureLine): Promise<void> {
    const fd = fs.openSync(this.file, 'a', 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(rec)}\n`);
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * From the checkpoint line at `old` (its frontier, checked against its signed root, and where
   * record `old` ends) only the records after it are read; the proof is checked against the two
   * roots before it is sent; if anything is missing it is built from the whole log instead.
   */
  async consistencyProof(old: number, size: number, note: string): Promise<string[]> {
    const newRoot = parseCheckpointText(openNote(note, []).text).root;
    try {
      const fast = await this.proofFromCheckpoint(old, size, newRoot);
      if (fast) return fast;
    } catch {
      // Fall back to reading the whole log.
    }
    const { segments } = fileSegments(this.paths.active);
    const p = await buildConsistencyProof(segments, old, size, null, null);
    return [...p.proof];
  }

  private async proofFromCheckpoint(old: number, size: number, newRoot: Buffer): Promise<string[] | undefined> {
    const cp = loadCheckpoints(this.paths.checkpoints, [])
      .checkpoints.reverse()
      .find((c) => c.size === old && c.raw.seg !== undefined && c.raw.offset !== undefined && Array.isArray(c.raw.frontier));
    if (!cp) return undefined;
    const f = Frontier.fromState(
      old,
      cp.raw.frontier.map((b) => Buffer.from(b, 'base64')),
    );
    if (!f.root().equals(cp.root)) return undefined;
    const seg = cp.raw.seg as number;
    const sealed = path.join(this.paths.dir, segmentName(this.paths, seg));
    const { segments } = fileSegments(this.paths.active);
    // Record `old` ends at `offset` in the segment that starts at `seg` (sealed since, or still active).
    if (!segments.some((x) => x.first_seq === seg)) return undefined;
    const firstFile = fs.existsSync(sealed) ? sealed : this.paths.active;
    return proofFromFrontier(f, cp.root, size, newRoot, (feed) => {
      let more = true;
      const lineFeed = (buf: Buffer, s: number, e: number): boolean => (more = feed(buf.subarray(s, e)));
      scanLines(firstFile, lineFeed, cp.raw.offset as number);
      for (const x of segments) {
        if (x.first_seq <= seg || !more) continue;
        const file = x.name === path.basename(this.paths.active) ? this.paths.active : path.join(this.paths.dir, x.name);
        scanLines(file, lineFeed);
      }
    });
  }
}
