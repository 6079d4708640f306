import fs from 'node:fs';
import path from 'node:path';
import { compactVerify, decodeProtectedHeader, importSPKI, importX509, type CryptoKey, type KeyObject } from 'jose';
import { bundleFileDigest } from './bundle-hash.js';
import { readBundleArchive } from './bundle-tar.js';
import { DECISION_ENTRYPOINT, VISIBLE_TOOLS_ENTRYPOINT } from './engine.js';
import { PolicyError } from './types.js';

/**
 * Signed OPA bundles (https://www.openpolicyagent.org/docs/management-bundles#signing), verified
 * here, in Bulwark, before anything in them is compiled: `.signatures.json` holds exactly one JWT
 * signed with the configured public key, whose `files` claim lists every file of the bundle with its
 * SHA-256 (bundle-hash.ts). A file the claim does not list, a listed file the archive lacks, or one
 * whose digest differs refuses the whole bundle. HMAC (HS*) is not accepted: every replica would
 * hold the signing secret.
 */
export const BUNDLE_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const;
export type BundleAlgorithm = (typeof BUNDLE_ALGORITHMS)[number];

const SIGNATURES_FILE = '.signatures.json';
const MANIFEST_FILE = '.manifest';
const WASM_FILE = 'policy.wasm';
const DATA_FILE = 'data.json';

export interface BundleVerifier {
  readonly key: CryptoKey | KeyObject;
  readonly keyId: string;
  readonly algorithm: BundleAlgorithm;
  /** The `scope` claim the signer must have set ('' when none): OPA's verification scope. */
  readonly scope: string;
}

export interface BundleKeyOptions {
  /** PEM text (PUBLIC KEY or CERTIFICATE), or the path of a file holding it (relative to `baseDir`). */
  readonly key: string;
  readonly keyId: string;
  readonly algorithm: BundleAlgorithm;
  readonly scope?: string | undefined;
  readonly baseDir: string;
}

export async function loadBundleVerifier(opts: BundleKeyOptions): Promise<BundleVerifier> {
  let pem = opts.key.trim();
  if (!pem.startsWith('-----BEGIN')) {
    const file = path.resolve(opts.baseDir, pem);
    try {
      pem = fs.readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new PolicyError('policy.bundle_key_invalid', `cannot read the bundle verification key ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  try {
    const key = pem.startsWith('-----BEGIN CERTIFICATE') ? await importX509(pem, opts.algorithm) : await importSPKI(pem, opts.algorithm);
    return { key, keyId: opts.keyId, algorithm: opts.algorithm, scope: opts.scope ?? '' };
  } catch (err) {
    throw new PolicyError('policy.bundle_key_invalid', `the bundle verification key is not a ${opts.algorithm} public key: ${(err as Error).message}`);
  }
}

export interface VerifiedBundle {
  readonly wasm: Buffer;
  /** data.json parsed (an object; `{}` when the bundle has none). */
  readonly data: Record<string, unknown>;
  /** The manifest's revision ('' when unset): the name the signer gave this build. */
  readonly bundleRevision: string;
  /** Every file the signature covered, sorted. */
  readonly files: readonly string[];
}

interface SignedFile {
  readonly name: string;
  readonly hash: string;
}

function refuse(reason: string, message: string): never {
  throw new PolicyError(reason, message);
}

/** The JWT's claims, once its signature checked out under the configured key and algorithm. */
async function verifySignatures(text: Buffer | undefined, verifier: BundleVerifier): Promise<Map<string, SignedFile>> {
  if (!text) refuse('policy.bundle_unsigned', `the bundle has no ${SIGNATURES_FILE}`);
  let tokens: unknown;
  try {
    tokens = (JSON.parse(text.toString('utf8')) as { signatures?: unknown }).signatures;
  } catch (err) {
    refuse('policy.bundle_signature_invalid', `${SIGNATURES_FILE} is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(tokens) || tokens.length !== 1 || typeof tokens[0] !== 'string')
    refuse('policy.bundle_signature_invalid', `${SIGNATURES_FILE} must hold exactly one JWT`);
  const token = tokens[0];
  let header: { kid?: unknown; alg?: unknown };
  try {
    header = decodeProtectedHeader(token);
  } catch (err) {
    refuse('policy.bundle_signature_invalid', `the bundle signature is not a JWS: ${(err as Error).message}`);
  }
  // OPA picks the key by the header's kid; a kid naming another key is another signer, not ours.
  if (header.kid !== undefined && header.kid !== verifier.keyId)
    refuse('policy.bundle_signature_invalid', `the bundle is signed with key id ${JSON.stringify(header.kid)}, not ${JSON.stringify(verifier.keyId)}`);
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(token, verifier.key, { algorithms: [verifier.algorithm] }));
  } catch (err) {
    refuse(
      'policy.bundle_signature_invalid',
      `the bundle signature does not verify with the configured key (${verifier.algorithm}): ${(err as Error).message}`,
    );
  }
  let claims: { files?: unknown; scope?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload).toString('utf8')) as typeof claims;
  } catch {
    refuse('policy.bundle_signature_invalid', 'the bundle signature payload is not JSON');
  }
  if ((claims.scope ?? '') !== verifier.scope)
    refuse(
      'policy.bundle_signature_invalid',
      `the bundle signature has scope ${JSON.stringify(claims.scope ?? '')}, expected ${JSON.stringify(verifier.scope)}`,
    );
  if (!Array.isArray(claims.files) || claims.files.length === 0) refuse('policy.bundle_signature_invalid', 'the bundle signature lists no files');
  const signed = new Map<string, SignedFile>();
  for (const f of claims.files as unknown[]) {
    const { name, hash, algorithm } = (f ?? {}) as { name?: unknown; hash?: unknown; algorithm?: unknown };
    if (typeof name !== 'string' || typeof hash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hash))
      refuse('policy.bundle_signature_invalid', 'a signed file entry has no name or no SHA-256 hash');
    // Only SHA-256: a signer's list in MD5 or SHA-1 would let a colliding file through.
    if (algorithm !== 'SHA-256') refuse('policy.bundle_signature_invalid', `signed file ${name} uses hash algorithm ${String(algorithm)}, not SHA-256`);
    const key = name.replace(/^\/+/, '');
    if (signed.has(key)) refuse('policy.bundle_signature_invalid', `signed file ${key} is listed twice`);
    signed.set(key, { name: key, hash: hash.toLowerCase() });
  }
  return signed;
}

