import type { CodeFacts } from '../../core/facts.js';
import crypto from 'node:crypto';
import { z } from 'zod';
import { refuse } from '../../core/denial.js';
import type { ScriptResult } from '../../../sandbox/js/run-script.js';
import type { ToolDefinition } from '../types.js';

/** The worker's kill switch fires this long after the isolate's own budget, so the isolate reports first. */
const WALL_GRACE_MS = 1000;

/**
 * Any JSON value, spelled as the union of its types so the listed schema says so (a bare
 * `z.unknown()` lists no type, and schema-driven clients then send an array as a string).
 */
const jsonValue = z.union([z.record(z.unknown()), z.array(z.unknown()), z.string(), z.number(), z.boolean(), z.null()]);

const input = z
  .object({
    code: z
      .string()
      .min(1)
      .max(1024 * 1024)
      .describe(
        'The body of an async function: use `return` for the result and `await` freely; `input` holds the input argument; console.log is captured; progress(n, total) reports progress.',
      ),
    input: jsonValue.optional().describe('Any JSON value (object, array, string, number, boolean or null), copied into the isolate as `input`.'),
    timeout_ms: z.number().int().positive().optional().describe('Ask for a shorter time budget than the configured one.'),
    memory_mb: z.number().int().positive().optional().describe('Ask for a smaller memory cap than the configured one.'),
  })
  .strict();

type Args = z.output<typeof input>;

export const runJavascriptTool: ToolDefinition<Args, { readonly code: CodeFacts }, Record<string, never>> = {
  name: 'run_javascript',
  family: 'javascript',
  description:
    'Run untrusted JavaScript in an isolated-vm isolate inside a disposable worker process: no Node APIs, no timers, no network or files; capped memory, CPU time, wall time and output. The code is the body of an async function; `return` a JSON value.',
  annotations: { title: 'Run JavaScript', readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  input,
  outputSchema: {
    type: 'object',
    properties: {
      result: {},
      logs: { type: 'string' },
      output_bytes: { type: 'integer' },
      cpu_ms: { type: 'number' },
      wall_ms: { type: 'number' },
      heap_bytes: { type: 'integer' },
      memory_mb: { type: 'integer' },
      timeout_ms: { type: 'integer' },
      code_sha256: { type: 'string' },
    },
    required: ['result', 'logs'],
  },
  async analyse(call, env) {
    const bytes = Buffer.byteLength(call.args.code);
    const max = env.config.javascript.max_code_bytes;
    if (bytes > max) refuse('invalid_input', `The code is ${bytes} bytes; the cap is ${max}.`, ['code.too_large']);
    const sha256 = crypto.createHash('sha256').update(call.args.code).digest('hex');
    return { facts: { code: { language: 'javascript' as const, bytes, sha256 } }, pinned: {} };
  },
  async execute(call, env) {
    const js = env.config.javascript;
    // Every cap is the tightest of: configuration, policy obligation, the caller's own request.
    const timeoutMs = Math.min(js.timeout_ms, call.caps.timeoutMs, call.args.timeout_ms ?? Infinity);
    const memoryMb = Math.min(js.memory_mb, call.caps.memoryMb ?? js.memory_mb, call.args.memory_mb ?? Infinity);
    const maxOutputBytes = Math.min(js.max_output_bytes, call.caps.maxBytes);
    const inputJson = call.args.input === undefined ? undefined : JSON.stringify(call.args.input);
    const r = await env.pools.javascript.run<ScriptResult>(
      'run',
      { code: call.args.code, inputJson, memoryMb, timeoutMs, maxOutputBytes },
      {
        timeoutMs: timeoutMs + WALL_GRACE_MS,
        signal: call.context.signal,
        onProgress: call.context.progress,
      },
    );
    const v = r.value;
    const text = `${v.logs}${v.logs ? '\n' : ''}${JSON.stringify(v.result)}`;
    return {
      text,
      structured: { ...v, memory_mb: memoryMb, timeout_ms: timeoutMs, code_sha256: call.facts.code.sha256 },
      metrics: { duration_ms: Math.round(r.metrics.duration_ms * 1000) / 1000, cpu_ms: v.cpu_ms, heap_bytes: v.heap_bytes, output_bytes: v.output_bytes },
    };
  },
  auditArgs: (args) => ({
    code_bytes: Buffer.byteLength(args.code),
    input_bytes: args.input === undefined ? 0 : Buffer.byteLength(JSON.stringify(args.input)),
    timeout_ms: args.timeout_ms ?? null,
    memory_mb: args.memory_mb ?? null,
  }),
};
