import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Authorised, Facts, Pinned, ToolResult, Validated } from '../core/call.js';
import type { Pools } from '../execution/pools.js';
import type { ApiRuntime } from './api/runtime.js';
import type { DatabaseExecutor } from './database/pg-executor.js';
import type { PolicyQuestions } from '../policy/questions.js';

export type ToolFamily = 'filesystem' | 'database' | 'api' | 'javascript' | 'conformance';

export interface ToolAnnotations {
  readonly title: string;
  readonly readOnlyHint: boolean;
  readonly destructiveHint: boolean;
  readonly idempotentHint: boolean;
  readonly openWorldHint: boolean;
}

export interface ToolEnv {
  readonly config: Readonly<Config>;
  readonly logger: Logger;
  /** Lower-case extensions with a dot, from the policy data and the config: search skips them. */
  readonly blockedExtensions: readonly string[];
  /** Lower-case names (any path segment) the policy blocks, e.g. `.ssh`, `id_rsa`: search skips them. */
  readonly blockedNames: readonly string[];
  /** Worker pools: tool code runs there, never on the server's event loop. */
  readonly pools: Pools;
  /** The API gateway's shared state (pinned pools, breakers, rate store, cache); built in createApp. */
  readonly api?: ApiRuntime | undefined;
  /** PostgreSQL at `database.url`, or the embedded demo database when none is configured. */
  readonly database?: DatabaseExecutor | undefined;
  /**
   * The questions tools ask the policy after the call's decision (a table to list, a redirect hop
   * to follow). Absent, each is refused: nothing is shown or followed that the policy did not allow.
   */
  readonly policy?: PolicyQuestions | undefined;
}

export interface AnalysisResult<F extends Facts = Facts, P = Pinned> {
  readonly facts: F;
  readonly pinned: P;
}

/**
 * A tool is data plus two functions. The gate owns the order; a tool supplies its schema, its
 * analyser (raw arguments to facts, throwing DenialError to refuse) and its executor, which only
 * accepts an Authorised call.
 */
export interface ToolDefinition<A = any, F extends Facts = Facts, P = any> {
  readonly name: string;
  readonly family: ToolFamily;
  readonly description: string;
  readonly annotations: ToolAnnotations;
  readonly input: z.ZodType<A, z.ZodTypeDef, unknown>;
  /** JSON Schema for outputs (`structuredContent`). */
  readonly outputSchema: Readonly<Record<string, unknown>>;
  analyse(call: Validated<A>, env: ToolEnv): Promise<AnalysisResult<F, P>>;
  execute(call: Authorised<A, F, P>, env: ToolEnv): Promise<ToolResult>;
  /**
   * True when this call can change something outside Bulwark: the gate then writes a durable
   * intent record before executing it (no side effect before its record). Absent: read-only.
   */
  sideEffects?(args: A): boolean;
  /** Arguments as the audit log keeps them (defaults to all of them): strip what must not be stored. */
  auditArgs?(args: A): Record<string, unknown>;
}
