import type http from 'node:http';
import type { Config } from '../../config/schema.js';
import { httpRefusal } from '../../server/surface.js';
import type { ReadinessCheck, ServedApp } from '../served-app.js';
import type { BearerCheck } from './bearer.js';
import type { ProtectedResource } from './protected-resource.js';
import { sendJson, sendRefusal } from './respond.js';

/**
 * Roles that may read /metrics (tool names, refusal reasons, pool state): `metrics` for a scraper's
 * key (it grants no tool), or `admin`. Any other principal gets 403.
 */
export const METRICS_ROLES: readonly string[] = ['metrics', 'admin'];

/** A path that names nothing here (also /metrics when metrics are off). */
export function answerNotFound(res: http.ServerResponse): void {
  sendRefusal(res, httpRefusal('invalid_input', 'http.not_found', 'Nothing is served at this path.'));
}

export function answerHealth(res: http.ServerResponse): void {
  sendJson(res, 200, { status: 'ok' });
}

/** A check asked within 2 s; a slower answer, or a throw, counts as not ready. */
async function within2s(check: ReadinessCheck['check']): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([Promise.resolve().then(check), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000)))]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Every check the app registered, asked now and at once: 200 when all can serve, 503 otherwise. */
export async function answerReady(res: http.ServerResponse, app: Pick<ServedApp, 'deps' | 'readiness'>): Promise<void> {
  const values = await Promise.all(app.readiness.map((c) => within2s(() => c.check())));
  const checks = Object.fromEntries(app.readiness.map((c, i) => [c.name, values[i] === true]));
  const ready = values.every(Boolean);
  sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks, policy_revision: app.deps.policy.revision });
}

/** With `bearer` (auth.http: api_key) only METRICS_ROLES may read the series. */
export async function answerMetrics(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  app: Pick<ServedApp, 'deps'>,
  peer: string,
  requestId: string,
  bearer: BearerCheck | undefined,
): Promise<void> {
  const prom = app.deps.prom;
  if (!prom) {
    answerNotFound(res);
    return;
  }
  if (bearer && !(await bearer(req, res, peer, requestId, METRICS_ROLES))) return;
  const text = await prom.registry.metrics();
  res.writeHead(200, { 'content-type': prom.registry.contentType, 'cache-control': 'no-store' });
  res.end(text);
}

/** RFC 9728 protected-resource metadata: where a client finds the authorization servers. */
export function answerResourceMetadata(req: http.IncomingMessage, res: http.ServerResponse, resource: ProtectedResource, oauth: Config['auth']['oauth']): void {
  sendJson(res, 200, {
    resource: resource.resourceOf(req),
    authorization_servers: oauth ? [oauth.issuer] : [],
    bearer_methods_supported: ['header'],
    ...(oauth?.scopes_supported ? { scopes_supported: [...oauth.scopes_supported] } : {}),
    resource_name: 'Bulwark MCP server',
  });
}
