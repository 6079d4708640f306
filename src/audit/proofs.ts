import { consistencyRanges, inclusionRanges, leafHash, RangeHasher, rootFromInclusion, verifyConsistency, Frontier } from './merkle.js';
import { readCheckpointNote, trusted, type NoteVerifier, type SignedCheckpoint } from './note.js';
import type { Segment } from './verify.js';

/**
 * Inclusion and consistency proofs (RFC 9162 §2.1.3, §2.1.4) over the records of a log, computed
 * in one pass over the stored lines, and checked offline from the proof file and a public key.
 */
export interface InclusionProof {
  readonly v: 1;
  readonly type: 'inclusion';
  readonly seq: number;
  readonly leaf_index: number;
  readonly tree_size: number;
  /** The stored line (the leaf), exactly as written, without its newline. */
  readonly leaf: string;
  readonly leaf_hash: string;
  readonly audit_path: readonly string[];
  readonly root: string;
  /** The signed checkpoint at tree_size (C2SP note), or null when the proof is against an unsigned size. */
  readonly checkpoint: string | null;
}

export interface ConsistencyProof {
  readonly v: 1;
  readonly type: 'consistency';
  readonly old_size: number;
  readonly new_size: number;
  readonly old_root: string;
  readonly new_root: string;
  readonly proof: readonly string[];
  readonly old_checkpoint: string | null;
  readonly new_checkpoint: string | null;
}

async function feedLeaves(
  segments: readonly Segment[],
  upTo: number,
  each: (index: number, hash: Buffer, buf: Buffer, start: number, end: number) => void,
): Promise<number> {
  let index = 0;
  for (const seg of segments) {
    if (index >= upTo) break;
    if (!seg.exists) throw new Error(`segment ${seg.name} is missing; proofs need every record`);
    await seg.scan((buf, start, end) => {
      if (index >= upTo) return false;
      each(index, leafHash(buf.subarray(start, end)), buf, start, end);
      index++;
      return true;
    });
  }
  return index;
}

export async function buildInclusionProof(segments: readonly Segment[], seq: number, size: number, checkpoint: string | null): Promise<InclusionProof> {
  const index = seq - 1;
  const ranges = inclusionRanges(index, size);
  const hasher = new RangeHasher(ranges);
  const root = new Frontier();
  let leaf = '';
  let leafH: Buffer = Buffer.alloc(0);
  const n = await feedLeaves(segments, size, (i, h, buf, start, end) => {
    hasher.add(i, h);
    root.appendHash(h);
    if (i === index) {
      leaf = buf.toString('utf8', start, end);
      leafH = h;
    }
  });
  if (n < size) throw new Error(`the log holds ${n} records, fewer than the tree size ${size}`);
  return {
    v: 1,
    type: 'inclusion',
    seq,
    leaf_index: index,
    tree_size: size,
    leaf,
    leaf_hash: leafH.toString('base64'),
    audit_path: hasher.results().map((b) => b.toString('base64')),
    root: root.root().toString('base64'),
    checkpoint,
  };
}

export async function buildConsistencyProof(
  segments: readonly Segment[],
  oldSize: number,
  newSize: number,
  oldCp: string | null,
  newCp: string | null,
): Promise<ConsistencyProof> {
  const hasher = new RangeHasher(consistencyRanges(oldSize, newSize));
  const oldRoot = new Frontier();
  const newRoot = new Frontier();
  const n = await feedLeaves(segments, newSize, (i, h) => {
    hasher.add(i, h);
    if (i < oldSize) oldRoot.appendHash(h);
    newRoot.appendHash(h);
  });
  if (n < newSize) throw new Error(`the log holds ${n} records, fewer than the tree size ${newSize}`);
  return {
    v: 1,
    type: 'consistency',
    old_size: oldSize,
    new_size: newSize,
    old_root: oldRoot.root().toString('base64'),
    new_root: newRoot.root().toString('base64'),
    proof: hasher.results().map((b) => b.toString('base64')),
    old_checkpoint: oldCp,
    new_checkpoint: newCp,
  };
}

export interface ProofCheck {
  readonly ok: boolean;
  /** True when the root came from a checkpoint whose signature verified under a given key. */
  readonly signed: boolean;
  readonly message: string;
}

function checkpointFor(note: string | null, size: number, keys: readonly NoteVerifier[]): { cp?: SignedCheckpoint; error?: string } {
  if (!note) return {};
  let cp: SignedCheckpoint;
  try {
    cp = readCheckpointNote(note, keys);
  } catch (err) {
    return { error: `the checkpoint is not a signed note: ${(err as Error).message}` };
  }
  if (cp.size !== size) return { error: `the checkpoint is for size ${cp.size}, the proof for ${size}` };
  if (keys.length && !trusted(cp)) return { error: 'bad signature: the checkpoint is not validly signed by a given key' };
  return { cp };
}

export function checkInclusion(p: InclusionProof, keys: readonly NoteVerifier[]): ProofCheck {
  const leaf = leafHash(Buffer.from(p.leaf, 'utf8'));
  if (p.leaf_hash && leaf.toString('base64') !== p.leaf_hash) return { ok: false, signed: false, message: 'the leaf does not match its hash' };
  const { cp, error } = checkpointFor(p.checkpoint, p.tree_size, keys);
  if (error) return { ok: false, signed: false, message: error };
  const root = cp ? cp.root : Buffer.from(p.root, 'base64');
  const got = rootFromInclusion(
    p.leaf_index,
    p.tree_size,
    leaf,
    p.audit_path.map((b) => Buffer.from(b, 'base64')),
  );
  if (!got || !got.equals(root))
    return { ok: false, signed: false, message: `the audit path does not lead from leaf ${p.leaf_index} to the ${cp ? 'checkpoint' : 'stated'} root` };
  const signed = !!cp && keys.length > 0;
  return {
    ok: true,
    signed,
    message: `record seq ${p.seq} is leaf ${p.leaf_index} of the tree of size ${p.tree_size}${signed ? ', under a checkpoint signed by a given key' : cp ? ' (checkpoint signature not checked: no public key)' : ' (no signed checkpoint: the root is only as good as its source)'}`,
  };
}

export function checkConsistency(p: ConsistencyProof, keys: readonly NoteVerifier[]): ProofCheck {
  const o = checkpointFor(p.old_checkpoint, p.old_size, keys);
  if (o.error) return { ok: false, signed: false, message: `old: ${o.error}` };
  const n = checkpointFor(p.new_checkpoint, p.new_size, keys);
  if (n.error) return { ok: false, signed: false, message: `new: ${n.error}` };
  const oldRoot = o.cp ? o.cp.root : Buffer.from(p.old_root, 'base64');
  const newRoot = n.cp ? n.cp.root : Buffer.from(p.new_root, 'base64');
  if (o.cp && n.cp && o.cp.origin !== n.cp.origin)
    return { ok: false, signed: false, message: `the checkpoints name different logs (${o.cp.origin}, ${n.cp.origin})` };
  const ok = verifyConsistency(
    p.old_size,
    p.new_size,
    p.proof.map((b) => Buffer.from(b, 'base64')),
    oldRoot,
    newRoot,
  );
  const signed = !!o.cp && !!n.cp && keys.length > 0;
  return ok
    ? {
        ok,
        signed,
        message: `the tree of size ${p.new_size} extends the tree of size ${p.old_size}${signed ? ' (both checkpoints signed by a given key)' : ''}`,
      }
    : { ok, signed: false, message: `inconsistent: the tree of size ${p.new_size} does not extend the tree of size ${p.old_size} (rollback or fork)` };
}
