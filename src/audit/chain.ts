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
  return crypto.createHash('sha256').update(data).digest('hex');
}

const oneShot = (crypto as unknown as { hash?: (alg: string, data: string | Uint8Array, enc: 'hex') => string }).hash;

/** chainHash in one native call when the runtime has crypto.hash (Node ≥ 20.12). */
export function chainHashFast(prev: string, body: string): string {
  return oneShot ? oneShot('sha256', prev + body, 'hex') : chainHash(prev, body);
}

/** RFC 9162 leaf hash of a stored line, as hex-free bytes: SHA-256(0x00 ‖ line). */
export function leafHashOfLine(line: string): Buffer {
  const h = (crypto as unknown as { hash?: (alg: string, data: string, enc: 'buffer') => Buffer }).hash;
  return h ? h('sha256', `\u0000${line}`, 'buffer') : crypto.createHash('sha256').update(Buffer.from([0])).update(line, 'utf8').digest();
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
