import type { ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import type { ClientChannel, Principal, ProtocolEra, TransportKind } from '../core/call.js';

/** What a non-tool method handler knows about the request it answers. */
export interface MethodContext {
  readonly era: ProtocolEra;
  readonly transport: TransportKind;
  readonly clientIp?: string | undefined;
  /** HTTP with api keys: the principal verified from the bearer (as for tool calls). */
  readonly principal?: Principal | undefined;
  readonly signal: AbortSignal;
  readonly client?: ClientChannel | undefined;
  /** Present where notifications can reach the client (stdio, an SSE answer). */
  readonly sendNotification?: ((notification: ServerNotification) => Promise<void>) | undefined;
}

/**
 * A request method beyond tools/* that an optional family serves in both eras (the conformance
 * profile's resources, prompts, completion, logging). The handler must take each request that
 * reads or runs anything through the gate itself (runGate), so it is authenticated, decided and
 * recorded like a tool call. Throw a JsonRpcError (src/server/surface.ts) for protocol errors.
 */
export type MethodHandler = (params: Readonly<Record<string, unknown>>, ctx: MethodContext) => Promise<Record<string, unknown>>;

/** The extra methods a profile serves and the capabilities they add to initialize / server/discover. */
export interface ExtraMethods {
  readonly handlers: ReadonlyMap<string, MethodHandler>;
  readonly capabilities: Readonly<Record<string, unknown>>;
}
