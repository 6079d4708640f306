import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './fixtures.js';

/**
 * A PostgreSQL cluster of this test's own (scripts/services.sh, which also starts a Redis it does
 * not need), for tests that stop, restart or kill it: never the shared one other tests use.
 */
export interface PgCluster {
  readonly dir: string;
  /** Superuser URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** `pg_ctl restart -m MODE` (the port and socket directory stay the same). Async: the load goes on meanwhile. */
  restart(mode?: 'fast' | 'immediate' | 'smart'): Promise<void>;
  stop(mode?: 'fast' | 'immediate' | 'smart'): Promise<void>;
  start(): Promise<void>;
  /** Stop everything it started and remove the folder. */
  close(): void;
}

function pgBin(): string {
  const candidates: string[] = [];
  try {
    candidates.push(path.dirname(fs.realpathSync(execFileSync('bash', ['-c', 'command -v pg_ctl'], { encoding: 'utf8' }).trim())));
  } catch {
    /* not on PATH */
  }
  for (const d of fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a)) : [])
    candidates.push(`/usr/lib/postgresql/${d}/bin`);
  const bin = candidates.find((d) => fs.existsSync(path.join(d, 'pg_ctl')));
  if (!bin) throw new Error('pg_ctl not found: run bash scripts/toolchain.sh');
  return bin;
}

/** pg_ctl as the cluster's owner (the system user postgres when we are root: postgres refuses root). */
function asOwner(args: string[]): string[] {
  return process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...args] : args;
}

export function startPgCluster(): PgCluster {
  // Under /tmp: the postgres user must be able to reach it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-pgfault-'));
  execFileSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'start', dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  const env = Object.fromEntries(
    fs
      .readFileSync(path.join(dir, 'env'), 'utf8')
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  ) as Record<string, string>;
  const port = Number(env.PGPORT);
  let closed = false;
  // Whatever fails, the cluster does not outlive the test process.
  process.on('exit', close);
  const bin = pgBin();
  const pgdata = path.join(dir, 'pg');
  const ctl = (args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const [cmd, ...rest] = asOwner([path.join(bin, 'pg_ctl'), '-D', pgdata, ...args]);
      execFile(cmd as string, rest, { timeout: 90_000 }, (err, _out, stderr) =>
        err ? reject(new Error(`pg_ctl ${args[0]}: ${err.message} ${stderr}`)) : resolve(),
      );
    });
  const startOpts = ['-o', `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories='${dir}'`];
  return {
    dir,
    url: env.PGURL as string,
    port,
    restart: (mode = 'fast') => ctl(['restart', '-m', mode, '-w', '-t', '60', '-l', path.join(dir, 'pg.log'), ...startOpts]),
    stop: (mode = 'fast') => ctl(['stop', '-m', mode, '-w', '-t', '60']),
    start: () => ctl(['start', '-w', '-t', '60', '-l', path.join(dir, 'pg.log'), ...startOpts]),
    close,
  };

  function close(): void {
    if (closed) return;
    closed = true;
    process.removeListener('exit', close);
    try {
      execFileSync('bash', [path.join(ROOT, 'scripts', 'services.sh'), 'stop', dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
