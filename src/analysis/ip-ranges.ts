/**
 * IP address classification for the SSRF defence of the API tools. Pure: strings in, classes out.
 *
 * Only addresses that are `global` may be reached through an upstream that is not marked
 * `internal`. Ranges follow the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
 * its updates); IPv6 outside 2000::/3 is not allocated for global unicast and counts as reserved.
 * Addresses that embed an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4) are classified by
 * the address they reach: `::ffff:127.0.0.1` is loopback, not "some IPv6 address".
 */
import net from 'node:net';

export type IpClass =
  | 'global'
  | 'unspecified'
  | 'this_network'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link_local'
  | 'unique_local'
  | 'site_local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking'
  | 'ipv4_mapped'
  | 'ipv4_compatible';

/** Classes no upstream may reach, `internal` or not: they are never a real server's address. */
export const NEVER_REACHABLE: ReadonlySet<IpClass> = new Set(['unspecified', 'this_network', 'multicast', 'broadcast']);

export interface ParsedIp {
  readonly version: 4 | 6;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
}

export interface Classification {
  readonly address: string;
  readonly version: 4 | 6;
  readonly class: IpClass;
  /** The IPv4 address an IPv6 form embeds (mapped, compatible, NAT64, 6to4), when it does. */
  readonly embedded?: string;
}

function parseV4(s: string): Uint8Array | undefined {
  if (!net.isIPv4(s)) return undefined;
  const parts = s.split('.');
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) out[i] = Number(parts[i]);
  return out;
}

function parseV6(input: string): Uint8Array | undefined {
  // A zone index (fe80::1%eth0) names an interface, not part of the address.
  const s = input.includes('%') ? input.slice(0, input.indexOf('%')) : input;
  if (!net.isIPv6(s)) return undefined;
  let head = s;
  let tailV4: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (!tailV4) return undefined;
    head = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const left = halves[0] ? halves[0].split(':') : [];
  const right = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 0) return undefined;
  const groups = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i] as string, 16);
    if (!Number.isInteger(g) || g < 0 || g > 0xffff) return undefined;
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  if (tailV4) out.set(tailV4, 12);
  return out;
}

/** Parse a literal IPv4 (dotted quad only) or IPv6 address; brackets are accepted around IPv6. */
export function parseIp(address: string): ParsedIp | undefined {
  const a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const v4 = parseV4(a);
  if (v4) return { version: 4, bytes: v4 };
  const v6 = parseV6(a);
  if (v6) return { version: 6, bytes: v6 };
  return undefined;
}

/** Does `bytes` start with the first `bits` bits of `prefix`? */
function inPrefix(bytes: Uint8Array, prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i += 8) {
    const take = Math.min(8, bits - i);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((bytes[i / 8] as number) & mask) !== (((prefix[i / 8] ?? 0) as number) & mask)) return false;
  }
  return true;
}

type Range = readonly [prefix: readonly number[], bits: number, cls: IpClass];

// Order matters: the first matching range wins, so narrower ranges precede the ones containing them.
const V4_RANGES: readonly Range[] = [
  [[255, 255, 255, 255], 32, 'broadcast'],
  [[0, 0, 0, 0], 32, 'unspecified'],
  [[0], 8, 'this_network'],
  [[10], 8, 'private'],
  [[100, 64], 10, 'cgnat'],
  [[127], 8, 'loopback'],
  [[169, 254], 16, 'link_local'],
  [[172, 16], 12, 'private'],
  [[192, 0, 0], 24, 'reserved'], // IETF protocol assignments
  [[192, 0, 2], 24, 'documentation'],
  [[192, 88, 99], 24, 'reserved'], // deprecated 6to4 relay anycast
  [[192, 168], 16, 'private'],
  [[198, 18], 15, 'benchmarking'],
  [[198, 51, 100], 24, 'documentation'],
  [[203, 0, 113], 24, 'documentation'],
  [[224], 4, 'multicast'],
  [[240], 4, 'reserved'],
];

function classifyV4Bytes(b: Uint8Array): IpClass {
  for (const [prefix, bits, cls] of V4_RANGES) if (inPrefix(b, prefix, bits)) return cls;
  return 'global';
}

function v4String(b: Uint8Array, offset: number): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

function allZero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/** An embedded IPv4 address that is not itself global makes the IPv6 form non-global too. */
function viaEmbedded(b: Uint8Array, offset: number, ownClass: IpClass | 'as_embedded'): { cls: IpClass; embedded: string } {
  const v4 = b.subarray(offset, offset + 4);
  const inner = classifyV4Bytes(v4);
  const embedded = v4String(b, offset);
  if (ownClass === 'as_embedded') return { cls: inner, embedded };
  return { cls: inner === 'global' ? ownClass : inner, embedded };
}

