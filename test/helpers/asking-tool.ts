/**
 * A test-only tool that asks its client (2025-11-25 elicitation, sampling, roots) through
 * `CallContext.client`, served under the name `api_stats` so the committed policy grants it to the
 * developer role like any other call: authenticated, decided and recorded by the real gate.
 */
import { z } from 'zod';
import type { App } from '../../src/app.js';
import type { ClientInputRequest } from '../../src/core/call.js';
import type { GateDeps } from '../../src/gate/deps.js';
import { buildToolCatalogue } from '../../src/server/mcp-server.js';
import type { ToolRegistry } from '../../src/tools/registry.js';
import type { ToolDefinition } from '../../src/tools/types.js';
import type { ServedApp } from '../../src/transport/served-app.js';

export const ASKING_TOOL = 'api_stats';

const input = z
  .object({
    ask: z.enum(['elicitation', 'sampling', 'roots']).default('elicitation'),
    message: z.string().max(200).default('Approve?'),
    timeout_ms: z.number().int().min(1).max(60_000).default(10_000),
    /** Ask with a signal that never aborts: only the transport can end the ask early. */
    detached: z.boolean().default(false),
  })
  .strict();

const askingTool: ToolDefinition<z.output<typeof input>> = {
  name: ASKING_TOOL,
  family: 'api',
  description: 'Test only: asks the client and returns what it answered.',
  annotations: { title: 'Ask the client', readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  input,
  outputSchema: { type: 'object' },
  async analyse() {
    return { facts: {}, pinned: {} };
  },
  async execute(call) {
    const client = call.context.client;
    const base = { era: client?.era ?? null, capabilities: client?.capabilities ?? null, can_ask: client?.ask !== undefined };
    if (!client?.ask) return { text: 'cannot ask', structured: { ...base, asked: false } };
    const request: ClientInputRequest =
      call.args.ask === 'sampling'
        ? { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: call.args.message } }], maxTokens: 10 } }
        : call.args.ask === 'roots'
          ? { method: 'roots/list', params: {} }
          : {
              method: 'elicitation/create',
              params: {
                mode: 'form',
                message: call.args.message,
                requestedSchema: { type: 'object', properties: { approve: { type: 'boolean', description: 'Approve the call' } }, required: ['approve'] },
              },
            };
    try {
      const answer = await client.ask(request, {
        signal: call.args.detached ? new AbortController().signal : call.context.signal,
        timeoutMs: call.args.timeout_ms,
      });
      return { text: JSON.stringify(answer), structured: { ...base, asked: true, answer } };
    } catch (err) {
      return { text: (err as Error).message, structured: { ...base, asked: true, error: (err as Error).message } };
    }
  },
};

/** The app's deps and catalogue with the asking tool in place of api_stats. */
export function withAskingTool(app: App): ServedApp {
  const tools: ToolRegistry = new Map([...app.deps.tools, [ASKING_TOOL, askingTool as ToolDefinition]]);
  const deps: GateDeps = { ...app.deps, tools };
  return { deps, catalogue: buildToolCatalogue(deps), readiness: app.readiness };
}
