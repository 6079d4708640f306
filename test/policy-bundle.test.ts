import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import t from 'tap';
import { loadBundleVerifier, verifyBundle, type BundleAlgorithm, type BundleVerifier } from '../src/policy/bundle.js';
import { bundleFileDigest } from '../src/policy/bundle-hash.js';
import { WasmPolicyEngine } from '../src/policy/engine.js';
import { smokeEvaluate } from '../src/policy/reload.js';
import { findOpa } from '../src/cli/opa.js';
import { BIN, ROOT } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';

// Real opa builds and signs every bundle here; Bulwark's verifier must accept exactly what opa
// signed and refuse each way a bundle can be wrong.
const MAX = 64 * 1024 * 1024;
/** tap matches the thrown PolicyError by its `reason`. */
const reason = (r: string): Error => ({ reason: r }) as unknown as Error;
const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bundle-test-')));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function keyPair(kind: 'rsa' | 'ec'): { priv: string; pub: string } {
  const { privateKey, publicKey } =
    kind === 'rsa' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }) : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const priv = path.join(dir, `${kind}-${crypto.randomUUID()}.pem`);
  fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { priv, pub: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** `bulwark policy build --bundle` as an operator runs it. */
function build(
  out: string,
  opts: { key?: string; alg?: string; revision?: string; scope?: string; data?: string } = {},
): { status: number | null; out: string } {
  const args = [BIN, 'policy', 'build', '--bundle', out];
  if (opts.key) args.push('--signing-key', opts.key);
  if (opts.alg) args.push('--signing-alg', opts.alg);
  if (opts.revision) args.push('--revision', opts.revision);
  if (opts.scope) args.push('--scope', opts.scope);
  if (opts.data) args.push('--data', opts.data);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: cleanChildEnv() });
  return { status: r.status, out: r.stdout + r.stderr };
}

async function verifier(pub: string, alg: BundleAlgorithm = 'RS256', scope?: string): Promise<BundleVerifier> {
  return loadBundleVerifier({ key: pub, keyId: 'default', algorithm: alg, scope, baseDir: dir });
}

/** Unpack with the system tar, let `edit` change the tree, pack again (what an attacker with write access does). */
function repack(bundle: string, out: string, edit: (tree: string) => void): void {
  const tree = fs.mkdtempSync(path.join(dir, 'tree-'));
  const x = spawnSync('tar', ['-xzf', bundle, '-C', tree], { encoding: 'utf8' });
  if (x.status !== 0) throw new Error(x.stderr);
  edit(tree);
  const c = spawnSync('tar', ['-czf', out, '-C', tree, '.'], { encoding: 'utf8' });
  if (c.status !== 0) throw new Error(c.stderr);
}

const rsa = keyPair('rsa');
const signed = path.join(dir, 'signed.tar.gz');

t.before(() => {
  t.ok(findOpa(), 'the pinned opa is installed (scripts/toolchain.sh)');
  const r = build(signed, { key: rsa.priv, revision: 'rev-2026-12-07' });
  t.equal(r.status, 0, `policy build --bundle: ${r.out}`);
});

t.test('opa signs, Bulwark verifies, and the bundle loads and decides', async (t) => {
  const b = await verifyBundle(fs.readFileSync(signed), await verifier(rsa.pub), MAX);
  t.equal(b.bundleRevision, 'rev-2026-12-07', 'the manifest revision');
  // Every policy module (not the *_test.rego files), the data and the compiled policy.
  const modules = fs.readdirSync(path.join(ROOT, 'policies')).filter((f) => f.endsWith('.rego') && !f.endsWith('_test.rego'));
  t.ok(modules.includes('authz.rego') && modules.length >= 2, `the policy's modules: ${modules.join(', ')}`);
  t.same(b.files, ['.manifest', ...modules, 'data.json', 'policy.wasm'].sort(), 'every file is covered by the signature');
  const shipped = JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as unknown;
  t.same(b.data, shipped, "data.json is the policy's data");
  const engine = await WasmPolicyEngine.fromBytes(b.wasm, JSON.stringify(b.data), 64 * 1024, 'bundle');
  smokeEvaluate(engine);
  const d = engine.decide({
    principal: { id: 'u', roles: ['reader'], auth: 'stdio' },
    tool: 'run_javascript',
    args: { code: '1' },
    facts: { code: { bytes: 1, sha256: '0'.repeat(64) } },
    context: { transport: 'stdio', time: '2026-12-07T00:00:00Z', request_id: 'r' },
  });
  t.equal(d.allow, false, 'a reader may not run javascript under the bundled policy');
});

