import { buildConnector, Pool } from 'undici';
import { LRUCache } from 'lru-cache';
import type { UpstreamTarget } from '../../analysis/url.js';

/**
 * Connection pools pinned to checked addresses. One undici Pool per (upstream origin, address):
 * the connector dials the address the analyser checked and never resolves the name again, while
 * the request keeps the upstream's Host header and TLS SNI/certificate name. Pools keep connections
 * alive between calls; idle pools are closed when the table is full.
 */
export class PinnedPools {
  private readonly pools = new LRUCache<string, Pool>({
    max: 256,
    dispose: (pool) => {
      void pool.close().catch(() => undefined);
    },
  });

  get(target: UpstreamTarget, address: string, opts: { connections: number; connectTimeoutMs: number }): Pool {
    const key = `${target.origin}|${address}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const base = buildConnector({ timeout: opts.connectTimeoutMs, keepAlive: true });
      // Dial the pinned address; `host` (and so SNI and certificate checks) stays the upstream's name.
      const connect: buildConnector.connector = (options, callback) => base({ ...options, hostname: address }, callback);
      pool = new Pool(target.origin, {
        connect,
        connections: opts.connections,
        keepAliveTimeout: 10_000,
        keepAliveMaxTimeout: 60_000,
        pipelining: 1,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => undefined)));
  }
}

export type AttemptFailure = 'timeout' | 'connect' | 'network' | 'cancelled' | 'too_large';

export class AttemptError extends Error {
  constructor(
    readonly kind: AttemptFailure,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'AttemptError';
  }
}

export interface AttemptRequest {
  readonly pool: Pool;
  readonly method: string;
  /** Path and query, already canonical and joined under the base path. */
  readonly pathAndQuery: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Buffer | undefined;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly maxBytes: number;
}

export interface AttemptResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
]);

/**
 * One request on a pinned pool: the attempt's own time limit and the call's cancellation both
 * abort it, and the body is read as a stream and abandoned as soon as it passes `maxBytes`.
 */
export async function attempt(req: AttemptRequest): Promise<AttemptResponse> {
  const timer = new AbortController();
  const t = setTimeout(() => timer.abort(), Math.max(1, req.timeoutMs));
  const signal = AbortSignal.any([req.signal, timer.signal]);
  const classify = (err: unknown): AttemptError => {
    if (err instanceof AttemptError) return err;
    if (req.signal.aborted) return new AttemptError('cancelled', 'the call was cancelled');
    if (timer.signal.aborted) return new AttemptError('timeout', `no complete answer within ${req.timeoutMs} ms`);
    const code = (err as NodeJS.ErrnoException).code ?? (err as { cause?: NodeJS.ErrnoException }).cause?.code;
    if (code && TIMEOUT_CODES.has(code)) return new AttemptError('timeout', `timed out (${code})`, code);
    if (code && CONNECT_CODES.has(code)) return new AttemptError('connect', `could not connect (${code})`, code);
    return new AttemptError('network', `request failed${code ? ` (${code})` : ''}`, code);
  };
  try {
    const res = await req.pool.request({
      path: req.pathAndQuery,
      method: req.method as 'GET',
      headers: req.headers as Record<string, string>,
      body: req.body ?? null,
      signal,
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
    });
    try {
      const declared = Number(res.headers['content-length']);
      if (req.method !== 'HEAD' && Number.isFinite(declared) && declared > req.maxBytes)
        throw new AttemptError('too_large', `the response declares ${declared} bytes`);
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > req.maxBytes) throw new AttemptError('too_large', `the response passed ${req.maxBytes} bytes`);
        chunks.push(chunk);
      }
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks, total) };
    } catch (err) {
      // Abandon the rest of the body: the connection is closed, not drained.
      res.body.destroy();
      throw err;
    }
  } catch (err) {
    throw classify(err);
  } finally {
    clearTimeout(t);
  }
}
