import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { httpRefusal } from '../../server/surface.js';
import type { ServedApp } from '../served-app.js';
import { Admission, boundToLoopback, defaultAllowedHosts, ownLoopbackOrigins } from './admission.js';
import { bearerCheck } from './bearer.js';
import { protectedResource } from './protected-resource.js';
import { sendJsonRpcError, sendRefusal } from './respond.js';
import { router } from './routes.js';

export interface HttpServerHandle {
  readonly server: http.Server;
  readonly url: string;
  /** Stop accepting, let in-flight requests finish up to `deadlineMs`, then drop what is left. */
  close(deadlineMs?: number): Promise<void>;
}

/** Often enough that a timeout fires within a quarter of its value (at most 0.5 s) of being due. */
export function checkingIntervalMs(headersTimeoutMs: number): number {
  return Math.max(50, Math.min(500, Math.floor(headersTimeoutMs / 4)));
}

/**
 * Streamable HTTP, stateless: every POST gets a fresh Server and transport, so no response can
 * reach another client and any replica can answer any request. Host and Origin are checked
 * (DNS-rebinding defence, on by default), bodies are capped. With `auth.http: loopback-only`
 * only loopback peers are served; with `api_key` every /mcp and /metrics request needs a bearer
 * (checked before the body is read) and any peer may connect. This module owns the socket side:
 * listening, timeouts, the connection cap and shutdown; routes.ts says where a request goes.
 */
export async function serveHttp(app: ServedApp): Promise<HttpServerHandle> {
  const { config, logger, auth } = app.deps;
  const cfg = config.server.http;
  const bearerRequired = config.auth.http === 'api_key';
  if (bearerRequired && !auth) throw new Error('auth.http is api_key but no authenticator was built');
  const resource = protectedResource(config.auth.resource, cfg.path);
  const admission = new Admission(cfg.allowed_hosts, cfg.allowed_origins, !bearerRequired);
  const bearer = bearerRequired && auth ? bearerCheck(auth, app.deps, resource.metadataUrlOf) : undefined;
  const route = router({ app, admission, resource, bearer });
  let inflight = 0;
  let draining = false;
  let drained: (() => void) | undefined;

  // Connections past max_connections are still read (so the client gets an answer rather than a
  // reset) but every request on them is answered 503 and the connection closed. Past twice the
  // cap the kernel's connection is closed unread: a flood must not cost a parser each.
  let connections = 0;
  let saturated = false;
  const overCap = new WeakSet<Socket>();
  const closeAfter = { connection: 'close' };

  const server = http.createServer(
    {
      headersTimeout: cfg.headers_timeout_ms,
      requestTimeout: cfg.request_timeout_ms,
      // Node checks both timeouts on this interval (30 s by default), so they fired up to 30 s late.
      connectionsCheckingInterval: checkingIntervalMs(cfg.headers_timeout_ms),
      keepAliveTimeout: 5_000,
    },
    (req, res) => {
      if (overCap.has(req.socket)) {
        req.resume();
        const message = `The server has ${cfg.max_connections} connections open; retry shortly.`;
        sendRefusal(res, httpRefusal('unavailable', 'http.too_many_connections', message, { retry_after_s: 1 }), closeAfter);
        return;
      }
      if (draining) {
        sendRefusal(res, httpRefusal('unavailable', 'shutting_down', 'The server is shutting down.', { retry_after_s: 1 }), closeAfter);
        return;
      }
      inflight += 1;
      res.on('close', () => {
        inflight -= 1;
        if (inflight === 0) drained?.();
      });
      route(req, res).catch((err: Error) => {
        logger.error('http handler failed', { error: err.message });
        if (!res.headersSent) sendJsonRpcError(res, 500, -32603, 'Internal error');
        else res.destroy();
      });
    },
  );
  server.maxConnections = cfg.max_connections * 2;
  server.on('connection', (socket: Socket) => {
    connections += 1;
    app.deps.prom?.activeConnections.inc();
    if (connections > cfg.max_connections) {
      overCap.add(socket);
      if (!saturated) {
        saturated = true;
        logger.warn('connection cap reached; answering 503 to connections past it', { max_connections: cfg.max_connections });
      }
    }
    socket.once('close', () => {
      connections -= 1;
      app.deps.prom?.activeConnections.dec();
      if (saturated && connections <= cfg.max_connections / 2) {
        saturated = false;
        logger.info('connections back under the cap', { connections, max_connections: cfg.max_connections });
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  if (!cfg.allowed_hosts.length) admission.allowHosts(defaultAllowedHosts(cfg.host, port));
  // A browser page served from this port is same-origin; bound elsewhere, only the configured origins.
  if (boundToLoopback(cfg.host)) admission.allowOrigins(ownLoopbackOrigins(port));
  const shownHost = cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host;
  const url = `http://${shownHost}:${port}${cfg.path}`;
  return {
    server,
    url,
    close: async (deadlineMs = 0) => {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inflight > 0 && deadlineMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadlineMs);
          drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (inflight > 0) logger.warn('shutdown deadline passed; dropping in-flight requests', { inflight });
      }
      server.closeAllConnections();
      await closed;
    },
  };
}
