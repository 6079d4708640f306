import crypto from 'node:crypto';
import fs from 'node:fs';
import type { PathPin } from '../../src/analysis/path.js';
import { openPinned } from './pinned-open.js';
import { decodeText, mimeType } from './content.js';

export interface InfoResult {
  readonly path: string;
  readonly kind: 'file' | 'directory';
  readonly size: number;
  readonly mtime: string;
  readonly ctime: string;
  readonly mode: string;
  readonly nlink: number;
  readonly mime?: string;
  readonly sha256?: string;
}

export function infoPinned(pin: PathPin, canonical: string, maxFileBytes: number): InfoResult {
  const { fd, stat } = openPinned(pin);
  try {
    const base = {
      path: canonical,
      kind: pin.kind,
      size: stat.size,
      mtime: stat.mtime.toISOString(),
      ctime: stat.ctime.toISOString(),
      mode: (stat.mode & 0o7777).toString(8).padStart(4, '0'),
      nlink: stat.nlink,
    };
    if (pin.kind !== 'file' || stat.size > maxFileBytes) return base;
    const buf = Buffer.alloc(stat.size);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
    }
    const content = buf.subarray(0, got);
    // Sniff only a prefix: a text decision over a whole large file buys nothing here.
    const isText = decodeText(content.subarray(0, Math.min(content.length, 4096))) !== undefined;
    return { ...base, mime: mimeType(canonical, isText), sha256: crypto.createHash('sha256').update(content).digest('hex') };
  } finally {
    fs.closeSync(fd);
  }
}
