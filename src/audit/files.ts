import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The on-disk layout of a file-backed audit log whose active segment is `<dir>/<stem><ext>`
 * (default `.bulwark/audit.jsonl`):
 *
 *   audit.jsonl                    the active segment (always at the configured path)
 *   audit.000000000001.jsonl       rotated segments, named by their first seq
 *   audit.manifest.json            the segments in order with first/last seq and hashes
 *   audit.checkpoints.jsonl        signed checkpoints, one JSON object per line
 *   audit.jsonl.lock               the writer's lock (pid)
 *   audit.jsonl.torn-<ts>          bytes of a torn last record, set aside by recovery
 */
export interface LogPaths {
  readonly active: string;
  readonly dir: string;
  readonly stem: string;
  readonly ext: string;
  readonly manifest: string;
  readonly checkpoints: string;
  readonly lock: string;
}

export function logPaths(active: string): LogPaths {
  const abs = path.resolve(active);
  const dir = path.dirname(abs);
  const base = path.basename(abs);
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const ext = dot > 0 ? base.slice(dot) : '';
  return {
    active: abs,
    dir,
    stem,
    ext,
    manifest: path.join(dir, `${stem}.manifest.json`),
    checkpoints: path.join(dir, `${stem}.checkpoints.jsonl`),
    lock: `${abs}.lock`,
  };
}

export function segmentName(p: LogPaths, firstSeq: number): string {
  return `${p.stem}.${String(firstSeq).padStart(12, '0')}${p.ext}`;
}

/** Rotated segment files present in the directory (whatever the manifest says). */
export function segmentFilesOnDisk(p: LogPaths): string[] {
  const re = new RegExp(`^${escapeRe(p.stem)}\\.\\d{12}${escapeRe(p.ext)}$`);
  try {
    return fs
      .readdirSync(p.dir)
      .filter((f) => re.test(f))
      .sort();
  } catch {
    return [];
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface SegmentEntry {
  readonly file: string;
  readonly first_seq: number;
  readonly last_seq: number;
  /** The hash the segment's first record chains from (the previous segment's last hash). */
  readonly prev: string;
  readonly last_hash: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface Manifest {
  readonly v: 1;
  readonly stream: string;
  readonly active: string;
  readonly active_first_seq: number;
  readonly active_prev: string;
  readonly segments: readonly SegmentEntry[];
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

export function readManifest(p: LogPaths): Manifest | undefined {
  let text: string;
  try {
    text = fs.readFileSync(p.manifest, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new ManifestError(`${p.manifest} is not valid JSON`);
  }
  if (m?.v !== 1 || !Array.isArray(m.segments) || typeof m.active_first_seq !== 'number' || typeof m.active_prev !== 'string') {
    throw new ManifestError(`${p.manifest} is not an audit manifest`);
  }
  return m;
}

/** Write-to-temp, fsync, rename, fsync the directory: the manifest is replaced whole or not at all. */
export function writeManifest(p: LogPaths, m: Manifest): void {
  const tmp = `${p.manifest}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(m, null, 1)}\n`);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, p.manifest);
  syncDir(p.dir);
}

export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

export class LockError extends Error {
  override name = 'LockError';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readLockPid(file: string): number | undefined {
  try {
    const pid = Number(JSON.parse(fs.readFileSync(file, 'utf8')).pid);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One writer per log: `open(lock, 'wx')` holding our pid. A lock whose pid is no longer running
 * is stale (the writer crashed) and is taken over; the takeover itself is guarded by a second
 * exclusive file so that two processes starting at once cannot both remove a stale lock and both
 * think they won. A lock held by a live process, this one included, is refused.
 */
export function acquireLock(file: string): () => void {
  const token = crypto.randomUUID();
  const content = JSON.stringify({ pid: process.pid, token, since: new Date().toISOString() });
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      try {
        fs.writeSync(fd, content);
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        process.removeListener('exit', release);
        try {
          if (fs.readFileSync(file, 'utf8') === content) fs.unlinkSync(file);
        } catch {
          // Already gone.
        }
      };
      process.on('exit', release);
      return release;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readLockPid(file);
    if (holder !== undefined && alive(holder)) {
      throw new LockError(`the audit log is locked by process ${holder} (${file}); one writer per log`);
    }
    // Stale (or unreadable: a crash between create and write). Take it over under a guard.
    const guard = `${file}.takeover`;
    let guardFd: number;
    try {
      guardFd = fs.openSync(guard, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const g = readLockPid(guard);
      if (g !== undefined && alive(g)) throw new LockError(`another process (${g}) is taking over the stale lock ${file}`);
      fs.rmSync(guard, { force: true });
      continue;
    }
    try {
      fs.writeSync(guardFd, content);
      fs.closeSync(guardFd);
      const again = readLockPid(file);
      if (again === holder || again === undefined) fs.rmSync(file, { force: true });
    } finally {
      fs.rmSync(guard, { force: true });
    }
  }
  throw new LockError(`could not take the audit log lock ${file}`);
}

/**
 * A chunk of a file and the lines in it, for fast scans (no readline, no per-line strings). A
 * sink may overwrite the bytes before `start` (lines it was already given): scanLines never reads
 * them again.
 */
export interface LineSink {
  /** line bytes are buf[start, end) (no newline); offset is the file offset of buf[start]. Return false to stop. */
  (buf: Buffer, start: number, end: number, lineNo: number, offset: number): boolean | void;
}

export interface ScanResult {
  readonly lines: number;
  /** File offset after the last complete line. */
  readonly end: number;
  /** Bytes after the last newline (a torn record), if any. */
  readonly tail?: Buffer | undefined;
  readonly stopped: boolean;
}

const CHUNK = 4 * 1024 * 1024;

/**
 * Call `sink` for every newline-terminated line of `file` from byte `from`, reading 4 MiB at a
 * time. Only the bytes present when the scan started are read (fstat size), so a device such as
 * /dev/full, or a writer appending meanwhile, cannot make it run forever.
 */
export function scanLines(file: string, sink: LineSink, from = 0, firstLineNo = 1): ScanResult {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size - from, 1)) + 1);
    let carry = 0;
    let pos = from;
    let bufOffset = from;
    let lineNo = firstLineNo;
    while (pos < size) {
      if (carry === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, carry);
        buf = bigger;
      }
      const want = Math.min(buf.length - carry, size - pos);
      const n = fs.readSync(fd, buf, carry, want, pos);
      if (n <= 0) break;
      pos += n;
      const filled = carry + n;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0 || nl >= filled) break;
        if (sink(buf, start, nl, lineNo, bufOffset + start) === false) {
          return { lines: lineNo - firstLineNo + 1, end: bufOffset + nl + 1, stopped: true };
        }
        lineNo++;
        start = nl + 1;
      }
      carry = filled - start;
      if (carry > 0) buf.copy(buf, 0, start, filled);
      bufOffset += start;
    }
    return { lines: lineNo - firstLineNo, end: bufOffset, tail: carry > 0 ? Buffer.from(buf.subarray(0, carry)) : undefined, stopped: false };
  } finally {
    fs.closeSync(fd);
  }
}

