import { conformanceMethodTools } from './methods.js';
import { conformanceTools, type ConformanceTool } from './tools.js';

/** Every tool of the conformance family: the tools/call fixtures and the methods' gated pseudo-tools. */
export const conformanceFamily: readonly ConformanceTool[] = [...conformanceTools, ...conformanceMethodTools.values()];

/** The pseudo-tools of non-tool methods: gated and recorded like tools, but not offered by tools/list. */
export const UNLISTED_CONFORMANCE_TOOLS: ReadonlySet<string> = new Set([...conformanceMethodTools.values()].map((t) => t.name));
