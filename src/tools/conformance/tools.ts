import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Authorised, ToolResult } from '../../core/call.js';
import { refuse } from '../../core/denial.js';
import type { ConformanceFacts } from '../../core/facts.js';
import type { ToolDefinition } from '../types.js';
import { elicitationSummary, elicitForm, gather, LIST_ROOTS, sample, sampledText, type Answers } from './client-input.js';
import { PNG_1X1_BASE64, WAV_SILENCE_BASE64 } from './fixtures.js';

/**
 * The tools/call fixtures of the official MCP conformance suite (0.2.0-alpha.12, requirement sets
 * 2025-11-25 and 2026-07-28), registered only by `bulwark serve --profile conformance`. Each is an
 * ordinary gated tool: authenticated, rate-limited, validated, analysed, decided by the policy
 * (which allows this family only while the profile serves) and recorded. They run in-process:
 * they answer constants and touch nothing outside Bulwark.
 */

export type ConformanceArgs = Readonly<Record<string, unknown>>;
export type ConformanceCall = Authorised<ConformanceArgs, { readonly conformance: ConformanceFacts }, Record<string, never>>;
export type ConformanceTool = ToolDefinition<ConformanceArgs, { readonly conformance: ConformanceFacts }, Record<string, never>>;

const NO_ARGS = z.object({}).strict();

/**
 * What every fixture's structuredContent holds: which fixture answered, and the sha256 of its
 * content blocks (the audit record hashes structuredContent, so this binds the content to the record).
 */
const OUTPUT_SCHEMA = {
  type: 'object',
  properties: { fixture: { type: 'string' }, completed: { type: 'boolean' }, content_sha256: { type: 'string' } },
} as const;

/** The content blocks (any kind) as a ToolResult; `text` is what the record and the text surfaces see. */
export function contentResult(fixture: string, content: readonly Readonly<Record<string, unknown>>[]): ToolResult {
  const text = content.map((c) => (c.type === 'text' && typeof c.text === 'string' ? c.text : `[${String(c.type)}]`)).join('\n');
  const contentSha256 = crypto.createHash('sha256').update(JSON.stringify(content)).digest('hex');
  return { text, structured: { fixture, completed: true, content_sha256: contentSha256 }, content };
}

function textResult(fixture: string, text: string): ToolResult {
  return contentResult(fixture, [{ type: 'text', text }]);
}

