/**
 * Deterministic JSON following RFC 8785 (JCS) rules: object keys sorted by UTF-16 code units,
 * ECMAScript number formatting, no insignificant white space. Values that cannot be hashed
 * reproducibly are refused instead of being quietly changed: non-finite numbers, integers beyond
 * 2^53, lone surrogates, excessive depth, and (with a bound) excessive length. Objects built in
 * code cannot hold duplicate keys; text read back goes through parseStrict, which refuses them.
 */
export class CanonicalJsonError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'CanonicalJsonError';
  }
}

export const MAX_DEPTH = 64;

/**
 * The longest stored line (the sealed record, without its newline). A bound keeps verification
 * and recovery windows finite; the gate retries a record that is too long without its arguments.
 */
export const MAX_LINE_BYTES = 64 * 1024;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Strings that JSON writes as they are: no quote, backslash, control character or surrogate. */
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/** Object keys repeat from record to record: keep their serialised form. */
const keyCache = new Map<string, string>();

function key(k: string): string {
  let out = keyCache.get(k);
  if (out === undefined) {
    out = str(k);
    if (keyCache.size < 4096) keyCache.set(k, out);
  }
  return out;
}

function str(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  const out = JSON.stringify(s);
  // Well-formed JSON.stringify escapes a lone surrogate as \udXXX; only then run the exact test
  // (a literal backslash followed by "ud" also lands here, and passes it).
  if (out.includes('\\ud') && LONE_SURROGATE.test(s)) throw new CanonicalJsonError('lone_surrogate', 'string contains a lone surrogate');
  return out;
}

function num(n: number): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError('non_finite', 'number is not finite');
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) throw new CanonicalJsonError('unsafe_integer', `integer ${n} is beyond 2^53`);
  // ECMAScript's Number-to-string is what RFC 8785 §3.2.2.3 specifies; -0 serialises as 0.
  return JSON.stringify(n);
}

