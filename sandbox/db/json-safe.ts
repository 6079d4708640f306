/** Row values as JSON can carry them: dates as ISO strings, bytes as base64, bigints as text. */
export function jsonSafe(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return { base64: Buffer.from(v).toString('base64') };
  if (typeof v === 'bigint') return v.toString();
  return v;
}
