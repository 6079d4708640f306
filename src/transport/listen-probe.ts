import net from 'node:net';
import type { Config } from '../config/schema.js';
import { listenError } from '../cli/startup-checks.js';

/** The HTTP address, tried before the pools start, for the same reason as the audit log's folder. */
export async function preflightListen(config: Config): Promise<void> {
  if (config.server.transport !== 'http' || config.server.http.port === 0) return;
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host: config.server.http.host, port: config.server.http.port, exclusive: true }, () => resolve());
    });
  } catch (err) {
    throw listenError(config, err) ?? err;
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
