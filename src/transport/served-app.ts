import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { GateDeps } from '../gate/deps.js';
import type { ExtraMethods } from '../server/extra-methods.js';

/** One dependency /ready asks about, named by whoever built it: the transport knows no names. */
export interface ReadinessCheck {
  readonly name: string;
  /** True when the dependency can serve now; a throw or a slow answer counts as not ready. */
  check(): boolean | Promise<boolean>;
}

/**
 * What a transport serves: the gate's dependencies, the tool listing, and the readiness checks
 * the app registered. The app satisfies it as it is; the transport never imports the app.
 */
export interface ServedApp {
  readonly deps: GateDeps;
  readonly catalogue: readonly Tool[];
  readonly readiness: readonly ReadinessCheck[];
  /** Methods beyond tools/* (only the conformance profile has any): served in both eras, on stdio and HTTP. */
  readonly extraMethods?: ExtraMethods | undefined;
}
