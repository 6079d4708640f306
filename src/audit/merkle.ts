import crypto from 'node:crypto';

/**
 * RFC 9162 §2.1 Merkle tree over the audit records: leaf i is the stored line of the record with
 * seq i+1 (its bytes as written, without the newline). MTH({}) = SHA-256(), leaf hash =
 * SHA-256(0x00 ‖ leaf), node = SHA-256(0x01 ‖ left ‖ right), split at the largest power of two
 * smaller than the size.
 */

const oneShot = (crypto as unknown as { hash?: (alg: string, data: Uint8Array, enc: 'buffer' | 'latin1') => Buffer | string }).hash;
const hashOne: (data: Uint8Array) => Buffer = oneShot
  ? (data) => oneShot('sha256', data, 'buffer') as Buffer
  : (data) => crypto.createHash('sha256').update(data).digest();
/**
 * A hash as a 32-character latin1 string (one char per byte). Node 20's one-shot hash returns a
 * string far cheaper than a Buffer, so the frontier keeps its nodes in this form.
 */
const hashLatin1: (data: Uint8Array) => string = oneShot
  ? (data) => oneShot('sha256', data, 'latin1') as string
  : (data) => crypto.createHash('sha256').update(data).digest('binary');

export const EMPTY_ROOT: Buffer = crypto.createHash('sha256').digest();

let scratch = Buffer.alloc(64 * 1024 + 1);

function prefixed(leaf: Uint8Array | string): Buffer {
  const bytes = typeof leaf === 'string' ? Buffer.from(leaf, 'utf8') : leaf;
  if (bytes.length + 1 > scratch.length) scratch = Buffer.alloc(bytes.length + 1);
  scratch[0] = 0x00;
  scratch.set(bytes, 1);
  return scratch.subarray(0, bytes.length + 1);
}

export function leafHash(leaf: Uint8Array | string): Buffer {
  return hashOne(prefixed(leaf));
}

/** leafHash as a latin1 string, for Frontier.appendLatin1. */
export function leafHashLatin1(leaf: Uint8Array | string): string {
  return hashLatin1(prefixed(leaf));
}

const nodeBuf = Buffer.alloc(65);
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  nodeBuf[0] = 0x01;
  nodeBuf.set(left, 1);
  nodeBuf.set(right, 33);
  return hashOne(nodeBuf);
}

function nodeHashLatin1(left: string, right: string): string {
  nodeBuf[0] = 0x01;
  nodeBuf.write(left, 1, 32, 'latin1');
  nodeBuf.write(right, 33, 32, 'latin1');
  return hashLatin1(nodeBuf);
}

const toLatin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const fromLatin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

function isPowerOfTwo(n: number): boolean {
  let x = n;
  while (x > 1 && x % 2 === 0) x /= 2;
  return x === 1;
}

/** Largest power of two strictly smaller than n (n ≥ 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The right edge of the tree ("compact range" [0, size)): one hash per set bit of size, for the
 * perfect subtrees the leaves so far decompose into, largest first. Appending costs O(log n)
 * node hashes in the worst case and one on average; the root folds the edge right to left.
 * Nodes are held as latin1 strings (see hashLatin1): immutable, so a snapshot is an array copy.
 */
export class Frontier {
  private nodes: string[] = [];
  private n = 0;

  static fromState(size: number, nodes: readonly Uint8Array[]): Frontier {
    let bits = 0;
    for (let s = size; s > 0; s = Math.floor(s / 2)) bits += s % 2;
    if (bits !== nodes.length) throw new Error(`a frontier of size ${size} has ${bits} nodes, not ${nodes.length}`);
    return Frontier.fromLatin1(size, nodes.map(toLatin1));
  }

  /** Trusts `nodes` to be a frontier of `size` (they came from one). */
  static fromStateUnchecked(size: number, nodes: readonly Uint8Array[]): Frontier {
    return Frontier.fromLatin1(size, nodes.map(toLatin1));
  }

  /** Trusts `nodes` (latin1 strings, as snapshotLatin1 gives them) to be a frontier of `size`. */
  static fromLatin1(size: number, nodes: readonly string[]): Frontier {
    const f = new Frontier();
    f.n = size;
    f.nodes = [...nodes];
    return f;
  }

  get size(): number {
    return this.n;
  }

  /** A copy of the edge as Buffers. */
  snapshot(): Buffer[] {
    return this.nodes.map(fromLatin1);
  }

  /** A copy of the edge in O(log n) without conversions (the strings are immutable). */
  snapshotLatin1(): string[] {
    return [...this.nodes];
  }

  /** The subtree hashes, largest (leftmost) first. */
  get state(): readonly Buffer[] {
    return this.snapshot();
  }

  appendLeaf(leaf: Uint8Array | string): void {
    this.appendLatin1(leafHashLatin1(leaf));
  }

  appendHash(h: Uint8Array): void {
    this.appendLatin1(toLatin1(h));
  }

  /** Append a leaf hash given as a latin1 string (leafHashLatin1, LineBuffer.leaf). */
  appendLatin1(h: string): void {
    let node = h;
    // Each trailing 1 bit of the old size is a perfect subtree of the same height: merge it.
    for (let s = this.n; s % 2 === 1; s = Math.floor(s / 2)) {
      node = nodeHashLatin1(this.nodes.pop() as string, node);
    }
    this.nodes.push(node);
    this.n++;
  }

