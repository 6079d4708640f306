// Shared helpers for the benchmarks: percentiles in the unit asked for, and a temp workspace.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const dist = (p) => path.join(ROOT, 'dist', p);

export function summarise(samplesMs, unit = 'ms') {
  const s = [...samplesMs].sort((a, b) => a - b);
  const k = unit === 'us' ? 1000 : 1;
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))] * k;
  const round = (x) => Math.round(x * 1000) / 1000;
  return {
    n: s.length,
    unit,
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    max: round(s[s.length - 1] * k),
    mean: round((s.reduce((a, b) => a + b, 0) / s.length) * k),
  };
}

/** A workspace with one small file and a config for it; durability is the caller's. */
export function workspace(durability) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bench-')));
  const root = path.join(dir, 'data');
  fs.mkdirSync(root);
  // 94 bytes, like the reference measurement in FACTS.md.
  fs.writeFileSync(path.join(root, 'small.txt'), 'x'.repeat(93) + '\n');
  const config = path.join(dir, 'bulwark.yaml');
  fs.writeFileSync(
    config,
    stringify({
      filesystem: { roots: [root] },
      audit: { path: path.join(dir, 'audit.jsonl'), durability },
      limits: { tiers: { local: { capacity: 1e6, refill_per_s: 1e6 } }, default_tier: 'local' },
      observability: { log_level: 'error' },
    }),
  );
  return { dir, root, config, file: path.join(root, 'small.txt'), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep 100
}

/** utime+stime of one process, in microseconds (from /proc; clock-tick resolution). */
export function procCpuUs(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) / clkTck) * 1e6;
  } catch {
    return 0;
  }
}

/** The process and its live descendants (the tool workers are child processes). */
export function treeCpuUs(pid) {
  const children = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch {
      // gone
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    total += procCpuUs(p);
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

/** `bulwark serve --http 127.0.0.1:0` from the checkout at `root`; resolves with its URL, pid and stop(). */
export async function startBulwark({ root = ROOT, config, label, execArgv = [], timeoutMs = 20_000 }) {
  const child = spawn(process.execPath, [...execArgv, path.join(root, 'bin', 'bulwark.js'), 'serve', '--http', '127.0.0.1:0', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start: ${err}`)), timeoutMs);
    child.stderr.on('data', (c) => {
      err += c.toString();
      if (err.length > 65536) err = err.slice(-65536);
      const m = /Bulwark is listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited ${code}: ${err}`));
    });
  }).catch((e) => {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw e;
  });
  return {
    url: new URL(url),
    pid: child.pid,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * The cost gate's overhead on one query: `ex.query` without and with plan limits, interleaved (so
 * drift hits both alike), after a warm-up. `plan.ms` of the gated runs is what the EXPLAIN took.
 */
export async function gateOverhead(ex, text, params, caps, planCaps, n) {
  for (let i = 0; i < 100; i++) {
    await ex.query(text, params(i), caps);
    await ex.query(text, params(i), planCaps);
  }
  const plain = [];
  const gated = [];
  const explain = [];
  for (let i = 0; i < n; i++) {
    let t0 = performance.now();
    await ex.query(text, params(i), caps);
    plain.push(performance.now() - t0);
    t0 = performance.now();
    const r = await ex.query(text, params(i), planCaps);
    gated.push(performance.now() - t0);
    explain.push(r.plan.ms);
  }
  const a = summarise(plain);
  const b = summarise(gated);
  return { without_gate_ms: a, with_gate_ms: b, explain_ms: summarise(explain), overhead_p50_ms: Math.round((b.p50 - a.p50) * 1000) / 1000 };
}
