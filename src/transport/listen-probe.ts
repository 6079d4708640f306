import net from 'node:net';
import type { Config } from '../config/schema.js';

/**
 * The HTTP address, tried before the pools start, for the same reason as the audit log's folder.
 * Rejects with the socket's own error; the CLI words it for the operator (cli/startup-checks.ts).
 */
export async function preflightListen(config: Config): Promise<void> {
  if (config.server.transport !== 'http' || config.server.http.port === 0) return;
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host: config.server.http.host, port: config.server.http.port, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
