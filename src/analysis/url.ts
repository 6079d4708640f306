/**
 * The URL analyser of the API tools: pure functions (plus one DNS lookup) from a named upstream and
 * raw arguments to facts. The model never supplies a scheme or an authority: it names an upstream
 * from the configuration and a path, which is canonicalised here and joined under the upstream's
 * base URL. The host is resolved once, every address is classified (src/analysis/ip-ranges.ts), and
 * the executor connects to an address that was checked here, never to a second lookup's answer.
 *
 * Reason codes (all under `url_rejected`) are listed in SECURITY.md.
 */
import dns from 'node:dns';
import { DenialError, refuse } from '../core/denial.js';
import { cidrContains, classifyIp, NEVER_REACHABLE, parseCidr, parseIp, type Cidr, type IpClass } from './ip-ranges.js';

/** Bytes of the canonical path, after the base path is joined. */
export const MAX_PATH_BYTES = 2048;
/** Bytes of the encoded query string. */
export const MAX_QUERY_BYTES = 4096;
export const MAX_QUERY_PARAMS = 100;

import type { HttpMethod } from '../core/facts.js';

export type { HttpMethod };
export const HTTP_METHODS: readonly HttpMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** An upstream's address parts, compiled once from its trusted `base_url`. */
export interface UpstreamTarget {
  readonly name: string;
  readonly protocol: 'http:' | 'https:';
  /** Host name as WHATWG URL normalised it; IPv6 literals keep their brackets. */
  readonly hostname: string;
  readonly port: number;
  /** scheme://host[:port], the pool key and the Host/SNI the upstream sees. */
  readonly origin: string;
  /** The base URL's path without its trailing slash ('' for the root). */
  readonly basePath: string;
  readonly pathPrefixes: readonly string[];
  readonly internal: boolean;
  readonly allowedCidrs: readonly Cidr[];
}

/**
 * Compile a configured upstream. The configuration is trusted, but a base URL that could never be
 * used safely is still an error at boot: only http/https, no credentials, no query or fragment.
 */
