/**
 * call_api through a spawned `bulwark serve --http` process:
 * - configured header secrets (from the environment) reach the upstream but never the results,
 *   the server's logs (stderr, at debug level, across successes, echoes and failures) or the
 *   audit log;
 * - HTTPS to a pinned address keeps the upstream's name for SNI and certificate checks, and a
 *   certificate for another name is refused.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { makeSandbox, readAudit } from './helpers/fixtures.js';
import { httpClient, startHttpServer } from './helpers/clients.js';
import { startUpstream, writePolicyData } from './helpers/upstreams.js';

const SECRET = 'ghp_S3cr3tT0kenF0rBulwarkTests0000xyz';

interface ToolReply {
  isError?: boolean;
  structuredContent?: Record<string, any>;
  content?: unknown;
}

t.test('secrets in configured headers never reach results, logs or the audit log', async (t) => {
  const up = await startUpstream();
  const sb = makeSandbox({
    apis: {
      svc: {
        base_url: `${up.origin}/v1/`,
        internal: true,
        retries: 1,
        retry_backoff_ms: 5,
        timeout_ms: 300,
        headers: { Authorization: 'token ${BULWARK_API_SECRET}', 'X-Upstream-Key': '${BULWARK_API_SECRET}' },
        cache_ttl_s: 30,
      },
      dead: { base_url: 'http://127.0.0.1:9/', internal: true, retries: 0, headers: { Authorization: 'token ${BULWARK_API_SECRET}' } },
    },
    policy: { data: 'policy-data.json' },
    observability: { log_level: 'debug' },
  });
  writePolicyData(sb.dir, ['svc', 'dead']);
  process.env.BULWARK_API_SECRET = SECRET;
  const server = await startHttpServer(['--config', sb.configPath]);
  delete process.env.BULWARK_API_SECRET;
  const client = await httpClient(server.url);
  t.teardown(async () => {
    await client.close();
    await server.stop();
    await up.close();
    sb.cleanup();
  });

  const call = async (args: Record<string, unknown>) => (await client.callTool({ name: 'call_api', arguments: args })) as ToolReply;
  const replies: ToolReply[] = [];
  replies.push(await call({ api: 'svc', path: '/echo' }));
  replies.push(await call({ api: 'svc', path: '/echo' }));
  replies.push(await call({ api: 'svc', path: '/slow', query: { ms: 1000 } }));
  replies.push(await call({ api: 'svc', path: '/status', query: { code: 500 } }));
  replies.push(await call({ api: 'dead', path: '/x' }));
  replies.push(await call({ api: 'svc', path: '/../x' }));
  replies.push((await client.callTool({ name: 'api_stats', arguments: {} })) as ToolReply);

  t.equal(up.seen[0]?.headers.authorization, `token ${SECRET}`, 'the upstream got the credential');
  t.equal(up.seen[0]?.headers['x-upstream-key'], SECRET);
  t.equal(replies[0]?.structuredContent?.body?.headers?.authorization, '[REDACTED]', 'the echo came back redacted');
  t.equal(replies[1]?.structuredContent?.from_cache, true);
  t.equal(replies[2]?.structuredContent?.error?.code, 'timeout');
  t.equal(replies[4]?.structuredContent?.error?.code, 'tool_error');
  t.equal(replies[5]?.structuredContent?.error?.code, 'url_rejected');

  const everything = JSON.stringify(replies);
  t.notOk(everything.includes(SECRET), 'no result, denial or stats carries the secret');
  await new Promise((r) => setTimeout(r, 200));
  const stderr = server.stderr();
  t.ok(stderr.includes('upstream echoed a configured header value'), 'the redaction is logged (without the value)');
  t.ok(stderr.includes('"level":"info"'), 'stderr was captured');
  t.notOk(stderr.includes(SECRET), "the secret is not in the server's logs");
  const audit = fs.readFileSync(sb.auditPath, 'utf8');
  t.equal(readAudit(sb.auditPath).length, replies.length, 'every call audited (one record each; the genesis record aside)');
  t.notOk(audit.includes(SECRET), 'the secret is not in the audit log');
  t.notOk(fs.readFileSync(sb.configPath, 'utf8').includes(SECRET), 'the config file holds only the reference');
});

function makeCert(dir: string): { ca: string; key: string; cert: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Bulwark Test CA',
  ]);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n');
  run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { ca: path.join(dir, 'ca.pem'), key: fs.readFileSync(path.join(dir, 'leaf.key'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'leaf.pem'), 'utf8') };
}

t.test('HTTPS through a pinned address keeps SNI and the certificate name', async (t) => {
  const sb = makeSandbox();
  const pki = makeCert(sb.dir);
  const servernames: (string | false | null)[] = [];
  const server = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
    servernames.push((req.socket as import('node:tls').TLSSocket).servername);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ host: req.headers.host, tls: true }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const apis = {
    // "localhost" resolves to loopback (internal), is dialled by address, and must still present as localhost.
    named: { base_url: `https://localhost:${port}/`, internal: true, retries: 0 },
    // The same server by address: the certificate names localhost only, so this must fail.
    by_ip: { base_url: `https://127.0.0.1:${port}/`, internal: true, retries: 0 },
  };
  const cfg = makeSandbox({ apis, policy: { data: 'policy-data.json' } });
  writePolicyData(cfg.dir, Object.keys(apis));
  process.env.NODE_EXTRA_CA_CERTS = pki.ca;
  const bulwark = await startHttpServer(['--config', cfg.configPath]);
  delete process.env.NODE_EXTRA_CA_CERTS;
  const client = await httpClient(bulwark.url);
  t.teardown(async () => {
    await client.close();
    await bulwark.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    sb.cleanup();
    cfg.cleanup();
  });

  const named = (await client.callTool({ name: 'call_api', arguments: { api: 'named', path: '/hello' } })) as ToolReply;
  t.notOk(named.isError, `named upstream over TLS: ${JSON.stringify(named.structuredContent?.error ?? {})}`);
  t.same(named.structuredContent?.body, { host: `localhost:${port}`, tls: true }, 'Host header is the upstream name');
  t.same(servernames, ['localhost'], 'SNI is the upstream name, not the dialled address');

  const byIp = (await client.callTool({ name: 'call_api', arguments: { api: 'by_ip', path: '/hello' } })) as ToolReply;
  t.equal(byIp.structuredContent?.error?.code, 'tool_error', 'a certificate for another name is refused');
  t.same(byIp.structuredContent?.error?.reasons, ['api.connect_failed']);
  t.equal(servernames.length, 1, 'no request was served over the mismatched connection');
});
