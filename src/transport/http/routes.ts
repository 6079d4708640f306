import crypto from 'node:crypto';
import type http from 'node:http';
import type { ServedApp } from '../served-app.js';
import type { Admission } from './admission.js';
import type { BearerCheck } from './bearer.js';
import { serveExchange } from './exchange.js';
import { answerHealth, answerMetrics, answerNotFound, answerReady, answerResourceMetadata } from './ops.js';
import type { ProtectedResource } from './protected-resource.js';
import { sendRefusal } from './respond.js';

export interface RouteDeps {
  readonly app: ServedApp;
  readonly admission: Admission;
  readonly resource: ProtectedResource;
  /** Present with auth.http: api_key: /mcp and /metrics then need a bearer. */
  readonly bearer: BearerCheck | undefined;
}

/** Which path goes where, once the request was admitted. */
export function router({ app, admission, resource, bearer }: RouteDeps): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> {
  const { config } = app.deps;
  const mcpPath = config.server.http.path;
  return async (req, res) => {
    const peer = req.socket.remoteAddress ?? '';
    const refused = admission.refusal(req, peer);
    if (refused) {
      sendRefusal(res, refused);
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const requestId = crypto.randomUUID();
    const get = req.method === 'GET';
    if (get && path.startsWith('/.well-known/oauth-protected-resource')) answerResourceMetadata(req, res, resource, config.auth.oauth);
    else if (get && path === '/metrics') await answerMetrics(req, res, app, peer, requestId, bearer);
    else if (get && path === '/health') answerHealth(res);
    else if (get && path === '/ready') await answerReady(res, app);
    else if (path === mcpPath) {
      const authenticate = bearer && (() => bearer(req, res, peer, requestId));
      await serveExchange(app, config.server.http.max_body_bytes, { req, res, peer, authenticate });
    } else answerNotFound(res);
  };
}
