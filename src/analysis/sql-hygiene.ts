import { refuse } from '../core/denial.js';

/**
 * Input hygiene for SQL text, before any parser sees it: a length cap, no control characters, and a
 * bounded nesting depth. The scanner here is also the analyser's third, independent view of the
 * text's lexical structure (PostgreSQL's lexer rules, standard_conforming_strings = on): it reports
 * the statement count, the identifiers written outside quotes and comments, and the *lexical
 * hazards* — constructs on which SQL lexers are known to disagree (backslashes in strings, E'' and
 * U&'' escapes, dollar quotes, nested block comments, non-ASCII outside quotes). sql.ts uses the
 * hazards to decide whether a node-sql-parser parse failure may be tolerated (see there).
 *
 * Cost: one pass over the UTF-16 code units; an over-long input is refused before it is read, and an
 * over-deep one at the first parenthesis past the cap, so a 10 MB text or 10,000 nested
 * parentheses cost microseconds.
 */

export const DEFAULT_MAX_SQL_BYTES = 16 * 1024;
export const DEFAULT_MAX_SQL_DEPTH = 64;
/**
 * Lexical tokens (each operator character counts as one). Parser cost grows with tokens, not bytes:
 * node-sql-parser needs about 0.1 ms per token on long lists, so 16 KiB of `1,1,1,...` would cost it
 * over a second. A realistic 10 KB analytical query has about 2,000 tokens.
 */
export const DEFAULT_MAX_SQL_TOKENS = 4096;

export type LexicalHazard =
  'backslash_in_string' | 'escape_string' | 'unicode_escape' | 'dollar_quote' | 'nested_comment' | 'non_ascii' | 'backslash' | 'lone_dollar' | 'unterminated';

export interface SqlScan {
  /** Deepest nesting of ( and [ outside quotes and comments. */
  readonly depth: number;
  /** Non-empty statements separated by ';' outside quotes and comments. */
  readonly statements: number;
  /**
   * Identifiers as PostgreSQL would see them: unquoted words folded to lower case (ASCII only, as
   * PostgreSQL does for UTF-8), quoted identifiers exactly, with "" unescaped. Keywords are words too.
   */
  readonly identifiers: ReadonlySet<string>;
  readonly hazards: ReadonlySet<LexicalHazard>;
  /**
   * UTF-16 offsets of the backslashes inside standard ('...', B'', X'', N'', U&'') strings, in
   * order: ordinary characters to PostgreSQL with standard_conforming_strings on, escapes to
   * node-sql-parser (sql-agree.ts neutralises them before asking it). Empty when there are none.
   */
  readonly stringBackslashes: readonly number[];
  /** UTF-8 length of the text. */
  readonly bytes: number;
  readonly tokens: number;
}

export interface HygieneLimits {
  readonly maxBytes?: number;
  readonly maxDepth?: number;
  readonly maxTokens?: number;
}

// C0 controls except TAB, LF, CR; DEL; C1 controls; bidirectional overrides and isolates (they make
// the text a human reads in the audit log differ from what the server parses).
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const enum C {
  TAB = 9,
  LF = 10,
  CR = 13,
  SPACE = 32,
  DQUOTE = 34,
  DOLLAR = 36,
  AMP = 38,
  QUOTE = 39,
  LPAREN = 40,
  RPAREN = 41,
  STAR = 42,
  PLUS = 43,
  MINUS = 45,
  DOT = 46,
  SLASH = 47,
  ZERO = 48,
  NINE = 57,
  SEMI = 59,
  LBRACKET = 91,
  BACKSLASH = 92,
  RBRACKET = 93,
}

function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 128;
}

function isIdentCont(c: number): boolean {
  return isIdentStart(c) || (c >= C.ZERO && c <= C.NINE) || c === C.DOLLAR;
}

const ASCII_UPPER = /[A-Z]/;

function asciiLower(s: string): string {
  return ASCII_UPPER.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}

/** PostgreSQL: a dollar-quote tag is `$` [ident_start ident_cont-without-$ ...] `$`. */
function dollarTagEnd(text: string, i: number): number {
  // text[i] === '$'; returns the index just past the closing '$' of the opening tag, or -1.
  let j = i + 1;
  const n = text.length;
  if (j < n && text.charCodeAt(j) === C.DOLLAR) return j + 1;
  if (j >= n || !isIdentStart(text.charCodeAt(j))) return -1;
  j++;
  while (j < n) {
    const c = text.charCodeAt(j);
    if (c === C.DOLLAR) return j + 1;
    if (!(isIdentStart(c) || (c >= C.ZERO && c <= C.NINE))) return -1;
    j++;
  }
  return -1;
}

