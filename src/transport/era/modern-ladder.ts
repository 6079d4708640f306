/**
 * Which revision serves a message, and the 2026-07-28 validation ladder: pure, ordered, no I/O.
 * Run after Host/Origin admission and bearer authentication and before anything routes on, or
 * hands policy, a header. The era is body-primary (the `_meta` envelope claim decides; a header
 * never upgrades or downgrades it), and a request the ladder refuses is refused, never served
 * under the other revision. The order and the answers follow the spec and the official SDK v2's
 * `classifyInboundRequest` + `validateStandardRequestHeaders`, so a client sees the same rung
 * whichever server it talks to.
 */
import { SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  HEADER_MISMATCH,
  hasEnvelopeClaim,
  INVALID_PARAMS,
  INVALID_REQUEST,
  isModernVersion,
  isPlainObject,
  metaOf,
  PROTOCOL_VERSION_META_KEY,
  SUPPORTED_MODERN_VERSIONS,
  UNSUPPORTED_PROTOCOL_VERSION,
} from '../../server/modern-wire.js';

/** The standard request headers of Streamable HTTP (SEP-2243); absent on stdio. */
export interface StandardHeaders {
  readonly protocolVersion?: string | undefined;
  readonly method?: string | undefined;
  readonly name?: string | undefined;
}

/** Why a message was refused, as the audit record names it (all under `invalid_input`). */
export type LadderReason =
  'protocol.header_mismatch' | 'protocol.unsupported_version' | 'protocol.invalid_envelope' | 'protocol.missing_envelope' | 'protocol.modern_batch';

export interface LadderRejection {
  readonly kind: 'reject';
  /** The HTTP status (stdio answers the JSON-RPC error alone). */
  readonly status: number;
  readonly id: RequestId | null;
  readonly error: { readonly code: number; readonly message: string; readonly data?: Readonly<Record<string, unknown>> };
  readonly reason: LadderReason;
}

export type LadderVerdict = { readonly kind: 'legacy' } | { readonly kind: 'modern'; readonly request: boolean } | LadderRejection;

const LEGACY: LadderVerdict = { kind: 'legacy' };
const LEGACY_VERSIONS: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS;

/** Which body field `Mcp-Name` mirrors, per method (SEP-2243; tasks/* from SEP-2663). */
const MCP_NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

const BASE64_PREFIX = '=?base64?';
const BASE64_SUFFIX = '?=';
const BASE64_CANONICAL = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A header value as the spec encodes it: plain, or `=?base64?…?=` for a value that is not a
 * plain header string. Undefined for a sentinel whose payload is not canonical Base64 of UTF-8,
 * which the spec says to reject.
 */
export function decodeHeaderValue(value: string): string | undefined {
  if (!(value.startsWith(BASE64_PREFIX) && value.endsWith(BASE64_SUFFIX) && value.length >= BASE64_PREFIX.length + BASE64_SUFFIX.length)) return value;
  const b64 = value.slice(BASE64_PREFIX.length, value.length - BASE64_SUFFIX.length);
  if (!BASE64_CANONICAL.test(b64)) return undefined;
  try {
    return strictUtf8.decode(Buffer.from(b64, 'base64'));
  } catch {
    return undefined;
  }
}

/** RFC 9110 optional whitespace around a field value. */
function trimOws(v: string | undefined): string | undefined {
  return v === undefined ? undefined : v.replace(/^[ \t]+|[ \t]+$/g, '');
}

function reject(status: number, id: RequestId | null, code: number, message: string, reason: LadderReason, data?: Record<string, unknown>): LadderRejection {
  return { kind: 'reject', status, id, error: data === undefined ? { code, message } : { code, message, data }, reason };
}

function mismatch(id: RequestId | null, header: string, body: string): LadderRejection {
  return reject(400, id, HEADER_MISMATCH, `Bad Request: the request headers and body disagree: ${body}`, 'protocol.header_mismatch', {
    mismatch: { header, body },
  });
}

