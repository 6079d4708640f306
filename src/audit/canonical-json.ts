/**
 * Deterministic JSON following RFC 8785 (JCS) rules: object keys sorted by UTF-16 code units,
 * ECMAScript number formatting, no insignificant white space. Values that cannot be hashed
 * reproducibly are refused instead of being quietly changed: non-finite numbers, integers beyond
 * 2^53, lone surrogates, excessive depth. (JSON.parse has already collapsed duplicate keys in
 * anything parsed; objects built in code cannot have them.)
 */
export class CanonicalJsonError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
    this.name = 'CanonicalJsonError';
  }
}

export const MAX_DEPTH = 64;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new CanonicalJsonError('lone_surrogate', 'string contains a lone surrogate');
  return JSON.stringify(s);
}

function num(n: number): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError('non_finite', 'number is not finite');
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) throw new CanonicalJsonError('unsafe_integer', `integer ${n} is beyond 2^53`);
  // ECMAScript's Number-to-string is what RFC 8785 §3.2.2.3 specifies; -0 serialises as 0.
  return JSON.stringify(n);
}

function write(value: unknown, depth: number, out: string[]): void {
  if (depth > MAX_DEPTH) throw new CanonicalJsonError('too_deep', `nesting deeper than ${MAX_DEPTH}`);
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      out.push(num(value));
      return;
    case 'string':
      out.push(str(value));
      return;
    case 'object': {
      if (Array.isArray(value)) {
        out.push('[');
        value.forEach((v, i) => {
          if (i) out.push(',');
          write(v === undefined ? null : v, depth + 1, out);
        });
        out.push(']');
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError('not_plain', 'only plain objects can be serialised');
      const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
      out.push('{');
      keys.forEach((k, i) => {
        if (i) out.push(',');
        out.push(str(k), ':');
        write((value as Record<string, unknown>)[k], depth + 1, out);
      });
      out.push('}');
      return;
    }
    default:
      throw new CanonicalJsonError('unsupported_type', `cannot serialise a ${typeof value}`);
  }
}

export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  write(value, 0, out);
  return out.join('');
}
