import { refuse } from '../../src/core/denial.js';
import type IvmModule from 'isolated-vm';
import { ivm } from './isolated-vm.js';

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
 *
 * The wrapper's own code runs after the script has had the chance to replace any global or
 * prototype method (`JSON.stringify = () => "FORGED"`, `Promise.prototype.then = ...`,
 * `Array.prototype.map = ...`), so it uses only the intrinsics it captured before the script ran,
 * called through a captured Reflect.apply, and it checks that what it hands out is a string.
 * toJSON methods and getters on the script's own result still run: they are part of what the script
 * returns, not of the wrapper. A script that makes its own promise unreadable (a throwing
 * Promise.prototype.constructor getter, which `await` must consult) ends in tool_error: it can
 * break its own result, never replace it.
 *
 * The script's code is compiled as its own script, `<script>`, whose line 1 is the code's line 1
 * (SCRIPT_HEAD sits on line 0), so stack traces name the caller's code plainly and not the
 * wrapper; host frames never appear in an isolate's stack. The prelude runs first: code that closes
 * SCRIPT_HEAD's function early (`}); ...; (async function () {`) runs at the script's top level,
 * but only after the intrinsics were captured, so it can do nothing the function body could not.
 */
const PRELUDE = `
const __apply = Reflect.apply;
const __JSON = JSON;
const __stringify = JSON.stringify;
const __parse = JSON.parse;
const __String = String;
const __Number = Number;
const __defineProperty = Object.defineProperty;
const __freeze = Object.freeze;
const __log = $0;
const __inputJson = $1;
const __progress = $2;
const __logApply = __log.applySync;
const __progressApply = __progress.applySync;
const __str = (v) => { try { return __String(v); } catch { return '[unprintable]'; } };
__defineProperty(globalThis, 'progress', {
  value: (n, total) => { __apply(__progressApply, __progress, [undefined, [__Number(n), total === undefined ? -1 : __Number(total)]]); },
  writable: false, configurable: false,
});
const __fmt = (v) => { if (typeof v === 'string') return v; try { const s = __apply(__stringify, __JSON, [v]); return typeof s === 'string' ? s : __str(v); } catch { return __str(v); } };
// A loop, not a.map(...).join(' '): map reads the script's Array[Symbol.species].
const __line = (a) => { let s = ''; for (let i = 0; i < a.length; i++) s += (i === 0 ? '' : ' ') + __fmt(a[i]); return s; };
const __emit = (...a) => { __apply(__logApply, __log, [undefined, [__line(a)]]); };
const __console = __freeze({ log: __emit, info: __emit, warn: __emit, error: __emit });
__defineProperty(globalThis, 'console', { value: __console, writable: false, configurable: false });
delete globalThis.WebAssembly;
const input = __inputJson === undefined ? undefined : __apply(__parse, __JSON, [__inputJson]);
const __serialise = (v) => { const s = __apply(__stringify, __JSON, [v === undefined ? null : v]); return typeof s === 'string' ? s : 'null'; };
// The runner: called with the script's function once it is compiled. await, not .then: no lookup
// of the script's Promise.prototype.then on the way out.
return (script) => (async () => __serialise(await __apply(script, undefined, [input])))();
`;

/** The script's code becomes the body of an async function; this head is line 0 of `<script>`. */
const SCRIPT_HEAD = '(async function (input) { "use strict";';

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
      const runner = (await context.evalClosure(PRELUDE, [log, req.inputJson, progress], {
        timeout: req.timeoutMs,
        result: { reference: true },
        filename: '<bulwark>',
      })) as unknown as IvmModule.Reference<(fn: unknown) => Promise<string>>;
      const script = await isolate.compileScript(`${SCRIPT_HEAD}\n${req.code}\n})`, { filename: '<script>', lineOffset: -1 });
      const fn = (await script.run(context, { reference: true, timeout: req.timeoutMs })) as IvmModule.Reference<unknown>;
      // One CPU budget for all three steps.
      const left = Math.max(1, req.timeoutMs - Math.ceil(Number(isolate.cpuTime) / 1e6));
      json = (await runner.apply(undefined, [fn.derefInto()], { timeout: left, result: { promise: true, copy: true } })) as unknown as string;
    } catch (err) {
      const message = (err as Error)?.message ?? String(err);
      if (overflow) refuse('resource_exceeded', `The script printed more than ${req.maxOutputBytes} bytes.`, ['js.output_cap']);
      if (/memory limit/i.test(message) || (isolate.isDisposed && !overflow))
        refuse('resource_exceeded', `The script exceeded its ${req.memoryMb} MB memory cap.`, ['js.memory']);
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
    return {
      result: JSON.parse(json) as unknown,
      logs,
      output_bytes: resultBytes + outBytes,
      cpu_ms: Math.round(cpuMs * 1000) / 1000,
      wall_ms: Math.round((performance.now() - started) * 1000) / 1000,
      heap_bytes: heap,
    };
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
