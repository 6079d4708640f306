import { z } from 'zod';
import { refuse } from '../../core/denial.js';
import { elicitForm, gather } from './client-input.js';
import { COMPLETION_VALUES, PNG_1X1_BASE64, PROMPTS, readResource, RESOURCE_TEMPLATES, RESOURCES } from './fixtures.js';
import type { ToolResult } from '../../core/call.js';
import { conformanceTool, type ConformanceCall, type ConformanceTool } from './tools.js';

/**
 * The MCP methods beyond tools/* that the conformance suite calls, each as a gated pseudo-tool of
 * the conformance family: the server's handler for the method (server/conformance-methods.ts)
 * takes every request through the gate under the pseudo-tool's name, so it is authenticated,
 * rate-limited, validated, decided and recorded like a tool call. The pseudo-tool's
 * `structured` result is the method's MCP result. They are not listed by tools/list.
 */

/** Reason of a resources/read for a URI no fixture serves: the server answers -32602 with data.uri (SEP-2164). */
export const RESOURCE_NOT_FOUND_REASON = 'conformance.resource_not_found';
/** Reason of a prompts/get for a name no fixture serves: the server answers -32602. */
export const PROMPT_NOT_FOUND_REASON = 'conformance.prompt_not_found';

const uri = z.string().min(1).max(2048);
const cursor = z.string().max(1024).optional();
const promptArgs = z.record(z.string().max(10_000)).optional();

const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'] as const;

function method(
  name: string,
  mcpMethod: string,
  input: z.ZodType<Readonly<Record<string, unknown>>, z.ZodTypeDef, unknown>,
  run: (call: ConformanceCall) => Promise<ToolResult>,
): ConformanceTool {
  return conformanceTool(name, `The conformance profile's ${mcpMethod} (gated pseudo-tool; not listed).`, input, run, mcpMethod);
}

function structured(result: Readonly<Record<string, unknown>>, text: string): { text: string; structured: Readonly<Record<string, unknown>> } {
  return { text, structured: result };
}

