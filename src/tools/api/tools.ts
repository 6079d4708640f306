import type { UrlFacts } from '../../core/facts.js';
import type { PolicyQuestions } from '../../policy/questions.js';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  canonicalPath,
  canonicalQuery,
  HTTP_METHODS,
  joinUnderBase,
  redirectHop,
  resolveAndCheck,
  systemResolver,
  underPrefix,
  type HttpMethod,
} from '../../analysis/url.js';
import { deny, DenialError, refuse } from '../../core/denial.js';
import type { Authorised, Principal } from '../../core/call.js';
import type { ToolDefinition, ToolEnv } from '../types.js';
import { cacheKey, type CachedResponse } from './cache.js';
import { attempt, AttemptError, type AttemptResponse } from './http.js';
import { upstreamTable, type ApiRuntime, type Upstream } from './runtime.js';
import { redact, redactString } from './secrets.js';
import type { UpstreamStats } from './stats.js';

/**
 * call_api and api_stats. The HTTP call runs in the server process: it is network I/O that undici
 * multiplexes on the event loop, not CPU-bound tool code, and running it here lets every call share
 * the pinned keep-alive pools, circuit breakers, rate buckets and cache. Its CPU work is bounded:
 * the body is capped while it streams, and JSON is parsed only up to JSON_PARSE_MAX_BYTES.
 */

const IDEMPOTENT: ReadonlySet<HttpMethod> = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);
/**
 * RFC 9110 §9.2.1 safe methods: the only ones that change nothing upstream. Every other method
 * (PUT and DELETE too: idempotent, but not free of effects) gets an intent record before it runs.
 */
const SAFE: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Upstream answers worth another attempt (for idempotent methods): gateway trouble, not the request. */
const RETRY_STATUS: ReadonlySet<number> = new Set([502, 503, 504]);
const REDIRECT_STATUS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const MAX_BACKOFF_MS = 5000;
/** Bodies above this are returned as text, unparsed: JSON.parse blocks the event loop. */
const JSON_PARSE_MAX_BYTES = 1024 * 1024;
const JSON_MAX_DEPTH = 64;
/** Response headers a caller may see (values scrubbed of secrets); the rest stay with the gateway. */
const RETURNED_HEADERS = [
  'content-type',
  'content-language',
  'etag',
  'last-modified',
  'cache-control',
  'expires',
  'date',
  'location',
  'retry-after',
  'link',
  'x-ratelimit-limit',
  'x-ratelimit-remaining',
  'x-ratelimit-reset',
  'x-request-id',
];
const USER_AGENT = 'bulwark/0.1 (+MCP gateway)';

const scalar = z.union([z.string().max(4096), z.number().finite(), z.boolean()]);

const callInput = z
  .object({
    api: z.string().min(1).max(128).describe('The name of a configured upstream (see api_stats for the list).'),
    method: z.enum(HTTP_METHODS as [HttpMethod, ...HttpMethod[]]).default('GET'),
    // The cap sits far above the analyser's (2048 bytes) so an over-long path is refused as url_rejected.
    path: z.string().max(65_536).describe('Path under the upstream base URL, starting with "/"; no scheme, host, query or "..".'),
    query: z
      .record(z.string().min(1).max(256), z.union([scalar, z.array(scalar).max(100)]))
      .optional()
      .describe('Query parameters, encoded by the gateway.'),
    body: z.unknown().optional().describe('Request body for POST/PUT/PATCH/DELETE: a string is sent as text/plain, anything else as JSON.'),
  })
  .strict();

type CallArgs = z.output<typeof callInput>;
type ApiCall = Authorised<CallArgs, UrlFamily, ApiPinned>;

interface ApiPin {
  readonly fullPath: string;
  readonly query: string;
  readonly addresses: readonly string[];
}

/** What the api family's analysis produces: the url facts, and the path and addresses the executor must use. */
type UrlFamily = { readonly url: UrlFacts };
type ApiPinned = { readonly api: ApiPin };

