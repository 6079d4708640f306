import fs from 'node:fs';
import path from 'node:path';
import type { LogPaths } from './files.js';
import { buildConsistencyProof } from './proofs.js';
import { openNote } from './note.js';
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
      await Promise.all(this.witnesses.map((w) => this.submitOne(w, note, size).catch((err: Error) => {
        this.onWarning?.('witness did not cosign the checkpoint', { witness: w.name, size, error: err.message });
      })));
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
      const proof = old > 0 && old < size ? (await this.proof(old, size)) : [];
      const body = `old ${old}\n${proof.map((h) => `${h}\n`).join('')}\n${note}`;
      const res = await fetch(`${w.url.replace(/\/$/, '')}/add-checkpoint`, { method: 'POST', body, signal: AbortSignal.timeout(this.timeoutMs), headers: { 'content-type': 'text/plain; charset=utf-8' } });
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
   * RFC 6962 consistency proof old → size over the log's records. It reads the log from the start
   * (the durable records up to `size`): simple and exact; its cost grows with the log.
   */
  private async proof(old: number, size: number): Promise<string[]> {
    const { segments } = fileSegments(this.paths.active);
    const p = await buildConsistencyProof(segments, old, size, null, null);
    return [...p.proof];
  }
}
