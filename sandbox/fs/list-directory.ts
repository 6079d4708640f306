import fs from 'node:fs';
import picomatch from 'picomatch';
import type { PathPin } from '../../src/analysis/path.js';
import { openPinned } from './pinned-open.js';
import { walk, type EntryKind } from './walk.js';

export interface ListRequest {
  readonly pin: PathPin;
  readonly canonical: string;
  readonly depth: number;
  readonly pattern?: string | undefined;
  readonly includeHidden: boolean;
  readonly maxEntries: number;
  readonly deadline: number;
}

export interface ListEntry {
  readonly path: string;
  readonly kind: EntryKind;
  readonly size: number;
  readonly mtime: string;
}

export interface ListResult {
  readonly path: string;
  readonly entries: ListEntry[];
  readonly truncated: boolean;
  readonly truncated_reason?: 'max_entries' | 'time_budget';
}

export function listPinnedDirectory(req: ListRequest): ListResult {
  const { fd } = openPinned(req.pin);
  const match = req.pattern ? picomatch(req.pattern, { dot: req.includeHidden }) : undefined;
  const entries: ListEntry[] = [];
  let truncatedReason: ListResult['truncated_reason'];
  try {
    walk(fd, {
      maxDepth: req.depth,
      includeHidden: req.includeHidden,
      visit: (e) => {
        if (Date.now() > req.deadline) {
          truncatedReason = 'time_budget';
          return false;
        }
        if (match && !match(e.rel)) return true;
        if (entries.length >= req.maxEntries) {
          truncatedReason = 'max_entries';
          return false;
        }
        entries.push({ path: e.rel, kind: e.kind, size: e.kind === 'file' ? e.stat.size : 0, mtime: e.stat.mtime.toISOString() });
        return true;
      },
    });
  } finally {
    fs.closeSync(fd);
  }
  return truncatedReason
    ? { path: req.canonical, entries, truncated: true, truncated_reason: truncatedReason }
    : { path: req.canonical, entries, truncated: false };
}