function available(table: ReadonlyMap<string, Upstream>): string[] {
  return [...table.keys()].sort();
}

function principalScope(p: Principal): string {
  return `${p.auth}:${p.id}`;
}

function encodeBody(body: unknown): { bytes: Buffer; contentType: string } | undefined {
  if (body === undefined) return undefined;
  if (typeof body === 'string') return { bytes: Buffer.from(body, 'utf8'), contentType: 'text/plain; charset=utf-8' };
  return { bytes: Buffer.from(JSON.stringify(body), 'utf8'), contentType: 'application/json' };
}

export const callApiTool: ToolDefinition<CallArgs, UrlFamily, ApiPinned> = {
  name: 'call_api',
  family: 'api',
  description:
    'Call a configured HTTP API by name: the gateway joins your path under the upstream base URL, adds its credentials, checks the resolved addresses (no internal networks unless the upstream is marked internal), rate-limits, caches GETs per caller, retries idempotent methods and caps the response. Returns status, selected headers and the body (JSON parsed when the content type says so).',
  annotations: { title: 'Call API', readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  input: callInput,
  sideEffects: (args) => !SAFE.has(args.method),
  outputSchema: {
    type: 'object',
    properties: {
      api: { type: 'string' },
      method: { type: 'string' },
      path: { type: 'string' },
      status: { type: 'integer' },
      headers: { type: 'object', additionalProperties: { type: 'string' } },
      body: {},
      body_encoding: { type: 'string', enum: ['json', 'text', 'base64', 'none'] },
      bytes: { type: 'integer' },
      from_cache: { type: 'boolean' },
      cached_at: { type: 'string' },
      attempts: { type: 'integer' },
      redirects: { type: 'integer' },
      redacted: { type: 'integer' },
      duration_ms: { type: 'number' },
    },
    required: ['api', 'method', 'path', 'status', 'headers', 'body', 'body_encoding', 'bytes', 'from_cache'],
  },

  async analyse(call, env) {
    const table = env.api?.upstreams ?? upstreamTable(env.config);
    const { api, method } = call.args;
    const up = table.get(api);
    if (!up) {
      const names = available(table);
      refuse(
        'url_rejected',
        `Unknown api ${JSON.stringify(api.slice(0, 64))}; available: ${names.join(', ') || '(none configured)'}.`,
        ['url.unknown_upstream'],
        { available: names },
      );
    }
    if (!up.methods.has(method)) {
      refuse('url_rejected', `${up.name} does not take ${method}; configured: ${[...up.methods].join(', ')}.`, ['url.method_not_configured'], {
        methods: [...up.methods],
      });
    }
    if (call.args.body !== undefined && (method === 'GET' || method === 'HEAD')) refuse('url_rejected', `${method} takes no body.`, ['url.body_not_allowed']);
    const { path } = canonicalPath(call.args.path);
    if (!up.target.pathPrefixes.some((p) => underPrefix(path, p))) {
      refuse('url_rejected', `${path} is outside the paths configured for ${up.name} (${up.target.pathPrefixes.join(', ')}).`, ['url.path_outside_prefixes']);
    }
    const fullPath = joinUnderBase(up.target, path);
    const query = canonicalQuery(call.args.query);
    const resolver = env.api?.resolver ?? systemResolver;
    const { addresses } = await resolveAndCheck(up.target, resolver, Math.min(up.spec.timeout_ms, 5000));
    return {
      facts: {
        url: {
          upstream: up.name,
          method,
          path,
          query,
          host: up.target.hostname,
          port: up.target.port,
          scheme: up.target.protocol === 'https:' ? 'https' : 'http',
          internal: up.target.internal,
          addresses: addresses.slice(0, 16),
          address_count: addresses.length,
        },
      },
      pinned: { api: { fullPath, query, addresses } satisfies ApiPin },
    };
  },

  async execute(call, env) {
    const rt = runtimeOf(env);
    const up = rt.upstreams.get(call.args.api);
    if (!up) refuse('internal_error', 'The upstream vanished after analysis.', ['api.upstream_missing']);
    return executeCall(rt, up, call, env.policy);
  },

  auditArgs: (args) => {
    const body = args.body === undefined ? undefined : encodeBody(args.body);
    const pathBytes = Buffer.byteLength(args.path);
    return {
      api: args.api,
      method: args.method,
      path: pathBytes <= 4096 ? args.path : null,
      path_bytes: pathBytes,
      path_sha256: crypto.createHash('sha256').update(args.path).digest('hex'),
      query: args.query ?? null,
      body_bytes: body?.bytes.length ?? 0,
      body_sha256: body ? crypto.createHash('sha256').update(body.bytes).digest('hex') : null,
    };
  },
};

function runtimeOf(env: ToolEnv): ApiRuntime {
  if (!env.api) refuse('unavailable', 'The API gateway is not running in this process.', ['api.not_running']);
  return env.api;
}

type Rendered = { text: string; structured: Record<string, unknown> };

async function executeCall(rt: ApiRuntime, up: Upstream, call: ApiCall, policy: PolicyQuestions | undefined): Promise<Rendered> {
  const started = performance.now();
  const { stats, breaker } = rt.stateOf(up.name);
  stats.requests += 1;
  const pin = call.pinned.api;
  const facts = call.facts.url;
  const method = call.args.method;
  const maxBytes = Math.min(up.spec.max_response_bytes, call.caps.maxBytes);

  // 1. Cache (GET only, scoped to the principal).
  const key =
    method === 'GET' && up.spec.cache_ttl_s > 0
      ? cacheKey({ upstream: up.name, method, path: pin.fullPath, query: pin.query, principal: principalScope(call.principal) })
      : undefined;
  if (key) {
    const hit = await rt.cache.get(key);
    if (hit && hit.body.length <= maxBytes) {
      stats.cacheHits += 1;
      return render(up, facts, hit, { fromCache: true, attempts: 0, redirects: 0, durationMs: performance.now() - started, cachedAt: hit.storedAt });
    }
    stats.cacheMisses += 1;
  }

  // 2. Rate limits: per principal on this upstream, then the upstream's shared quota.
  await takeTokens(rt, up, call.principal);

  // 3. Circuit breaker.
  const ticket = breaker.acquire();
  if (!ticket.ok) {
    stats.breakerRejected += 1;
    const retry = Math.max(1, Math.ceil(ticket.retryAfterMs / 1000));
    refuse('unavailable', `${up.name} is failing; its circuit breaker is open. Retry in ${retry} s.`, ['api.circuit_open'], { retry_after_s: retry });
  }

  // 4. The request, with retries and (when configured) redirects.
  let sent: Sent;
  try {
    sent = await send(rt, up, call, policy, started + call.caps.timeoutMs, maxBytes);
  } catch (err) {
    if (err instanceof AttemptError && (err.kind === 'timeout' || err.kind === 'connect' || err.kind === 'network')) breaker.failure(ticket);
    else breaker.release(ticket);
    throw toDenial(err, up, stats, call.caps.timeoutMs, maxBytes);
  }
  if (sent.res.status >= 500) {
    breaker.failure(ticket);
    stats.errors += 1;
  } else {
    breaker.success(ticket);
  }
  stats.countStatus(sent.res.status);

  // 5. Scrub, cache, answer.
  const { body, count } = redact(sent.res.body, up.secrets);
  const headers: Record<string, string> = {};
  let redacted = count;
  for (const name of RETURNED_HEADERS) {
    const v = sent.res.headers[name];
    if (v === undefined) continue;
    const r = redactString(Array.isArray(v) ? v.join(', ') : v, up.secrets);
    headers[name] = r.text;
    redacted += r.count;
  }
  if (redacted > 0) {
    stats.secretsRedacted += redacted;
    rt.logger.warn('upstream echoed a configured header value; redacted', { upstream: up.name, request_id: call.context.requestId, occurrences: redacted });
  }
  const entry: CachedResponse = { status: sent.res.status, headers, body, storedAt: Date.now(), redacted };
  const noStore = /(^|,)\s*no-store\s*(,|$)/i.test(headers['cache-control'] ?? '');
  if (key && sent.res.status >= 200 && sent.res.status < 300 && sent.res.status !== 206 && !noStore && sent.redirects === 0) {
    await rt.cache.set(key, entry, up.spec.cache_ttl_s * 1000);
  }
  return render(up, { ...facts, path: sent.path }, entry, {
    fromCache: false,
    attempts: sent.attempts,
    redirects: sent.redirects,
    durationMs: performance.now() - started,
  });
}

async function takeTokens(rt: ApiRuntime, up: Upstream, principal: Principal): Promise<void> {
  const { stats } = rt.stateOf(up.name);
  const tier = rt.tierFor(up, principal.tier);
  if (!tier) refuse('rate_limited', `No rate tier applies to calls on ${up.name}.`, ['rate.no_tier']);
  const checks: [string, NonNullable<typeof tier>, string][] = [[`api:${up.name}:principal:${principalScope(principal)}`, tier, 'rate.upstream_principal']];
  if (up.spec.rate_total) checks.push([`api:${up.name}:total`, up.spec.rate_total, 'rate.upstream_total']);
  for (const [bucket, spec, reason] of checks) {
    let r;
    try {
      r = await rt.rate.take(bucket, spec);
    } catch (err) {
      rt.logger.error('rate store failed; refusing the call', { upstream: up.name, store: rt.rate.kind, error: (err as Error).message });
      refuse('unavailable', 'The rate-limit store is unavailable, so the call is refused.', ['rate.store_unavailable']);
    }
    if (!r.ok) {
      stats.rateLimited += 1;
      refuse('rate_limited', `Rate limit for ${up.name} reached; retry in ${r.retryAfterS} s.`, [reason], { retry_after_s: r.retryAfterS, upstream: up.name });
    }
  }
}

interface Sent {
  readonly res: AttemptResponse;
  readonly attempts: number;
  readonly redirects: number;
  /** The path (relative to the base) that produced the final answer. */
  readonly path: string;
}

async function send(rt: ApiRuntime, up: Upstream, call: ApiCall, policy: PolicyQuestions | undefined, deadline: number, maxBytes: number): Promise<Sent> {
  const pin = call.pinned.api;
  let method: HttpMethod = call.args.method;
  let body = encodeBody(call.args.body);
  let hop = { path: call.facts.url.path, fullPath: pin.fullPath, query: pin.query, addresses: pin.addresses };
  let attempts = 0;
  let redirects = 0;
  for (;;) {
    const r = await withRetries(
      rt,
      up,
      call.context.signal,
      { method, body, fullPath: hop.fullPath, query: hop.query, addresses: hop.addresses },
      deadline,
      maxBytes,
    );
    attempts += r.attempts;
    const location = r.res.headers.location;
    if (!REDIRECT_STATUS.has(r.res.status) || typeof location !== 'string' || redirects >= up.spec.follow_redirects) {
      return { res: r.res, attempts, redirects, path: hop.path };
    }
    // Each hop is checked like the first request: same upstream, canonical path under the base and
    // prefixes, and a fresh resolution whose every address is checked and pinned.
    redirects += 1;
    rt.stateOf(up.name).stats.redirects += 1;
    const current = `${up.target.origin}${hop.fullPath}${hop.query ? `?${hop.query}` : ''}`;
    const next = redirectHop(up.target, current, location);
    const remaining = Math.max(1, deadline - performance.now());
    const { addresses } = await resolveAndCheck(up.target, rt.resolver, Math.min(up.spec.timeout_ms, 5000, remaining));
    if (r.res.status === 303 || ((r.res.status === 301 || r.res.status === 302) && method === 'POST')) {
      method = 'GET';
      body = undefined;
    }
    // The policy decided on the first path; the hop's path needs its own decision.
    const resolved = { addresses: addresses.slice(0, 16), address_count: addresses.length };
    authoriseHop(rt, call, policy, { ...call.facts.url, method, path: next.path, query: next.query, ...resolved, redirect: redirects });
    hop = { path: next.path, fullPath: next.fullPath, query: next.query, addresses };
  }
}

/** Each hop's answer joins the call's recorded facts (`url.hops`): it decided where the request went. */
function authoriseHop(rt: ApiRuntime, call: ApiCall, policy: PolicyQuestions | undefined, hop: UrlFacts & { readonly redirect: number }): void {
  if (!policy) {
    refuse('url_rejected', 'Redirects cannot be checked by the policy here, so they are not followed.', ['url.redirect_rejected', 'url.redirect_unauthorised']);
  }
  const answer = policy.mayFollowHop(call, hop);
  (call.facts.url.hops ??= []).push({ redirect: hop.redirect, method: hop.method, path: hop.path, ...answer });
  if (answer.error !== undefined) {
    rt.logger.error('policy evaluation failed for a redirect hop', { request_id: call.context.requestId, reason: answer.error });
    refuse('policy_error', 'The policy could not be evaluated for the redirect target, so it is not followed.', ['url.redirect_rejected']);
  }
  if (!answer.allow) refuse('policy_denied', `The policy denied the redirect target ${hop.path}.`, ['url.redirect_rejected', ...answer.reasons]);
  // The human approved the first request's exact arguments; a hop that needs approval was never approved.
  if (answer.approval_required)
    refuse('approval_required', `The redirect to ${hop.path} would need its own human approval, so it is not followed.`, [
      'url.redirect_rejected',
      'approval.redirect',
    ]);
}

interface HopRequest {
  readonly method: HttpMethod;
  readonly body: { bytes: Buffer; contentType: string } | undefined;
  readonly fullPath: string;
  readonly query: string;
  readonly addresses: readonly string[];
}

async function withRetries(
  rt: ApiRuntime,
  up: Upstream,
  signal: AbortSignal,
  req: HopRequest,
  deadline: number,
  maxBytes: number,
): Promise<{ res: AttemptResponse; attempts: number }> {
  const { stats } = rt.stateOf(up.name);
  const maxAttempts = IDEMPOTENT.has(req.method) ? 1 + up.spec.retries : 1;
  const headers: Record<string, string> = {
    'user-agent': USER_AGENT,
    accept: 'application/json, text/plain;q=0.9, */*;q=0.8',
    ...up.headers,
    // Compressed bodies would defeat the streaming cap (and invite decompression bombs).
    'accept-encoding': 'identity',
    ...(req.body ? { 'content-type': req.body.contentType } : {}),
  };
  const pathAndQuery = `${req.fullPath}${req.query ? `?${req.query}` : ''}`;
  let next = 0;
  let sent = 0;
  let failedOver = 0;
  for (let i = 0; ;) {
    const remaining = deadline - performance.now();
    if (remaining <= 0) throw new AttemptError('timeout', 'the call ran out of time');
    // Rotate through the checked addresses (all of them passed the same check).
    const address = req.addresses[next % req.addresses.length] as string;
    next += 1;
    const pool = rt.pools.get(up.target, address, { connections: up.spec.max_connections, connectTimeoutMs: Math.min(up.spec.timeout_ms, 10_000) });
    stats.upstreamRequests += 1;
    sent += 1;
    const t0 = performance.now();
    let failure: AttemptError | undefined;
    let res: AttemptResponse | undefined;
    try {
      res = await attempt({
        pool,
        method: req.method,
        pathAndQuery,
        headers,
        body: req.body?.bytes,
        timeoutMs: Math.min(up.spec.timeout_ms, remaining),
        signal,
        maxBytes,
      });
      stats.observeLatency(performance.now() - t0);
    } catch (err) {
      failure = err instanceof AttemptError ? err : new AttemptError('network', (err as Error).message);
    }
    // A refused connection sent nothing: fail over to the next checked address (any method, no
    // backoff), once per address, before this counts as a failed attempt.
    if (failure?.kind === 'connect' && failedOver < req.addresses.length - 1) {
      failedOver += 1;
      continue;
    }
    failedOver = 0;
    i += 1;
    const retryable = failure
      ? failure.kind === 'timeout' || failure.kind === 'connect' || failure.kind === 'network'
      : RETRY_STATUS.has((res as AttemptResponse).status);
    if (!retryable || i >= maxAttempts) {
      if (failure) throw failure;
      return { res: res as AttemptResponse, attempts: sent };
    }
    // Exponential backoff with full jitter, never past the deadline.
    const ceiling = Math.min(MAX_BACKOFF_MS, up.spec.retry_backoff_ms * 2 ** (i - 1));
    const delay = Math.floor(rt.random() * ceiling);
    if (performance.now() + delay >= deadline) {
      if (failure) throw failure;
      return { res: res as AttemptResponse, attempts: sent };
    }
    stats.retries += 1;
    try {
      await sleep(delay, undefined, { signal });
    } catch {
      throw new AttemptError('cancelled', 'the call was cancelled');
    }
  }
}

function denialError(code: Parameters<typeof deny>[0], message: string, reasons: string[], detail?: Record<string, unknown>): DenialError {
  return new DenialError(deny(code, message, reasons, detail));
}

function toDenial(err: unknown, up: Upstream, stats: UpstreamStats, timeoutMs: number, maxBytes: number): Error {
  if (err instanceof DenialError || !(err instanceof AttemptError)) return err as Error;
  switch (err.kind) {
    case 'timeout':
      stats.timeouts += 1;
      return denialError('timeout', `${up.name} did not answer within the time budget (${timeoutMs} ms for the call, ${up.spec.timeout_ms} ms per attempt).`, [
        'api.timeout',
      ]);
    case 'too_large':
      stats.tooLarge += 1;
      return denialError('resource_exceeded', `The response from ${up.name} is larger than ${maxBytes} bytes; it was abandoned.`, ['api.response_too_large'], {
        max_bytes: maxBytes,
      });
    case 'cancelled':
      return denialError('cancelled', 'The client cancelled the call.', ['call.cancelled']);
    case 'connect':
      stats.errors += 1;
      return denialError('tool_error', `Could not connect to ${up.name}${err.code ? ` (${err.code})` : ''}.`, ['api.connect_failed']);
    case 'network':
      stats.errors += 1;
      return denialError('tool_error', `The request to ${up.name} failed${err.code ? ` (${err.code})` : ''}.`, ['api.network_error']);
    default: {
      const never: never = err.kind;
      return new Error(`unknown attempt failure ${String(never)}`);
    }
  }
}

interface RenderMeta {
  readonly fromCache: boolean;
  readonly attempts: number;
  readonly redirects: number;
  readonly durationMs: number;
  readonly cachedAt?: number;
}

/** The deepest bracket nesting of a JSON text, counted without parsing it (strings skipped). */
function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

function decodeBody(body: Buffer, contentType: string, method: HttpMethod): { body: unknown; encoding: 'json' | 'text' | 'base64' | 'none'; text: string } {
  if (method === 'HEAD' || body.length === 0) return { body: null, encoding: 'none', text: '' };
  let text: string | undefined;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    text = undefined;
  }
  if (text === undefined)
    return { body: body.toString('base64'), encoding: 'base64', text: `(${body.length} bytes of binary data, base64 in structuredContent.body)` };
  const isJson = /^application\/(?:[\w.+-]+\+)?json\b|^[\w.+-]+\/[\w.+-]+\+json\b/i.test(contentType.trim());
  if (isJson && body.length <= JSON_PARSE_MAX_BYTES && jsonDepth(text) <= JSON_MAX_DEPTH) {
    try {
      return { body: JSON.parse(text) as unknown, encoding: 'json', text };
    } catch {
      // Says JSON, is not: hand it over as text.
    }
  }
  return { body: text, encoding: 'text', text };
}

