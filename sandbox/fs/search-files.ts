import fs from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { RE2 } from 're2-wasm';
import { refuse } from '../../src/core/denial.js';
import type { PathPin } from '../../src/analysis/path.js';
import { openChild, openPinned } from './pinned-open.js';
import { walk } from './walk.js';
import { decodeText } from './content.js';

export interface SearchRequest {
  readonly pin: PathPin;
  readonly canonical: string;
  readonly query: string;
  readonly regex: boolean;
  readonly caseSensitive: boolean;
  readonly pattern?: string | undefined;
  readonly includeHidden: boolean;
  readonly maxDepth: number;
  readonly maxResults: number;
  readonly maxFileBytes: number;
  readonly maxFiles: number;
  readonly maxBytes: number;
  readonly deadline: number;
  readonly blockedExtensions: ReadonlySet<string>;
  readonly blockedNames?: ReadonlySet<string>;
  readonly onProgress?: ((filesScanned: number) => void) | undefined;
}

export interface SearchMatch {
  readonly path: string;
  readonly line: number;
  readonly column: number;
  readonly text: string;
}

export interface SearchResult {
  readonly path: string;
  readonly matches: SearchMatch[];
  readonly files_scanned: number;
  readonly skipped: { binary: number; too_large: number; hardlinked: number; blocked_extension: number; blocked_name: number; changed: number };
  readonly truncated: boolean;
  readonly truncated_reason?: 'max_results' | 'time_budget' | 'max_files' | 'max_bytes';
}

const MAX_LINE_CHARS = 300;

interface Matcher {
  find(line: string): number;
  dispose(): void;
}

/**
 * Regular expressions run on RE2 (linear time), never on the backtracking engine: a pattern from
 * the model must not be able to hang the process.
 */
export function compileMatcher(query: string, regex: boolean, caseSensitive: boolean): Matcher {
  if (!regex) {
    const needle = caseSensitive ? query : query.toLowerCase();
    return { find: (line) => (caseSensitive ? line : line.toLowerCase()).indexOf(needle), dispose: () => undefined };
  }
  let re: RE2;
  try {
    re = new RE2(query, caseSensitive ? 'u' : 'iu');
  } catch (err) {
    return refuse('invalid_input', `The regular expression is not valid RE2 syntax: ${(err as Error).message}`, ['search.invalid_regex']);
  }
  return {
    find: (line) => {
      const m = re.exec(line);
      return m ? m.index : -1;
    },
    dispose: () => (re as unknown as { wrapper?: { delete?: () => void } }).wrapper?.delete?.(),
  };
}

export function searchPinned(req: SearchRequest): SearchResult {
  const matcher = compileMatcher(req.query, req.regex, req.caseSensitive);
  const blockedNames = req.blockedNames ?? new Set<string>();
  const { fd } = openPinned(req.pin);
  const glob = req.pattern ? picomatch(req.pattern, { dot: req.includeHidden }) : undefined;
  const matches: SearchMatch[] = [];
  const skipped = { binary: 0, too_large: 0, hardlinked: 0, blocked_extension: 0, blocked_name: 0, changed: 0 };
  let filesScanned = 0;
  let bytesOut = 0;
  let truncatedReason: SearchResult['truncated_reason'];
  try {
    walk(fd, {
      maxDepth: req.maxDepth,
      includeHidden: req.includeHidden,
      descend: (e) => !blockedNames.has(e.name.toLowerCase()),
      visit: (e) => {
        if (Date.now() > req.deadline) {
          truncatedReason = 'time_budget';
          return false;
        }
        if (e.kind !== 'file') return true;
        if (blockedNames.has(e.name.toLowerCase())) {
          skipped.blocked_name++;
          return true;
        }
        if (glob && !glob(e.rel)) return true;
        if (req.blockedExtensions.has(path.extname(e.name).toLowerCase())) {
          skipped.blocked_extension++;
          return true;
        }
        // A second name for a file may be a name for something outside the roots.
        if (e.stat.nlink > 1) {
          skipped.hardlinked++;
          return true;
        }
        if (e.stat.size > req.maxFileBytes) {
          skipped.too_large++;
          return true;
        }
        if (filesScanned >= req.maxFiles) {
          truncatedReason = 'max_files';
          return false;
        }
        let fileFd: number;
        try {
          fileFd = openChild(e.dirFd, e.name, false);
        } catch {
          skipped.changed++;
          return true;
        }
        let text: string | undefined;
        try {
          const st = fs.fstatSync(fileFd);
          if (!st.isFile() || st.ino !== e.stat.ino || st.nlink > 1 || st.size > req.maxFileBytes) {
            skipped.changed++;
            return true;
          }
          const buf = Buffer.alloc(st.size);
          let got = 0;
          while (got < buf.length) {
            const n = fs.readSync(fileFd, buf, got, buf.length - got, null);
            if (n === 0) break;
            got += n;
          }
          text = decodeText(buf.subarray(0, got));
        } finally {
          fs.closeSync(fileFd);
        }
        filesScanned++;
        req.onProgress?.(filesScanned);
        if (text === undefined) {
          skipped.binary++;
          return true;
        }
        const lines = text.split('\n');
        for (let i = 0; i < lines.length; i++) {
          const line = lines[i] as string;
          const col = matcher.find(line);
          if (col < 0) continue;
          if (matches.length >= req.maxResults) {
            truncatedReason = 'max_results';
            return false;
          }
          const shown = line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) : line;
          bytesOut += Buffer.byteLength(shown) + e.rel.length + 32;
          if (bytesOut > req.maxBytes) {
            truncatedReason = 'max_bytes';
            return false;
          }
          matches.push({ path: e.rel, line: i + 1, column: col + 1, text: shown });
          if ((i & 1023) === 1023 && Date.now() > req.deadline) {
            truncatedReason = 'time_budget';
            return false;
          }
        }
        return true;
      },
    });
  } finally {
    fs.closeSync(fd);
    matcher.dispose();
  }
  const base = { path: req.canonical, matches, files_scanned: filesScanned, skipped };
  return truncatedReason ? { ...base, truncated: true, truncated_reason: truncatedReason } : { ...base, truncated: false };
}
