/**
 * Entry point of a filesystem worker: a child process started under Node's permission model,
 * allowed to read only the configured roots (plus its own code and /proc/self/fd, through which
 * descriptor-relative opens go), with no child processes, workers or writes. That is the second
 * wall; the first is the no-follow, inode-checked open in pinned-open.ts, because the permission
 * model follows symbolic links out of the allowed paths.
 */
import { serveTasks, type Handler } from '../pool/child-runtime.js';
import { readPinnedFile, type ReadRequest } from './read-file.js';
import { listPinnedDirectory, type ListRequest } from './list-directory.js';
import { searchPinned, type SearchRequest } from './search-files.js';
import { infoPinned } from './file-info.js';
import type { PathPin } from '../../src/analysis/path.js';

type Budgeted<T> = Omit<T, 'deadline'> & { budgetMs: number };

/** The operations a filesystem worker performs; exported so a benchmark can run them inline for comparison. */
export const filesystemHandlers: Record<string, Handler> = {
  read: (p: ReadRequest) => readPinnedFile(p),
  list: (p: Budgeted<ListRequest>) => listPinnedDirectory({ ...p, deadline: Date.now() + p.budgetMs }),
  search: (
    p: Budgeted<Omit<SearchRequest, 'blockedExtensions' | 'blockedNames' | 'onProgress'>> & { blockedExtensions: string[]; blockedNames: string[] },
    ctx,
  ) =>
    searchPinned({
      ...p,
      deadline: Date.now() + p.budgetMs,
      blockedExtensions: new Set(p.blockedExtensions),
      blockedNames: new Set(p.blockedNames),
      // Throttled by the task runtime, which keeps the last update.
      onProgress: (n) => ctx.progress(n),
    }),
  info: (p: { pin: PathPin; canonical: string; maxFileBytes: number }) => infoPinned(p.pin, p.canonical, p.maxFileBytes),
};

if (process.send) serveTasks(filesystemHandlers);