/**
 * Refuse malformed input (empty, too long, control characters, invalid UTF-16) and scan it. Throws
 * DenialError('sql_rejected') with one of: sql.not_text, sql.empty, sql.too_long,
 * sql.control_character, sql.invalid_unicode, sql.too_deep, sql.too_complex.
 */
export function checkSqlHygiene(text: unknown, limits: HygieneLimits = {}): SqlScan {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_SQL_BYTES;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_SQL_DEPTH;
  const maxTokens = limits.maxTokens ?? DEFAULT_MAX_SQL_TOKENS;
  if (typeof text !== 'string') refuse('sql_rejected', 'The SQL query must be a string.', ['sql.not_text']);
  // A UTF-16 code unit is at least one UTF-8 byte, so this refuses huge inputs without reading them.
  if (text.length > maxBytes) refuse('sql_rejected', `The SQL query is longer than ${maxBytes} bytes.`, ['sql.too_long'], { max_bytes: maxBytes });
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) refuse('sql_rejected', `The SQL query is longer than ${maxBytes} bytes.`, ['sql.too_long'], { max_bytes: maxBytes });
  if (CONTROL.test(text)) refuse('sql_rejected', 'The SQL query contains a control character (only tab, CR and LF are allowed).', ['sql.control_character']);
  if (LONE_SURROGATE.test(text)) refuse('sql_rejected', 'The SQL query is not valid Unicode.', ['sql.invalid_unicode']);
  if (text.trim() === '') refuse('sql_rejected', 'The SQL query is empty.', ['sql.empty']);
  return scan(text, maxDepth, maxTokens, bytes);
}

function tooDeep(maxDepth: number): never {
  return refuse('sql_rejected', `The SQL query nests parentheses or brackets deeper than ${maxDepth}.`, ['sql.too_deep'], { max_depth: maxDepth });
}

function tooManyTokens(maxTokens: number): never {
  return refuse('sql_rejected', `The SQL query has more than ${maxTokens} tokens.`, ['sql.too_complex'], { max_tokens: maxTokens });
}