function classifyV6Bytes(b: Uint8Array): { cls: IpClass; embedded?: string } {
  if (allZero(b, 0, 16)) return { cls: 'unspecified' };
  if (allZero(b, 0, 15) && b[15] === 1) return { cls: 'loopback' };
  // ::ffff:a.b.c.d (IPv4-mapped): the socket would reach the IPv4 address.
  if (allZero(b, 0, 10) && b[10] === 0xff && b[11] === 0xff) return viaEmbedded(b, 12, 'ipv4_mapped');
  // ::ffff:0:a.b.c.d (SIIT IPv4-translated).
  if (allZero(b, 0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return viaEmbedded(b, 12, 'ipv4_mapped');
  // ::a.b.c.d (IPv4-compatible, deprecated): never a legitimate DNS answer.
  if (allZero(b, 0, 12)) return viaEmbedded(b, 12, 'ipv4_compatible');
  // 64:ff9b::/96 (well-known NAT64 prefix): reaches the embedded IPv4 address through the translator.
  if (inPrefix(b, [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], 96)) return viaEmbedded(b, 12, 'as_embedded');
  // 64:ff9b:1::/48 (local-use NAT64).
  if (inPrefix(b, [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01], 48)) return { cls: 'private', embedded: v4String(b, 12) };
  // 100::/64 discard-only.
  if (inPrefix(b, [0x01, 0x00, 0, 0, 0, 0, 0, 0], 64)) return { cls: 'reserved' };
  // 2001:db8::/32 and 3fff::/20 documentation.
  if (inPrefix(b, [0x20, 0x01, 0x0d, 0xb8], 32)) return { cls: 'documentation' };
  if (inPrefix(b, [0x3f, 0xff], 20)) return { cls: 'documentation' };
  // 2001::/23 IETF protocol assignments (Teredo 2001::/32, ORCHID, benchmarking 2001:2::/48, ...).
  if (inPrefix(b, [0x20, 0x01, 0x00], 23)) return { cls: 'reserved' };
  // 2002::/16 6to4: reaches the embedded IPv4 address.
  if (inPrefix(b, [0x20, 0x02], 16)) return viaEmbedded(b, 2, 'global');
  if (inPrefix(b, [0xfc], 7)) return { cls: 'unique_local' };
  if (inPrefix(b, [0xfe, 0x80], 10)) return { cls: 'link_local' };
  if (inPrefix(b, [0xfe, 0xc0], 10)) return { cls: 'site_local' };
  if (inPrefix(b, [0xff], 8)) return { cls: 'multicast' };
  // 5f00::/16 SRv6 SIDs.
  if (inPrefix(b, [0x5f, 0x00], 16)) return { cls: 'reserved' };
  // Global unicast is 2000::/3; everything else is unallocated.
  if (inPrefix(b, [0x20], 3)) return { cls: 'global' };
  return { cls: 'reserved' };
}

/** Classify a literal address; anything that is not a literal address is `reserved` (refused). */
export function classifyIp(address: string): Classification {
  const p = parseIp(address);
  if (!p) return { address, version: 4, class: 'reserved' };
  if (p.version === 4) return { address, version: 4, class: classifyV4Bytes(p.bytes) };
  const { cls, embedded } = classifyV6Bytes(p.bytes);
  return embedded === undefined ? { address, version: 6, class: cls } : { address, version: 6, class: cls, embedded };
}

export function isGlobal(address: string): boolean {
  return classifyIp(address).class === 'global';
}

export interface Cidr {
  readonly text: string;
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** Parse `a.b.c.d/n` or `x::y/n` (a bare address is a /32 or /128). Throws on malformed input. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const p = parseIp(addr);
  if (!p) throw new Error(`not an IP address: ${addr}`);
  const max = p.version === 4 ? 32 : 128;
  const bits = slash === -1 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (slash !== -1 && !/^\d{1,3}$/.test(text.slice(slash + 1)))) {
    throw new Error(`bad prefix length in ${text}`);
  }
  return { text, version: p.version, bytes: p.bytes, bits };
}

/** Is the address inside the range? IPv4-mapped IPv6 addresses match IPv4 ranges by the address they reach. */
export function cidrContains(cidr: Cidr, address: string): boolean {
  const p = parseIp(address);
  if (!p) return false;
  let bytes = p.bytes;
  let version = p.version;
  if (version === 6 && cidr.version === 4 && allZero(bytes, 0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) {
    bytes = bytes.subarray(12);
    version = 4;
  }
  if (version !== cidr.version) return false;
  return inPrefix(bytes, [...cidr.bytes], cidr.bits);
}

/** 127.0.0.0/8, ::1, and the IPv4-mapped form of 127/8 (how a dual-stack socket reports IPv4 peers). */
export function isLoopback(address: string): boolean {
  const a = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (net.isIPv4(a)) return a.startsWith('127.');
  return a === '::1';
}