function render(up: Upstream, facts: UrlFacts, r: CachedResponse, meta: RenderMeta): { text: string; structured: Record<string, unknown> } {
  const decoded = decodeBody(r.body, r.headers['content-type'] ?? '', facts.method);
  const head = `${facts.method} ${up.name} ${facts.path} → ${r.status}${meta.fromCache ? ' (from cache)' : ''}`;
  return {
    text: decoded.text ? `${head}\n${decoded.text}` : head,
    structured: {
      api: up.name,
      method: facts.method,
      path: facts.path,
      status: r.status,
      headers: { ...r.headers },
      body: decoded.body,
      body_encoding: decoded.encoding,
      bytes: r.body.length,
      from_cache: meta.fromCache,
      ...(meta.cachedAt === undefined ? {} : { cached_at: new Date(meta.cachedAt).toISOString() }),
      attempts: meta.attempts,
      redirects: meta.redirects,
      redacted: r.redacted,
      duration_ms: Math.round(meta.durationMs * 1000) / 1000,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// api_stats
// ---------------------------------------------------------------------------------------------

const statsInput = z
  .object({
    api: z.string().min(1).max(128).optional().describe('One upstream; all of them when absent.'),
  })
  .strict();

export const apiStatsTool: ToolDefinition<z.output<typeof statsInput>> = {
  name: 'api_stats',
  family: 'api',
  description:
    'Counters of this gateway replica per configured upstream: requests, cache hits and misses and hit rate, rate-limit refusals, retries, errors, circuit-breaker state.',
  annotations: { title: 'API statistics', readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  input: statsInput,
  outputSchema: {
    type: 'object',
    properties: {
      upstreams: { type: 'object', additionalProperties: { type: 'object' } },
      cache: { type: 'object' },
      rate_store: { type: 'string' },
    },
    required: ['upstreams'],
  },
  async analyse(call, env) {
    const table = env.api?.upstreams ?? upstreamTable(env.config);
    if (call.args.api !== undefined && !table.has(call.args.api)) {
      const names = available(table);
      refuse(
        'url_rejected',
        `Unknown api ${JSON.stringify(call.args.api.slice(0, 64))}; available: ${names.join(', ') || '(none configured)'}.`,
        ['url.unknown_upstream'],
        { available: names },
      );
    }
    return { facts: {}, pinned: {} };
  },
  async execute(call, env) {
    const rt = runtimeOf(env);
    const upstreams: Record<string, unknown> = {};
    for (const up of rt.upstreams.values()) {
      if (call.args.api !== undefined && up.name !== call.args.api) continue;
      const { stats, breaker } = rt.stateOf(up.name);
      upstreams[up.name] = {
        ...stats.snapshot(),
        breaker: breaker.snapshot(),
        base_url: `${up.target.origin}${up.target.basePath}/`,
        internal: up.target.internal,
        methods: [...up.methods],
        cache_ttl_s: up.spec.cache_ttl_s,
      };
    }
    const lines = Object.entries(upstreams).map(([name, s]) => {
      const x = s as Record<string, any>;
      return `${name}: ${x.requests} requests, cache ${x.cache_hits} hits / ${x.cache_misses} misses (${Math.round(x.cache_hit_rate * 100)}%), ${x.rate_limited} rate-limited, breaker ${x.breaker.state}`;
    });
    return {
      text: lines.join('\n') || 'No upstreams are configured.',
      structured: { upstreams, cache: rt.cache.snapshot(), rate_store: rt.rate.kind },
    };
  },
};

export const apiTools = [callApiTool, apiStatsTool] as const;