function scan(text: string, maxDepth: number, maxTokens: number, bytes: number): SqlScan {
  const n = text.length;
  const identifiers = new Set<string>();
  const hazards = new Set<LexicalHazard>();
  const stringBackslashes: number[] = [];
  let depth = 0;
  let deepest = 0;
  let statements = 0;
  let inStatement = false;
  let tokens = 0;
  let i = 0;
  // Next backslash at or after some index, advanced lazily so that the whole scan stays linear.
  let nextBackslash = -2;
  const backslashBefore = (from: number, to: number): boolean => {
    if (nextBackslash !== -1 && nextBackslash < from) nextBackslash = text.indexOf('\\', from);
    return nextBackslash !== -1 && nextBackslash < to;
  };

  // A standard string body from i (just past the opening quote); returns the index past the closing quote.
  const standardString = (from: number): number => {
    let j = from;
    for (;;) {
      const q = text.indexOf("'", j);
      if (q < 0) {
        hazards.add('unterminated');
        return n;
      }
      if (backslashBefore(j, q)) {
        hazards.add('backslash_in_string');
        for (let k = nextBackslash; k !== -1 && k < q; k = text.indexOf('\\', k + 1)) stringBackslashes.push(k);
      }
      if (text.charCodeAt(q + 1) === C.QUOTE) {
        j = q + 2;
        continue;
      }
      return q + 1;
    }
  };
  // An E'' string: backslash escapes any next character, '' is a quote.
  const escapeString = (from: number): number => {
    let j = from;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c === C.BACKSLASH) {
        j += 2;
        continue;
      }
      if (c === C.QUOTE) {
        if (text.charCodeAt(j + 1) === C.QUOTE) {
          j += 2;
          continue;
        }
        return j + 1;
      }
      j++;
    }
    hazards.add('unterminated');
    return n;
  };
  // A quoted identifier body from i (past the opening "); returns [end, value].
  const quotedIdent = (from: number): [number, string] => {
    let j = from;
    let value = '';
    for (;;) {
      const q = text.indexOf('"', j);
      if (q < 0) {
        hazards.add('unterminated');
        return [n, value + text.slice(j)];
      }
      value += text.slice(j, q);
      if (text.charCodeAt(q + 1) === C.DQUOTE) {
        value += '"';
        j = q + 2;
        continue;
      }
      return [q + 1, value];
    }
  };
  const token = (): void => {
    inStatement = true;
    if (++tokens > maxTokens) tooManyTokens(maxTokens);
  };

  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === C.SPACE || c === C.TAB || c === C.LF || c === C.CR) {
      i++;
      continue;
    }
    if (c === C.MINUS && text.charCodeAt(i + 1) === C.MINUS) {
      // Line comment: to the end of the line (PostgreSQL ends it at LF or CR).
      let j = i + 2;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === C.LF || d === C.CR) break;
        j++;
      }
      i = j;
      continue;
    }
    if (c === C.SLASH && text.charCodeAt(i + 1) === C.STAR) {
      // Block comment; PostgreSQL nests them.
      let level = 1;
      let j = i + 2;
      while (j < n && level > 0) {
        const d = text.charCodeAt(j);
        if (d === C.SLASH && text.charCodeAt(j + 1) === C.STAR) {
          level++;
          hazards.add('nested_comment');
          j += 2;
        } else if (d === C.STAR && text.charCodeAt(j + 1) === C.SLASH) {
          level--;
          j += 2;
        } else j++;
      }
      if (level > 0) hazards.add('unterminated');
      i = j;
      continue;
    }
    if (c === C.QUOTE) {
      token();
      i = standardString(i + 1);
      continue;
    }
    if (c === C.DQUOTE) {
      token();
      const [end, value] = quotedIdent(i + 1);
      identifiers.add(value);
      i = end;
      continue;
    }
    if (c === C.DOLLAR) {
      token();
      const d = text.charCodeAt(i + 1);
      if (d >= C.ZERO && d <= C.NINE) {
        // $n parameter
        let j = i + 1;
        while (j < n && text.charCodeAt(j) >= C.ZERO && text.charCodeAt(j) <= C.NINE) j++;
        i = j;
        continue;
      }
      const tagEnd = dollarTagEnd(text, i);
      if (tagEnd < 0) {
        hazards.add('lone_dollar');
        i++;
        continue;
      }
      hazards.add('dollar_quote');
      const tag = text.slice(i, tagEnd);
      const close = text.indexOf(tag, tagEnd);
      if (close < 0) {
        hazards.add('unterminated');
        i = n;
      } else i = close + tag.length;
      continue;
    }
    if (isIdentStart(c)) {
      token();
      let j = i + 1;
      while (j < n && isIdentCont(text.charCodeAt(j))) j++;
      const word = text.slice(i, j);
      const next = text.charCodeAt(j);
      if (j - i === 1 && next === C.QUOTE) {
        const w = c | 0x20;
        if (w === 101 /* e */) {
          hazards.add('escape_string');
          i = escapeString(j + 1);
          continue;
        }
        if (w === 98 /* b */ || w === 120 /* x */ || w === 110 /* n */) {
          i = standardString(j + 1);
          continue;
        }
      }
      if (j - i === 1 && (c | 0x20) === 117 /* u */ && next === C.AMP) {
        const q = text.charCodeAt(j + 1);
        if (q === C.QUOTE) {
          hazards.add('unicode_escape');
          i = standardString(j + 2);
          continue;
        }
        if (q === C.DQUOTE) {
          hazards.add('unicode_escape');
          const [end] = quotedIdent(j + 2);
          i = end;
          continue;
        }
      }
      for (let k = i; k < j; k++) {
        if (text.charCodeAt(k) >= 128) {
          hazards.add('non_ascii');
          break;
        }
      }
      identifiers.add(asciiLower(word));
      i = j;
      continue;
    }
    if ((c >= C.ZERO && c <= C.NINE) || (c === C.DOT && text.charCodeAt(i + 1) >= C.ZERO && text.charCodeAt(i + 1) <= C.NINE)) {
      token();
      // Numbers: digits, '.', exponent with sign, 0x/0o/0b prefixes and '_' separators (PostgreSQL 16+).
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if ((d >= C.ZERO && d <= C.NINE) || d === C.DOT || d === 95 || (d >= 65 && d <= 90) || (d >= 97 && d <= 122)) {
          j++;
          continue;
        }
        if ((d === C.PLUS || d === C.MINUS) && (text.charCodeAt(j - 1) | 0x20) === 101) {
          j++;
          continue;
        }
        break;
      }
      i = j;
      continue;
    }
    if (c === C.LPAREN || c === C.LBRACKET) {
      token();
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > maxDepth) tooDeep(maxDepth);
      }
      i++;
      continue;
    }
    if (c === C.RPAREN || c === C.RBRACKET) {
      token();
      if (depth > 0) depth--;
      i++;
      continue;
    }
    if (c === C.SEMI) {
      if (inStatement) statements++;
      inStatement = false;
      i++;
      continue;
    }
    if (c === C.BACKSLASH) hazards.add('backslash');
    // Operators and punctuation.
    token();
    i++;
  }
  if (inStatement) statements++;
  return { depth: deepest, statements, identifiers, hazards, stringBackslashes, bytes, tokens };
}