  root(): Buffer {
    if (this.n === 0) return EMPTY_ROOT;
    let acc = this.nodes[this.nodes.length - 1] as string;
    for (let i = this.nodes.length - 2; i >= 0; i--) acc = nodeHashLatin1(this.nodes[i] as string, acc);
    return fromLatin1(acc);
  }

  clone(): Frontier {
    return Frontier.fromLatin1(this.n, this.nodes);
  }
}

/** MTH over leaf hashes, straight from the RFC's recursive definition (tests and small ranges). */
export function rootOfHashes(hashes: readonly Buffer[]): Buffer {
  if (hashes.length === 0) return EMPTY_ROOT;
  if (hashes.length === 1) return hashes[0] as Buffer;
  const k = splitPoint(hashes.length);
  return nodeHash(rootOfHashes(hashes.slice(0, k)), rootOfHashes(hashes.slice(k)));
}

/** A half-open leaf range [start, end) whose MTH is one element of a proof. */
export interface Range {
  readonly start: number;
  readonly end: number;
}

/** RFC 9162 §2.1.3.1 PATH(m, D[n]) as the ranges whose subtree hashes form the audit path, leaf-side first. */
export function inclusionRanges(index: number, size: number): Range[] {
  if (index < 0 || index >= size) throw new RangeError(`leaf ${index} is not in a tree of size ${size}`);
  const out: Range[] = [];
  const walk = (m: number, start: number, n: number): void => {
    if (n <= 1) return;
    const k = splitPoint(n);
    if (m < k) {
      walk(m, start, k);
      out.push({ start: start + k, end: start + n });
    } else {
      walk(m - k, start + k, n - k);
      out.push({ start, end: start + k });
    }
  };
  walk(index, 0, size);
  return out;
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), as ranges. */
export function consistencyRanges(m: number, n: number): Range[] {
  if (m < 1 || m > n) throw new RangeError(`no consistency proof from size ${m} to ${n}`);
  const out: Range[] = [];
  const sub = (mm: number, start: number, nn: number, b: boolean): void => {
    if (mm === nn) {
      if (!b) out.push({ start, end: start + nn });
      return;
    }
    const k = splitPoint(nn);
    if (mm <= k) {
      sub(mm, start, k, b);
      out.push({ start: start + k, end: start + nn });
    } else {
      sub(mm - k, start + k, nn - k, false);
      out.push({ start, end: start + k });
    }
  };
  sub(m, 0, n, true);
  return out;
}

/**
 * Hashes of many disjoint ranges in one pass over the leaves, in any order: each range gets its
 * own frontier and the leaves are fed in index order. Memory is O(ranges · log n).
 */
export class RangeHasher {
  private readonly order: { range: Range; frontier: Frontier; slot: number }[];
  private cursor = 0;

  constructor(ranges: readonly Range[]) {
    this.order = ranges.map((range, slot) => ({ range, frontier: new Frontier(), slot })).sort((a, b) => a.range.start - b.range.start);
  }

  /** Feed leaf `index` (called with increasing indices). */
  add(index: number, hash: Buffer): void {
    while (this.cursor < this.order.length && (this.order[this.cursor] as { range: Range }).range.end <= index) this.cursor++;
    const cur = this.order[this.cursor];
    if (cur && cur.range.start <= index && index < cur.range.end) cur.frontier.appendHash(hash);
  }

  results(): Buffer[] {
    const out: Buffer[] = new Array(this.order.length);
    for (const o of this.order) {
      if (o.frontier.size !== o.range.end - o.range.start) throw new Error(`range [${o.range.start}, ${o.range.end}) is incomplete: the log ended early`);
      out[o.slot] = o.frontier.root();
    }
    return out;
  }
}

/** RFC 9162 §2.1.3.2: recompute the root from a leaf hash and its audit path. */
export function rootFromInclusion(index: number, size: number, leaf: Buffer, path: readonly Buffer[]): Buffer | undefined {
  if (index >= size || index < 0) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}

export function verifyInclusion(index: number, size: number, leaf: Buffer, path: readonly Buffer[], root: Buffer): boolean {
  const r = rootFromInclusion(index, size, leaf, path);
  return r !== undefined && r.equals(root);
}

/** RFC 9162 §2.1.4.2: does `proof` show that the tree of size `m` is a prefix of the one of size `n`? */
export function verifyConsistency(m: number, n: number, proof: readonly Buffer[], oldRoot: Buffer, newRoot: Buffer): boolean {
  if (m < 1 || m > n) return false;
  if (m === n) return proof.length === 0 && oldRoot.equals(newRoot);
  let path = [...proof];
  // Step 2: if m is an exact power of 2, prepend first_hash to the consistency_path.
  if (isPowerOfTwo(m)) path = [oldRoot, ...path];
  if (path.length === 0) return false;
  let fn = m - 1;
  let sn = n - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Buffer;
  let sr = path[0] as Buffer;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return fr.equals(oldRoot) && sr.equals(newRoot) && sn === 0;
}
