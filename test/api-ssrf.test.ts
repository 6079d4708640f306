/**
 * SSRF defence of call_api through the real gate (policy wasm, audit log): a corpus of hostile
 * paths, misconfigured upstreams that point at loopback or private space, names that resolve
 * there (injected resolver), DNS rebinding between the check and the connection and between
 * redirect hops, and redirects off the upstream. Every one is refused with url_rejected, and the
 * canary servers on loopback count zero requests. The legitimate upstream runs on loopback too, so
 * it is marked internal; the point is that nothing else gets there.
 */
import crypto from 'node:crypto';
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { inProcessGate, type InProcessGate } from './helpers/gate.js';
import { startUpstream, writePolicyData, type TestUpstream } from './helpers/upstreams.js';
import { canonicalPath, judgeAddress } from '../src/analysis/url.js';
import { classifyIp, cidrContains, parseCidr, type IpClass } from '../src/analysis/ip-ranges.js';
import { DenialError } from '../src/core/denial.js';
import type { GateOutcome } from '../src/core/call.js';
import type { ApiRuntime } from '../src/tools/api/runtime.js';
import { runGate } from '../src/gate/run.js';
import { policyQuestions, type PolicyQuestions } from '../src/policy/questions.js';
import { UnavailablePolicy } from '../src/policy/engine.js';
import { PolicyError } from '../src/policy/types.js';

// ------------------------------------------------------------------------------------------
// IP classification (pure)
// ------------------------------------------------------------------------------------------

