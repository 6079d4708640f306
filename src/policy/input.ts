import type { Analysed } from '../core/call.js';

/**
 * The only place that shapes the policy input (DESIGN.md §3). Its fields are an interface:
 * extend, never rename. Time and identity arrive here so the policy stays pure and replayable.
 */
export function policyInput(call: Analysed): Record<string, unknown> {
  const p = call.principal;
  return {
    principal: { id: p.id, roles: [...p.roles], auth: p.auth, tier: p.tier, attributes: attributesOf(p) },
    tool: call.tool,
    args: call.args,
    facts: call.facts,
    context: {
      transport: call.context.transport,
      client_ip: call.context.clientIp ?? null,
      time: call.context.receivedAt.toISOString(),
      request_id: call.context.requestId,
    },
  };
}

export function visibleToolsInput(principal: Analysed['principal'], tools: readonly string[]): Record<string, unknown> {
  return {
    principal: { id: principal.id, roles: [...principal.roles], auth: principal.auth, tier: principal.tier, attributes: attributesOf(principal) },
    tools: [...tools],
  };
}

/** Always an object (empty when the principal carries none), so Rego reads `input.principal.attributes.x` plainly. */
function attributesOf(p: Analysed['principal']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(p.attributes ?? {})) out[k] = typeof v === 'string' ? v : [...v];
  return out;
}
