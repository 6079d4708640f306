/** Sealing fields into a stored line: the envelope (record-type.ts) and the chain hash, for every backend. */
import { canonicalJsonWith } from './canonical-json.js';
import { chainHashFast, HASH_SUFFIX_LENGTH, isoNow, sealLine } from './chain.js';
import { AUDIT_RECORD_VERSION } from './record-type.js';

/** The keys the log adds to the gate's fields (one constant array: canonicalJsonWith caches by identity). */
const SEALED_KEYS: readonly string[] = ['v', 'seq', 'ts', 'prev'];

/**
 * The canonical JSON of `{ ...fields, v, seq, ts, prev }` without its hash, refused (CanonicalJsonError)
 * when the sealed line would exceed maxLineBytes: the suffix `,"hash":"<64 hex>"}` replaces the
 * closing brace, so the body may use the rest of the bound.
 */
export function recordBody(fields: Readonly<Record<string, unknown>>, seq: number, prev: string, ts: string, maxLineBytes: number): string {
  return canonicalJsonWith(fields, SEALED_KEYS, [AUDIT_RECORD_VERSION, seq, ts, prev], maxLineBytes - (HASH_SUFFIX_LENGTH - 1));
}

/** Seal fields into a stored line (without newline); throws CanonicalJsonError before any state changes. */
export function sealRecord(
  fields: Readonly<Record<string, unknown>>,
  seq: number,
  prev: string,
  maxLineBytes: number,
  now?: Date,
): { line: string; hash: string } {
  const body = recordBody(fields, seq, prev, now ? now.toISOString() : isoNow(), maxLineBytes);
  const hash = chainHashFast(prev, body);
  return { line: sealLine(body, hash), hash };
}
