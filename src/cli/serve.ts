import { parseArgs } from 'node:util';
import { createLogger } from '../observability/logger.js';
import { createApp } from '../app.js';
import { serveStdio } from '../transport/stdio.js';
import { serveHttp, type HttpServerHandle } from '../transport/http/server.js';
import { preflightListen } from '../transport/listen-probe.js';
import { asStartupError, listenError, preflightAudit } from './startup-checks.js';
import { loadFromOptions } from './config-options.js';
import { EXIT } from './exit-codes.js';
import { printHelp } from './help.js';
import { checkedProfile } from './profile.js';

export const SERVE_HELP = `Usage: bulwark serve [--config FILE] [--root DIR]... [--http [HOST:]PORT] [--profile NAME]

  --config FILE   YAML configuration (default: embedded defaults)
  --root DIR      a filesystem root (repeatable; replaces filesystem.roots)
  --http [H:]P    serve Streamable HTTP on HOST:PORT (default host 127.0.0.1) instead of stdio
  --profile NAME  default, or conformance: TEST-ONLY, adds the official MCP conformance suite's
                  fixtures (gated and recorded); refused with --config, unless auth.http is
                  loopback-only, and on a non-loopback address
`;

export async function runServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      root: { type: 'string', multiple: true },
      http: { type: 'string' },
      profile: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return printHelp(SERVE_HELP);
  const loaded = loadFromOptions(values);
  const profile = checkedProfile(values.profile, loaded);
  preflightAudit(loaded.config);
  await preflightListen(loaded.config).catch((err: unknown) => {
    throw listenError(loaded.config, err) ?? err;
  });
  const logger = createLogger(loaded.config.observability.log_level);
  let app: Awaited<ReturnType<typeof createApp>>;
  try {
    app = await createApp(loaded, logger, { profile });
  } catch (err) {
    throw asStartupError(err) ?? err;
  }
  logger.info('configuration loaded', { source: loaded.source, roots: loaded.config.filesystem.roots, audit: loaded.config.audit.path });
  if (profile === 'conformance') logger.warn('serving the TEST-ONLY conformance profile: the MCP conformance fixtures are served (gated and recorded)');
  let httpHandle: HttpServerHandle | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    // Stop accepting, let in-flight calls finish (and be recorded) up to 10 s, then close the
    // audit log (final checkpoint) and the pools.
    await httpHandle?.close(10_000).catch((err: Error) => logger.error('http close failed', { error: err.message }));
    await app.close();
    process.exit(EXIT.ok);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // SIGHUP reloads the policy: verified, compiled and smoke-tested first; a bad one leaves the old policy serving.
  process.on('SIGHUP', () => void app.policyReloader.reload('sighup'));
  if (loaded.config.server.transport === 'http') {
    let h: HttpServerHandle;
    try {
      h = await serveHttp(app);
    } catch (err) {
      const refused = listenError(loaded.config, err);
      if (!refused) throw err;
      await app.close();
      throw refused;
    }
    httpHandle = h;
    logger.info('serving MCP over Streamable HTTP', { url: h.url });
    // Humans start this with `npm start`: tell them how to connect (on stderr, like every log).
    const base = h.url.replace(/\/mcp$/, '');
    process.stderr.write(
      `\nBulwark is listening on ${h.url}\n` +
        `  Connect an MCP client (Streamable HTTP) to that URL, e.g.\n` +
        `    npx @modelcontextprotocol/inspector --transport http --server-url ${h.url}\n` +
        `  Health: ${base}/health   Ready: ${base}/ready\n` +
        `  Roots: ${loaded.config.filesystem.roots.join(', ')}   Audit log: ${loaded.config.audit.path}\n\n`,
    );
    await new Promise(() => undefined);
  } else {
    const { closed } = await serveStdio(app);
    await closed;
    await app.close();
  }
  return EXIT.ok;
}
