import crypto from 'node:crypto';
import { PolicyError } from './types.js';

/**
 * The digest OPA's bundle signing puts in `.signatures.json` for one file (v1/bundle/hash.go and
 * verify.go): raw bytes for policy and wasm files; for structured files (data.json, .manifest) the
 * JSON value is hashed instead of its text, walking objects with keys in byte order, values joined
 * by "," with no white space, numbers exactly as written (OPA decodes with UseNumber) and strings
 * as Go's encoder writes them without HTML escaping. So a re-indented data.json still verifies, and
 * any change to a value does not.
 */
export function bundleFileDigest(name: string, bytes: Uint8Array): string {
  const h = crypto.createHash('sha256');
  if (isStructured(name)) {
    const text = Buffer.from(bytes).toString('utf8');
    new GoJsonWalker(text, h).document();
  } else {
    h.update(bytes);
  }
  return h.digest('hex');
}

/** OPA's IsStructuredDoc: data.json / data.yaml anywhere, and the manifest. YAML is refused elsewhere. */
function isStructured(name: string): boolean {
  const base = name.slice(name.lastIndexOf('/') + 1);
  return base === 'data.json' || base === '.manifest';
}

const MAX_DEPTH = 256;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const WS = /[ \t\n\r]*/y;

/** Go's encodePrimitive for a string: JSON escapes, plus U+2028/U+2029; lone surrogates decode to U+FFFD as in Go. */
function goString(s: string): string {
  const wellFormed = s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  return JSON.stringify(wellFormed)
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** A small JSON reader that writes OPA's canonical form into the hash as it goes (numbers keep their text). */
class GoJsonWalker {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly out: crypto.Hash,
  ) {}

  document(): void {
    const value = this.value(0);
    this.ws();
    if (this.pos !== this.text.length) this.fail('trailing characters');
    this.emit(value);
  }

  private fail(what: string): never {
    throw new PolicyError('policy.bundle_unreadable', `structured bundle file is not JSON: ${what} at offset ${this.pos}`);
  }

  private ws(): void {
    WS.lastIndex = this.pos;
    WS.exec(this.text);
    this.pos = WS.lastIndex;
  }

  private match(re: RegExp): string | undefined {
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (!m) return undefined;
    this.pos = re.lastIndex;
    return m[0];
  }

  /** Parsed into a tree of canonical leaves first, since object keys must be sorted before emitting. */
  private value(depth: number): Node {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    this.ws();
    const c = this.text[this.pos];
    if (c === '{') {
      this.pos++;
      const entries = new Map<string, Node>();
      this.ws();
      if (this.text[this.pos] === '}') {
        this.pos++;
        return { object: entries };
      }
      for (;;) {
        this.ws();
        const key = this.match(STRING);
        if (key === undefined) this.fail('expected a key');
        this.ws();
        if (this.text[this.pos] !== ':') this.fail('expected ":"');
        this.pos++;
        // Go's decoder keeps the last of duplicate keys, and so does this walk.
        entries.set(JSON.parse(key) as string, this.value(depth + 1));
        this.ws();
        const sep = this.text[this.pos++];
        if (sep === '}') return { object: entries };
        if (sep !== ',') this.fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      this.pos++;
      const items: Node[] = [];
      this.ws();
      if (this.text[this.pos] === ']') {
        this.pos++;
        return { array: items };
      }
      for (;;) {
        items.push(this.value(depth + 1));
        this.ws();
        const sep = this.text[this.pos++];
        if (sep === ']') return { array: items };
        if (sep !== ',') this.fail('expected "," or "]"');
      }
    }
    const str = this.match(STRING);
    if (str !== undefined) return { leaf: goString(JSON.parse(str) as string) };
    const num = this.match(NUMBER);
    if (num !== undefined) return { leaf: num };
    for (const lit of ['true', 'false', 'null']) {
      if (this.text.startsWith(lit, this.pos)) {
        this.pos += lit.length;
        return { leaf: lit };
      }
    }
    return this.fail('unexpected character');
  }

  private emit(node: Node): void {
    if ('leaf' in node) {
      this.out.update(node.leaf);
    } else if ('array' in node) {
      this.out.update('[');
      node.array.forEach((item, i) => {
        if (i > 0) this.out.update(',');
        this.emit(item);
      });
      this.out.update(']');
    } else {
      this.out.update('{');
      [...node.object.keys()].sort(byteOrder).forEach((key, i) => {
        if (i > 0) this.out.update(',');
        this.out.update(goString(key));
        this.out.update(':');
        this.emit(node.object.get(key) as Node);
      });
      this.out.update('}');
    }
  }
}

type Node = { leaf: string } | { array: Node[] } | { object: Map<string, Node> };
