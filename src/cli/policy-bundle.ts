import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../config/package-paths.js';
import { BUNDLE_ALGORITHMS, loadBundleVerifier, verifyBundle, type BundleAlgorithm } from '../policy/bundle.js';
import { DECISION_ENTRYPOINT, VISIBLE_TOOLS_ENTRYPOINT } from '../policy/engine.js';
import { PolicyError } from '../policy/types.js';
import { EXIT } from './exit-codes.js';
import { findOpa, OPA_VERSION } from './opa.js';

const MAX_CHECK_BYTES = 256 * 1024 * 1024;

/** The Rego the product ships: every non-test .rego directly in the source folder, sorted. */
function policySources(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.rego') && !f.endsWith('_test.rego'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Default manifest revision: names the sources and data it was built from, so a rebuild of the same input has the same name. */
function sourceRevision(files: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(path.basename(f)).update('\0').update(fs.readFileSync(f)).update('\0');
  return `src-${h.digest('hex').slice(0, 16)}`;
}

/**
 * `bulwark policy build --bundle OUT.tar.gz`: an OPA bundle built and signed by the pinned `opa`
 * itself (`opa build -b -t wasm --signing-key`), so the signature format is OPA's own. The bundle
 * is then opened with Bulwark's verifier under the signing key's public half, the check a server
 * makes before it loads a bundle.
 */
export async function runPolicyBundleBuild(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      bundle: { type: 'string' },
      'signing-key': { type: 'string' },
      'signing-alg': { type: 'string', default: 'RS256' },
      revision: { type: 'string' },
      scope: { type: 'string' },
      policies: { type: 'string', default: path.join(PACKAGE_ROOT, 'policies') },
      data: { type: 'string' },
    },
    strict: true,
  });
  const out = path.resolve(values.bundle as string);
  const alg = values['signing-alg'] as string;
  if (!(BUNDLE_ALGORITHMS as readonly string[]).includes(alg)) {
    process.stderr.write(`bulwark policy build: --signing-alg must be one of ${BUNDLE_ALGORITHMS.join(', ')}\n`);
    return EXIT.usage;
  }
  const opa = findOpa();
  if (!opa) {
    process.stderr.write(`bulwark: opa ${OPA_VERSION} not found; run \`bash scripts/toolchain.sh\`\n`);
    return EXIT.usage;
  }
  const policiesDir = path.resolve(values.policies as string);
  const dataFile = path.resolve(values.data ?? path.join(policiesDir, 'data.json'));
  const sources = policySources(policiesDir);
  if (sources.length === 0) {
    process.stderr.write(`bulwark policy build: no .rego sources in ${policiesDir}\n`);
    return EXIT.usage;
  }
  const revision = values.revision ?? sourceRevision([...sources, dataFile]);
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bundle-'));
  try {
    // The bundle root holds exactly what the server loads: the Rego (opa compiles it to /policy.wasm) and /data.json.
    const root = path.join(stage, 'bundle');
    fs.mkdirSync(root);
    for (const f of sources) fs.copyFileSync(f, path.join(root, path.basename(f)));
    fs.copyFileSync(dataFile, path.join(root, 'data.json'));
    const args = ['build', '-b', '.', '-t', 'wasm', '-e', DECISION_ENTRYPOINT, '-e', VISIBLE_TOOLS_ENTRYPOINT];
    args.push('--capabilities', path.join(policiesDir, 'capabilities.json'), '--revision', revision, '-o', out);
    if (values['signing-key']) {
      args.push('--signing-key', path.resolve(values['signing-key']), '--signing-alg', alg);
      if (values.scope) {
        const claims = path.join(stage, 'claims.json');
        fs.writeFileSync(claims, JSON.stringify({ scope: values.scope }));
        args.push('--claims-file', claims);
      }
    } else {
      process.stderr.write('bulwark policy build: no --signing-key: the bundle is unsigned and a server will refuse it (sign it with `opa sign`)\n');
    }
    const r = spawnSync(opa, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: root });
    if (r.status !== 0) return EXIT.failed;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  if (values['signing-key']) {
    try {
      const publicPem = crypto
        .createPublicKey(fs.readFileSync(path.resolve(values['signing-key'])))
        .export({ type: 'spki', format: 'pem' })
        .toString();
      const verifier = await loadBundleVerifier({
        key: publicPem,
        keyId: 'default',
        algorithm: alg as BundleAlgorithm,
        scope: values.scope,
        baseDir: process.cwd(),
      });
      const bundle = await verifyBundle(fs.readFileSync(out), verifier, MAX_CHECK_BYTES);
      process.stdout.write(
        `built ${out} (revision ${bundle.bundleRevision}, ${alg}-signed, files: ${bundle.files.join(', ')}; policy.wasm ${bundle.wasm.byteLength} bytes)\n`,
      );
    } catch (err) {
      const reason = err instanceof PolicyError ? `${err.reason}: ` : '';
      process.stderr.write(`bulwark policy build: the bundle opa wrote does not verify: ${reason}${(err as Error).message}\n`);
      return EXIT.failed;
    }
  } else {
    process.stdout.write(`built ${out} (revision ${revision}, unsigned)\n`);
  }
  return EXIT.ok;
}
