import path from 'node:path';
import mime from 'mime-types';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text means valid UTF-8 without NUL bytes; anything else is answered as binary. */
export function decodeText(buf: Uint8Array): string | undefined {
  if (buf.includes(0)) return undefined;
  try {
    return utf8.decode(buf);
  } catch {
    return undefined;
  }
}

export function mimeType(file: string, isText: boolean): string {
  const byExt = mime.lookup(path.extname(file));
  if (byExt) return byExt;
  return isText ? 'text/plain' : 'application/octet-stream';
}
