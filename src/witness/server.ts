import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { acquireLock, syncDir } from '../audit/files.js';
import { verifyConsistency } from '../audit/merkle.js';
import { parseCheckpointText, openNote, type NoteVerifier } from '../audit/note.js';
import { cosign, type WitnessSigner } from '../audit/witness-cosignature.js';

/**
 * A C2SP tlog-witness (https://c2sp.org/tlog-witness): `POST <prefix>/add-checkpoint` with
 *
 *   old <size>\n  <base64 proof hash>\n × 0..63  \n  <signed checkpoint note>
 *
 * For each log it knows (origin → the log's verifier keys) it keeps the latest checkpoint it
 * cosigned, appended to `state.jsonl` and fdatasynced before it answers (one sync per cosignature;
 * the last line per origin wins, a torn last line is ignored); checking the old size and persisting the new state happen in one critical
 * section (requests are handled one at a time), so the spec's roll-back race cannot occur. It
 * never cosigns a checkpoint that does not extend what it cosigned before: 409 for a stale old
 * size or a same-size checkpoint with another root, 422 for a consistency proof that fails.
 * Refused submissions signed by the log are kept in `refused.jsonl` (evidence of a fork).
 */
export interface WitnessServerOptions {
  readonly signer: WitnessSigner;
  readonly stateDir: string;
  /** Log origin → the verifier keys of its checkpoint signer(s). */
  readonly logs: ReadonlyMap<string, readonly NoteVerifier[]>;
  readonly prefix?: string | undefined;
  readonly maxBodyBytes?: number | undefined;
}

interface LogState {
  readonly size: number;
  readonly root: string;
  readonly checkpoint: string;
  readonly at: string;
}

interface StateLine extends LogState {
  readonly origin: string;
}

export interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

const MAX_PROOF_LINES = 63;

export class Witness {
  private readonly state = new Map<string, LogState>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly file: string;
  private readonly fd: number;
  private readonly refusedFile: string;
  private readonly release: () => void;

  constructor(private readonly opts: WitnessServerOptions) {
    fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    // One witness process per state: two would race on "the latest checkpoint cosigned".
    this.release = acquireLock(path.join(opts.stateDir, 'witness.lock'));
    this.file = path.join(opts.stateDir, 'state.jsonl');
    this.refusedFile = path.join(opts.stateDir, 'refused.jsonl');
    try {
      const text = fs.existsSync(this.file) ? fs.readFileSync(this.file, 'utf8') : '';
      const lines = text.split('\n');
      // The last piece has no newline: a write a crash cut short, never acknowledged.
      lines.pop();
      for (const l of lines) {
        const r = JSON.parse(l) as StateLine;
        if (typeof r.origin !== 'string' || !Number.isSafeInteger(r.size) || typeof r.root !== 'string') throw new Error('malformed state line');
        this.state.set(r.origin, { size: r.size, root: r.root, checkpoint: r.checkpoint, at: r.at });
      }
      this.fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
      const torn = text.length - text.lastIndexOf('\n') - 1;
      if (torn > 0) fs.ftruncateSync(this.fd, text.length - torn);
      syncDir(opts.stateDir);
    } catch (err) {
      this.release();
      // A witness that lost its state must not start afresh: it would cosign a fork.
      throw new Error(`witness state ${this.file} cannot be read (${(err as Error).message}); a witness whose state is lost must be retired, not restarted`, {
        cause: err,
      });
    }
  }

  close(): void {
    fs.closeSync(this.fd);
    this.release();
  }

  latest(origin: string): LogState | undefined {
    return this.state.get(origin);
  }

