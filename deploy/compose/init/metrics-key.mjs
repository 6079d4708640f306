// compose.yaml's bulwark-init job, run by the image's node (no shell in the image): create the API
// key Prometheus scrapes /metrics with (principal prometheus, role metrics: it grants no tool) in
// the shared PostgreSQL key store, once, and write it to TOKEN_FILE on the volume Prometheus reads.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const out = process.env.TOKEN_FILE ?? '/var/lib/bulwark/keys/metrics-token';
const store = process.env.OPERATOR_DATABASE_URL;
if (!store) {
  console.error('bulwark-init: OPERATOR_DATABASE_URL is not set');
  process.exit(2);
}
if (fs.existsSync(out) && fs.readFileSync(out, 'utf8').trim()) {
  console.log(`bulwark-init: ${out} exists; nothing to do`);
  process.exit(0);
}
const json = execFileSync(process.execPath, ['/app/bin/bulwark.js', 'keys', 'create', '--principal', 'prometheus', '--roles', 'metrics', '--store', store, '--json'], {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
const { key, id } = JSON.parse(json);
if (typeof key !== 'string' || !key.startsWith('bwk_')) {
  console.error('bulwark-init: keys create printed no key');
  process.exit(1);
}
// Prometheus runs as another user: the file is world-readable on a volume only it and this job mount.
fs.writeFileSync(`${out}.tmp`, `${key}\n`, { mode: 0o644 });
fs.renameSync(`${out}.tmp`, out);
console.log(`bulwark-init: created metrics key ${id ?? ''} for principal prometheus; token in ${out}`);