t.test('the digest of a structured file is OPA-compatible: formatting is free, values are not', async (t) => {
  // Go's hasher on the decoded value: sorted keys, number text kept, U+2028 escaped, no HTML escaping.
  const a = bundleFileDigest('data.json', Buffer.from('{ "b": [1.50, "<&>\u2028"], "a": {} }'));
  const b = bundleFileDigest('data.json', Buffer.from('{"a":{},"b":[1.50,"<&>\\u2028"]}'));
  t.equal(a, b, 'white space and key order do not change the digest');
  t.equal(a, crypto.createHash('sha256').update('{"a":{},"b":[1.50,"<&>\\u2028"]}').digest('hex'), 'the canonical bytes are what opa hashes');
  t.not(bundleFileDigest('data.json', Buffer.from('{"a":{},"b":[1.5,"<&>\u2028"]}')), a, 'a number is hashed as written (1.5 is not 1.50)');
  t.equal(bundleFileDigest('policy.wasm', Buffer.from('{ }')), crypto.createHash('sha256').update('{ }').digest('hex'), 'other files: their bytes');

  // And opa agrees on a data file full of edge cases: it signs, Bulwark verifies.
  const tricky = path.join(dir, 'tricky.json');
  const shipped = fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8').trim();
  fs.writeFileSync(
    tricky,
    `${shipped.slice(0, -1)}, "zz": {"f": 1.0, "e": 1e3, "neg": -0, "s": "<a&b>\\u2028\\u2029\\u0001\\b\\f\\"\\\\/é😀", "\\uffff": 1, "😀": 2, "é": 3}}`,
  );
  const out = path.join(dir, 'tricky.tar.gz');
  const r = build(out, { key: rsa.priv, data: tricky });
  t.equal(r.status, 0, r.out);
  const v = await verifyBundle(fs.readFileSync(out), await verifier(rsa.pub), MAX);
  t.equal((v.data.zz as Record<string, unknown>).e, 1000);
});

t.test('ES256 and a scope claim', async (t) => {
  const ec = keyPair('ec');
  const out = path.join(dir, 'es.tar.gz');
  const r = build(out, { key: ec.priv, alg: 'ES256', scope: 'prod' });
  t.equal(r.status, 0, r.out);
  const bytes = fs.readFileSync(out);
  t.ok(await verifyBundle(bytes, await verifier(ec.pub, 'ES256', 'prod'), MAX), 'right key, algorithm and scope');
  await t.rejects(
    verifyBundle(bytes, await verifier(ec.pub, 'ES256'), MAX),
    reason('policy.bundle_signature_invalid'),
    'a scoped bundle where none is expected',
  );
  await t.rejects(verifyBundle(bytes, await verifier(ec.pub, 'ES256', 'staging'), MAX), reason('policy.bundle_signature_invalid'), 'another scope');
  await t.rejects(verifyBundle(bytes, await verifier(rsa.pub, 'RS256'), MAX), reason('policy.bundle_signature_invalid'), 'an RSA key for an ES256 bundle');
});

t.test('refused: unsigned, wrong key, HMAC signed with the public key', async (t) => {
  const unsigned = path.join(dir, 'unsigned.tar.gz');
  const r = build(unsigned);
  t.equal(r.status, 0, r.out);
  t.match(r.out, /unsigned/);
  await t.rejects(verifyBundle(fs.readFileSync(unsigned), await verifier(rsa.pub), MAX), reason('policy.bundle_unsigned'));

  const other = keyPair('rsa');
  await t.rejects(verifyBundle(fs.readFileSync(signed), await verifier(other.pub), MAX), reason('policy.bundle_signature_invalid'), 'another RSA key');

  // Algorithm confusion: an attacker who knows the public key signs with HS256 using its PEM text as the secret.
  const opa = findOpa() as string;
  const tree = path.join(dir, 'hs-tree');
  fs.mkdirSync(tree);
  for (const f of fs.readdirSync(path.join(ROOT, 'policies'))) {
    if (f.endsWith('.rego') && !f.endsWith('_test.rego')) fs.copyFileSync(path.join(ROOT, 'policies', f), path.join(tree, f));
  }
  fs.copyFileSync(path.join(ROOT, 'policies', 'data.json'), path.join(tree, 'data.json'));
  const hs = path.join(dir, 'hs.tar.gz');
  const b = spawnSync(
    opa,
    [
      'build',
      '-b',
      '.',
      '-t',
      'wasm',
      '-e',
      'bulwark/authz/decision',
      '-e',
      'bulwark/authz/visible_tools',
      '--signing-alg',
      'HS256',
      '--signing-key',
      rsa.pub,
      '-o',
      hs,
    ],
    { cwd: tree, encoding: 'utf8' },
  );
  t.equal(b.status, 0, b.stderr);
  await t.rejects(verifyBundle(fs.readFileSync(hs), await verifier(rsa.pub), MAX), reason('policy.bundle_signature_invalid'), 'HS256 is never accepted');
});

