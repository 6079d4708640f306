import crypto from 'node:crypto';

export const GENESIS_PREV = '0'.repeat(64);

/**
 * A stored line is the canonical JSON of the record without its hash, with `,"hash":"<hex>"}`
 * put in place of the closing brace. So the bytes that were hashed are the line minus a suffix of
 * fixed length: the verifier hashes bytes, it never re-serialises.
 */
export const HASH_SUFFIX_LENGTH = ',"hash":"'.length + 64 + '"}'.length;

export function chainHash(prev: string, body: string): string {
  return crypto.createHash('sha256').update(prev, 'ascii').update(body, 'utf8').digest('hex');
}

export function sealLine(body: string, hash: string): string {
  return `${body.slice(0, -1)},"hash":"${hash}"}`;
}

/** Split a stored line into the hashed body and the hash, or undefined when it is not of that form. */
export function unsealLine(line: string): { body: string; hash: string } | undefined {
  if (line.length <= HASH_SUFFIX_LENGTH || !line.endsWith('"}')) return undefined;
  const cut = line.length - HASH_SUFFIX_LENGTH;
  const suffix = line.slice(cut);
  const m = /^,"hash":"([0-9a-f]{64})"\}$/.exec(suffix);
  if (!m) return undefined;
  return { body: `${line.slice(0, cut)}}`, hash: m[1] as string };
}

export function sha256Hex(data: string | Uint8Array): string {
  // One native call where the runtime has crypto.hash (replay hashes every input copy it reads).
  return oneShot ? oneShot('sha256', data, 'hex') : crypto.createHash('sha256').update(data).digest('hex');
}

const oneShot = (crypto as unknown as { hash?: (alg: string, data: string | Uint8Array, enc: 'hex') => string }).hash;

/** chainHash in one native call when the runtime has crypto.hash (Node ≥ 20.12). */
export function chainHashFast(prev: string, body: string): string {
  return oneShot ? oneShot('sha256', prev + body, 'hex') : chainHash(prev, body);
}

const hashTo = oneShot as unknown as ((alg: string, data: Uint8Array, enc: 'hex' | 'latin1') => string) | undefined;
function sha256(data: Uint8Array, enc: 'hex' | 'latin1'): string {
  return hashTo
    ? hashTo('sha256', data, enc)
    : crypto
        .createHash('sha256')
        .update(data)
        .digest(enc === 'hex' ? 'hex' : 'binary');
}

/** `new Date().toISOString()`, formatted once per millisecond. */
let isoMs = -1;
let isoText = '';
export function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

const SMALL = 64 * 1024;

/**
 * Sealed lines, each encoded once straight into one growing buffer that the writer hands to
 * write(2) whole. Per record: one UTF-8 encoding of the body and SHA-256 over prev ‖ body (the
 * chain hash, over the bytes as they will be stored); no string is built for the line and
 * nothing is encoded twice. leaves() gives the RFC 9162 leaf hashes, SHA-256(0x00 ‖ line), of
 * what is in the buffer, so the writer can compute them while an fdatasync is running.
 *
 * Layout: byte 0 is spare, lines follow from byte 1. A record is sealed in place: prev (64 hex
 * digits) then the body are written at the end, hashed together, the body minus its closing brace
 * is moved back over prev, and `,"hash":"<hex>"}\n` follows it. A leaf hash borrows the byte
 * before its line (the previous newline, or the spare byte) for the 0x00 prefix and puts it back.
 */
export class LineBuffer {
  private buf = Buffer.allocUnsafe(SMALL);
  private used = 1;
  /** Where each sealed line ends (its newline). */
  private ends: number[] = [];
  /** The last sealed record's hash (hex). */
  hash = '';

  /** Bytes of the sealed lines so far. */
  get length(): number {
    return this.used - 1;
  }

  /**
   * Seal `body` (canonical JSON, already checked against the line bound) as the record after
   * `prev`. The bytes stay in the buffer until clear().
   */
  seal(body: string, prev: string): void {
    const p = this.used;
    // A UTF-16 unit is at most 3 UTF-8 bytes; then the hash suffix and the newline.
    this.reserve(p + (prev.length + body.length) * 3 + HASH_SUFFIX_LENGTH + 1);
    const buf = this.buf;
    // prev is 64 hex digits; written as chainHash's UTF-8 of prev + body would have it anyway.
    const m = buf.write(prev, p, 'utf8');
    const n = buf.write(body, p + m, 'utf8');
    const hash = sha256(new Uint8Array(buf.buffer, buf.byteOffset + p, m + n), 'hex');
    buf.copyWithin(p, p + m, p + m + n - 1);
    const end = p + n - 1 + buf.write(`,"hash":"${hash}"}`, p + n - 1, 'latin1');
    buf[end] = 0x0a;
    this.ends.push(end);
    this.used = end + 1;
    this.hash = hash;
  }

  /** The leaf hash of each line in the buffer, in order, as 32 latin1 characters. */
  leaves(each: (leaf: string) => void): void {
    const buf = this.buf;
    let p = 1;
    for (const end of this.ends) {
      const before = buf[p - 1] as number;
      buf[p - 1] = 0x00;
      each(sha256(new Uint8Array(buf.buffer, buf.byteOffset + p - 1, end - p + 1), 'latin1'));
      buf[p - 1] = before;
      p = end + 1;
    }
  }

  /** The sealed lines, newline-terminated (a view: valid until the next seal or clear). */
  bytes(): Buffer {
    return this.buf.subarray(1, this.used);
  }

  clear(): void {
    this.used = 1;
    this.ends = [];
    // Give back what a burst made it grow to.
    if (this.buf.length > 64 * SMALL) this.buf = Buffer.allocUnsafe(SMALL);
  }

  private reserve(size: number): void {
    if (size <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < size) cap *= 2;
    const bigger = Buffer.allocUnsafe(cap);
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  }
}
