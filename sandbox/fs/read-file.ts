import crypto from 'node:crypto';
import fs from 'node:fs';
import { refuse } from '../../src/core/denial.js';
import type { PathPin } from '../../src/analysis/path.js';
import { openPinned } from './pinned-open.js';
import { decodeText, mimeType } from './content.js';

export type ReadEncoding = 'auto' | 'text' | 'base64';

export interface ReadRequest {
  readonly pin: PathPin;
  readonly canonical: string;
  readonly maxFileBytes: number;
  /** Cap on the bytes returned to the client (before base64). */
  readonly maxBytes: number;
  readonly offset: number;
  readonly length?: number | undefined;
  readonly encoding: ReadEncoding;
}

export interface ReadResult {
  readonly path: string;
  readonly size: number;
  readonly mtime: string;
  readonly mime: string;
  readonly sha256: string;
  readonly binary: boolean;
  readonly encoding: 'utf8' | 'base64' | 'none';
  readonly content: string;
  readonly offset: number;
  readonly returned_bytes: number;
  readonly truncated: boolean;
}

/** Read through the pinned descriptor, never by path; stop one byte past the cap so growth shows. */
export function readPinnedFile(req: ReadRequest): ReadResult {
  const { fd, stat } = openPinned(req.pin);
  try {
    const limit = req.maxFileBytes + 1;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(64 * 1024, limit - total));
      if (buf.length === 0) break;
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total >= limit) break;
    }
    if (total > req.maxFileBytes) {
      refuse('path_rejected', `The file grew past the ${req.maxFileBytes}-byte cap while it was read.`, ['path.too_large']);
    }
    const whole = Buffer.concat(chunks, total);
    const sha256 = crypto.createHash('sha256').update(whole).digest('hex');
    const start = Math.min(req.offset, whole.length);
    const want = req.length === undefined ? whole.length - start : Math.min(req.length, whole.length - start);
    const take = Math.min(want, req.maxBytes);
    let slice = whole.subarray(start, start + take);
    let text = decodeText(slice);
    // A cut in the middle of a multi-byte character is not binary: back off to the last whole character.
    if (text === undefined && take < want) {
      for (let back = 1; back <= 3 && text === undefined && slice.length > back; back++) {
        const shorter = slice.subarray(0, slice.length - back);
        const t = decodeText(shorter);
        if (t !== undefined) {
          slice = shorter;
          text = t;
        }
      }
    }
    const binary = text === undefined;
    const truncated = slice.length < want;
    const base = {
      path: req.canonical,
      size: whole.length,
      mtime: stat.mtime.toISOString(),
      mime: mimeType(req.canonical, !binary),
      sha256,
      binary,
      offset: start,
      truncated,
    };
    if (req.encoding === 'base64') {
      return { ...base, encoding: 'base64', content: slice.toString('base64'), returned_bytes: slice.length };
    }
    if (binary) {
      // Binary content is answered as metadata unless base64 is asked for explicitly.
      return { ...base, encoding: 'none', content: '', returned_bytes: 0 };
    }
    return { ...base, encoding: 'utf8', content: text as string, returned_bytes: slice.length };
  } finally {
    fs.closeSync(fd);
  }
}