  /** One add-checkpoint request, serialised with every other. */
  addCheckpoint(body: string): Promise<Answer> {
    const run = this.queue.then(() => this.handle(body));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private handle(body: string): Answer {
    const text = (status: number, msg: string): Answer => ({ status, contentType: 'text/plain; charset=utf-8', body: `${msg}\n` });
    const sep = body.indexOf('\n\n');
    if (sep < 0) return text(400, 'malformed request: no empty line before the checkpoint');
    const head = body.slice(0, sep).split('\n');
    const note = body.slice(sep + 2);
    const oldLine = /^old (0|[1-9][0-9]*)$/.exec(head[0] ?? '');
    if (!oldLine) return text(400, 'malformed old size line');
    const oldSize = Number(oldLine[1]);
    const proofLines = head.slice(1);
    if (proofLines.length > MAX_PROOF_LINES) return text(400, 'too many consistency proof lines');
    const proof: Buffer[] = [];
    for (const l of proofLines) {
      const h = Buffer.from(l, 'base64');
      if (h.length !== 32 || h.toString('base64') !== l) return text(400, 'malformed consistency proof line');
      proof.push(h);
    }
    const origin = note.slice(0, note.indexOf('\n'));
    const keys = this.opts.logs.get(origin);
    if (!keys) return text(404, `unknown log origin ${JSON.stringify(origin.slice(0, 200))}`);
    let opened;
    let cp;
    try {
      opened = openNote(note, keys);
      cp = parseCheckpointText(opened.text);
    } catch (err) {
      return text(400, `malformed checkpoint: ${(err as Error).message}`);
    }
    // Signatures from unknown keys are ignored; one valid signature by a trusted key is needed.
    if (!opened.signatures.some((s) => s.valid === true)) return text(403, 'the checkpoint is not signed by a key this witness trusts for its origin');
    if (oldSize > cp.size) return text(400, 'old size is larger than the checkpoint size');
    const known = this.state.get(origin);
    const knownSize = known?.size ?? 0;
    if (oldSize !== knownSize) return { status: 409, contentType: 'text/x.tlog.size', body: `${knownSize}\n` };
    const root = cp.root.toString('base64');
    if (oldSize === 0) {
      if (proof.length) return text(400, 'the consistency proof must be empty when the old size is 0');
    } else if (oldSize === cp.size) {
      if (known && known.root !== root) {
        this.evidence(origin, oldSize, note, 409, 'same size, different root');
        return text(409, 'a checkpoint of the same size with a different root was cosigned before: the log forked');
      }
    } else if (!known || !verifyConsistency(oldSize, cp.size, proof, Buffer.from(known.root, 'base64'), cp.root)) {
      this.evidence(origin, oldSize, note, 422, 'consistency proof does not verify');
      return text(422, `the consistency proof from size ${oldSize} to ${cp.size} does not verify`);
    }
    this.persist(origin, { size: cp.size, root, checkpoint: opened.text, at: new Date().toISOString() });
    return { status: 200, contentType: 'text/plain; charset=utf-8', body: cosign(opened.text, this.opts.signer) };
  }

  /** Durable before the cosignature leaves: a crash after answering cannot forget what was cosigned. */
  private persist(origin: string, next: LogState): void {
    const line = Buffer.from(`${JSON.stringify({ origin, ...next })}\n`);
    for (let off = 0; off < line.length;) off += fs.writeSync(this.fd, line, off, line.length - off);
    fs.fdatasyncSync(this.fd);
    this.state.set(origin, next);
  }

  private evidence(origin: string, oldSize: number, note: string, status: number, reason: string): void {
    try {
      fs.appendFileSync(this.refusedFile, `${JSON.stringify({ at: new Date().toISOString(), origin, old: oldSize, status, reason, checkpoint: note })}\n`, {
        mode: 0o600,
      });
    } catch {
      // Evidence is best effort; the refusal itself is what protects.
    }
  }
}

/** The HTTP face of a Witness: only POST <prefix>/add-checkpoint, bodies capped. */
export function witnessHttpServer(w: Witness, opts: Pick<WitnessServerOptions, 'prefix' | 'maxBodyBytes'> = {}): http.Server {
  const route = `${opts.prefix ?? ''}/add-checkpoint`;
  const cap = opts.maxBodyBytes ?? 64 * 1024;
  const server = http.createServer((req, res) => {
    const send = (a: Answer): void => {
      res.writeHead(a.status, { 'content-type': a.contentType, 'content-length': Buffer.byteLength(a.body) });
      res.end(a.body);
    };
    if (req.url !== route) return send({ status: 404, contentType: 'text/plain', body: 'not found\n' });
    if (req.method !== 'POST') return send({ status: 405, contentType: 'text/plain', body: 'POST only\n' });
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > cap) {
        over = true;
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (over) return;
      w.addCheckpoint(Buffer.concat(chunks).toString('utf8')).then(send, (err: Error) =>
        send({ status: 500, contentType: 'text/plain', body: `${err.message}\n` }),
      );
    });
    req.on('error', () => undefined);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}
