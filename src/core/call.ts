import type { Denial } from './denial.js';
import type { Decision, Obligations } from './decision.js';
import type { Facts } from './facts.js';
import type { PrincipalAttributes } from './principal-attributes.js';

export type { Facts };

export type TransportKind = 'stdio' | 'http';

/** The MCP revision a request was served under: chosen per request (2026-07-28 by its `_meta` claim). */
export type ProtocolEra = '2025-11-25' | '2026-07-28';

/** A request the server needs the client (or the human behind it) to answer. */
export interface ClientInputRequest {
  readonly method: 'elicitation/create' | 'sampling/createMessage' | 'roots/list';
  readonly params: Readonly<Record<string, unknown>>;
}

/** What the client declared it can answer (2025-11-25: in initialize; 2026-07-28: in the request's `_meta`). */
export interface ClientCapabilities {
  readonly elicitation?: { readonly form?: boolean; readonly url?: boolean } | undefined;
  readonly sampling?: boolean | undefined;
  readonly roots?: boolean | undefined;
}

/**
 * How this call can reach its client, set by the transport that received it (never from message
 * content alone: `ask` exists only where the transport can carry a server-to-client request).
 */
export interface ClientChannel {
  readonly era: ProtocolEra;
  readonly capabilities: ClientCapabilities;
  /**
   * 2025-11-25: send a server-to-client request on the call's own stream and wait for the client's
   * result. Rejects on a client error, on `signal`, or after `timeoutMs`. Absent when the client
   * cannot be asked that way (no capability, or a JSON-only answer).
   */
  readonly ask?:
    ((request: ClientInputRequest, opts: { readonly signal: AbortSignal; readonly timeoutMs: number }) => Promise<Record<string, unknown>>) | undefined;
  /** 2026-07-28 retry of an `input_required` result: the client's answers by key, untrusted. */
  readonly inputResponses?: Readonly<Record<string, unknown>> | undefined;
  /** 2026-07-28 retry: the `requestState` the client sent back, verbatim and untrusted (the gate unseals it). */
  readonly requestState?: string | undefined;
  /**
   * Set by the gate alone, after it unsealed and checked `requestState` (principal, tool, arguments
   * hash, expiry): the state the tool asked to keep when it returned `needsInput`.
   */
  readonly resumedState?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * A call that cannot finish without the client's input (2026-07-28 §mrtr): the transport answers
 * `resultType: "input_required"` with these; `requestState` is sealed by the gate.
 */
export interface InputRequired {
  readonly inputRequests: Readonly<Record<string, ClientInputRequest>>;
  readonly requestState: string;
}

export interface Principal {
  readonly id: string;
  readonly roles: readonly string[];
  readonly auth: 'stdio' | 'loopback' | 'api_key' | 'oauth';
  readonly tier: string;
  /**
   * Verified attributes (region, tenant, ...) from the credential or the configured local principal,
   * never from the request (principal-attributes.ts). Absent when there are none.
   */
  readonly attributes?: PrincipalAttributes | undefined;
}

/**
 * The call's deadline, owned by the gate: set when the call enters, it covers queue waits,
 * connects, the executor and retries. At `at` the gate aborts the call's signal and answers,
 * whatever the executor is still doing.
 */
export interface CallDeadline {
  /** performance.now() at which the call is answered. */
  readonly at: number;
  /** Milliseconds left (never below 1, so a cap computed from it is still a valid cap). */
  remainingMs(): number;
  /**
   * Mark that the call waits on a dependency (a connection, a reserve): if the deadline passes
   * while a mark is set the call is answered `unavailable` (reason `deadline.<dependency>`)
   * instead of `timeout`. Returns the function that clears the mark.
   */
  waitingOn(dependency: string): () => void;
}

export interface CallContext {
  readonly transport: TransportKind;
  readonly clientIp?: string | undefined;
  readonly requestId: string;
  readonly receivedAt: Date;
  /**
   * HTTP with `auth.http: api_key`: the principal the transport verified from the bearer of the
   * HTTP request this call came in, before the body was read. Set only by the server when it
   * builds the context; nothing in a message can set it. The authenticate stage reads it.
   */
  readonly verifiedPrincipal?: Principal | undefined;
  /** Aborted when the client cancels or disconnects, and (from decide on) at the call's deadline. */
  readonly signal: AbortSignal;
  /** Set by the gate when the call enters it. */
  readonly deadline?: CallDeadline | undefined;
  /** Present when the client asked for progress: called at a bounded rate by executors. */
  readonly progress?: ((progress: number, total?: number, message?: string) => void) | undefined;
  /** How the call can ask its client for input (approval, elicitation, sampling); absent: it cannot. */
  readonly client?: ClientChannel | undefined;
  /**
   * A `notifications/message` to the call's client (2025-11-25 §utilities/logging), present where a
   * notification can reach it. Only the conformance profile's fixtures log to the client.
   */
  readonly log?: ((level: 'debug' | 'info' | 'notice' | 'warning' | 'error', data: unknown) => void) | undefined;
}

/** What a transport hands the gate: nothing about it is trusted yet. */
export interface RawCall {
  readonly tool: string;
  readonly args: unknown;
  readonly context: CallContext;
}

export interface Authenticated extends RawCall {
  readonly principal: Principal;
}

export interface Validated<A = unknown> extends Authenticated {
  readonly args: A;
  readonly argsBytes: number;
}

/**
 * What the analyser pinned for the executor and nobody else (the inode it checked, the text it
 * parsed, the addresses it resolved). Each tool family names its own type; the gate carries it
 * without looking inside.
 */
export type Pinned = unknown;

export interface Analysed<A = unknown, F extends Facts = Facts, P = Pinned> extends Validated<A> {
  readonly facts: F;
  readonly pinned: P;
}

/** The caps in force for one call: configured caps tightened by the policy's obligations. */
export interface Caps {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly maxRows?: number;
  readonly memoryMb?: number;
  readonly redactColumns: readonly string[];
}

declare const authorisedBrand: unique symbol;

/**
 * Only gate/decide.ts can mint this (the brand is a type-level proof and decide.ts also registers
 * each value in a WeakSet the executor checks), so nothing runs without a decision.
 */
export interface Authorised<A = unknown, F extends Facts = Facts, P = Pinned> extends Analysed<A, F, P> {
  readonly decision: Decision & { readonly allow: true };
  readonly caps: Caps;
  readonly [authorisedBrand]: true;
}

export interface ToolResult {
  /** Short human text for `content`. */
  readonly text: string;
  /** Machine-readable result for `structuredContent` (matches the tool's output schema). */
  readonly structured: Readonly<Record<string, unknown>>;
  /** What running it cost, reported to the client in `_meta` and kept in the audit record. */
  readonly metrics?: ExecutionMetrics;
  /**
   * The tool cannot finish without the client's answers (2026-07-28 clients only, see
   * ClientChannel): the gate seals `state` into `requestState` and answers `input_required`.
   */
  readonly needsInput?: { readonly inputRequests: Readonly<Record<string, ClientInputRequest>>; readonly state?: Readonly<Record<string, unknown>> };
  /**
   * MCP content blocks (image, audio, embedded resource) answered verbatim as the result's
   * `content` instead of one text block: only the conformance profile's fixtures return them.
   */
  readonly content?: readonly Readonly<Record<string, unknown>>[];
}

export interface ExecutionMetrics {
  readonly duration_ms: number;
  readonly cpu_ms: number;
  readonly heap_bytes: number;
  readonly output_bytes: number;
}

export type OutcomeStatus = 'ok' | 'denied' | 'error' | 'cancelled' | 'input_required';

export interface GateOutcome {
  readonly requestId: string;
  readonly tool: string;
  readonly status: OutcomeStatus;
  readonly result?: ToolResult;
  readonly denial?: Denial;
  /** status 'input_required' (2026-07-28 only): what the client must answer before a retry can run. */
  readonly inputRequired?: InputRequired;
  /** The decision, when the call got that far. */
  readonly decision?: Decision;
  readonly obligations?: Obligations;
  readonly durationMs: number;
  /** Milliseconds spent in each stage that ran (for benchmarks and slow-call logs). */
  readonly stageMs: Readonly<Partial<Record<'authenticate' | 'rate_limit' | 'validate' | 'analyse' | 'decide' | 'execute' | 'record', number>>>;
  readonly auditSeq?: number;
}
