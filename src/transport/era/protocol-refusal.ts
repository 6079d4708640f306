import crypto from 'node:crypto';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { CallContext, Principal, TransportKind } from '../../core/call.js';
import { deny } from '../../core/denial.js';
import { authenticate } from '../../gate/authenticate.js';
import type { GateDeps } from '../../gate/deps.js';
import { recordOutcome } from '../../gate/record.js';
import { isPlainObject } from '../../server/modern-wire.js';
import { decodeHeaderValue, type LadderRejection, type StandardHeaders } from './modern-ladder.js';

export interface RefusedOn {
  readonly transport: TransportKind;
  readonly clientIp?: string | undefined;
  /** HTTP with api keys: the principal the bearer check verified. */
  readonly principal?: Principal | undefined;
}

/** The tool calls a refused body names: its tools/call requests, or the one its Mcp-Method header says is one. */
function namedToolCalls(messages: readonly JSONRPCMessage[], headers: StandardHeaders | undefined): { name: string; args: unknown }[] {
  const calls: { name: string; args: unknown }[] = [];
  for (const m of messages) {
    if (!('method' in m)) continue;
    const viaHeader = messages.length === 1 && headers?.method?.trim() === 'tools/call';
    if (m.method !== 'tools/call' && !viaHeader) continue;
    const params = isPlainObject(m.params) ? m.params : {};
    const headerName = headers?.name === undefined ? undefined : decodeHeaderValue(headers.name.trim());
    const name = typeof params.name === 'string' ? params.name : (headerName ?? JSON.stringify(params.name ?? null));
    calls.push({ name, args: params.arguments });
  }
  return calls;
}

/**
 * A ladder refusal of a body that names a tool call never reaches the gate, so it gets its outcome
 * record here: one per named call, `invalid_input` with the ladder's reason (`protocol.*`), the
 * principal the transport knows, the arguments' hash. Returns the request id of the (first)
 * record, or undefined when nothing was named or the record could not be written (the request
 * is refused either way: nothing ran).
 */
export async function recordLadderRefusal(
  deps: GateDeps,
  on: RefusedOn,
  messages: readonly JSONRPCMessage[],
  headers: StandardHeaders | undefined,
  rejection: LadderRejection,
  startedAt: number,
): Promise<string | undefined> {
  let first: string | undefined;
  for (const call of namedToolCalls(messages, headers)) {
    const context: CallContext = {
      transport: on.transport,
      clientIp: on.clientIp,
      requestId: crypto.randomUUID(),
      receivedAt: new Date(),
      signal: new AbortController().signal,
      verifiedPrincipal: on.principal,
    };
    const who = authenticate({ tool: call.name, args: call.args, context }, deps);
    try {
      await recordOutcome(
        {
          context,
          tool: call.name,
          toolKnown: deps.tools.has(call.name),
          principal: who.ok ? who.value.principal : undefined,
          args: call.args ?? {},
          argsValidated: false,
          policyRevision: deps.policy.revision,
          status: 'denied',
          denial: deny('invalid_input', rejection.error.message, [rejection.reason]),
          durationMs: performance.now() - startedAt,
        },
        deps,
      );
      first ??= context.requestId;
    } catch (err) {
      deps.logger.error('could not audit a refused protocol request', { request_id: context.requestId, error: (err as Error).message });
    }
  }
  return first;
}