t.test('IP classification: every special range, IPv4 and IPv6, and the forms that embed IPv4', async (t) => {
  const table: [string, IpClass][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'global'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['100.128.0.1', 'global'],
    ['169.254.169.254', 'link_local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'this_network'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['192.0.0.8', 'reserved'],
    ['8.8.8.8', 'global'],
    ['93.184.216.34', 'global'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['fc00::1', 'unique_local'],
    ['fd12:3456::1', 'unique_local'],
    ['ff02::1', 'multicast'],
    ['fec0::1', 'site_local'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'link_local'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:8.8.8.8', 'ipv4_mapped'],
    ['::127.0.0.1', 'loopback'],
    ['::8.8.8.8', 'ipv4_compatible'],
    ['::ffff:0:127.0.0.1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'link_local'],
    ['64:ff9b::808:808', 'global'],
    ['64:ff9b:1::1', 'private'],
    ['2002:7f00:1::1', 'loopback'],
    ['2002:0a00:0001::1', 'private'],
    ['2002:0808:0808::1', 'global'],
    ['2001:db8::1', 'documentation'],
    ['2001::1', 'reserved'],
    ['100::1', 'reserved'],
    ['3fff::1', 'documentation'],
    ['5f00::1', 'reserved'],
    ['2606:4700:4700::1111', 'global'],
    ['2a00:1450:4001:81b::200e', 'global'],
    ['4000::1', 'reserved'],
    ['not-an-ip', 'reserved'],
  ];
  for (const [address, cls] of table) t.equal(classifyIp(address).class, cls, `${address} is ${cls}`);
  t.equal(classifyIp('::ffff:127.0.0.1').embedded, '127.0.0.1', 'the embedded address is reported');
});

t.test('CIDR ranges and the internal/allowed_cidrs judgement', async (t) => {
  t.ok(cidrContains(parseCidr('10.0.0.0/8'), '10.9.8.7'));
  t.notOk(cidrContains(parseCidr('10.0.0.0/8'), '11.0.0.1'));
  t.ok(cidrContains(parseCidr('127.0.0.1/32'), '::ffff:127.0.0.1'), 'mapped IPv6 matches an IPv4 range');
  t.ok(cidrContains(parseCidr('fd00::/8'), 'fd00::5'));
  t.notOk(cidrContains(parseCidr('fd00::/8'), '10.0.0.1'));
  t.throws(() => parseCidr('10.0.0.0/33'));
  t.throws(() => parseCidr('10.0.0/8'));
  const open = { internal: false, allowedCidrs: [] };
  const internal = { internal: true, allowedCidrs: [] };
  const narrow = { internal: true, allowedCidrs: [parseCidr('127.0.0.1/32')] };
  t.notOk(judgeAddress(open, '127.0.0.1').allowed);
  t.ok(judgeAddress(open, '8.8.8.8').allowed);
  t.ok(judgeAddress(internal, '10.0.0.1').allowed);
  t.notOk(judgeAddress(internal, '0.0.0.0').allowed, 'unspecified is never reachable, even internally');
  t.notOk(judgeAddress(internal, '224.0.0.1').allowed, 'multicast is never reachable');
  t.notOk(judgeAddress(internal, '255.255.255.255').allowed, 'broadcast is never reachable');
  t.ok(judgeAddress(narrow, '127.0.0.1').allowed);
  t.equal(judgeAddress(narrow, '127.0.0.2').reason, 'url.address_outside_allowed_cidrs');
});

// ------------------------------------------------------------------------------------------
// Path canonicalisation (pure), including a property test
// ------------------------------------------------------------------------------------------

function rejection(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof DenialError) return err.denial.reasons[0];
    throw err;
  }
}

t.test('canonical paths: encodings normalised, nothing resolved', async (t) => {
  t.equal(canonicalPath('/repos/a/b').path, '/repos/a/b');
  t.equal(canonicalPath('/%7euser/%41bc').path, '/~user/Abc', 'percent-encoded unreserved characters are decoded');
  t.equal(canonicalPath('/a%3fb%23c').path, '/a%3Fb%23c', 'other encodings stay encoded, upper-cased');
  t.equal(canonicalPath('/café').path, '/caf%C3%A9', 'non-ASCII is percent-encoded as UTF-8');
  t.equal(canonicalPath('/users/@me').path, '/users/@me');
  t.equal(canonicalPath('/dir/').path, '/dir/', 'a trailing slash is kept');
  t.equal(canonicalPath('/100%25').path, '/100%25', 'a literal percent sign survives');
  // RFC 3986 remove_dot_segments for "." only: it cannot move the path, so it is removed, not refused.
  t.equal(canonicalPath('/a/./b').path, '/a/b', 'a single-dot segment is removed');
  t.equal(canonicalPath('/items/%2e/42').path, '/items/42', 'an encoded single dot is removed too');
  t.equal(canonicalPath('/items/%2E/./42').path, '/items/42');
  t.equal(canonicalPath('/./items').path, '/items', 'a leading "." is removed');
  t.equal(canonicalPath('/items/.').path, '/items/', 'a final "." leaves the directory, as RFC 3986 does');
  t.equal(canonicalPath('/%2e').path, '/');
  t.equal(canonicalPath('/.').path, '/');
  // Everything that is not exactly one dot is still refused: ".." in any encoding, and look-alikes.
  for (const raw of [
    '/a/../b',
    '/a/%2e%2e/b',
    '/a/.%2E/b',
    '/a/./../b',
    '/a/.;x/b',
    '/a/..;/b',
    '/a/./%2e./b',
    '/a/...',
    '/a/%20./b',
    '/a/．/b',
    '/a/．．/b',
    '/a/%EF%BC%8E/b',
  ]) {
    t.ok(
      ['url.dot_segment', 'url.bad_character'].includes(rejection(() => canonicalPath(raw)) ?? ''),
      `${raw} refused (${rejection(() => canonicalPath(raw))})`,
    );
  }
  t.equal(
    rejection(() => canonicalPath('/a/.//b')),
    'url.empty_segment',
    'removing "." does not hide an empty segment',
  );
});

t.test('property: every accepted path is canonical, idempotent and free of traversal', async (t) => {
  const token = fc.constantFrom(
    'a',
    'B',
    '0',
    '.',
    '..',
    '%2e',
    '%2E',
    '%2f',
    '%5c',
    '%25',
    '%00',
    '%0d%0a',
    ';',
    '~',
    '-',
    '_',
    '/',
    '//',
    '\\',
    '．',
    '／',
    'é',
    '%c3%a9',
    '%ff',
    '@',
    ':',
    ' ',
    '\t',
    '?',
    '#',
    '%u002e',
  );
  const pathArb = fc.array(token, { minLength: 1, maxLength: 12 }).map((parts) => `/${parts.join('')}`);
  fc.assert(
    fc.property(pathArb, (raw) => {
      let out: string;
      try {
        out = canonicalPath(raw).path;
      } catch (err) {
        if (err instanceof DenialError && err.denial.code === 'url_rejected') return true;
        throw err;
      }
      const segments = out.split('/').slice(1);
      for (const [i, seg] of segments.entries()) {
        const decoded = decodeURIComponent(seg);
        if (/^\.+$/.test(decoded.split(';')[0]!.trim())) return false;
        if (/[/\\\u0000-\u001f]/.test(decoded)) return false;
        if (seg === '' && i !== segments.length - 1) return false;
      }
      return out.startsWith('/') && !out.startsWith('//') && !/[\s\\?#]/.test(out) && canonicalPath(out).path === out;
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 random hostile paths: refused, or canonical and safe');
});

// ------------------------------------------------------------------------------------------
// The gate, end to end
// ------------------------------------------------------------------------------------------

interface World {
  readonly sb: Sandbox;
  readonly gate: InProcessGate;
  readonly legit: TestUpstream;
  /** 127.0.0.1, a different port: every loopback trick aims here. */
  readonly canary: TestUpstream;
  /** 127.0.0.2 on the legit port: where a rebinding resolver points. */
  readonly canary2: TestUpstream;
  /** ::1 on the canary's port. */
  readonly canary6: TestUpstream | undefined;
  readonly lookups: Map<string, number>;
  readonly outcomes: GateOutcome[];
  call(args: Record<string, unknown>): Promise<GateOutcome>;
}

async function world(t: Test): Promise<World> {
  const legit = await startUpstream();
  const canary = await startUpstream();
  const canary2 = await startUpstream({ host: '127.0.0.2', port: legit.port });
  let canary6: TestUpstream | undefined;
  try {
    canary6 = await startUpstream({ host: '::1', port: canary.port });
  } catch {
    canary6 = undefined; // no IPv6 loopback here: the refusals below still hold, there is just nothing to count
  }
  const C = canary.port;
  const L = legit.port;
  const misconfigured: Record<string, string> = {
    decimal: `http://2130706433:${C}/`,
    octal: `http://0177.0.0.1:${C}/`,
    hex: `http://0x7f.1:${C}/`,
    short: `http://127.1:${C}/`,
    loopback: `http://127.0.0.1:${C}/api/`,
    v6loop: `http://[::1]:${C}/`,
    mapped: `http://[::ffff:127.0.0.1]:${C}/`,
    mapped_hex: `http://[::ffff:7f00:1]:${C}/`,
    compat: `http://[::127.0.0.1]:${C}/`,
    nat64: `http://[64:ff9b::7f00:1]:${C}/`,
    zero: `http://0.0.0.0:${C}/`,
    zero_short: `http://0:${C}/`,
    unspec6: `http://[::]:${C}/`,
    localhost: `http://localhost:${C}/`,
    localhost_dot: `http://localhost.:${C}/`,
    sub_localhost: `http://api.localhost:${C}/`,
    metadata: 'http://169.254.169.254/latest/',
    private10: `http://10.0.0.1:${C}/`,
    private192: `http://192.168.0.1:${C}/`,
    cgnat: `http://100.64.0.1:${C}/`,
    ula: `http://[fd00::1]:${C}/`,
    linklocal6: `http://[fe80::1]:${C}/`,
    multicast: `http://224.0.0.1:${C}/`,
    broadcast: `http://255.255.255.255:${C}/`,
    rebind: `http://rebind.test:${C}/`,
    mixed: `http://mixed.test:${C}/`,
    dns_mapped: `http://mapped.test:${C}/`,
    dns_nat64: `http://nat64.test:${C}/`,
    dns_metadata: 'http://metadata.test/',
    dns_fail: `http://nxdomain.test:${C}/`,
  };
  const apis: Record<string, unknown> = {
    legit: { base_url: `${legit.origin}/v1/`, internal: true, follow_redirects: 3, methods: ['GET', 'POST'], retries: 0 },
    legit_noredirect: { base_url: `${legit.origin}/v1/`, internal: true, retries: 0 },
    prefixed: { base_url: `${legit.origin}/v1/`, internal: true, path_prefixes: ['/json', '/public/'], retries: 0 },
    // A name the injected resolver answers with 127.0.0.1 once, then with 127.0.0.2.
    pinned: { base_url: `http://pin.test:${L}/v1/`, internal: true, retries: 0 },
    narrow: { base_url: `http://svc.test:${L}/v1/`, internal: true, allowed_cidrs: ['127.0.0.1/32'], follow_redirects: 2, retries: 0 },
    ...Object.fromEntries(Object.entries(misconfigured).map(([name, base_url]) => [name, { base_url, retries: 0, timeout_ms: 2000 }])),
  };
  const sb = makeSandbox({ apis, policy: { data: 'policy-data.json' } });
  writePolicyData(sb.dir, Object.keys(apis), undefined, { denied_paths: { legit: ['/private/'] } });
  const gate = await inProcessGate(sb.configPath);
  const lookups = new Map<string, number>();
  const answers: Record<string, string[][]> = {
    'rebind.test': [['127.0.0.1']],
    'mixed.test': [['93.184.216.34', '127.0.0.1']],
    'mapped.test': [['::ffff:127.0.0.1']],
    'nat64.test': [['64:ff9b::7f00:1']],
    'metadata.test': [['169.254.169.254']],
    'pin.test': [['127.0.0.1'], ['127.0.0.2']],
    'svc.test': [['127.0.0.1'], ['127.0.0.2']],
  };
  (gate.app.deps.toolEnv.api as ApiRuntime).useResolver(async (host) => {
    const n = (lookups.get(host) ?? 0) + 1;
    lookups.set(host, n);
    const seq = answers[host];
    if (!seq) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return seq[Math.min(n, seq.length) - 1] as string[];
  });
  const outcomes: GateOutcome[] = [];
  t.teardown(async () => {
    await gate.close();
    await Promise.all([legit.close(), canary.close(), canary2.close(), canary6?.close()]);
    sb.cleanup();
  });
  return {
    sb,
    gate,
    legit,
    canary,
    canary2,
    canary6,
    lookups,
    outcomes,
    call: async (args) => {
      const o = await gate.call('call_api', args);
      outcomes.push(o);
      return o;
    },
  };
}

/** A test name that TAP can carry: ASCII only (U+2028 in a name would end the line for the parser). */
function label(s: string): string {
  return JSON.stringify(s.slice(0, 40)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function refusedAsUrl(t: Test, o: GateOutcome, label: string, reason?: string): void {
  t.equal(o.status, 'denied', `${label}: denied`);
  t.equal(o.denial?.code, 'url_rejected', `${label}: url_rejected (${o.denial?.reasons.join(', ')})`);
  if (reason) t.ok(o.denial?.reasons.includes(reason), `${label}: reason ${reason}`);
  t.equal(o.decision, undefined, `${label}: refused before the policy`);
}

t.test('SSRF corpus: hostile paths, misconfigured upstreams, resolvers, rebinding, redirects', async (t) => {
  const w = await world(t);

  // The legitimate upstream works, so the refusals below are not a broken setup.
  const ok = await w.call({ api: 'legit', path: '/json' });
  t.equal(ok.status, 'ok', 'legit upstream answers');
  t.same(ok.result?.structured.body, { ok: true, items: [1, 2, 3], name: 'bulwark' });

  // A single-dot segment is harmless once removed: the upstream gets the resolved path, which is
  // what the policy decided on.
  const before = w.legit.count('/v1/json');
  const dotted = await w.call({ api: 'legit', path: '/./json' });
  t.equal(dotted.status, 'ok', '/./json is answered (the "." removed)');
  t.same(dotted.result?.structured.body, { ok: true, items: [1, 2, 3], name: 'bulwark' });
  t.equal(w.legit.count('/v1/json'), before + 1, 'the upstream saw /v1/json, the resolved path');
  t.equal(w.legit.seen.filter((s) => s.url.includes('/.')).length, 0, 'no dot segment reached the upstream');
  const encodedDot = await w.call({ api: 'legit', path: '/%2E/json' });
  t.equal(encodedDot.status, 'ok', '/%2E/json is answered too');
  const dotDot = await w.call({ api: 'legit', path: '/./../json' });
  refusedAsUrl(t, dotDot, '/./../json', 'url.dot_segment');

  const hostilePaths: [string, string][] = [
    [`http://127.0.0.1:${w.canary.port}/`, 'url.absolute_url'],
    ['https://evil.example/', 'url.absolute_url'],
    ['file:///etc/passwd', 'url.absolute_url'],
    ['javascript:alert(1)', 'url.absolute_url'],
    [`//127.0.0.1:${w.canary.port}/x`, 'url.authority_in_path'],
    ['//evil.example', 'url.authority_in_path'],
    [`@127.0.0.1:${w.canary.port}/x`, 'url.not_absolute_path'],
    [`user@127.0.0.1:${w.canary.port}/`, 'url.not_absolute_path'],
    [' /json', 'url.not_absolute_path'],
    ['', 'url.path_empty'],
    ['/x/../../admin', 'url.dot_segment'],
    ['/..', 'url.dot_segment'],
    ['/%2e%2e/secret', 'url.dot_segment'],
    ['/%2E%2e/x', 'url.dot_segment'],
    ['/.%2e/x', 'url.dot_segment'],
    ['/..;/admin', 'url.dot_segment'],
    ['/．．/x', 'url.dot_segment'],
    ['/%252e%252e/x', 'url.double_encoding'],
    ['/%25252e/x', 'url.double_encoding'],
    ['/％２ｅ％２ｅ/x', 'url.double_encoding'],
    ['/a%2fb', 'url.encoded_separator'],
    ['/a%2F..%2Fb', 'url.encoded_separator'],
    ['/a%5cb', 'url.encoded_separator'],
    ['/a\\b', 'url.backslash'],
    ['/\\\\evil/x', 'url.backslash'],
    ['/x／..', 'url.unicode_separator'],
    ['/x\r\nHost: evil', 'url.control_character'],
    ['/x%0d%0aSet-Cookie:%20a=b', 'url.control_character'],
    ['/x\u0000y', 'url.control_character'],
    ['/x%00y', 'url.control_character'],
    ['/\t/x', 'url.control_character'],
    ['/x\u2028', 'url.control_character'],
    ['/%u002e%u002e/x', 'url.bad_percent_encoding'],
    ['/%c0%ae%c0%ae/x', 'url.bad_percent_encoding'],
    ['/x y', 'url.bad_character'],
    ['/x?y=1', 'url.query_in_path'],
    ['/x#frag', 'url.fragment_in_path'],
    ['/a//b', 'url.empty_segment'],
    [`/${'a'.repeat(5000)}`, 'url.path_too_long'],
    [`/${'%41'.repeat(1000)}`, 'url.path_too_long'],
  ];
  for (const [p, reason] of hostilePaths) refusedAsUrl(t, await w.call({ api: 'legit', path: p }), `path ${label(p)}`, reason);
  t.ok(hostilePaths.length >= 30, `${hostilePaths.length} hostile paths`);

  refusedAsUrl(t, await w.call({ api: 'nope', path: '/json' }), 'unknown upstream', 'url.unknown_upstream');
  const unknown = await w.call({ api: 'nope', path: '/json' });
  t.ok((unknown.denial?.detail?.available as string[]).includes('legit'), 'the refusal lists the available upstreams');
  t.match(unknown.denial?.message, /available: .*legit/);
  refusedAsUrl(t, await w.call({ api: 'prefixed', path: '/echo' }), 'outside path_prefixes', 'url.path_outside_prefixes');
  refusedAsUrl(t, await w.call({ api: 'prefixed', path: '/jsonx' }), 'prefix by whole segments', 'url.path_outside_prefixes');
  t.equal((await w.call({ api: 'prefixed', path: '/json' })).status, 'ok', 'inside path_prefixes');
  refusedAsUrl(t, await w.call({ api: 'legit', method: 'DELETE', path: '/json' }), 'method not configured', 'url.method_not_configured');
  refusedAsUrl(t, await w.call({ api: 'legit', path: '/json', body: { a: 1 } }), 'GET with a body', 'url.body_not_allowed');
  refusedAsUrl(t, await w.call({ api: 'legit', path: '/json', query: { a: 'x\r\nHost: evil' } }), 'CRLF in a query value', 'url.control_character');

  // Upstreams whose base URL (or resolved name) is loopback, private, link-local, ... without internal: true.
  const misconfigured = [
    'decimal',
    'octal',
    'hex',
    'short',
    'loopback',
    'v6loop',
    'mapped',
    'mapped_hex',
    'compat',
    'nat64',
    'zero',
    'zero_short',
    'unspec6',
    'localhost',
    'localhost_dot',
    'sub_localhost',
    'metadata',
    'private10',
    'private192',
    'cgnat',
    'ula',
    'linklocal6',
    'multicast',
    'broadcast',
    'rebind',
    'mixed',
    'dns_mapped',
    'dns_nat64',
    'dns_metadata',
    'dns_fail',
  ];
  for (const api of misconfigured) refusedAsUrl(t, await w.call({ api, path: '/x' }), `upstream ${api}`);
  const reasonOf = async (api: string) => (await w.call({ api, path: '/x' })).denial?.reasons ?? [];
  t.ok((await reasonOf('decimal')).includes('url.address_loopback'), 'decimal IPv4 is loopback');
  t.ok((await reasonOf('mapped')).includes('url.address_loopback'), 'IPv4-mapped loopback is loopback');
  t.ok((await reasonOf('metadata')).includes('url.address_link_local'), 'the metadata address is link-local');
  t.ok((await reasonOf('zero')).includes('url.address_unspecified'));
  t.ok((await reasonOf('mixed')).includes('url.address_loopback'), 'one loopback answer among public ones refuses the name');
  t.ok((await reasonOf('dns_fail')).includes('url.dns_failed'));
  t.ok((await reasonOf('cgnat')).includes('url.address_cgnat'));

  // DNS rebinding between the check and the connection: the executor dials the checked address.
  const pinned = await w.call({ api: 'pinned', path: '/echo' });
  t.equal(pinned.status, 'ok', 'pinned upstream answers');
  t.equal(w.lookups.get('pin.test'), 1, 'one lookup per call: the executor does not resolve again');
  const echoed = pinned.result?.structured.body as { headers: Record<string, string> };
  t.equal(echoed.headers.host, `pin.test:${w.legit.port}`, 'the Host header keeps the upstream name');
  t.equal(w.legit.seen.at(-1)?.localAddress, '127.0.0.1', 'the request arrived at the checked address');
  const pinnedRecord = readAudit(w.sb.auditPath).find((r) => r.request_id === pinned.requestId);
  t.same(pinnedRecord?.facts?.url?.addresses, ['127.0.0.1'], 'the audited facts carry the checked addresses');

  // Redirects: off the upstream, to other schemes, out of the base path; and rebinding per hop.
  const C = w.canary.port;
  const L = w.legit.port;
  const redirects: [string, string][] = [
    [`http://127.0.0.1:${C}/`, 'url.redirect_off_upstream'],
    [`http://localhost:${L}/v1/json`, 'url.redirect_off_upstream'],
    [`http://[::1]:${C}/`, 'url.redirect_off_upstream'],
    ['http://169.254.169.254/latest/meta-data/', 'url.redirect_off_upstream'],
    [`http://2130706433:${C}/`, 'url.redirect_off_upstream'],
    [`http://0x7f.1:${C}/`, 'url.redirect_off_upstream'],
    [`//127.0.0.1:${C}/x`, 'url.redirect_off_upstream'],
    [`http://user:pw@127.0.0.1:${L}/v1/json`, 'url.redirect_off_upstream'],
    ['/v1/../admin', 'url.outside_base'],
    ['/v1/%2e%2e/admin', 'url.outside_base'],
    ['/elsewhere', 'url.outside_base'],
    ['file:///etc/passwd', 'url.redirect_scheme'],
    [`gopher://127.0.0.1:${C}/_x`, 'url.redirect_scheme'],
  ];
  for (const [to, reason] of redirects) {
    const o = await w.call({ api: 'legit', path: '/redirect', query: { to } });
    refusedAsUrl(t, { ...o, decision: undefined }, `redirect to ${label(to)}`, reason);
    t.ok(o.denial?.reasons.includes('url.redirect_rejected'), `redirect to ${label(to)}: url.redirect_rejected`);
  }
  const followed = await w.call({ api: 'legit', path: '/redirect', query: { to: '/v1/json' } });
  t.equal(followed.status, 'ok', 'a redirect on the upstream is followed');
  t.equal(followed.result?.structured.redirects, 1);
  t.equal(followed.result?.structured.path, '/json', 'the result names the final path');
  const policyHop = await w.call({ api: 'legit', path: '/redirect', query: { to: '/v1/private/keys' } });
  t.equal(policyHop.denial?.code, 'policy_denied', 'a redirect hop is decided by the policy too');
  t.same(policyHop.denial?.reasons, ['url.redirect_rejected', 'url.path_denied']);
  t.equal(w.legit.count('/v1/private'), 0, 'the denied hop was not requested');
  // Each hop's answer is in the call's record: where the request went, and where it was refused.
  const hopRecords = readAudit(w.sb.auditPath);
  const hopsOf = (o: GateOutcome) => hopRecords.find((r) => r.request_id === o.requestId && r.event !== 'intent')?.facts?.url?.hops;
  t.same(hopsOf(followed), [{ redirect: 1, method: 'GET', path: '/json', allow: true, reasons: [] }], 'a followed hop is recorded with the answer');
  t.same(hopsOf(policyHop), [{ redirect: 1, method: 'GET', path: '/private/keys', allow: false, reasons: ['url.path_denied'] }], 'a refused hop too');
  t.equal(hopRecords.find((r) => r.request_id === policyHop.requestId)?.facts?.url?.path, '/redirect', "the call's own url facts are unchanged");

  // A policy that cannot answer for a hop (the call's own decision could be made): not followed, and recorded.
  const jsonRequests = w.legit.count('/v1/json');
  // The live policy is pinned per call together with its own questions (gate/deps.ts pinPolicy):
  // hand the gate the engine already pinned, so these stand-in questions are the ones the tool asks.
  const withHopPolicy = (policy: PolicyQuestions | undefined) => {
    const live = w.gate.app.deps;
    return { ...live, policy: live.policy.pin?.() ?? live.policy, toolEnv: { ...live.toolEnv, policy } };
  };
  const context = () => ({ transport: 'stdio' as const, requestId: crypto.randomUUID(), receivedAt: new Date(), signal: new AbortController().signal });
  const redirectToJson = { tool: 'call_api', args: { api: 'legit', path: '/redirect', query: { to: '/v1/json' } } };
  const unavailable = policyQuestions(new UnavailablePolicy(new PolicyError('policy.evaluation_failed', 'trap')));
  const unanswered = await runGate({ ...redirectToJson, context: context() }, withHopPolicy(unavailable));
  t.equal(unanswered.decision?.allow, true, 'the call itself was allowed');
  t.equal(unanswered.denial?.code, 'policy_error', 'a hop the policy cannot answer for is not followed');
  t.same(unanswered.denial?.reasons, ['url.redirect_rejected']);
  const unansweredRecord = readAudit(w.sb.auditPath).find((r) => r.request_id === unanswered.requestId);
  t.same(unansweredRecord?.facts?.url?.hops, [{ redirect: 1, method: 'GET', path: '/json', allow: false, reasons: [], error: 'policy.evaluation_failed' }]);
  const unasked = await runGate({ ...redirectToJson, context: context() }, withHopPolicy(undefined));
  t.equal(unasked.denial?.code, 'url_rejected', "without the policy's questions no hop is followed");
  t.same(unasked.denial?.reasons, ['url.redirect_rejected', 'url.redirect_unauthorised']);
  t.equal(w.legit.count('/v1/json'), jsonRequests, 'neither hop was requested');
  w.outcomes.push(unanswered, unasked);
  const notFollowed = await w.call({ api: 'legit_noredirect', path: '/redirect', query: { to: `http://127.0.0.1:${C}/` } });
  t.equal(notFollowed.result?.structured.status, 302, 'without follow_redirects the 302 itself is the answer');
  t.equal(notFollowed.result?.structured.redirects, 0);

  // Rebinding at a redirect hop: the hop is re-resolved, and 127.0.0.2 is outside allowed_cidrs.
  const hop = await w.call({ api: 'narrow', path: '/redirect', query: { to: '/v1/json' } });
  refusedAsUrl(t, { ...hop, decision: undefined }, 'rebinding at a redirect hop', 'url.address_outside_allowed_cidrs');
  t.equal(w.lookups.get('svc.test'), 2, 'the hop was resolved again');

  // Nothing reached the canaries.
  t.equal(w.canary.count(), 0, 'the loopback canary received zero requests');
  t.equal(w.canary2.count(), 0, 'the rebinding canary (127.0.0.2) received zero requests');
  if (w.canary6) t.equal(w.canary6.count(), 0, 'the IPv6 loopback canary received zero requests');
  t.notOk(
    w.legit.seen.some((s) => /admin|elsewhere|secret/.test(s.url.split('?')[0] as string)),
    'the legit upstream saw none of the escaped paths',
  );

  // Every call left one audit record with the same verdict.
  const records = readAudit(w.sb.auditPath);
  t.equal(records.length, w.outcomes.length, 'one audit record per call');
  const byId = new Map(records.map((r) => [r.request_id as string, r]));
  t.ok(
    w.outcomes.every((o) => byId.get(o.requestId)?.outcome.code === (o.denial?.code ?? null)),
    'audited codes match',
  );
});

t.test('property: IPv4 forms embedded in IPv6 classify as the address they reach', async (t) => {
  fc.assert(
    fc.property(fc.ipV4(), (v4) => {
      const c = classifyIp(v4).class;
      const mapped = classifyIp(`::ffff:${v4}`).class;
      const nat64 = classifyIp(`64:ff9b::${v4}`).class;
      const open = { internal: false, allowedCidrs: [] };
      return (
        (c === 'global' ? mapped === 'ipv4_mapped' : mapped === c) &&
        nat64 === c &&
        judgeAddress(open, `::ffff:${v4}`).allowed === false &&
        judgeAddress(open, v4).allowed === (c === 'global')
      );
    }),
    { numRuns: 5000 },
  );
  fc.assert(
    fc.property(fc.ipV6(), (v6) => {
      const c = classifyIp(v6);
      return typeof c.class === 'string' && (c.class !== 'global' || /^[23]/i.test(v6.replace(/^0+/, '') || '0'));
    }),
    { numRuns: 5000 },
  );
  t.pass('10000 random addresses');
});