function write(value: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new CanonicalJsonError('too_deep', `nesting deeper than ${MAX_DEPTH}`);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return num(value);
    case 'string':
      return str(value);
    case 'object': {
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i) out += ',';
          const v: unknown = value[i];
          out += write(v === undefined ? null : v, depth + 1);
        }
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError('not_plain', 'only plain objects can be serialised');
      const obj = value as Record<string, unknown>;
      // Default sort compares UTF-16 code units, as RFC 8785 §3.2.3 asks.
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        out += `${first ? '' : ','}${key(k)}:${write(v, depth + 1)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw new CanonicalJsonError('unsupported_type', `cannot serialise a ${typeof value}`);
  }
}

/**
 * The general path: one recursive walk that throws the exact error. The reference the fast path
 * is tested against (test/audit-canonical-fast.test.ts), and what decides whenever the fast path
 * meets anything it does not handle itself.
 */
export function canonicalJsonGeneral(value: unknown, maxBytes = Infinity): string {
  return bounded(write(value, 0), maxBytes);
}

function bounded(text: string, maxBytes: number): string {
  // Cheap bound first (a UTF-16 unit is at most 3 UTF-8 bytes), exact count only near the limit.
  if (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes) {
    throw new CanonicalJsonError('too_long', `serialised record is longer than ${maxBytes} bytes`);
  }
  return text;
}

/**
 * The fast path. Same walk and same output as `write`, but it never throws a CanonicalJsonError
 * itself: on anything the general path would refuse it throws BAIL, and the caller runs the
 * general path over the whole value, which then throws the exact error (canonicalJsonWith also
 * leaves odd bases to it, and then gets the output from it). So both paths agree on every input
 * by construction, and test/audit-canonical-fast.test.ts checks it. What makes it faster:
 * numbers without JSON.stringify, keys that usually arrive sorted (checked, then
 * insertion-sorted) and cached with their colon and comma, and for records no copy of the fields
 * object (see canonicalJsonWith).
 */
class Bail {}
const BAIL = new Bail();

function fastStr(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  const out = JSON.stringify(s);
  if (out.includes('\\ud') && LONE_SURROGATE.test(s)) throw BAIL;
  return out;
}

/**
 * A key as it is written first in its object (`"k":`) and after another (`,"k":`): one string
 * each, so writing a member adds two pieces to the string being built, not four.
 */
const firstKeys = new Map<string, string>();
const nextKeys = new Map<string, string>();

function firstKey(k: string): string {
  let out = firstKeys.get(k);
  if (out === undefined) {
    out = `${fastStr(k)}:`;
    if (firstKeys.size < 4096) firstKeys.set(k, out);
  }
  return out;
}

function nextKey(k: string): string {
  let out = nextKeys.get(k);
  if (out === undefined) {
    out = `,${fastStr(k)}:`;
    if (nextKeys.size < 4096) nextKeys.set(k, out);
  }
  return out;
}

function fastNum(n: number): string {
  // A safe integer (-0 included) prints as ToString does, which is what JSON.stringify uses.
  if (Number.isSafeInteger(n)) return `${n}`;
  if (!Number.isFinite(n) || Number.isInteger(n)) throw BAIL;
  return `${n}`;
}

/** Sort in place by UTF-16 code units, like Array.prototype.sort's default; keys often arrive sorted. */
function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n > 16) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i++) {
    const k = keys[i] as string;
    if ((keys[i - 1] as string) < k) continue;
    let j = i - 1;
    while (j >= 0 && (keys[j] as string) > k) {
      keys[j + 1] = keys[j] as string;
      j--;
    }
    keys[j + 1] = k;
  }
}

function fast(value: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw BAIL;
  switch (typeof value) {
    case 'string':
      return fastStr(value);
    case 'number':
      return fastNum(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        const n = value.length;
        if (n === 0) return '[]';
        let out = '[';
        for (let i = 0; i < n; i++) {
          if (i) out += ',';
          const v: unknown = value[i];
          out += fast(v === undefined ? null : v, depth + 1);
        }
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw BAIL;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      sortKeys(keys);
      let out = '{';
      let first = true;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        const v = obj[k];
        if (v === undefined) continue;
        out += first ? firstKey(k) : nextKey(k);
        out += fast(v, depth + 1);
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw BAIL;
  }
}

/** The fast path alone: undefined where it leaves the decision to the general path (for tests). */
export function canonicalJsonFast(value: unknown): string | undefined {
  try {
    return fast(value, 0);
  } catch (err) {
    if (err !== BAIL) throw err;
    return undefined;
  }
}

export function canonicalJson(value: unknown, maxBytes = Infinity): string {
  let text: string;
  try {
    text = fast(value, 0);
  } catch (err) {
    if (err !== BAIL) throw err;
    return canonicalJsonGeneral(value, maxBytes);
  }
  return bounded(text, maxBytes);
}

/**
 * How the keys of `{...base, ...extra}` sort, for one shape of `base` (its own enumerable keys in
 * order) and one list of extra keys: the sorted names, where each value comes from (-1: base,
 * i >= 0: extraValues[i]), and each key as written first or after another member.
 */
interface Plan {
  readonly baseKeys: readonly string[];
  readonly extraKeys: readonly string[];
  readonly names: readonly string[];
  readonly from: readonly number[];
  readonly first: readonly string[];
  readonly next: readonly string[];
}

const plans: Plan[] = [];
const MAX_PLANS = 32;

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function planFor(baseKeys: string[], extraKeys: readonly string[]): Plan {
  for (let i = 0; i < plans.length; i++) {
    const p = plans[i] as Plan;
    if (p.extraKeys === extraKeys && sameKeys(p.baseKeys, baseKeys)) return p;
  }
  if (new Set(extraKeys).size !== extraKeys.length) throw BAIL;
  const names = baseKeys.filter((k) => !extraKeys.includes(k)).concat(extraKeys);
  names.sort();
  // firstKey throws BAIL on a key the general path refuses; nothing is cached then.
  const plan: Plan = { baseKeys, extraKeys, names, from: names.map((k) => extraKeys.indexOf(k)), first: names.map(firstKey), next: names.map(nextKey) };
  if (plans.length >= MAX_PLANS) plans.shift();
  plans.push(plan);
  return plan;
}

/**
 * canonicalJson({ ...base, ...extra }) where `extra` is given as parallel lists of keys (one
 * constant array per call site, compared by identity) and values; without building the merged
 * object. The audit writer adds v, seq, ts and prev to the gate's fields this way. `base` is read
 * as object spread reads it: own enumerable string keys, each value read once.
 */
export function canonicalJsonWith(base: Record<string, unknown>, extraKeys: readonly string[], extraValues: readonly unknown[], maxBytes = Infinity): string {
  let text: string;
  try {
    if (typeof base !== 'object' || base === null || Array.isArray(base) || extraKeys.length !== extraValues.length) throw BAIL;
    const plan = planFor(Object.keys(base), extraKeys);
    const { names, from } = plan;
    let out = '{';
    let keys = plan.first;
    for (let i = 0; i < names.length; i++) {
      const src = from[i] as number;
      const v = src < 0 ? base[names[i] as string] : extraValues[src];
      if (v === undefined) continue;
      out += keys[i] as string;
      out += fast(v, 1);
      keys = plan.next;
    }
    text = `${out}}`;
  } catch (err) {
    if (err !== BAIL) throw err;
    return canonicalJsonGeneral({ ...base, ...Object.fromEntries(extraKeys.map((k, i) => [k, extraValues[i]])) }, maxBytes);
  }
  return bounded(text, maxBytes);
}

/**
 * JSON.parse that refuses what canonical JSON cannot represent: duplicate keys (JSON.parse keeps
 * the last one silently), unsafe integers, lone surrogates, nesting deeper than MAX_DEPTH. Used
 * to read records back, so a line with two "seq" keys cannot mean one thing to us and another to
 * a different parser.
 */
export function parseStrict(text: string): unknown {
  const value = JSON.parse(text) as unknown;
  // Re-serialising and comparing catches unsafe integers, lone surrogates and depth via
  // canonicalJson; duplicate keys need a scan, because the parsed object already lost them.
  checkDuplicateKeys(text);
  canonicalJson(value);
  return value;
}

function checkDuplicateKeys(text: string): void {
  // A small tokenizer over already-valid JSON: a stack of key sets, one per open object.
  const stack: (Set<string> | null)[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) j += 2;
        else if (d === 0x22) break;
        else j++;
      }
      const raw = text.slice(i, j + 1);
      i = j + 1;
      while (i < n && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09 || text.charCodeAt(i) === 0x0a || text.charCodeAt(i) === 0x0d)) i++;
      if (text.charCodeAt(i) === 0x3a /* : */) {
        const keys = stack[stack.length - 1];
        const key = JSON.parse(raw) as string;
        if (keys) {
          if (keys.has(key)) throw new CanonicalJsonError('duplicate_key', `duplicate key ${JSON.stringify(key)}`);
          keys.add(key);
        }
      }
      continue;
    }
    if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(null);
    else if (c === 0x7d || c === 0x5d) stack.pop();
    i++;
  }
}