/** The first problem of a modern envelope, or undefined when it is well formed. */
function envelopeProblem(meta: Record<string, unknown>): { key: string; problem: string } | undefined {
  if (typeof meta[PROTOCOL_VERSION_META_KEY] !== 'string') return { key: PROTOCOL_VERSION_META_KEY, problem: 'expected a protocol version string' };
  if (!(CLIENT_CAPABILITIES_META_KEY in meta)) return { key: CLIENT_CAPABILITIES_META_KEY, problem: 'missing' };
  if (!isPlainObject(meta[CLIENT_CAPABILITIES_META_KEY])) return { key: CLIENT_CAPABILITIES_META_KEY, problem: 'expected an object' };
  const info = meta[CLIENT_INFO_META_KEY];
  if (info !== undefined && !(isPlainObject(info) && typeof info.name === 'string' && typeof info.version === 'string'))
    return { key: CLIENT_INFO_META_KEY, problem: 'expected {name, version}' };
  const token = meta.progressToken;
  if (token !== undefined && typeof token !== 'string' && typeof token !== 'number') return { key: 'progressToken', problem: 'expected a string or a number' };
  return undefined;
}

/**
 * Classify one POST body (HTTP, `headers` given) or one stdio message (`headers` undefined: the
 * header rungs do not exist there). `batch`: the body was a JSON array.
 */
export function classify(messages: readonly JSONRPCMessage[], batch: boolean, headers: StandardHeaders | undefined): LadderVerdict {
  const h: StandardHeaders | undefined = headers && {
    protocolVersion: trimOws(headers.protocolVersion),
    method: trimOws(headers.method),
    name: trimOws(headers.name),
  };
  if (batch || messages.length !== 1) {
    // Batches do not exist on the modern wire: one that carries a modern element is refused whole.
    if (messages.some((m) => 'method' in m && hasEnvelopeClaim(m.params)))
      return reject(
        400,
        null,
        INVALID_REQUEST,
        'Bad Request: JSON-RPC batches may not contain requests for protocol revision 2026-07-28 or later',
        'protocol.modern_batch',
      );
    return legacyHeaderCheck(h, null);
  }
  const m = messages[0] as JSONRPCMessage;
  if (!('method' in m)) return legacyHeaderCheck(h, null); // a response to a server-to-client request (2025-11-25)
  const id = 'id' in m && m.id !== undefined ? m.id : null;
  return id === null ? classifyNotification(m.method, m.params, h) : classifyRequest(id, m.method, m.params, h);
}

function classifyRequest(id: RequestId, method: string, params: unknown, h: StandardHeaders | undefined): LadderVerdict {
  const headerVersion = h?.protocolVersion;
  if (!hasEnvelopeClaim(params)) {
    if (method === 'initialize' && headerVersion !== undefined && isModernVersion(headerVersion))
      return mismatch(id, headerVersion, 'an initialize request (legacy handshake) was sent with a modern MCP-Protocol-Version header');
    if (headerVersion !== undefined && isModernVersion(headerVersion)) {
      const missing = metaOf(params) === undefined ? '_meta' : PROTOCOL_VERSION_META_KEY;
      return reject(
        400,
        id,
        INVALID_PARAMS,
        `Invalid params: the MCP-Protocol-Version header names protocol revision ${headerVersion}, but the request is missing the required per-request envelope key(s): ${missing}`,
        'protocol.missing_envelope',
        { envelope: { missing: [missing] } },
      );
    }
    return legacyHeaderCheck(h, id);
  }
  const meta = metaOf(params) as Record<string, unknown>;
  const problem = envelopeProblem(meta);
  if (problem)
    return reject(
      400,
      id,
      INVALID_PARAMS,
      `Invalid _meta envelope for protocol revision 2026-07-28: ${problem.key}: ${problem.problem}`,
      'protocol.invalid_envelope',
      {
        envelope: problem,
      },
    );
  const claimed = meta[PROTOCOL_VERSION_META_KEY] as string;
  if (headerVersion !== undefined && headerVersion !== claimed)
    return mismatch(id, headerVersion, `the body envelope names protocol version ${claimed} but the MCP-Protocol-Version header names ${headerVersion}`);
  if (h?.method !== undefined && h.method !== method)
    return mismatch(id, h.method, `the body names method ${method} but the Mcp-Method header names ${h.method}`);
  if (!SUPPORTED_MODERN_VERSIONS.includes(claimed))
    return reject(400, id, UNSUPPORTED_PROTOCOL_VERSION, `Unsupported protocol version: ${claimed.slice(0, 40)}`, 'protocol.unsupported_version', {
      supported: [...SUPPORTED_MODERN_VERSIONS],
      requested: claimed,
    });
  if (h) {
    const rejected = standardHeaders(id, method, params, claimed, h);
    if (rejected) return rejected;
  }
  return { kind: 'modern', request: true };
}

