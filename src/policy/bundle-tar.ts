import zlib from 'node:zlib';
import { PolicyError } from './types.js';

/**
 * The files of an OPA bundle (a gzipped ustar archive), by name without a leading "/" or "./".
 * Deliberately strict, because the archive is untrusted until its signature is checked and even
 * then names must not be ambiguous: only regular files and directories, no links, no duplicate
 * names (two entries for one name would let the verifier hash one and the loader read the other),
 * no "..", and bounded sizes so a gzip bomb costs nothing.
 */
export function readBundleArchive(gz: Uint8Array, maxBytes: number): Map<string, Buffer> {
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(gz, { maxOutputLength: maxBytes });
  } catch (err) {
    throw new PolicyError('policy.bundle_unreadable', `the bundle is not a gzip archive within ${maxBytes} bytes: ${(err as Error).message}`);
  }
  const files = new Map<string, Buffer>();
  let paxPath: string | undefined;
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    if (!checksumOk(header)) throw new PolicyError('policy.bundle_unreadable', `tar header at byte ${off} has a bad checksum`);
    const field = (start: number, len: number): string =>
      header
        .subarray(start, start + len)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim() || '0', 8);
    if (!Number.isSafeInteger(size) || size < 0 || off + 512 + size > tar.length)
      throw new PolicyError('policy.bundle_unreadable', `tar entry at byte ${off} has a bad size`);
    const type = field(156, 1) || '0';
    const body = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      // PAX extended header: only the path record matters for a name longer than ustar allows.
      paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1];
      continue;
    }
    if (type === 'g') continue;
    const prefix = field(345, 155);
    const raw = paxPath ?? (prefix ? `${prefix}/` : '') + field(0, 100);
    paxPath = undefined;
    if (type === '5') continue;
    if (type !== '0') throw new PolicyError('policy.bundle_unreadable', `tar entry ${JSON.stringify(raw)} is not a regular file (type ${type})`);
    const name = raw.replace(/^(\.?\/)+/, '');
    if (name === '' || name.split('/').some((seg) => seg === '..' || seg === '.' || seg === '') || /[\0\\]/.test(name))
      throw new PolicyError('policy.bundle_unreadable', `tar entry name ${JSON.stringify(raw)} is not a plain relative path`);
    if (files.has(name)) throw new PolicyError('policy.bundle_unreadable', `tar entry ${name} appears twice`);
    files.set(name, Buffer.from(body));
  }
  return files;
}

function checksumOk(header: Buffer): boolean {
  const stored = parseInt(header.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (header[i] as number);
  return sum === stored;
}