/** The files Bulwark loads or tolerates in a bundle: one wasm module, root data, the manifest, Rego sources. */
function checkLayout(name: string): void {
  if (name === WASM_FILE || name === DATA_FILE || name === MANIFEST_FILE || name.endsWith('.rego')) return;
  // A nested data.json or a YAML data file would be merged by OPA but not by this loader: refuse rather than differ.
  refuse(
    'policy.bundle_layout_invalid',
    `the bundle holds ${name}, which Bulwark does not load (expected /policy.wasm, /data.json, /.manifest and Rego sources)`,
  );
}

function parseManifest(text: Buffer | undefined): string {
  if (!text) refuse('policy.bundle_manifest_invalid', `the bundle has no ${MANIFEST_FILE}`);
  let manifest: { revision?: unknown; wasm?: unknown };
  try {
    manifest = JSON.parse(text.toString('utf8')) as typeof manifest;
  } catch (err) {
    refuse('policy.bundle_manifest_invalid', `${MANIFEST_FILE} is not JSON: ${(err as Error).message}`);
  }
  if (manifest === null || typeof manifest !== 'object') refuse('policy.bundle_manifest_invalid', `${MANIFEST_FILE} is not an object`);
  if (manifest.revision !== undefined && typeof manifest.revision !== 'string')
    refuse('policy.bundle_manifest_invalid', 'the manifest revision is not a string');
  const wasm = Array.isArray(manifest.wasm) ? (manifest.wasm as { entrypoint?: unknown; module?: unknown }[]) : [];
  for (const entrypoint of [DECISION_ENTRYPOINT, VISIBLE_TOOLS_ENTRYPOINT]) {
    const entry = wasm.find((w) => w?.entrypoint === entrypoint);
    if (!entry) refuse('policy.bundle_manifest_invalid', `the manifest names no wasm module for ${entrypoint}`);
    if (entry.module !== `/${WASM_FILE}`) refuse('policy.bundle_manifest_invalid', `the manifest's module for ${entrypoint} is not /${WASM_FILE}`);
  }
  return (manifest.revision as string | undefined) ?? '';
}

/**
 * Verify a bundle archive and return what it holds. Throws PolicyError with a `policy.bundle_*`
 * reason on anything short of a complete, exactly signed bundle; nothing is compiled before that.
 */
export async function verifyBundle(archive: Uint8Array, verifier: BundleVerifier, maxBytes: number): Promise<VerifiedBundle> {
  const files = readBundleArchive(archive, maxBytes);
  const signed = await verifySignatures(files.get(SIGNATURES_FILE), verifier);
  for (const [name, bytes] of files) {
    if (name === SIGNATURES_FILE) continue;
    const entry = signed.get(name);
    if (!entry) refuse('policy.bundle_file_unsigned', `the bundle holds ${name}, which its signature does not list`);
    if (bundleFileDigest(name, bytes) !== entry.hash) refuse('policy.bundle_digest_mismatch', `${name} does not match the digest its signature lists`);
  }
  for (const name of signed.keys()) {
    if (!files.has(name)) refuse('policy.bundle_file_missing', `the signature lists ${name}, which the bundle does not hold`);
    checkLayout(name);
  }
  const bundleRevision = parseManifest(files.get(MANIFEST_FILE));
  const wasm = files.get(WASM_FILE);
  if (!wasm) refuse('policy.bundle_layout_invalid', `the bundle has no /${WASM_FILE}`);
  let data: unknown = {};
  const dataText = files.get(DATA_FILE);
  if (dataText) {
    try {
      data = JSON.parse(dataText.toString('utf8'));
    } catch (err) {
      refuse('policy.data_invalid', `the bundle's data.json is not JSON: ${(err as Error).message}`);
    }
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) refuse('policy.data_invalid', "the bundle's data.json is not an object");
  return { wasm, data: data as Record<string, unknown>, bundleRevision, files: [...signed.keys()].sort() };
}
