import { Transform, type TransformCallback, type Writable } from 'node:stream';

/**
 * The SDK's stdio transport drops a line it cannot parse and says nothing to the client. JSON-RPC
 * asks for an answer (-32700 parse error, -32600 invalid request, id null when unknown), and an
 * over-long line must not grow the buffer without bound. This filter sits between stdin and the
 * transport: good lines pass through untouched, bad ones are answered here.
 */
export class StdioGuard extends Transform {
  private buffered = '';
  private discarding = false;

  constructor(private readonly out: Writable, private readonly maxLineBytes: number, private readonly onReject: (reason: string) => void) {
    super();
  }

  private reply(id: unknown, code: number, message: string): void {
    const safeId = typeof id === 'string' || typeof id === 'number' ? id : null;
    this.out.write(`${JSON.stringify({ jsonrpc: '2.0', id: safeId, error: { code, message } })}\n`);
  }

  private check(line: string): void {
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

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let text = this.buffered + chunk.toString('utf8');
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      const line = text.slice(0, nl).replace(/\r$/, '');
      text = text.slice(nl + 1);
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      this.check(line);
    }
    if (Buffer.byteLength(text) > this.maxLineBytes) {
      if (!this.discarding) {
        this.onReject('too_large');
        this.reply(null, -32600, `Invalid Request: message exceeds ${this.maxLineBytes} bytes.`);
      }
      this.discarding = true;
      text = '';
    }
    this.buffered = text;
    done();
  }
}
