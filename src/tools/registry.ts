import type { ToolDefinition } from './types.js';
import { filesystemTools } from './filesystem/tools.js';
import { runJavascriptTool } from './javascript/run-javascript.js';
import { apiTools } from './api/tools.js';
import { databaseTools } from './database/tools.js';

export type ToolRegistry = ReadonlyMap<string, ToolDefinition>;

/** Built once at boot; the call path only looks names up. */
export function buildRegistry(): ToolRegistry {
  const map = new Map<string, ToolDefinition>();
  for (const tool of [...filesystemTools, ...databaseTools, ...apiTools, runJavascriptTool] as ToolDefinition[]) {
    if (map.has(tool.name)) throw new Error(`duplicate tool name ${tool.name}`);
    map.set(tool.name, tool);
  }
  return map;
}
