import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { App } from '../app.js';
import { createMcpServer } from '../server/mcp-server.js';

/** stdio: what Claude Desktop launches. stdout carries only protocol frames; logs go to stderr. */
export async function serveStdio(app: App): Promise<{ closed: Promise<void> }> {
  const server = createMcpServer(app.deps, { transport: 'stdio' }, app.catalogue);
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
    process.stdin.on('end', () => resolve());
  });
  server.onerror = (err) => app.deps.logger.warn('stdio transport error', { error: err.message });
  await server.connect(transport);
  app.deps.logger.info('serving MCP over stdio', { principal: app.deps.config.principals.stdio.id });
  return { closed };
}
