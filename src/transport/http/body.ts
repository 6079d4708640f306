import type http from 'node:http';

/**
 * Read the body up to the cap; past it, answer 'too_large' and stop reading. A request whose
 * connection goes first (the client left, or request_timeout_ms cut a body that trickled in) is 'aborted'.
 */
export function readBody(req: http.IncomingMessage, cap: number): Promise<Buffer | 'too_large' | 'aborted'> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > cap) {
      resolve('too_large');
      return;
    }
    if (req.destroyed) {
      // Gone while the request was being authenticated.
      resolve('aborted');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > cap) {
        done = true;
        resolve('too_large');
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on('close', () => {
      if (done) return;
      done = true;
      resolve('aborted');
    });
    req.on('error', (err) => {
      if (done) return;
      done = true;
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') resolve('aborted');
      else reject(err);
    });
  });
}

/** JSON text must be UTF-8 (RFC 8259 §8.1): bytes that are not are refused, not silently replaced. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as a JSON value, or the parse error's message (answered -32700). */
export function parseJsonBody(body: Buffer): { readonly value: unknown } | { readonly error: string } {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return { error: 'Parse error: the body is not valid UTF-8.' };
  }
  try {
    return { value: JSON.parse(text) };
  } catch {
    return { error: 'Parse error: the body is not valid JSON.' };
  }
}
