import fs from 'node:fs';
import { Frontier } from './merkle.js';
import { checkpointText, NoteError, readCheckpointNote, signNote, trusted, type NoteSigner, type NoteVerifier, type SignedCheckpoint } from './note.js';

export interface CheckpointOptions {
  readonly signer: NoteSigner;
  /** Sign after at most this many new durable records … */
  readonly everyRecords: number;
  /** … or this long after the last checkpoint, whichever comes first. */
  readonly everyMs: number;
  /** A second sink (another disk, a mounted share) that receives each checkpoint too. */
  readonly mirrorPath?: string | undefined;
  /** The checkpoint origin line; names the log. */
  readonly origin: string;
}

/** A point of the log that is on disk: what a checkpoint commits to. */
export interface DurableState {
  readonly size: number;
  readonly head: string;
  /** The Merkle frontier at `size`, as Frontier.snapshotLatin1 gives it (32-byte hashes as latin1 strings). */
  readonly frontier: readonly string[];
  /** Where record `size` ends: the first seq of its segment and the byte offset after it (file backend). */
  readonly seg?: number | undefined;
  readonly offset?: number | undefined;
}

/**
 * One line of a checkpoints file. Only `note` is evidence (signed); the rest lets the writer
 * restart without re-reading the whole log, and is checked against the signed root before use.
 */
export interface CheckpointLine {
  readonly note: string;
  readonly size: number;
  readonly frontier: readonly string[];
  readonly seg?: number | undefined;
  readonly offset?: number | undefined;
}

export function makeCheckpointLine(opts: Pick<CheckpointOptions, 'signer' | 'origin'>, s: DurableState, now = new Date()): CheckpointLine {
  const root = Frontier.fromLatin1(s.size, s.frontier).root();
  const text = checkpointText({ origin: opts.origin, size: s.size, root, chainHead: s.head, time: now.toISOString() });
  return {
    note: signNote(text, [opts.signer]),
    size: s.size,
    frontier: s.frontier.map((b) => Buffer.from(b, 'latin1').toString('base64')),
    seg: s.seg,
    offset: s.offset,
  };
}

export interface LoadedCheckpoint extends SignedCheckpoint {
  readonly file: string;
  readonly line: number;
  readonly raw: CheckpointLine;
}

export interface CheckpointFileProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** Every checkpoint in a file; a line that is not a well-formed signed checkpoint is a problem. */
export function loadCheckpoints(file: string, verifiers: readonly NoteVerifier[]): { checkpoints: LoadedCheckpoint[]; problems: CheckpointFileProblem[] } {
  const checkpoints: LoadedCheckpoint[] = [];
  const problems: CheckpointFileProblem[] = [];
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { checkpoints, problems };
    throw err;
  }
  const lines = text.split('\n');
  const torn = lines.pop();
  lines.forEach((l, i) => {
    if (!l) return;
    try {
      const raw = JSON.parse(l) as CheckpointLine;
      if (typeof raw.note !== 'string') throw new NoteError('no note');
      checkpoints.push({ ...readCheckpointNote(raw.note, verifiers), file, line: i + 1, raw });
    } catch (err) {
      problems.push({ file, line: i + 1, message: `not a signed checkpoint: ${(err as Error).message}` });
    }
  });
  // A torn last line is what a crash while writing a checkpoint leaves; it commits to nothing.
  void torn;
  return { checkpoints, problems };
}

/** The last checkpoint in `file` that is signed by `signer` and whose frontier folds to its root. */
export function lastUsableCheckpoint(file: string, signer: NoteVerifier): { cp: LoadedCheckpoint; frontier: Frontier } | undefined {
  const { checkpoints } = loadCheckpoints(file, [signer]);
  for (let i = checkpoints.length - 1; i >= 0; i--) {
    const cp = checkpoints[i] as LoadedCheckpoint;
    if (!trusted(cp)) continue;
    try {
      const f = Frontier.fromState(
        cp.size,
        (cp.raw.frontier ?? []).map((b) => Buffer.from(b, 'base64')),
      );
      if (f.root().equals(cp.root)) return { cp, frontier: f };
    } catch {
      // Not usable; try an older one.
    }
  }
  return undefined;
}
