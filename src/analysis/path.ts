import type { PathFacts, PathKind } from '../core/facts.js';
import fs from 'node:fs';
import path from 'node:path';
import { refuse } from '../core/denial.js';

/** Linux PATH_MAX and NAME_MAX: longer strings cannot name a file, so they are refused before any syscall. */
export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

/** What the executor must find again when it opens the path: same device, same inode. */
export interface PathPin {
  readonly root: string;
  /** Components of the canonical path below the root; empty for the root itself. */
  readonly components: readonly string[];
  readonly dev: number;
  readonly ino: number;
  readonly kind: PathKind;
}

export interface PathAnalysis {
  readonly facts: PathFacts;
  readonly pin: PathPin;
}

export interface PathOptions {
  readonly roots: readonly string[];
  /** Refuse files larger than this (checked before reading). */
  readonly maxFileBytes?: number;
}

/** Component-wise containment: `/data_evil` is not inside `/data`. */
export function containingRoot(candidate: string, roots: readonly string[]): string | undefined {
  for (const root of roots) {
    if (candidate === root) return root;
    const rel = path.relative(root, candidate);
    if (rel !== '' && !rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel)) return root;
  }
  return undefined;
}

function rejectMalformed(requested: string): void {
  if (requested.length === 0) refuse('path_rejected', 'The path is empty.', ['path.empty']);
  if (requested.includes('\0')) refuse('path_rejected', 'The path contains a NUL byte.', ['path.nul_byte']);
  // Control characters have no business in a path a model sends; they hide tricks in logs and UIs.
  if (/[\u0001-\u001f\u007f]/.test(requested)) refuse('path_rejected', 'The path contains a control character.', ['path.control_character']);
  if (Buffer.byteLength(requested) > MAX_PATH_BYTES) refuse('path_rejected', `The path is longer than ${MAX_PATH_BYTES} bytes.`, ['path.too_long']);
  for (const part of requested.split('/')) {
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) refuse('path_rejected', `A path component is longer than ${MAX_NAME_BYTES} bytes.`, ['path.too_long']);
  }
}

function kindOf(st: fs.Stats): PathKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  // realpath just resolved every link, so a link here was swapped in between the two calls.
  if (st.isSymbolicLink()) refuse('path_rejected', 'The path changed while it was checked.', ['path.changed_after_check']);
  if (st.isFIFO()) refuse('path_rejected', 'The path is a FIFO.', ['path.special_file', 'path.fifo']);
  if (st.isSocket()) refuse('path_rejected', 'The path is a socket.', ['path.special_file', 'path.socket']);
  if (st.isCharacterDevice() || st.isBlockDevice()) refuse('path_rejected', 'The path is a device.', ['path.special_file', 'path.device']);
  return refuse('path_rejected', 'The path is not a regular file or directory.', ['path.special_file']);
}

function errnoReason(err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return refuse('path_rejected', 'No such file or directory inside the allowed roots.', ['path.not_found']);
    case 'ELOOP':
      return refuse('path_rejected', 'The path has a symbolic link loop.', ['path.symlink_loop']);
    case 'ENAMETOOLONG':
      return refuse('path_rejected', 'The path is too long.', ['path.too_long']);
    case 'EACCES':
    case 'EPERM':
      return refuse('path_rejected', 'The path is not accessible.', ['path.access_denied']);
    default:
      throw err;
  }
}

/**
 * Raw argument to facts, once. The requested string is resolved exactly as given (no trimming, no
 * decoding), every link is resolved, and the real path must sit inside a root by components. The
 * executor later re-opens the canonical path without following links and must find the same inode.
 */
export function analysePath(requested: string, opts: PathOptions): PathAnalysis {
  const roots = opts.roots;
  if (roots.length === 0) refuse('path_rejected', 'No filesystem roots are configured.', ['path.no_roots']);
  rejectMalformed(requested);
  const firstRoot = roots[0] as string;
  const lexical = path.isAbsolute(requested) ? path.resolve(requested) : path.resolve(firstRoot, requested);
  if (!containingRoot(lexical, roots)) refuse('path_rejected', 'The path is outside the allowed roots.', ['path.outside_root']);

  let real: string;
  try {
    real = fs.realpathSync.native(lexical);
  } catch (err) {
    return errnoReason(err);
  }
  const root = containingRoot(real, roots);
  if (!root) refuse('path_rejected', 'The path resolves through a link to a place outside the allowed roots.', ['path.outside_root', 'path.symlink_escape']);

  let st: fs.Stats;
  try {
    st = fs.lstatSync(real);
  } catch (err) {
    return errnoReason(err);
  }
  const kind = kindOf(st);
  if (kind === 'file' && opts.maxFileBytes !== undefined && st.size > opts.maxFileBytes) {
    refuse('path_rejected', `The file is larger than the ${opts.maxFileBytes}-byte cap.`, ['path.too_large'], {
      size: st.size,
      max_file_bytes: opts.maxFileBytes,
    });
  }
  const components = real === root ? [] : path.relative(root, real).split(path.sep);
  return {
    facts: {
      canonical: real,
      root,
      kind,
      size: st.size,
      nlink: st.nlink,
      extension: kind === 'file' ? path.extname(real).toLowerCase() : '',
    },
    pin: { root, components, dev: st.dev, ino: st.ino, kind },
  };
}