/** The last complete line of a file and what follows it, reading backwards from the end. */
export function lastLine(file: string, maxLine: number): { line?: Buffer; lineOffset: number; end: number; tail?: Buffer } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return { lineOffset: 0, end: 0 };
    const window = Math.min(size, 2 * maxLine + 2);
    const buf = Buffer.alloc(window);
    fs.readSync(fd, buf, 0, window, size - window);
    const lastNl = buf.lastIndexOf(0x0a);
    if (lastNl < 0) {
      if (window < size) throw new Error(`${file}: no line break in the last ${window} bytes`);
      return { lineOffset: 0, end: 0, tail: buf };
    }
    const tail = lastNl < window - 1 ? Buffer.from(buf.subarray(lastNl + 1)) : undefined;
    const prevNl = lastNl === 0 ? -1 : buf.lastIndexOf(0x0a, lastNl - 1);
    if (prevNl < 0 && window < size) throw new Error(`${file}: a line longer than ${maxLine} bytes`);
    const lineStart = prevNl + 1;
    return { line: Buffer.from(buf.subarray(lineStart, lastNl)), lineOffset: size - window + lineStart, end: size - window + lastNl + 1, tail };
  } finally {
    fs.closeSync(fd);
  }
}

export function firstLine(file: string, maxLine: number): Buffer | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, maxLine + 1));
    fs.readSync(fd, buf, 0, buf.length, 0);
    const nl = buf.indexOf(0x0a);
    return nl < 0 ? undefined : buf.subarray(0, nl);
  } finally {
    fs.closeSync(fd);
  }
}