export function compileTarget(
  name: string,
  spec: { base_url: string; path_prefixes?: readonly string[]; internal?: boolean; allowed_cidrs?: readonly string[] },
): UpstreamTarget {
  let u: URL;
  try {
    u = new URL(spec.base_url);
  } catch {
    throw new Error(`apis.${name}.base_url: not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`apis.${name}.base_url: only http and https are allowed, got ${u.protocol}`);
  if (u.username || u.password) throw new Error(`apis.${name}.base_url: credentials belong in headers, not in the URL`);
  if (u.search || u.hash || spec.base_url.includes('?') || spec.base_url.includes('#')) throw new Error(`apis.${name}.base_url: no query or fragment`);
  if (!u.hostname) throw new Error(`apis.${name}.base_url: no host`);
  const basePath = u.pathname.replace(/\/+$/, '');
  const prefixes = (spec.path_prefixes ?? ['/']).map((p, i) => {
    try {
      return canonicalPath(p).path;
    } catch {
      throw new Error(`apis.${name}.path_prefixes[${i}]: not a canonical path`);
    }
  });
  const allowedCidrs = (spec.allowed_cidrs ?? []).map((c, i) => {
    try {
      return parseCidr(c);
    } catch (err) {
      throw new Error(`apis.${name}.allowed_cidrs[${i}]: ${(err as Error).message}`, { cause: err });
    }
  });
  return {
    name,
    protocol: u.protocol,
    hostname: u.hostname,
    port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80,
    origin: u.origin,
    basePath,
    pathPrefixes: prefixes,
    internal: spec.internal === true,
    allowedCidrs,
  };
}

const HEX = /^[0-9A-Fa-f]{2}$/;
/** RFC 3986 pchar without '%': unreserved, sub-delims, ':' and '@'. */
const PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
// C0, DEL, C1, line and paragraph separators, bidi controls and other invisible format characters.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]/;

export interface CanonicalPath {
  /** Canonical form: percent-encodings upper-cased, unreserved characters decoded, non-ASCII encoded. */
  readonly path: string;
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * Canonicalise the path the caller asked for, or refuse it. Nothing is decoded twice. A single-dot
 * segment ("." or "%2E", exactly) is removed, as RFC 3986 remove_dot_segments does: it names the
 * same resource and cannot move the path anywhere, so `/items/./42` is `/items/42`. Every other dot
 * segment ("..", "%2E%2E", "..;x", ". ", "...", fullwidth dots that fold to them) is refused rather
 * than resolved: ".." is the one that could leave the upstream's base path or the policy's prefixes.
 * Either way the path that reaches the upstream is the path the policy saw.
 */
export function canonicalPath(raw: string): CanonicalPath {
  if (typeof raw !== 'string' || raw.length === 0) refuse('url_rejected', 'The path is empty.', ['url.path_empty']);
  if (byteLength(raw) > MAX_PATH_BYTES) refuse('url_rejected', `The path is longer than ${MAX_PATH_BYTES} bytes.`, ['url.path_too_long']);
  if (CONTROL.test(raw)) refuse('url_rejected', 'The path contains a control character (CR, LF, NUL, ...).', ['url.control_character']);
  if (raw.includes('\\')) refuse('url_rejected', 'The path contains a backslash.', ['url.backslash']);
  if (!raw.startsWith('/')) {
    if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(raw)) refuse('url_rejected', 'Give a path under the upstream, not an absolute URL.', ['url.absolute_url']);
    refuse('url_rejected', 'The path must start with "/".', ['url.not_absolute_path']);
  }
  if (raw.startsWith('//')) refuse('url_rejected', 'A path starting with "//" names a host; give a path under the upstream.', ['url.authority_in_path']);
  if (raw.includes('?')) refuse('url_rejected', 'Put query parameters in `query`, not in the path.', ['url.query_in_path']);
  if (raw.includes('#')) refuse('url_rejected', 'The path contains a fragment ("#").', ['url.fragment_in_path']);

  const segments = raw.slice(1).split('/');
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    if (seg === '' && i !== segments.length - 1) refuse('url_rejected', 'The path has an empty segment ("//").', ['url.empty_segment']);
    const canonical = canonicalSegment(seg);
    if (canonical === '.') {
      // remove_dot_segments: "/a/./b" is "/a/b"; a final "." leaves the directory ("/a/." is "/a/").
      if (i === segments.length - 1) out.push('');
      continue;
    }
    out.push(canonical);
  }
  const path = `/${out.join('/')}`;
  if (byteLength(path) > MAX_PATH_BYTES) refuse('url_rejected', `The path is longer than ${MAX_PATH_BYTES} bytes once encoded.`, ['url.path_too_long']);
  return { path };
}

function canonicalSegment(seg: string): string {
  let canonical = '';
  for (let i = 0; i < seg.length;) {
    const cp = seg.codePointAt(i) as number;
    const ch = String.fromCodePoint(cp);
    if (ch === '%') {
      const hex = seg.slice(i + 1, i + 3);
      if (!HEX.test(hex)) refuse('url_rejected', 'The path has a malformed percent-encoding.', ['url.bad_percent_encoding']);
      const byte = parseInt(hex, 16);
      const decoded = String.fromCharCode(byte);
      canonical += byte < 0x80 && UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
      i += 3;
      continue;
    }
    if (cp < 0x80) {
      if (!PCHAR.test(ch)) refuse('url_rejected', `The path contains a character that must be percent-encoded (${JSON.stringify(ch)}).`, ['url.bad_character']);
      canonical += ch;
    } else {
      canonical += encodeURIComponent(ch);
    }
    i += ch.length;
  }
  // Look at what the upstream will see after its one decoding pass.
  let decoded: string;
  try {
    decoded = decodeURIComponent(canonical);
  } catch {
    refuse('url_rejected', 'The path percent-encodes bytes that are not UTF-8.', ['url.bad_percent_encoding']);
  }
  if (/[/\\]/.test(decoded)) refuse('url_rejected', 'The path encodes a "/" or "\\" inside a segment.', ['url.encoded_separator']);
  if (CONTROL.test(decoded)) refuse('url_rejected', 'The path encodes a control character.', ['url.control_character']);
  // A second decoding pass (a proxy, a framework) must not find anything new either.
  if (/%[0-9A-Fa-f]{2}/.test(decoded)) refuse('url_rejected', 'The path is percent-encoded twice.', ['url.double_encoding']);
  // Servers that apply Unicode compatibility folding turn "．．" into "..": check the folded form too.
  const folded = decoded.normalize('NFKC');
  if (/[/\\]/.test(folded) || CONTROL.test(folded))
    refuse('url_rejected', 'The path contains a character that folds to a separator.', ['url.unicode_separator']);
  if (/%[0-9A-Fa-f]{2}/.test(folded)) refuse('url_rejected', 'The path contains characters that fold to a percent-encoding.', ['url.double_encoding']);
  for (const form of [decoded, folded]) {
    // "..;x" (path parameters, as Tomcat reads them), ".. " and "..." are all dot segments to someone.
    const bare = (form.split(';')[0] as string).trim();
    // Exactly "." (literal or %2E, canonicalised to ".") is removed by canonicalPath; anything else
    // that reads as dots to someone is refused.
    if (form === '.' && canonical === '.') continue;
    if (/^\.+$/.test(bare)) refuse('url_rejected', 'The path has a "." or ".." segment.', ['url.dot_segment']);
  }
  return canonical;
}

/** Is `path` one of the prefixes or below one, by whole segments ("/v1" covers "/v1/x", not "/v10")? */
export function underPrefix(path: string, prefix: string): boolean {
  if (prefix === '/' || path === prefix) return true;
  const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return path.startsWith(p);
}

export type QueryValue = string | number | boolean;
export type QueryArg = Readonly<Record<string, QueryValue | readonly QueryValue[]>>;

/**
 * Encode query parameters canonically: keys sorted, values in their given order, every byte outside
 * the unreserved set percent-encoded. Returns '' or 'a=1&b=2' (no '?').
 */
export function canonicalQuery(query: QueryArg | undefined): string {
  if (!query) return '';
  const keys = Object.keys(query).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const v = query[k] as QueryValue | readonly QueryValue[];
    const values = Array.isArray(v) ? (v as readonly QueryValue[]) : [v as QueryValue];
    for (const value of values) {
      const s = String(value);
      if (CONTROL.test(k) || CONTROL.test(s)) refuse('url_rejected', 'A query parameter contains a control character.', ['url.control_character']);
      parts.push(`${encodeRfc3986(k)}=${encodeRfc3986(s)}`);
    }
  }
  if (parts.length > MAX_QUERY_PARAMS) refuse('url_rejected', `More than ${MAX_QUERY_PARAMS} query parameters.`, ['url.query_too_long']);
  const q = parts.join('&');
  if (q.length > MAX_QUERY_BYTES) refuse('url_rejected', `The query is longer than ${MAX_QUERY_BYTES} bytes.`, ['url.query_too_long']);
  return q;
}

function encodeRfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Join the canonical request path under the base path; the result must still be under it. */
export function joinUnderBase(target: UpstreamTarget, path: string): string {
  const full = `${target.basePath}${path}`;
  if (target.basePath && !(full === target.basePath || full.startsWith(`${target.basePath}/`))) {
    refuse('url_rejected', 'The path leaves the upstream base path.', ['url.outside_base']);
  }
  if (byteLength(full) > MAX_PATH_BYTES) refuse('url_rejected', `The path is longer than ${MAX_PATH_BYTES} bytes with the base path.`, ['url.path_too_long']);
  return full;
}

// ---------------------------------------------------------------------------------------------
// Resolution and address checks
// ---------------------------------------------------------------------------------------------

/** Resolve a host name to its addresses (all of them). Injected in tests; the default is getaddrinfo. */
export type Resolver = (hostname: string) => Promise<readonly string[]>;

export const systemResolver: Resolver = async (hostname) => {
  const found = await dns.promises.lookup(hostname, { all: true, verbatim: true });
  return found.map((a) => a.address);
};

/** Names that are loopback by definition (RFC 6761), whatever a resolver says. */
function isLocalhostName(host: string): boolean {
  const h = host.toLowerCase().replace(/\.+$/, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === 'localhost.localdomain' || h === 'ip6-localhost' || h === 'ip6-loopback';
}

/** The bare literal (no brackets) when `hostname` is an IP address literal. */
export function ipLiteral(hostname: string): string | undefined {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return parseIp(bare) ? bare : undefined;
}

export interface ResolvedTarget {
  /** Every address the name resolved to, all of them checked. */
  readonly addresses: readonly string[];
}

/**
 * Resolve the upstream's host and check every address. One disallowed address refuses the whole
 * answer: a name that resolves to a public and a loopback address is a rebinding attempt, and
 * picking the "good" one would leave the choice to the attacker's DNS server.
 */
export async function resolveAndCheck(target: UpstreamTarget, resolver: Resolver, timeoutMs: number): Promise<ResolvedTarget> {
  const literal = ipLiteral(target.hostname);
  let addresses: readonly string[];
  if (literal) {
    addresses = [literal];
  } else {
    if (!target.internal && isLocalhostName(target.hostname)) {
      refuse('url_rejected', `Upstream ${target.name} names a loopback host and is not marked internal.`, ['url.address_not_allowed', 'url.address_loopback']);
    }
    addresses = await resolveWithTimeout(target.hostname, resolver, timeoutMs);
  }
  checkAddresses(target, addresses);
  return { addresses };
}

async function resolveWithTimeout(hostname: string, resolver: Resolver, timeoutMs: number): Promise<readonly string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('DNS lookup timed out'), { code: 'ETIMEOUT' })), timeoutMs);
  });
  try {
    const found = await Promise.race([resolver(hostname), timeout]);
    const valid = found.filter((a) => typeof a === 'string' && parseIp(a));
    if (valid.length === 0 || valid.length !== found.length)
      refuse('url_rejected', `The upstream host ${hostname} did not resolve to an address.`, ['url.dns_failed']);
    return valid;
  } catch (err) {
    if (err instanceof DenialError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ETIMEOUT') refuse('url_rejected', `Resolving ${hostname} timed out.`, ['url.dns_timeout']);
    refuse('url_rejected', `The upstream host ${hostname} could not be resolved${code ? ` (${code})` : ''}.`, ['url.dns_failed']);
  } finally {
    clearTimeout(timer);
  }
}

export interface AddressVerdict {
  readonly address: string;
  readonly class: IpClass;
  readonly allowed: boolean;
  readonly reason?: string;
}

/** May this upstream reach this address? */
export function judgeAddress(target: Pick<UpstreamTarget, 'internal' | 'allowedCidrs'>, address: string): AddressVerdict {
  const c = classifyIp(address);
  if (NEVER_REACHABLE.has(c.class)) return { address, class: c.class, allowed: false, reason: `url.address_${c.class}` };
  if (!target.internal && c.class !== 'global') return { address, class: c.class, allowed: false, reason: `url.address_${c.class}` };
  if (target.allowedCidrs.length && !target.allowedCidrs.some((cidr) => cidrContains(cidr, address))) {
    return { address, class: c.class, allowed: false, reason: 'url.address_outside_allowed_cidrs' };
  }
  return { address, class: c.class, allowed: true };
}

export function checkAddresses(target: UpstreamTarget, addresses: readonly string[]): void {
  const bad = addresses.map((a) => judgeAddress(target, a)).filter((v) => !v.allowed);
  if (bad.length === 0) return;
  const reasons = ['url.address_not_allowed', ...new Set(bad.map((b) => b.reason as string))];
  refuse(
    'url_rejected',
    `Upstream ${target.name} resolves to an address it may not reach (${bad.map((b) => `${b.address}: ${b.class.replace(/_/g, ' ')}`).join(', ')})${target.internal ? '' : '; only an upstream marked internal may reach non-public addresses'}.`,
    reasons,
    { addresses: bad.map((b) => b.address) },
  );
}

// ---------------------------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------------------------

export interface RedirectHop {
  /** Canonical path relative to the base path (what the policy would have seen). */
  readonly path: string;
  /** Full path on the upstream (base path joined). */
  readonly fullPath: string;
  readonly query: string;
}

/**
 * Check a redirect's Location the way the first request was checked: it must stay on the same
 * upstream (scheme, host, port), under its base path and path prefixes, and its path must pass the
 * same canonicalisation. The caller re-resolves and re-checks the host before the next hop.
 */
export function redirectHop(target: UpstreamTarget, currentUrl: string, location: string): RedirectHop {
  if (location.length > MAX_PATH_BYTES + MAX_QUERY_BYTES || CONTROL.test(location) || location.includes('\\')) {
    refuse('url_rejected', 'The upstream redirected to a malformed location.', ['url.redirect_rejected', 'url.control_character']);
  }
  let next: URL;
  try {
    next = new URL(location, currentUrl);
  } catch {
    refuse('url_rejected', 'The upstream redirected to a malformed location.', ['url.redirect_rejected']);
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:')
    refuse('url_rejected', `The upstream redirected to a ${next.protocol} URL.`, ['url.redirect_rejected', 'url.redirect_scheme']);
  if (next.username || next.password)
    refuse('url_rejected', 'The upstream redirected to a URL with credentials.', ['url.redirect_rejected', 'url.redirect_off_upstream']);
  if (next.origin !== target.origin) {
    refuse('url_rejected', `The upstream redirected off ${target.name} (to ${next.origin}); redirects must stay on the upstream.`, [
      'url.redirect_rejected',
      'url.redirect_off_upstream',
    ]);
  }
  // WHATWG resolution already removed dot segments (encoded ones too): the base-path check sees the result.
  const full = canonicalPath(next.pathname).path;
  if (target.basePath && !(full === target.basePath || full.startsWith(`${target.basePath}/`))) {
    refuse('url_rejected', 'The upstream redirected outside its base path.', ['url.redirect_rejected', 'url.outside_base']);
  }
  const path = target.basePath ? full.slice(target.basePath.length) || '/' : full;
  if (!target.pathPrefixes.some((p) => underPrefix(path, p))) {
    refuse('url_rejected', 'The upstream redirected outside the allowed path prefixes.', ['url.redirect_rejected', 'url.path_outside_prefixes']);
  }
  const query = next.search.replace(/^\?/, '');
  if (query.length > MAX_QUERY_BYTES) refuse('url_rejected', 'The redirect query is too long.', ['url.redirect_rejected', 'url.query_too_long']);
  return { path, fullPath: full, query };
}
