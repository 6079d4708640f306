/**
 * Entry point of a JavaScript worker: a disposable child process (permission model, no file
 * access beyond its own code) hosting one isolated-vm isolate per call. isolated-vm's memory limit
 * does not contain every bomb (a growing Map can take the whole process down), so the process is
 * the outer boundary and the parent replaces it when it dies.
 */
import { serveTasks } from '../pool/child-runtime.js';
import { newWarmIsolate, runScript, type ScriptRequest, type WarmIsolate } from './run-script.js';

// A spare isolate and its context are made while idle so a call pays neither.
let spare: { warm: WarmIsolate; memoryMb: number } | undefined;
let defaultMemoryMb = 64;

function refill(): void {
  if (spare) return;
  setImmediate(() => {
    if (!spare) spare = { warm: newWarmIsolate(defaultMemoryMb), memoryMb: defaultMemoryMb };
  });
}

serveTasks(
  {
    run: (p: ScriptRequest, ctx) => {
      defaultMemoryMb = p.memoryMb;
      let isolate: WarmIsolate | undefined;
      if (spare && spare.memoryMb === p.memoryMb && !spare.warm.isolate.isDisposed) isolate = spare.warm;
      else spare?.warm.isolate.dispose();
      spare = undefined;
      // ctx.progress is throttled by the task runtime (which keeps the last update).
      return runScript(p, isolate, (n, total) => ctx.progress(n, total));
    },
    warm: (p: { memoryMb: number }) => {
      defaultMemoryMb = p.memoryMb;
      refill();
      return true;
    },
  },
  { onIdle: refill },
);
refill();
