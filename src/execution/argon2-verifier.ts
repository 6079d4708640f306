import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import argon2 from 'argon2';
import { PACKAGE_ROOT } from '../config/package-paths.js';

/** A verification's answer; `error` means it could not run (the verifier process died): not a failure of the client. */
export type Verdict = boolean | 'error';

/** The verifier's entry point: child code lives in sandbox/, the parent side here. */
const CHILD_ENTRY = path.join(PACKAGE_ROOT, 'dist', 'sandbox', 'argon2', 'argon2-child.js');

/** The verifier process runs at this nice value (Linux: about a tenth of the server's CPU share when both want it). */
const CHILD_NICE = 10;

/**
 * argon2's Node binding runs each verification on the libuv thread pool (4 threads by default),
 * the same pool the audit log's fdatasync and every fs call use, and each verification keeps a
 * core busy for ≈ 140–250 ms. Unbounded, a burst of wrong secrets took the whole pool and every
 * audited call waited behind it (issue 17: 4.5–9.4 s). So:
 * - at most `concurrency` verifications run at once (default 1), at most `queue` wait, and the
 *   rest are refused at once — the caller answers 503 `auth.busy` with Retry-After;
 * - with `isolate` (the default) they run in a child process at a lower CPU priority, with its own
 *   thread pool: measured in scripts/bench/auth-burst.mjs, on 2 cores the CPU an in-process argon2
 *   takes from the event loop was most of what other clients still felt.
 */
export class Argon2Gate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private child: ChildProcess | undefined;
  private readonly asked = new Map<number, (v: Verdict) => void>();
  private nextId = 0;
  /** Verifications refused because the queue was full (for tests and metrics). */
  refused = 0;

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
    private readonly isolate: boolean,
  ) {}

  /** Verify, or undefined at once when the gate is full. */
  verify(hash: string, secret: string): Promise<Verdict> | undefined {
    if (this.running >= this.concurrency && this.waiting.length >= this.queue) {
      this.refused += 1;
      return undefined;
    }
    return this.run(() => (this.isolate ? this.inChild(hash, secret) : argon2.verify(hash, secret).catch(() => false)));
  }

  /** Verifications running now. */
  get busy(): number {
    return this.running;
  }

  /** Stop the verifier process (pending verifications answer `error`). */
  close(): void {
    this.child?.kill();
    this.child = undefined;
  }

  private inChild(hash: string, secret: string): Promise<Verdict> {
    const child = this.child ?? this.spawn();
    const id = ++this.nextId;
    return new Promise<Verdict>((resolve) => {
      if (this.asked.size === 0) this.hold(child, true);
      this.asked.set(id, resolve);
      child.send({ id, hash, secret }, (err) => {
        if (err) this.answer(id, 'error');
      });
    });
  }

  private spawn(): ChildProcess {
    const child = fork(CHILD_ENTRY, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    try {
      if (child.pid !== undefined) os.setPriority(child.pid, CHILD_NICE);
    } catch {
      // Not permitted here: it still has its own thread pool, which is the part that matters most.
    }
    child.on('message', (m: { id: number; ok: boolean }) => this.answer(m.id, m.ok === true));
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
      // Whatever it was verifying is unanswered: refuse those (retryable), start afresh next time.
      for (const id of [...this.asked.keys()]) this.answer(id, 'error');
    });
    child.on('error', () => undefined);
    this.hold(child, false);
    this.child = child;
    return child;
  }

  private answer(id: number, v: Verdict): void {
    const resolve = this.asked.get(id);
    if (!resolve) return;
    this.asked.delete(id);
    if (this.asked.size === 0 && this.child) this.hold(this.child, false);
    resolve(v);
  }

  /** Idle, the verifier must not keep the server alive; while a verification is pending it must. */
  private hold(child: ChildProcess, on: boolean): void {
    const channel = child.channel as { ref?: () => void; unref?: () => void } | undefined;
    if (on) {
      child.ref();
      channel?.ref?.();
    } else {
      child.unref();
      channel?.unref?.();
    }
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running += 1;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `running` never drops below the bound.
      if (next) next();
      else this.running -= 1;
    }
  }
}