/** The presence and `Mcp-Name` half of the header rung (HTTP only), in the spec's order. */
function standardHeaders(id: RequestId, method: string, params: unknown, claimed: string, h: StandardHeaders): LadderRejection | undefined {
  if (h.protocolVersion === undefined)
    return mismatch(id, '(missing)', `the body envelope names protocol version ${claimed} but the required MCP-Protocol-Version header is absent`);
  if (h.method === undefined) return mismatch(id, '(missing)', `the body names method ${method} but the required Mcp-Method header is absent`);
  const field = Object.hasOwn(MCP_NAME_SOURCE, method) ? MCP_NAME_SOURCE[method] : undefined;
  if (field === undefined) return undefined;
  const raw = isPlainObject(params) ? params[field] : undefined;
  const bodyValue = typeof raw === 'string' ? raw : undefined;
  if (h.name === undefined) {
    // A body without the field (or with a non-string one) is the params rung's to refuse, in-band.
    return bodyValue === undefined
      ? undefined
      : mismatch(id, '(missing)', `the body carries params.${field}="${bodyValue}" but the required Mcp-Name header is absent`);
  }
  const decoded = decodeHeaderValue(h.name);
  if (decoded === undefined) return mismatch(id, h.name, 'the Mcp-Name header carries an invalid Base64 sentinel value');
  if (bodyValue !== undefined && decoded !== bodyValue)
    return mismatch(id, h.name, `the body carries params.${field}="${bodyValue}" but the Mcp-Name header names "${decoded}"`);
  return undefined;
}

function classifyNotification(method: string, params: unknown, h: StandardHeaders | undefined): LadderVerdict {
  const headerVersion = h?.protocolVersion;
  if (hasEnvelopeClaim(params)) {
    const claimed = metaOf(params)?.[PROTOCOL_VERSION_META_KEY];
    if (typeof claimed !== 'string')
      return reject(
        400,
        null,
        INVALID_PARAMS,
        `Invalid _meta envelope for protocol revision 2026-07-28: ${PROTOCOL_VERSION_META_KEY}: expected a protocol version string`,
        'protocol.invalid_envelope',
      );
    if (headerVersion !== undefined && headerVersion !== claimed)
      return mismatch(
        null,
        headerVersion,
        `the notification envelope names protocol version ${claimed} but the MCP-Protocol-Version header names ${headerVersion}`,
      );
  } else if (headerVersion === undefined || !isModernVersion(headerVersion)) return legacyHeaderCheck(h, null);
  if (h?.method !== undefined && h.method !== method)
    return mismatch(null, h.method, `the notification body names method ${method} but the Mcp-Method header names ${h.method}`);
  return { kind: 'modern', request: false };
}

/** 2025-11-25 traffic: a version header it names must be one of that era's (as before this ladder). */
function legacyHeaderCheck(h: StandardHeaders | undefined, id: RequestId | null): LadderVerdict {
  const v = h?.protocolVersion;
  if (v === undefined || LEGACY_VERSIONS.includes(v)) return LEGACY;
  return reject(400, id, INVALID_REQUEST, `Unsupported MCP-Protocol-Version: ${v.slice(0, 40)}`, 'protocol.unsupported_version');
}
