import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { BIN, ROOT, makeSandbox, readAudit, type Sandbox } from './helpers/fixtures.js';
import { cleanChildEnv } from './helpers/child-env.js';
import { httpClient, startHttpServer, type HttpServerProcess } from './helpers/clients.js';
import { inProcessGate } from './helpers/gate.js';
import { parseMetrics, valueOf, samples } from './helpers/bearer.js';

// Live policy reload against real `bulwark serve` processes, real opa-built and opa-signed
// bundles, a real HTTP bundle server: new bundles load on SIGHUP, on file change and on a new
// ETag; bad ones are refused and the old policy keeps serving; a call in flight finishes on the
// revision it started with; two replicas converge on one bundle server.

const sb = makeSandbox();
t.teardown(sb.cleanup);
const keys = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = path.join(sb.dir, 'signing.pem');
fs.writeFileSync(signingKey, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
const publicKey = path.join(sb.dir, 'bundle-public.pem');
fs.writeFileSync(publicKey, keys.publicKey.export({ type: 'spki', format: 'pem' }));

type PolicyData = { bulwark: { roles: Record<string, { tools: string[] }> } };
const shipped = (): PolicyData => JSON.parse(fs.readFileSync(path.join(ROOT, 'policies', 'data.json'), 'utf8')) as PolicyData;

function build(name: string, revision: string, edit: (d: PolicyData) => void, sign = true): string {
  const data = shipped();
  edit(data);
  const dataFile = path.join(sb.dir, `${name}-data.json`);
  fs.writeFileSync(dataFile, JSON.stringify(data));
  const out = path.join(sb.dir, `${name}.tar.gz`);
  const args = [BIN, 'policy', 'build', '--bundle', out, '--revision', revision, '--data', dataFile, ...(sign ? ['--signing-key', signingKey] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: cleanChildEnv() });
  if (r.status !== 0) throw new Error(`policy build ${name}: ${r.stdout}${r.stderr}`);
  return out;
}

/** v1: the shipped policy (developers may read files); v2: developers may not. */
const withoutReadFile = (d: PolicyData): void => {
  const dev = d.bulwark.roles.developer;
  if (dev) dev.tools = dev.tools.filter((x) => x !== 'read_file');
};
let V1 = '';
let V2 = '';
let V3 = '';
let UNSIGNED = '';
let TAMPERED = '';

t.before(() => {
  V1 = build('v1', 'v1', () => undefined);
  V2 = build('v2', 'v2', withoutReadFile);
  // v3: the shipped policy with notes.md among the blocked names (search skips them).
  V3 = build('v3', 'v3', (d) => (d as unknown as { bulwark: { filesystem: { blocked_names: string[] } } }).bulwark.filesystem.blocked_names.push('notes.md'));
  UNSIGNED = build('unsigned', 'v4', () => undefined, false);
  // v2 with read_file granted back in data.json after signing: what an attacker with write access to the bundle does.
  const tree = fs.mkdtempSync(path.join(sb.dir, 'tamper-'));
  spawnSync('tar', ['-xzf', V2, '-C', tree]);
  const dataFile = path.join(tree, 'data.json');
  fs.writeFileSync(dataFile, JSON.stringify(shipped()));
  TAMPERED = path.join(sb.dir, 'tampered.tar.gz');
  spawnSync('tar', ['-czf', TAMPERED, '-C', tree, '.']);
});

/** Replace a file the way a deploy does: write beside it, rename over it. */
function publish(bundle: string, target: string): void {
  const tmp = `${target}.tmp-${crypto.randomUUID()}`;
  fs.copyFileSync(bundle, tmp);
  fs.renameSync(tmp, target);
}

function configWith(s: Sandbox, name: string, policy: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const file = path.join(s.dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    stringify({
      audit: { path: path.join(s.dir, `${name}-audit`, 'audit.jsonl') },
      limits: { tiers: { local: { capacity: 100000, refill_per_s: 100000 } }, default_tier: 'local' },
      observability: { log_level: 'info' },
      filesystem: { roots: [s.root] },
      policy: { verification_key: publicKey, ...policy },
      ...extra,
    }),
  );
  return file;
}

async function readyRevision(server: HttpServerProcess): Promise<string> {
  const res = await fetch(`${server.base}/ready`);
  return ((await res.json()) as { policy_revision: string }).policy_revision;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function readFile(client: Client): Promise<{ ok: boolean; code?: string }> {
  const r = (await client.callTool({ name: 'read_file', arguments: { path: 'hello.txt' } })) as {
    isError?: boolean;
    structuredContent?: { error?: { code?: string } };
  };
  return r.isError ? { ok: false, code: r.structuredContent?.error?.code } : { ok: true };
}

async function metrics(server: HttpServerProcess): Promise<ReturnType<typeof parseMetrics>> {
  return parseMetrics(await (await fetch(`${server.base}/metrics`)).text());
}

function revisionsOfReadFile(auditPath: string): string[] {
  return readAudit(auditPath)
    .filter((r) => r.tool === 'read_file' && r.outcome)
    .map((r) => r.policy_revision as string);
}

t.test('SIGHUP reloads a running server; bad bundles are refused with one log line and a metric, the old policy stays', async (t) => {
  const live = path.join(sb.dir, 'sighup-live.tar.gz');
  publish(V1, live);
  // watch: false, so only the signal can load the new bundle.
  const config = configWith(sb, 'sighup', { bundle: live, watch: false });
  const server = await startHttpServer(['--config', config]);
  t.teardown(() => server.stop());
  const client = await httpClient(server.url);
  t.teardown(() => client.close());

  const rev1 = await readyRevision(server);
  t.match(rev1, /^[0-9a-f]{64}$/);
  t.same(await readFile(client), { ok: true }, 'v1 lets a developer read a file');

  publish(V2, live);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await readyRevision(server), rev1, 'with watch off the changed file is not loaded by itself');
  server.child.kill('SIGHUP');
  const rev2 = await waitFor('the SIGHUP reload', async () => {
    const r = await readyRevision(server);
    return r !== rev1 ? r : undefined;
  });
  t.same(await readFile(client), { ok: false, code: 'policy_denied' }, 'after SIGHUP the call gets the v2 decision');
  t.equal(server.child.exitCode, null, 'SIGHUP did not end the server');

  for (const [bad, reason] of [
    [TAMPERED, 'policy.bundle_digest_mismatch'],
    [UNSIGNED, 'policy.bundle_unsigned'],
  ] as const) {
    const before = server.stderr().length;
    publish(bad, live);
    server.child.kill('SIGHUP');
    await waitFor(`the refusal of ${reason}`, () => server.stderr().slice(before).includes(reason));
    const lines = server
      .stderr()
      .slice(before)
      .split('\n')
      .filter((l) => l.includes('policy reload refused'));
    t.equal(lines.length, 1, `one log line for ${reason}`);
    t.match(lines[0], /"level":"error"/);
    t.equal(await readyRevision(server), rev2, `after ${reason} the v2 policy still serves`);
    t.same(await readFile(client), { ok: false, code: 'policy_denied' }, `after ${reason} the calls still get v2's decision`);
  }

  const m = await metrics(server);
  t.equal(valueOf(m, 'mcp_policy_reload_total', { result: 'loaded', reason: '' }), 2, 'boot and SIGHUP loaded');
  t.equal(valueOf(m, 'mcp_policy_reload_total', { result: 'refused', reason: 'policy.bundle_digest_mismatch' }), 1);
  t.equal(valueOf(m, 'mcp_policy_reload_total', { result: 'refused', reason: 'policy.bundle_unsigned' }), 1);
  const info = samples(m, 'mcp_policy_info');
  t.equal(info.length, 1);
  t.same(info[0]?.labels, { revision: rev2, bundle_revision: 'v2', source: 'bundle_file' }, 'the info gauge names the serving revision');

  // Every record names the revision that decided it, and each revision is archived for replay.
  t.same(revisionsOfReadFile(path.join(sb.dir, 'sighup-audit', 'audit.jsonl')), [rev1, rev2, rev2, rev2]);
  for (const rev of [rev1, rev2])
    t.ok(fs.existsSync(path.join(sb.dir, 'sighup-audit', 'policies', rev, 'policy.wasm')), `revision ${rev.slice(0, 12)} archived`);
});

t.test('a changed bundle file reloads by itself (watch)', async (t) => {
  const live = path.join(sb.dir, 'watch-live.tar.gz');
  publish(V1, live);
  const config = configWith(sb, 'watch', { bundle: live, poll_interval_ms: 60_000 });
  const server = await startHttpServer(['--config', config]);
  t.teardown(() => server.stop());
  const client = await httpClient(server.url);
  t.teardown(() => client.close());
  const rev1 = await readyRevision(server);
  t.same(await readFile(client), { ok: true });
  const started = Date.now();
  publish(V2, live);
  await waitFor('the file-change reload', async () => ((await readyRevision(server)) !== rev1 ? true : undefined));
  t.comment(`reloaded ${Date.now() - started} ms after the rename (fs.watch, 200 ms debounce; the poll is 60 s)`);
  t.same(await readFile(client), { ok: false, code: 'policy_denied' });
  t.match(server.stderr(), /"trigger":"watch"/);
});

t.test('a call in flight across the swap finishes on the revision it started with', async (t) => {
  const s = makeSandbox();
  t.teardown(s.cleanup);
  const live = path.join(s.dir, 'inflight.tar.gz');
  publish(V1, live);
  const config = configWith(s, 'inflight', { bundle: live, watch: false }, { javascript: { timeout_ms: 20_000 }, execution: { timeout_ms: 30_000 } });
  const gate = await inProcessGate(config);
  t.teardown(() => gate.close());
  const rev1 = gate.app.deps.policy.revision;

  // A call that is decided at once and then runs for a while.
  let finished = false;
  const slow = gate.call('run_javascript', { code: 'const end = Date.now() + 1500; while (Date.now() < end) {} 42' }).then((o) => {
    finished = true;
    return o;
  });
  await new Promise((r) => setTimeout(r, 300));
  publish(V2, live);
  const reload = await gate.app.policyReloader.reload('sighup');
  t.equal(reload.result, 'loaded');
  t.notOk(finished, 'the swap happened while the call was still running');
  const rev2 = gate.app.deps.policy.revision;
  t.not(rev2, rev1);
  const after = await gate.call('read_file', { path: 'hello.txt' });
  const outcome = await slow;
  t.equal(outcome.status, 'ok', `the slow call succeeded: ${JSON.stringify(outcome.denial ?? {})}`);
  t.equal(after.status, 'denied', 'a call that entered after the swap gets v2');

  const records = readAudit(path.join(s.dir, 'inflight-audit', 'audit.jsonl')).filter((r) => r.outcome);
  const bySeq = new Map(records.map((r) => [r.seq as number, r]));
  t.equal(bySeq.get(outcome.auditSeq as number)?.policy_revision, rev1, 'the in-flight call is recorded with the revision that decided it');
  t.equal(bySeq.get(after.auditSeq as number)?.policy_revision, rev2, 'the later call names the new revision');
});

t.test("a reload brings the new policy's data to the executors too (blocked names)", async (t) => {
  const s = makeSandbox();
  t.teardown(s.cleanup);
  const live = path.join(s.dir, 'data.tar.gz');
  publish(V1, live);
  const gate = await inProcessGate(configWith(s, 'data', { bundle: live, watch: false }));
  t.teardown(() => gate.close());
  const search = async (): Promise<string[]> => {
    const o = await gate.call('search_files', { path: '.', query: 'needle' });
    t.equal(o.status, 'ok', JSON.stringify(o.denial ?? {}));
    return ((o.result?.structured as { matches?: { path: string }[] } | undefined)?.matches ?? []).map((m) => m.path);
  };
  t.match(await search(), [/notes\.md$/], 'v1: the match in sub/notes.md is found');
  publish(V3, live);
  t.equal((await gate.app.policyReloader.reload('sighup')).result, 'loaded');
  t.same(await search(), [], 'v3 blocks notes.md: the search executor skips it without a restart');
});

t.test('an HTTP bundle source with ETags: two replicas converge within the poll interval', async (t) => {
  let body = fs.readFileSync(V1);
  let requests = 0;
  let notModified = 0;
  const bundleServer = http.createServer((req, res) => {
    requests++;
    const etag = `"${crypto.createHash('sha256').update(body).digest('hex')}"`;
    if (req.headers['if-none-match'] === etag) {
      notModified++;
      res.writeHead(304, { etag });
      res.end();
      return;
    }
    res.writeHead(200, { etag, 'content-type': 'application/gzip', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => bundleServer.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => bundleServer.close(() => r())));
  const url = `http://127.0.0.1:${(bundleServer.address() as AddressInfo).port}/bundles/bulwark.tar.gz`;

  const POLL_MS = 500;
  const replicas: HttpServerProcess[] = [];
  for (const name of ['replica-a', 'replica-b']) {
    const server = await startHttpServer(['--config', configWith(sb, name, { bundle_url: url, poll_interval_ms: POLL_MS })]);
    t.teardown(() => server.stop());
    replicas.push(server);
  }
  const [a, b] = replicas as [HttpServerProcess, HttpServerProcess];
  const rev1 = await readyRevision(a);
  t.equal(await readyRevision(b), rev1, 'both replicas start on the same revision');
  await waitFor('conditional polls', () => (notModified >= 2 ? true : undefined));
  t.ok(notModified >= 2, `unchanged polls are answered 304 (${notModified} of ${requests})`);

  body = fs.readFileSync(V2);
  const started = Date.now();
  const converged = await waitFor(
    'both replicas on v2',
    async () => {
      const [ra, rb] = await Promise.all([readyRevision(a), readyRevision(b)]);
      return ra !== rev1 && ra === rb ? ra : undefined;
    },
    20 * POLL_MS + 10_000,
  );
  const ms = Date.now() - started;
  t.comment(`both replicas served the new bundle ${ms} ms after it was published (poll interval ${POLL_MS} ms)`);
  const clients = await Promise.all(replicas.map((r) => httpClient(r.url)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  for (const c of clients) t.same(await readFile(c), { ok: false, code: 'policy_denied' }, 'each replica decides with v2');

  // A tampered bundle at the source: each replica refuses it once (one line), and both keep v2.
  body = fs.readFileSync(TAMPERED);
  await waitFor('both refusals', () => (replicas.every((r) => r.stderr().includes('policy.bundle_digest_mismatch')) ? true : undefined));
  await new Promise((r) => setTimeout(r, 4 * POLL_MS));
  for (const r of replicas) {
    t.equal(await readyRevision(r), converged, 'the tampered bundle did not replace v2');
    t.equal(
      r
        .stderr()
        .split('\n')
        .filter((l) => l.includes('policy.bundle_digest_mismatch')).length,
      1,
      'refused once, not at every poll',
    );
    t.equal(valueOf(await metrics(r), 'mcp_policy_reload_total', { result: 'refused', reason: 'policy.bundle_digest_mismatch' }), 1);
  }
});

t.test('a server whose bundle cannot load at boot stays up, not ready, and denies every call', async (t) => {
  const config = configWith(sb, 'boot-bad', { bundle: UNSIGNED, watch: false });
  const server = await startHttpServer(['--config', config]);
  t.teardown(() => server.stop());
  const res = await fetch(`${server.base}/ready`);
  t.equal(res.status, 503);
  const body = (await res.json()) as { checks: Record<string, boolean>; policy_revision: string };
  t.equal(body.policy_revision, 'unavailable');
  t.match(server.stderr(), /policy failed to load.*policy\.bundle_unsigned/);
  const client = await httpClient(server.url);
  t.teardown(() => client.close());
  t.same(await readFile(client), { ok: false, code: 'policy_error' });
});
