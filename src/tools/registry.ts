import type { ToolDefinition } from './types.js';
import { filesystemTools } from './filesystem/tools.js';
import { runJavascriptTool } from './javascript/run-javascript.js';
import { apiTools } from './api/tools.js';
import { databaseTools } from './database/tools.js';
import { conformanceFamily } from './conformance/family.js';

export type ToolRegistry = ReadonlyMap<string, ToolDefinition>;

export interface RegistryOptions {
  /**
   * Whether any upstream is configured (`apis`). Without one, call_api and api_stats could only
   * ever refuse: they are neither listed nor served, and a call names an unknown tool.
   */
  readonly apis?: boolean;
  /**
   * The test-only conformance fixtures (`bulwark serve --profile conformance`): registered only
   * then, and the policy allows them only then (data.bulwark.profile).
   */
  readonly conformance?: boolean;
}

/** Built once at boot; the call path only looks names up. */
export function buildRegistry(options: RegistryOptions = {}): ToolRegistry {
  const map = new Map<string, ToolDefinition>();
  const families = [
    ...filesystemTools,
    ...databaseTools,
    ...(options.apis === false ? [] : apiTools),
    runJavascriptTool,
    ...(options.conformance === true ? conformanceFamily : []),
  ] as ToolDefinition[];
  for (const tool of families) {
    if (map.has(tool.name)) throw new Error(`duplicate tool name ${tool.name}`);
    map.set(tool.name, tool);
  }
  return map;
}
