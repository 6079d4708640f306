/**
 * The vocabulary of the 2026-07-28 wire (MCP's stateless revision): the per-request `_meta`
 * envelope keys and the codes the spec gives its validation ladder. Key names and codes are the
 * ones the official SDK v2 (`@modelcontextprotocol/core` 2.4.0) puts on the wire.
 */
import type { ClientCapabilities, ProtocolEra } from '../core/call.js';

/** The one modern revision served. Revision ids are ISO dates: any id from it on is "modern". */
export const MODERN_VERSION = '2026-07-28' satisfies ProtocolEra;
export const SUPPORTED_MODERN_VERSIONS: readonly string[] = [MODERN_VERSION];

/** The envelope claim: present in `params._meta`, the request is served under the revision it names. */
export const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion';
export const CLIENT_CAPABILITIES_META_KEY = 'io.modelcontextprotocol/clientCapabilities';
export const CLIENT_INFO_META_KEY = 'io.modelcontextprotocol/clientInfo';
export const SERVER_INFO_META_KEY = 'io.modelcontextprotocol/serverInfo';

/** SEP-2243 HeaderMismatch: a standard header missing or disagreeing with the body (HTTP 400). */
export const HEADER_MISMATCH = -32020;
/** The request names a protocol revision this server does not serve (HTTP 400). */
export const UNSUPPORTED_PROTOCOL_VERSION = -32022;
/** A request needs a client capability the request's envelope did not declare (HTTP 400). */
export const MISSING_CLIENT_CAPABILITY = -32021;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INVALID_REQUEST = -32600;

/** Whether a revision id belongs to the modern era (2026-07-28 and later). */
export function isModernVersion(version: string): boolean {
  return version >= MODERN_VERSION;
}

type Obj = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The `_meta` of a message's params, when there is one. */
export function metaOf(params: unknown): Obj | undefined {
  if (!isPlainObject(params)) return undefined;
  const meta = params._meta;
  return isPlainObject(meta) ? meta : undefined;
}

/** A message claims the modern envelope if and only if its `_meta` holds the protocol-version key. */
export function hasEnvelopeClaim(params: unknown): boolean {
  const meta = metaOf(params);
  return meta !== undefined && PROTOCOL_VERSION_META_KEY in meta;
}

/**
 * What the client declared in a request's envelope, in the gate's terms. On this wire an empty
 * `elicitation` object means form mode (the spec's default); `url` only when named.
 */
export function clientCapabilitiesOf(meta: Obj | undefined): ClientCapabilities {
  const caps = meta?.[CLIENT_CAPABILITIES_META_KEY];
  if (!isPlainObject(caps)) return {};
  const elicitation = caps.elicitation;
  return {
    ...(isPlainObject(elicitation)
      ? {
          elicitation: {
            form: isPlainObject(elicitation.form) || (!('form' in elicitation) && !('url' in elicitation)),
            url: isPlainObject(elicitation.url),
          },
        }
      : {}),
    ...(isPlainObject(caps.sampling) ? { sampling: true } : {}),
    ...(isPlainObject(caps.roots) ? { roots: true } : {}),
  };
}
