import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const OPA_VERSION = '1.22.3';

/** The pinned `opa`: on PATH, or where `go install` puts it. */
export function findOpa(): string | undefined {
  const candidates: string[] = [];
  const fromPath = spawnSync('sh', ['-c', 'command -v opa'], { encoding: 'utf8' }).stdout.trim();
  if (fromPath) candidates.push(fromPath);
  try {
    const gopath = execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (gopath) candidates.push(path.join(gopath, 'bin', 'opa'));
  } catch {
    /* no go on this machine */
  }
  candidates.push(path.join(os.homedir(), 'go', 'bin', 'opa'));
  return candidates.find((c) => {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
