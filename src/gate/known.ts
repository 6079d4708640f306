import type { ToolDefinition } from '../tools/types.js';

/**
 * A call with the definition of its tool. The gate looks the tool up once, as the call enters;
 * validate refuses a name with no definition and hands this pair on. Analyse and decide take the
 * definition from it, execute takes the one decide authorised: no later stage asks the registry
 * again, so a call runs the very definition it was validated, analysed and decided for.
 * Gate-internal: the call types in core/ know nothing of tools.
 */
export interface Known<C> {
  readonly call: C;
  readonly tool: ToolDefinition;
}