t.test('refused: tampered, extra and missing files', async (t) => {
  const v = await verifier(rsa.pub);
  const tampered = path.join(dir, 'tampered.tar.gz');
  repack(signed, tampered, (tree) => {
    // Grant run_javascript to readers: the change an attacker wants.
    const file = path.join(tree, 'data.json');
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { bulwark: { roles: Record<string, { tools: string[] }> } };
    data.bulwark.roles.reader?.tools.push('run_javascript');
    fs.writeFileSync(file, JSON.stringify(data));
  });
  await t.rejects(verifyBundle(fs.readFileSync(tampered), v, MAX), reason('policy.bundle_digest_mismatch'), 'changed data.json');

  const wasm = path.join(dir, 'wasm.tar.gz');
  repack(signed, wasm, (tree) => fs.appendFileSync(path.join(tree, 'policy.wasm'), Buffer.from([0])));
  await t.rejects(verifyBundle(fs.readFileSync(wasm), v, MAX), reason('policy.bundle_digest_mismatch'), 'changed policy.wasm');

  const reindented = path.join(dir, 'reindented.tar.gz');
  repack(signed, reindented, (tree) => {
    const file = path.join(tree, 'data.json');
    fs.writeFileSync(file, JSON.stringify(JSON.parse(fs.readFileSync(file, 'utf8')), null, 4));
  });
  t.ok(await verifyBundle(fs.readFileSync(reindented), v, MAX), 're-indenting data.json changes no value: still verifies, as in OPA');

  const extra = path.join(dir, 'extra.tar.gz');
  repack(signed, extra, (tree) => fs.writeFileSync(path.join(tree, 'override.rego'), 'package bulwark.authz\n'));
  await t.rejects(verifyBundle(fs.readFileSync(extra), v, MAX), reason('policy.bundle_file_unsigned'), 'a file the signature does not list');

  const missing = path.join(dir, 'missing.tar.gz');
  repack(signed, missing, (tree) => fs.rmSync(path.join(tree, 'authz.rego')));
  await t.rejects(verifyBundle(fs.readFileSync(missing), v, MAX), reason('policy.bundle_file_missing'), 'a signed file taken out');

  const nested = path.join(dir, 'nested.tar.gz');
  repack(signed, nested, (tree) => {
    fs.mkdirSync(path.join(tree, 'sub'));
    fs.writeFileSync(path.join(tree, 'sub', 'data.json'), '{}');
  });
  await t.rejects(verifyBundle(fs.readFileSync(nested), v, MAX), reason('policy.bundle_file_unsigned'), 'an unsigned nested data file');

  const link = path.join(dir, 'link.tar.gz');
  repack(signed, link, (tree) => fs.symlinkSync('/etc/passwd', path.join(tree, 'passwd')));
  await t.rejects(verifyBundle(fs.readFileSync(link), v, MAX), reason('policy.bundle_unreadable'), 'a symbolic link entry');
});

t.test('refused: not a bundle, too large', async (t) => {
  const v = await verifier(rsa.pub);
  await t.rejects(verifyBundle(Buffer.from('not gzip at all'), v, MAX), reason('policy.bundle_unreadable'));
  await t.rejects(verifyBundle(zlib.gzipSync(Buffer.alloc(4096, 7)), v, MAX), reason('policy.bundle_unreadable'), 'gzip of garbage: bad tar checksum');
  await t.rejects(verifyBundle(fs.readFileSync(signed), v, 10_000), reason('policy.bundle_unreadable'), 'over the size cap once inflated');
  const sigs = path.join(dir, 'two-sigs.tar.gz');
  repack(signed, sigs, (tree) => {
    const file = path.join(tree, '.signatures.json');
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as { signatures: string[] };
    fs.writeFileSync(file, JSON.stringify({ signatures: [s.signatures[0], s.signatures[0]] }));
  });
  await t.rejects(verifyBundle(fs.readFileSync(sigs), v, MAX), reason('policy.bundle_signature_invalid'), 'more than one JWT');
  await t.rejects(loadBundleVerifier({ key: 'missing.pem', keyId: 'default', algorithm: 'RS256', baseDir: dir }), reason('policy.bundle_key_invalid'));
});
