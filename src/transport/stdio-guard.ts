import { Transform, type TransformCallback, type Writable } from 'node:stream';

const NEWLINE = 0x0a;

/**
 * The SDK's stdio transport drops a line it cannot parse and says nothing to the client. JSON-RPC
 * asks for an answer (-32700 parse error, -32600 invalid request, id null when unknown), and an
 * over-long line must not grow the buffer without bound. This filter sits between stdin and the
 * transport: good lines pass through untouched, bad ones are answered here.
 *
 * Lines are cut on the newline byte and decoded whole: a pipe read can end inside a multi-byte
 * UTF-8 character, and decoding each read on its own would corrupt it (0x0a never occurs inside
 * a multi-byte sequence, so cutting bytes there is safe). A line that is not valid UTF-8 is a
 * parse error rather than silently repaired arguments.
 */
export class StdioGuard extends Transform {
  private readonly parts: Buffer[] = [];
  private partBytes = 0;
  private discarding = false;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  constructor(
    private readonly out: Writable,
    private readonly maxLineBytes: number,
    private readonly onReject: (reason: string) => void,
  ) {
    super();
  }

  private reply(id: unknown, code: number, message: string): void {
    const safeId = typeof id === 'string' || typeof id === 'number' ? id : null;
    this.out.write(`${JSON.stringify({ jsonrpc: '2.0', id: safeId, error: { code, message } })}\n`);
  }

  private check(bytes: Buffer): void {
    let line: string;
    try {
      line = this.utf8.decode(bytes);
    } catch {
      this.onReject('invalid_utf8');
      this.reply(null, -32700, 'Parse error: the line is not valid UTF-8.');
      return;
    }
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.onReject('parse_error');
      this.reply(null, -32700, 'Parse error: the line is not valid JSON.');
      return;
    }
    const m = msg as Record<string, unknown>;
    const isObject = msg !== null && typeof msg === 'object' && !Array.isArray(msg);
    const paramsOk = !isObject || m.params === undefined || (m.params !== null && typeof m.params === 'object');
    if (!isObject || m.jsonrpc !== '2.0' || (m.method !== undefined && typeof m.method !== 'string') || !paramsOk) {
      this.onReject('invalid_request');
      this.reply(isObject ? m.id : null, -32600, 'Invalid Request: not a JSON-RPC 2.0 message.');
      return;
    }
    this.push(`${line}\n`);
  }

  private tooLarge(): void {
    this.onReject('too_large');
    this.reply(null, -32600, `Invalid Request: message exceeds ${this.maxLineBytes} bytes.`);
  }

  private takeLine(tail: Buffer): Buffer {
    const line = this.parts.length ? Buffer.concat([...this.parts, tail], this.partBytes + tail.length) : tail;
    this.parts.length = 0;
    this.partBytes = 0;
    return line;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf(NEWLINE, start)) >= 0) {
      const line = this.takeLine(chunk.subarray(start, nl));
      start = nl + 1;
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      if (line.length > this.maxLineBytes) this.tooLarge();
      else this.check(line);
    }
    if (start < chunk.length && !this.discarding) {
      const rest = chunk.subarray(start);
      if (this.partBytes + rest.length > this.maxLineBytes) {
        this.tooLarge();
        this.discarding = true;
        this.parts.length = 0;
        this.partBytes = 0;
      } else {
        // A copy: the reader may reuse the chunk's memory once we return.
        this.parts.push(Buffer.from(rest));
        this.partBytes += rest.length;
      }
    }
    done();
  }

  /** A last message without its newline (the client closed stdin right after it) is still a message. */
  override _flush(done: TransformCallback): void {
    if (!this.discarding && this.partBytes > 0) this.check(this.takeLine(Buffer.alloc(0)));
    done();
  }
}