function promptMessages(name: string, args: Readonly<Record<string, string>>): Record<string, unknown>[] | undefined {
  switch (name) {
    case 'test_simple_prompt':
      return [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }];
    case 'test_prompt_with_arguments':
      return [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${args.arg1 ?? ''}', arg2='${args.arg2 ?? ''}'` } }];
    case 'test_prompt_with_embedded_resource':
      return [
        {
          role: 'user',
          content: {
            type: 'resource',
            resource: { uri: args.resourceUri ?? 'test://example-resource', mimeType: 'text/plain', text: 'Embedded resource content for testing.' },
          },
        },
        { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
      ];
    case 'test_prompt_with_image':
      return [
        { role: 'user', content: { type: 'image', data: PNG_1X1_BASE64, mimeType: 'image/png' } },
        { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
      ];
    default:
      return undefined;
  }
}

/** The pseudo-tool of each method, by MCP method name. */
export const conformanceMethodTools: ReadonlyMap<string, ConformanceTool> = new Map([
  [
    'resources/list',
    method('conformance_resources_list', 'resources/list', z.object({ cursor }).strict(), async () =>
      structured(
        { resources: RESOURCES.map((r) => ({ uri: r.uri, name: r.name, description: r.description, mimeType: r.mimeType })) },
        `${RESOURCES.length} resources`,
      ),
    ),
  ],
  [
    'resources/templates/list',
    method('conformance_resources_templates_list', 'resources/templates/list', z.object({ cursor }).strict(), async () =>
      structured({ resourceTemplates: RESOURCE_TEMPLATES.map((t) => ({ ...t })) }, `${RESOURCE_TEMPLATES.length} resource templates`),
    ),
  ],
  [
    'resources/read',
    method('conformance_resources_read', 'resources/read', z.object({ uri }).strict(), async (call) => {
      const u = String(call.args.uri);
      const contents = readResource(u);
      if (!contents) refuse('invalid_input', 'Resource not found.', [RESOURCE_NOT_FOUND_REASON], { uri: u });
      return structured({ contents }, `read ${u}`);
    }),
  ],
  // Subscriptions are accepted and recorded; the fixtures never change, so no update is ever sent.
  [
    'resources/subscribe',
    method('conformance_resources_subscribe', 'resources/subscribe', z.object({ uri }).strict(), async (call) =>
      structured({}, `subscribed ${String(call.args.uri)}`),
    ),
  ],
  [
    'resources/unsubscribe',
    method('conformance_resources_unsubscribe', 'resources/unsubscribe', z.object({ uri }).strict(), async (call) =>
      structured({}, `unsubscribed ${String(call.args.uri)}`),
    ),
  ],
  [
    'prompts/list',
    method('conformance_prompts_list', 'prompts/list', z.object({ cursor }).strict(), async () =>
      structured(
        {
          prompts: PROMPTS.map((p) => ({
            name: p.name,
            description: p.description,
            ...(p.arguments ? { arguments: p.arguments.map((a) => ({ ...a })) } : {}),
          })),
        },
        `${PROMPTS.length} prompts`,
      ),
    ),
  ],
  [
    'prompts/get',
    method('conformance_prompts_get', 'prompts/get', z.object({ name: z.string().min(1).max(256), arguments: promptArgs }).strict(), async (call) => {
      const name = String(call.args.name);
      const args = (call.args.arguments ?? {}) as Readonly<Record<string, string>>;
      const prompt = PROMPTS.find((p) => p.name === name);
      if (!prompt) refuse('invalid_input', `Unknown prompt: ${name.slice(0, 80)}`, [PROMPT_NOT_FOUND_REASON]);
      const missing = (prompt.arguments ?? []).filter((a) => a.required && typeof args[a.name] !== 'string').map((a) => a.name);
      if (missing.length > 0) refuse('invalid_input', `Missing prompt arguments: ${missing.join(', ')}`, ['conformance.prompt_arguments']);
      if (name === 'test_input_required_result_prompt') {
        // SEP-2322 on a non-tool request: the prompt needs the client's context first.
        const request = elicitForm('What context should the prompt use?', { context: { type: 'string' } }, ['context']);
        const got = await gather(call.context, { user_context: request });
        if ('needsInput' in got) return { ...structured({}, 'Waiting for input.'), needsInput: got.needsInput };
        const content = got.answers.user_context?.content as Record<string, unknown> | undefined;
        const context = typeof content?.context === 'string' ? content.context.slice(0, 1000) : 'none';
        return structured(
          { description: prompt.description, messages: [{ role: 'user', content: { type: 'text', text: `Prompt with context: ${context}` } }] },
          `prompt ${name}`,
        );
      }
      return structured({ description: prompt.description, messages: promptMessages(name, args) ?? [] }, `prompt ${name}`);
    }),
  ],
  [
    'completion/complete',
    method(
      'conformance_completion_complete',
      'completion/complete',
      z
        .object({
          ref: z.object({ type: z.enum(['ref/prompt', 'ref/resource']), name: z.string().max(256).optional(), uri: z.string().max(2048).optional() }).strict(),
          argument: z.object({ name: z.string().max(256), value: z.string().max(10_000) }).strict(),
          context: z
            .object({ arguments: z.record(z.string().max(10_000)).optional() })
            .strict()
            .optional(),
        })
        .strict(),
      async (call) => {
        const argument = call.args.argument as { name: string; value: string };
        const values = (COMPLETION_VALUES[argument.name] ?? []).filter((v) => v.startsWith(argument.value));
        return structured({ completion: { values: [...values], total: values.length, hasMore: false } }, `${values.length} completions`);
      },
    ),
  ],
  // Accepted and recorded: each HTTP request is served on its own, so there is no session to keep a level for.
  [
    'logging/setLevel',
    method('conformance_logging_set_level', 'logging/setLevel', z.object({ level: z.enum(LOG_LEVELS) }).strict(), async (call) =>
      structured({}, `level ${String(call.args.level)}`),
    ),
  ],
]);

/** The methods the 2026-07-28 revision removed (server-stateless: answered 404 / -32601 there). */
export const REMOVED_IN_2026: ReadonlySet<string> = new Set(['resources/subscribe', 'resources/unsubscribe', 'logging/setLevel']);
