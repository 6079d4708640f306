import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { loadBundleVerifier, verifyBundle, type BundleVerifier } from './bundle.js';
import { readPolicyData } from './engine.js';
import type { Fetched, PolicySource } from './reload.js';
import { PolicyError } from './types.js';

const WATCH_DEBOUNCE_MS = 200;
const FETCH_TIMEOUT_MS = 30_000;

function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

/** The committed policy.wasm and data.json (no bundle configured): trusted local files, re-read on SIGHUP. */
export function wasmFilesSource(wasmPath: string, dataPath: string): PolicySource {
  return {
    kind: 'wasm',
    location: wasmPath,
    async fetch(): Promise<Fetched> {
      let wasm: Buffer;
      try {
        wasm = await fs.promises.readFile(wasmPath);
      } catch (err) {
        throw new PolicyError('policy.wasm_missing', `cannot read ${wasmPath}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      }
      return { kind: 'policy', wasm, data: readPolicyData(dataPath), bundleRevision: '' };
    },
  };
}

/** A bundle file on disk: watched (rename-into-place included, by watching its folder) and polled. */
export function bundleFileSource(file: string, verifier: BundleVerifier, maxBytes: number, pollMs: number): PolicySource {
  let lastDigest: string | undefined;
  return {
    kind: 'bundle_file',
    location: file,
    async fetch(force: boolean): Promise<Fetched> {
      let bytes: Buffer;
      try {
        const st = await fs.promises.stat(file);
        if (st.size > maxBytes) throw new PolicyError('policy.bundle_unreadable', `${file} is ${st.size} bytes (policy.max_bundle_bytes ${maxBytes})`);
        bytes = await fs.promises.readFile(file);
      } catch (err) {
        if (err instanceof PolicyError) throw err;
        throw new PolicyError('policy.bundle_missing', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      }
      const digest = sha256(bytes);
      // The same bytes were already examined (loaded or refused): one verdict per bundle, not one per event.
      if (!force && digest === lastDigest) return { kind: 'same' };
      lastDigest = digest;
      return { kind: 'policy', ...(await verifyBundle(bytes, verifier, maxBytes)) };
    },
    watch(onChange: () => void): () => void {
      let timer: NodeJS.Timeout | undefined;
      const soon = (): void => {
        clearTimeout(timer);
        timer = setTimeout(onChange, WATCH_DEBOUNCE_MS).unref();
      };
      const base = path.basename(file);
      let watcher: fs.FSWatcher | undefined;
      try {
        // The folder, not the file: a bundle renamed into place is a new inode the file watch would miss.
        watcher = fs.watch(path.dirname(file), { persistent: false }, (_event, name) => {
          if (name === null || name === base) soon();
        });
        watcher.on('error', () => watcher?.close());
      } catch {
        // No inotify here (or the folder is gone): the poll below still notices.
      }
      const poll = setInterval(onChange, pollMs).unref();
      return () => {
        clearTimeout(timer);
        clearInterval(poll);
        watcher?.close();
      };
    },
  };
}

async function readCapped(res: Response, maxBytes: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > maxBytes) throw new PolicyError('policy.bundle_fetch_failed', `the bundle is ${declared} bytes (policy.max_bundle_bytes ${maxBytes})`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new PolicyError('policy.bundle_fetch_failed', `the bundle is over policy.max_bundle_bytes (${maxBytes})`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * A bundle served over HTTP(S), polled with If-None-Match: a 304 costs nothing, a new ETag fetches
 * and verifies. The ETag (or, without one, the body's digest) of every bundle examined is kept,
 * loaded or refused, so a bad bundle is refused once, not at every poll.
 */
export function bundleUrlSource(url: string, verifier: BundleVerifier, maxBytes: number, pollMs: number): PolicySource {
  let lastEtag: string | undefined;
  let lastDigest: string | undefined;
  return {
    kind: 'bundle_url',
    location: url,
    async fetch(force: boolean): Promise<Fetched> {
      const headers: Record<string, string> = { accept: 'application/gzip, application/octet-stream' };
      if (!force && lastEtag) headers['if-none-match'] = lastEtag;
      let res: Response;
      try {
        res = await fetch(url, { headers, redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      } catch (err) {
        throw new PolicyError('policy.bundle_fetch_failed', `GET ${url} failed: ${(err as Error).message}`);
      }
      if (res.status === 304) return { kind: 'same' };
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new PolicyError('policy.bundle_fetch_failed', `GET ${url} answered ${res.status}`);
      }
      const bytes = await readCapped(res, maxBytes);
      const digest = sha256(bytes);
      const etag = res.headers.get('etag') ?? undefined;
      const seen = etag !== undefined ? etag === lastEtag : digest === lastDigest;
      lastEtag = etag;
      lastDigest = digest;
      if (!force && seen) return { kind: 'same' };
      return { kind: 'policy', ...(await verifyBundle(bytes, verifier, maxBytes)) };
    },
    watch(onChange: () => void): () => void {
      const poll = setInterval(onChange, pollMs).unref();
      return () => clearInterval(poll);
    },
  };
}

/** The source `policy` config names: a bundle file, a bundle URL, or (neither) the committed wasm and data. */
export async function policySourceFromConfig(policy: Config['policy'], baseDir: string): Promise<PolicySource> {
  const location = policy.bundle_url ?? (policy.bundle ? path.resolve(baseDir, policy.bundle) : undefined);
  if (location === undefined) return wasmFilesSource(policy.wasm as string, policy.data as string);
  const kind = policy.bundle_url ? 'bundle_url' : 'bundle_file';
  let verifier: BundleVerifier;
  try {
    // The schema requires the key with a bundle; checked again so no path can load a bundle unverified.
    if (!policy.verification_key) throw new PolicyError('policy.bundle_key_invalid', 'a bundle is configured without policy.verification_key');
    verifier = await loadBundleVerifier({
      key: policy.verification_key,
      keyId: policy.verification_key_id,
      algorithm: policy.signing_alg,
      scope: policy.scope,
      baseDir,
    });
  } catch (err) {
    // Without a key nothing can be verified, so nothing loads: every fetch answers the key's error.
    const pe = err instanceof PolicyError ? err : new PolicyError('policy.bundle_key_invalid', (err as Error).message);
    return {
      kind,
      location,
      fetch: () => Promise.reject(pe),
    };
  }
  if (policy.bundle_url) return bundleUrlSource(location, verifier, policy.max_bundle_bytes, policy.poll_interval_ms);
  const file = bundleFileSource(location, verifier, policy.max_bundle_bytes, policy.poll_interval_ms);
  return policy.watch ? file : { kind: file.kind, location: file.location, fetch: (force) => file.fetch(force) };
}
