/**
 * Configured header values are secrets (API tokens). An upstream may echo request headers back
 * (httpbin's /headers, debug endpoints, error pages quoting the request), so every response is
 * scrubbed of every form a configured value may take before it is returned, cached or hashed into
 * the audit log: the value itself, its credential part after the scheme ("Bearer x" → "x"), a Basic
 * credential decoded, and each of those JSON-escaped and percent-encoded.
 */
const MIN_SECRET_LENGTH = 6;
export const REDACTED = '[REDACTED]';

export function secretVariants(values: readonly string[]): Buffer[] {
  const forms = new Set<string>();
  for (const v of values) {
    const value = v.trim();
    const parts = [value];
    const m = /^([A-Za-z][A-Za-z0-9_-]*)\s+(.+)$/.exec(value);
    if (m) {
      parts.push((m[2] as string).trim());
      if ((m[1] as string).toLowerCase() === 'basic') {
        const decoded = Buffer.from(m[2] as string, 'base64').toString('utf8');
        if (/^[\x20-\x7e]+$/.test(decoded)) {
          parts.push(decoded);
          const colon = decoded.indexOf(':');
          if (colon !== -1) parts.push(decoded.slice(colon + 1));
        }
      }
    }
    for (const p of parts) {
      if (p.length < MIN_SECRET_LENGTH) continue;
      forms.add(p);
      forms.add(JSON.stringify(p).slice(1, -1));
      forms.add(encodeURIComponent(p));
    }
  }
  // Longest first, so a value is replaced whole before any part of it.
  return [...forms].sort((a, b) => b.length - a.length).map((s) => Buffer.from(s, 'utf8'));
}

/** Replace every occurrence of every secret form; returns the new buffer and how many were replaced. */
export function redact(buf: Buffer, secrets: readonly Buffer[]): { body: Buffer; count: number } {
  let out = buf;
  let count = 0;
  const marker = Buffer.from(REDACTED);
  for (const s of secrets) {
    let at = out.indexOf(s);
    if (at === -1) continue;
    const pieces: Buffer[] = [];
    let from = 0;
    while (at !== -1) {
      pieces.push(out.subarray(from, at), marker);
      count += 1;
      from = at + s.length;
      at = out.indexOf(s, from);
    }
    pieces.push(out.subarray(from));
    out = Buffer.concat(pieces);
  }
  return { body: out, count };
}

export function redactString(text: string, secrets: readonly Buffer[]): { text: string; count: number } {
  const r = redact(Buffer.from(text, 'utf8'), secrets);
  return { text: r.count ? r.body.toString('utf8') : text, count: r.count };
}
