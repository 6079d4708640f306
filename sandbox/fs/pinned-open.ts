import fs from 'node:fs';
import { refuse } from '../../src/core/denial.js';
import type { PathPin } from '../../src/analysis/path.js';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
// Node opens every descriptor close-on-exec already (libuv sets O_CLOEXEC).

/**
 * Node has no openat(2). Opening `/proc/self/fd/<dirfd>/<name>` is the same thing: the kernel
 * jumps to the directory the descriptor holds (not to a path string that could have been swapped)
 * and looks up one name there; O_NOFOLLOW refuses a link in that last component. O_NONBLOCK keeps a
 * FIFO swapped in after analysis from blocking the open.
 */
export function fdPath(dirFd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${dirFd}` : `/proc/self/fd/${dirFd}/${name}`;
}

const FLAGS_DIR = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_DIRECTORY;
const FLAGS_ANY = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

function openStep(at: string, flags: number): number {
  try {
    return fs.openSync(at, flags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ELOOP/ENOTDIR here means a link or a non-directory appeared where the analyser saw a directory.
    if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENOENT' || code === 'ENXIO') {
      refuse('path_rejected', 'The path changed after it was checked.', ['path.changed_after_check']);
    }
    throw err;
  }
}

export function openRootDir(root: string): number {
  return openStep(root, FLAGS_DIR);
}

/** Open one entry below an already-open directory without following links. */
export function openChild(dirFd: number, name: string, directory: boolean): number {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    refuse('path_rejected', 'A path component is not a plain name.', ['path.bad_component']);
  }
  return openStep(fdPath(dirFd, name), directory ? FLAGS_DIR : FLAGS_ANY);
}

/**
 * Walk from the root, component by component, and check that what we hold is the inode the
 * analyser checked. A link or another file swapped in after the check fails here.
 */
export function openPinned(pin: PathPin): { fd: number; stat: fs.Stats } {
  let fd = openRootDir(pin.root);
  try {
    pin.components.forEach((name, i) => {
      const last = i === pin.components.length - 1;
      const next = openChild(fd, name, !last || pin.kind === 'directory');
      fs.closeSync(fd);
      fd = next;
    });
    const stat = fs.fstatSync(fd);
    const kindOk = pin.kind === 'file' ? stat.isFile() : stat.isDirectory();
    if (!kindOk || stat.dev !== pin.dev || stat.ino !== pin.ino) {
      refuse('path_rejected', 'The path changed after it was checked.', ['path.changed_after_check']);
    }
    return { fd, stat };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}
