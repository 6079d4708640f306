import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { App } from '../app.js';
import { StdioGuard } from './stdio-guard.js';
import { createMcpServer } from '../server/mcp-server.js';

/** stdio: what Claude Desktop launches. stdout carries only protocol frames; logs go to stderr. */
export async function serveStdio(app: App): Promise<{ closed: Promise<void> }> {
  const server = createMcpServer(app.deps, { transport: 'stdio' }, app.catalogue);
  const guard = new StdioGuard(process.stdout, app.deps.config.server.http.max_body_bytes, (reason) =>
    app.deps.logger.warn('rejected a malformed stdio message', { reason }),
  );
  process.stdin.pipe(guard);
  const transport = new StdioServerTransport(guard, process.stdout);
  const closed = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
    guard.on('end', () => resolve());
  });
  server.onerror = (err) => app.deps.logger.warn('stdio transport error', { error: err.message });
  await server.connect(transport);
  app.deps.logger.info('serving MCP over stdio', { principal: app.deps.config.principals.stdio.id });
  return { closed };
}
