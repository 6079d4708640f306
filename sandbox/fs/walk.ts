import fs from 'node:fs';
import { fdPath, openChild } from './pinned-open.js';

export type EntryKind = 'file' | 'directory' | 'symlink' | 'other';

export interface WalkEntry {
  /** Relative to the directory the walk started in, with `/` separators. */
  readonly rel: string;
  readonly name: string;
  readonly kind: EntryKind;
  readonly stat: fs.Stats;
  /** The directory descriptor the entry lives in (valid during the visit only). */
  readonly dirFd: number;
}

export interface WalkOptions {
  readonly maxDepth: number;
  readonly includeHidden: boolean;
  /** Return false to stop the whole walk (a cap or a deadline was reached). */
  readonly visit: (entry: WalkEntry) => boolean;
  /** Return false to keep the walk out of a directory (it was still visited). */
  readonly descend?: (entry: WalkEntry) => boolean;
}

function kindOf(st: fs.Stats): EntryKind {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  return 'other';
}

/**
 * Depth-first over descriptors: every directory is entered through an O_NOFOLLOW open relative to
 * its parent's descriptor, so a link never takes the walk outside, whatever is swapped in meanwhile.
 * Links are reported as links, never followed. Returns false when the visitor stopped the walk.
 */
export function walk(dirFd: number, opts: WalkOptions, depth = 1, prefix = ''): boolean {
  const names = fs.readdirSync(fdPath(dirFd)).sort();
  for (const name of names) {
    if (!opts.includeHidden && name.startsWith('.')) continue;
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(fdPath(dirFd, name));
    } catch {
      continue; // vanished between readdir and lstat
    }
    const entry: WalkEntry = { rel: prefix ? `${prefix}/${name}` : name, name, kind: kindOf(stat), stat, dirFd };
    if (!opts.visit(entry)) return false;
    if (entry.kind === 'directory' && depth < opts.maxDepth && (opts.descend?.(entry) ?? true)) {
      let child: number;
      try {
        child = openChild(dirFd, name, true);
      } catch {
        continue; // replaced by a link or removed: skip rather than follow
      }
      try {
        if (fs.fstatSync(child).ino !== stat.ino) continue;
        if (!walk(child, opts, depth + 1, entry.rel)) return false;
      } finally {
        fs.closeSync(child);
      }
    }
  }
  return true;
}
