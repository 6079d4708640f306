/* global AbortSignal */
// Init container (policy.source: url): fetch an OPA bundle (tar.gz holding /policy.wasm and
// /data.json), check its sha256, and write both files to OUT_DIR. Runs on the image's node: no
// shell, no curl. Exit 1 with one line on any failure; the pod then does not start.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const url = process.env.BUNDLE_URL ?? '';
const want = (process.env.BUNDLE_SHA256 ?? '').toLowerCase().replace(/^sha256:/, '');
const out = process.env.OUT_DIR ?? '/etc/bulwark/policy';
const MAX_BYTES = 32 * 1024 * 1024;

function fail(message) {
  console.error(`fetch-policy: ${message}`);
  process.exit(1);
}

/** The regular files of a ustar archive, by name without a leading "./" or "/". */
function untar(buf) {
  const files = new Map();
  for (let off = 0; off + 512 <= buf.length; ) {
    const header = buf.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start, len) => header.subarray(start, start + len).toString('utf8').replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    const body = buf.subarray(off + 512, off + 512 + size);
    if (type === '0') files.set(name.replace(/^\.?\//, ''), body);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

if (!/^https?:\/\//.test(url)) fail('BUNDLE_URL must be an http(s) URL');
if (!/^[0-9a-f]{64}$/.test(want)) fail('BUNDLE_SHA256 must be 64 hex digits');
const res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(30_000) }).catch((err) => fail(`GET failed: ${err.message}`));
if (!res.ok) fail(`GET answered ${res.status}`);
const body = Buffer.from(await res.arrayBuffer());
if (body.length > MAX_BYTES) fail(`bundle is over ${MAX_BYTES} bytes`);
const got = crypto.createHash('sha256').update(body).digest('hex');
if (got !== want) fail(`sha256 mismatch: got ${got}, want ${want}`);
const files = untar(zlib.gunzipSync(body, { maxOutputLength: 4 * MAX_BYTES }));
const wasm = files.get('policy.wasm');
const data = files.get('data.json') ?? Buffer.from('{}');
if (!wasm) fail('the bundle has no /policy.wasm');
try {
  JSON.parse(data.toString('utf8'));
} catch {
  fail('the bundle\'s /data.json is not JSON');
}
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'policy.wasm'), wasm, { mode: 0o444 });
fs.writeFileSync(path.join(out, 'data.json'), data, { mode: 0o444 });
console.log(`fetch-policy: ${url} (sha256 ${got}): policy.wasm ${wasm.length} bytes, data.json ${data.length} bytes`);
