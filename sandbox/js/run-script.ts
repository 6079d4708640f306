import { createRequire } from 'node:module';
import { refuse } from '../../src/errors/denial.js';
import type IvmModule from 'isolated-vm';

const require = createRequire(import.meta.url);
const ivm = require('isolated-vm') as typeof IvmModule;

export interface ScriptRequest {
  readonly code: string;
  /** JSON text of the `input` argument, parsed inside the isolate. */
  readonly inputJson?: string | undefined;
  readonly memoryMb: number;
  /** CPU-time budget enforced by the isolate (wall time is the parent's kill switch). */
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
}

export interface ScriptResult {
  readonly result: unknown;
  readonly logs: string;
  readonly output_bytes: number;
  readonly cpu_ms: number;
  readonly wall_ms: number;
  readonly heap_bytes: number;
}

/**
 * Runs inside the isolate before the user's code: a console that hands one string per call to the
 * host, no WebAssembly (its memory is not counted against the isolate's limit), and the result
 * serialised to JSON *inside* the isolate, so no getter or proxy of the script's runs in the host.
 */
function wrap(code: string): string {
  return `
const __log = $0;
const __inputJson = $1;
const __progress = $2;
Object.defineProperty(globalThis, 'progress', {
  value: (n, total) => { __progress.applySync(undefined, [Number(n), total === undefined ? -1 : Number(total)]); },
  writable: false, configurable: false,
});
const __fmt = (v) => { if (typeof v === 'string') return v; try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch { return String(v); } };
const __console = Object.freeze({
  log: (...a) => { __log.applySync(undefined, [a.map(__fmt).join(' ')]); },
  info: (...a) => { __log.applySync(undefined, [a.map(__fmt).join(' ')]); },
  warn: (...a) => { __log.applySync(undefined, [a.map(__fmt).join(' ')]); },
  error: (...a) => { __log.applySync(undefined, [a.map(__fmt).join(' ')]); },
});
Object.defineProperty(globalThis, 'console', { value: __console, writable: false, configurable: false });
delete globalThis.WebAssembly;
const input = __inputJson === undefined ? undefined : JSON.parse(__inputJson);
return (async (input) => {
"use strict";
${code}
})(input).then((v) => { const s = JSON.stringify(v === undefined ? null : v); return s === undefined ? 'null' : s; });
`;
}

class OutputOverflow extends Error {}

export interface WarmIsolate {
  readonly isolate: IvmModule.Isolate;
  readonly context: IvmModule.Context;
}

export async function runScript(req: ScriptRequest, spare?: WarmIsolate, onProgress?: (progress: number, total?: number) => void): Promise<ScriptResult> {
  const isolate = spare?.isolate ?? new ivm.Isolate({ memoryLimit: req.memoryMb });
  let logs = '';
  let outBytes = 0;
  let overflow = false;
  const started = performance.now();
  try {
    const context = spare?.context ?? (await isolate.createContext());
    const log = new ivm.Reference((line: string) => {
      const s = String(line) + '\n';
      outBytes += Buffer.byteLength(s);
      if (outBytes > req.maxOutputBytes) {
        overflow = true;
        // Stop the script where it stands: nothing it prints past the cap is kept.
        isolate.dispose();
        throw new OutputOverflow('output cap');
      }
      logs += s;
    });
    let json: string;
    try {
      // progress(n, total) from the script; the parent rate-limits what reaches the client.
      const progress = new ivm.Reference((n: number, total: number) => {
        if (Number.isFinite(n)) onProgress?.(n, Number.isFinite(total) && total >= 0 ? total : undefined);
      });
      json = (await context.evalClosure(wrap(req.code), [log, req.inputJson, progress], {
        timeout: req.timeoutMs,
        result: { promise: true, copy: true },
        filename: 'script.js',
      })) as unknown as string;
    } catch (err) {
      const message = (err as Error)?.message ?? String(err);
      if (overflow) refuse('resource_exceeded', `The script printed more than ${req.maxOutputBytes} bytes.`, ['js.output_cap']);
      if (/memory limit/i.test(message) || (isolate.isDisposed && !overflow)) refuse('resource_exceeded', `The script exceeded its ${req.memoryMb} MB memory cap.`, ['js.memory']);
      if (/timed out/i.test(message)) refuse('timeout', `The script exceeded its ${req.timeoutMs} ms CPU budget.`, ['js.cpu_time']);
      // Allocation failures the engine reports as exceptions are still memory bombs.
      if (/Invalid string length|Array buffer allocation failed|Invalid array length|Invalid typed array length|Array buffer allocation/i.test(message)) {
        refuse('resource_exceeded', `The script exceeded its memory cap (${message.slice(0, 100)}).`, ['js.memory']);
      }
      if (/Maximum call stack size exceeded/.test(message)) refuse('resource_exceeded', 'The script exceeded the stack limit.', ['js.stack']);
      if (err instanceof SyntaxError || /SyntaxError/.test(String((err as Error)?.name ?? '')) || /^SyntaxError/.test(message)) {
        refuse('tool_error', `The script does not compile: ${message.slice(0, 500)}`, ['js.syntax_error']);
      }
      refuse('tool_error', `The script threw: ${message.slice(0, 1000)}`, ['js.exception'], { logs: logs.slice(0, 4096) });
    }
    if (typeof json !== 'string') refuse('tool_error', 'The script result could not be copied out.', ['js.result_not_copyable']);
    const resultBytes = Buffer.byteLength(json);
    if (resultBytes + outBytes > req.maxOutputBytes) refuse('resource_exceeded', `The result is larger than ${req.maxOutputBytes} bytes.`, ['js.output_cap']);
    const heap = isolate.isDisposed ? 0 : isolate.getHeapStatisticsSync().used_heap_size;
    const cpuMs = Number(isolate.cpuTime) / 1e6;
    return { result: JSON.parse(json) as unknown, logs, output_bytes: resultBytes + outBytes, cpu_ms: Math.round(cpuMs * 1000) / 1000, wall_ms: Math.round((performance.now() - started) * 1000) / 1000, heap_bytes: heap };
  } finally {
    // An isolate is used once: never reused after success or failure.
    if (!isolate.isDisposed) isolate.dispose();
  }
}

/** An isolate with its context made ahead of time, for one call only. */
export function newWarmIsolate(memoryMb: number): WarmIsolate {
  const isolate = new ivm.Isolate({ memoryLimit: memoryMb });
  return { isolate, context: isolate.createContextSync() };
}