export function conformanceTool(
  name: string,
  description: string,
  input: z.ZodType<ConformanceArgs, z.ZodTypeDef, unknown>,
  run: (call: ConformanceCall) => Promise<ToolResult>,
  method?: string,
): ConformanceTool {
  return {
    name,
    family: 'conformance',
    description,
    annotations: { title: name, readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    input,
    outputSchema: OUTPUT_SCHEMA,
    async analyse() {
      return { facts: { conformance: { fixture: name, ...(method ? { method } : {}) } }, pinned: {} };
    },
    execute: run,
  };
}

/** A pause that ends early (throws) when the call is cancelled or reaches its deadline. */
function pause(ms: number, call: ConformanceCall): Promise<void> {
  return sleep(ms, undefined, { signal: call.context.signal });
}

/** An answer the client gave, by key (gather returned them all). */
function answerOf(answers: Answers, key: string): Readonly<Record<string, unknown>> {
  const a = answers[key];
  if (!a) throw new Error(`no answer for ${key}`);
  return a;
}

/**
 * The progress fixture's pause: above the server's progress throttle (100 ms, server/progress.ts),
 * so each of the three updates the suite counts leaves on its own instead of being coalesced.
 */
const PROGRESS_STEP_MS = 110;

const USER_NAME = elicitForm('What is your name?', { name: { type: 'string' } }, ['name']);

function nameOf(answer: Readonly<Record<string, unknown>>): string {
  const content = answer.content;
  const name = content !== null && typeof content === 'object' && !Array.isArray(content) ? (content as Record<string, unknown>).name : undefined;
  return typeof name === 'string' ? name.slice(0, 200) : 'anonymous';
}

export const conformanceTools: readonly ConformanceTool[] = [
  conformanceTool('test_simple_text', 'Returns simple text (conformance fixture).', NO_ARGS, async () =>
    textResult('test_simple_text', 'This is a simple text response for testing.'),
  ),
  conformanceTool('test_image_content', 'Returns a 1x1 PNG image (conformance fixture).', NO_ARGS, async () =>
    contentResult('test_image_content', [{ type: 'image', data: PNG_1X1_BASE64, mimeType: 'image/png' }]),
  ),
  conformanceTool('test_audio_content', 'Returns a short silent WAV (conformance fixture).', NO_ARGS, async () =>
    contentResult('test_audio_content', [{ type: 'audio', data: WAV_SILENCE_BASE64, mimeType: 'audio/wav' }]),
  ),
  conformanceTool('test_embedded_resource', 'Returns an embedded resource (conformance fixture).', NO_ARGS, async () =>
    contentResult('test_embedded_resource', [
      { type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } },
    ]),
  ),
  conformanceTool('test_multiple_content_types', 'Returns text, an image and a resource (conformance fixture).', NO_ARGS, async () =>
    contentResult('test_multiple_content_types', [
      { type: 'text', text: 'Multiple content types test:' },
      { type: 'image', data: PNG_1X1_BASE64, mimeType: 'image/png' },
      { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' } },
    ]),
  ),
  conformanceTool('test_tool_with_logging', 'Sends three info log messages while it runs (conformance fixture).', NO_ARGS, async (call) => {
    const log = call.context.log;
    log?.('info', 'Tool execution started');
    await pause(50, call);
    log?.('info', 'Tool processing data');
    await pause(50, call);
    log?.('info', 'Tool execution completed');
    return textResult('test_tool_with_logging', 'Tool with logging executed successfully');
  }),
  // 2026-07-28 server-stateless: logs only where the request set a log level (the transport offers `log` then).
  conformanceTool('test_logging_tool', 'Logs one message when the request asked for logs (conformance fixture).', NO_ARGS, async (call) => {
    call.context.log?.('info', 'test_logging_tool ran');
    return textResult('test_logging_tool', 'Logging tool executed');
  }),
  conformanceTool('test_error_handling', 'Always fails (conformance fixture): the gate answers tool_error with isError.', NO_ARGS, async () => {
    throw new Error('This tool intentionally returns an error for testing');
  }),
  conformanceTool('test_tool_with_progress', 'Reports progress 0, 50 and 100 of 100 (conformance fixture).', NO_ARGS, async (call) => {
    const progress = call.context.progress;
    progress?.(0, 100);
    await pause(PROGRESS_STEP_MS, call);
    progress?.(50, 100);
    await pause(PROGRESS_STEP_MS, call);
    progress?.(100, 100);
    return textResult('test_tool_with_progress', 'Progress tool completed');
  }),
  conformanceTool(
    'test_sampling',
    'Asks the client to sample an LLM (conformance fixture).',
    z.object({ prompt: z.string().max(10_000) }).strict(),
    async (call) => {
      const got = await gather(call.context, { sampling: sample(String(call.args.prompt), 100) });
      if ('needsInput' in got) return { ...textResult('test_sampling', 'Waiting for the client to sample.'), needsInput: got.needsInput };
      return textResult('test_sampling', `LLM response: ${sampledText(answerOf(got.answers, 'sampling'))}`);
    },
  ),
  conformanceTool(
    'test_elicitation',
    'Asks the user for a username and an email (conformance fixture).',
    z.object({ message: z.string().max(10_000) }).strict(),
    async (call) => {
      const request = elicitForm(
        String(call.args.message),
        { username: { type: 'string', description: "User's response" }, email: { type: 'string', description: "User's email address" } },
        ['username', 'email'],
      );
      const got = await gather(call.context, { response: request });
      if ('needsInput' in got) return { ...textResult('test_elicitation', 'Waiting for the user.'), needsInput: got.needsInput };
      const a = answerOf(got.answers, 'response');
      return textResult('test_elicitation', `User response: <action: ${String(a.action)}, content: ${JSON.stringify(a.content ?? {}).slice(0, 1000)}>`);
    },
  ),
  conformanceTool('test_elicitation_sep1034_defaults', 'Elicits every primitive type with a default (SEP-1034 fixture).', NO_ARGS, async (call) => {
    const request = elicitForm(
      'Please review and update the form fields with defaults',
      {
        name: { type: 'string', description: 'User name', default: 'John Doe' },
        age: { type: 'integer', description: 'User age', default: 30 },
        score: { type: 'number', description: 'User score', default: 95.5 },
        status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
        verified: { type: 'boolean', description: 'Verification status', default: true },
      },
      [],
    );
    const got = await gather(call.context, { form: request });
    if ('needsInput' in got) return { ...textResult('test_elicitation_sep1034_defaults', 'Waiting for the user.'), needsInput: got.needsInput };
    return textResult('test_elicitation_sep1034_defaults', `Elicitation completed: ${elicitationSummary(answerOf(got.answers, 'form'))}`);
  }),
  conformanceTool('test_elicitation_sep1330_enums', 'Elicits the five enum variants (SEP-1330 fixture).', NO_ARGS, async (call) => {
    const request = elicitForm(
      'Please select options from the enum fields',
      {
        untitledSingle: { type: 'string', description: 'Untitled single-select', enum: ['option1', 'option2', 'option3'] },
        titledSingle: {
          type: 'string',
          description: 'Titled single-select',
          oneOf: [
            { const: 'value1', title: 'First Option' },
            { const: 'value2', title: 'Second Option' },
            { const: 'value3', title: 'Third Option' },
          ],
        },
        legacyEnum: {
          type: 'string',
          description: 'Legacy titled enum',
          enum: ['opt1', 'opt2', 'opt3'],
          enumNames: ['Option One', 'Option Two', 'Option Three'],
        },
        untitledMulti: { type: 'array', description: 'Untitled multi-select', items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
        titledMulti: {
          type: 'array',
          description: 'Titled multi-select',
          items: {
            anyOf: [
              { const: 'value1', title: 'First Choice' },
              { const: 'value2', title: 'Second Choice' },
              { const: 'value3', title: 'Third Choice' },
            ],
          },
        },
      },
      [],
    );
    const got = await gather(call.context, { form: request });
    if ('needsInput' in got) return { ...textResult('test_elicitation_sep1330_enums', 'Waiting for the user.'), needsInput: got.needsInput };
    return textResult('test_elicitation_sep1330_enums', `Elicitation completed: ${elicitationSummary(answerOf(got.answers, 'form'))}`);
  }),
  // 2026-07-28 server-stateless: a request that needs a capability the client did not declare is
  // refused (the transport answers -32021 MissingRequiredClientCapability from the reason and detail).
  conformanceTool(
    'test_missing_capability',
    'Needs the sampling capability; refused when the client did not declare it (conformance fixture).',
    NO_ARGS,
    async (call) => {
      if (call.context.client?.capabilities.sampling !== true) {
        refuse('invalid_input', 'This fixture needs the sampling capability, which the client did not declare.', ['client.capability_missing'], {
          requiredCapabilities: { sampling: {} },
        });
      }
      return textResult('test_missing_capability', 'The client declared sampling.');
    },
  ),
  // 2026-07-28 server-stateless: the answer stream carries an input_required result, never a request.
  conformanceTool('test_streaming_elicitation', 'Asks the user for a name (conformance fixture, 2026-07-28 streams).', NO_ARGS, async (call) => {
    const got = await gather(call.context, { user_name: USER_NAME });
    if ('needsInput' in got) return { ...textResult('test_streaming_elicitation', 'Waiting for the user.'), needsInput: got.needsInput };
    return textResult('test_streaming_elicitation', `Hello, ${nameOf(answerOf(got.answers, 'user_name'))}!`);
  }),
  ...inputRequiredTools(),
];

/** The SEP-2322 (input_required) fixtures of the 2026-07-28 set; over 2025-11-25 they ask instead. */
function inputRequiredTools(): ConformanceTool[] {
  const step = (call: ConformanceCall): number => {
    const s = call.context.client?.resumedState?.step;
    return typeof s === 'number' ? s : 0;
  };
  return [
    conformanceTool('test_input_required_result_elicitation', 'Needs an elicitation answer first (SEP-2322 fixture).', NO_ARGS, async (call) => {
      const got = await gather(call.context, { user_name: USER_NAME });
      if ('needsInput' in got) return { ...textResult('test_input_required_result_elicitation', 'Waiting for input.'), needsInput: got.needsInput };
      return textResult('test_input_required_result_elicitation', `Hello, ${nameOf(answerOf(got.answers, 'user_name'))}!`);
    }),
    conformanceTool('test_input_required_result_sampling', 'Needs a sampling answer first (SEP-2322 fixture).', NO_ARGS, async (call) => {
      const got = await gather(call.context, { capital_question: sample('What is the capital of France?', 100) });
      if ('needsInput' in got) return { ...textResult('test_input_required_result_sampling', 'Waiting for input.'), needsInput: got.needsInput };
      return textResult('test_input_required_result_sampling', `Sampling response: ${sampledText(answerOf(got.answers, 'capital_question'))}`);
    }),
    conformanceTool('test_input_required_result_list_roots', "Needs the client's roots first (SEP-2322 fixture).", NO_ARGS, async (call) => {
      const got = await gather(call.context, { client_roots: LIST_ROOTS });
      if ('needsInput' in got) return { ...textResult('test_input_required_result_list_roots', 'Waiting for input.'), needsInput: got.needsInput };
      const roots = answerOf(got.answers, 'client_roots').roots as unknown[];
      const uris = roots.map((r) =>
        r !== null && typeof r === 'object' && typeof (r as { uri?: unknown }).uri === 'string' ? (r as { uri: string }).uri : '?',
      );
      return textResult('test_input_required_result_list_roots', `Client roots (${uris.length}): ${uris.slice(0, 20).join(', ')}`);
    }),
    conformanceTool('test_input_required_result_request_state', 'Round-trips a sealed requestState (SEP-2322 fixture).', NO_ARGS, async (call) => {
      const confirm = elicitForm('Please confirm', { ok: { type: 'boolean' } }, ['ok']);
      // The state comes back only through the gate, which unsealed and checked it (principal, call, expiry).
      const resumed = call.context.client?.era === '2026-07-28' && step(call) === 1;
      const got = await gather(call.context, { confirm }, { step: 1 });
      if ('needsInput' in got || (call.context.client?.era === '2026-07-28' && !resumed)) {
        return {
          ...textResult('test_input_required_result_request_state', 'Waiting for input.'),
          needsInput: { inputRequests: { confirm }, state: { step: 1 } },
        };
      }
      return textResult(
        'test_input_required_result_request_state',
        `state-ok: the request state came back intact (${elicitationSummary(answerOf(got.answers, 'confirm'))})`,
      );
    }),
    conformanceTool(
      'test_input_required_result_multiple_inputs',
      'Needs an elicitation, a sampling and the roots (SEP-2322 fixture).',
      NO_ARGS,
      async (call) => {
        const got = await gather(
          call.context,
          {
            user_name: USER_NAME,
            greeting: sample('Generate a greeting', 50),
            client_roots: LIST_ROOTS,
          },
          { step: 1 },
        );
        if ('needsInput' in got) return { ...textResult('test_input_required_result_multiple_inputs', 'Waiting for input.'), needsInput: got.needsInput };
        return textResult(
          'test_input_required_result_multiple_inputs',
          `All inputs received: name=${nameOf(answerOf(got.answers, 'user_name'))}, greeting=${sampledText(answerOf(got.answers, 'greeting'))}, roots=${(answerOf(got.answers, 'client_roots').roots as unknown[]).length}`,
        );
      },
    ),
    conformanceTool('test_input_required_result_multi_round', 'Asks twice, the state evolving between rounds (SEP-2322 fixture).', NO_ARGS, async (call) => {
      const step1 = elicitForm('Step 1: What is your name?', { name: { type: 'string' } }, ['name']);
      const step2 = elicitForm('Step 2: What is your favorite color?', { color: { type: 'string' } }, ['color']);
      if (call.context.client?.era !== '2026-07-28') {
        const got = await gather(call.context, { step1, step2 });
        if ('needsInput' in got) throw new Error('a 2025-11-25 gather never needs input');
        return textResult('test_input_required_result_multi_round', `Done: ${nameOf(answerOf(got.answers, 'step1'))}`);
      }
      const waiting = textResult('test_input_required_result_multi_round', 'Waiting for input.');
      if (step(call) === 2) {
        const got = await gather(call.context, { step2 }, { step: 2, name: call.context.client.resumedState?.name ?? null });
        if ('needsInput' in got) return { ...waiting, needsInput: got.needsInput };
        const color = answerOf(got.answers, 'step2').content as Record<string, unknown> | undefined;
        return textResult('test_input_required_result_multi_round', `Done: ${String(call.context.client.resumedState?.name)} likes ${String(color?.color)}`);
      }
      const got = step(call) === 1 ? await gather(call.context, { step1 }, { step: 1 }) : undefined;
      if (!got || 'needsInput' in got) return { ...waiting, needsInput: { inputRequests: { step1 }, state: { step: 1 } } };
      return { ...waiting, needsInput: { inputRequests: { step2 }, state: { step: 2, name: nameOf(answerOf(got.answers, 'step1')) } } };
    }),
    conformanceTool(
      'test_input_required_result_tampered_state',
      'Its requestState is sealed; a tampered one is refused by the gate (SEP-2322 fixture).',
      NO_ARGS,
      async (call) => {
        const confirm = elicitForm('Please confirm', { ok: { type: 'boolean' } }, ['ok']);
        const resumed = call.context.client?.era === '2026-07-28' && step(call) === 1;
        const got = await gather(call.context, { confirm }, { step: 1 });
        if ('needsInput' in got || (call.context.client?.era === '2026-07-28' && !resumed)) {
          return {
            ...textResult('test_input_required_result_tampered_state', 'Waiting for input.'),
            needsInput: { inputRequests: { confirm }, state: { step: 1 } },
          };
        }
        return textResult('test_input_required_result_tampered_state', 'state-ok');
      },
    ),
    conformanceTool('test_input_required_result_capabilities', 'Asks only for what the client declared (SEP-2322 fixture).', NO_ARGS, async (call) => {
      const caps = call.context.client?.capabilities ?? {};
      const requests = {
        ...(caps.elicitation?.form ? { user_name: USER_NAME } : {}),
        ...(caps.sampling ? { greeting: sample('Generate a greeting', 50) } : {}),
        ...(caps.roots ? { client_roots: LIST_ROOTS } : {}),
      };
      if (Object.keys(requests).length === 0) return textResult('test_input_required_result_capabilities', 'The client declared nothing it could be asked.');
      const got = await gather(call.context, requests);
      if ('needsInput' in got) return { ...textResult('test_input_required_result_capabilities', 'Waiting for input.'), needsInput: got.needsInput };
      return textResult('test_input_required_result_capabilities', `Answered: ${Object.keys(got.answers).sort().join(', ')}`);
    }),
  ];
}
