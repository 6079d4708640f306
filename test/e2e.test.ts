import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { BIN, makeSandbox, readAudit, SECRET } from './helpers/fixtures.js';
import { httpClient, startHttpServer, stdioClient } from './helpers/clients.js';

function verify(auditPath: string) {
  return spawnSync(process.execPath, [BIN, 'audit', 'verify', auditPath, '--json'], { encoding: 'utf8' });
}

t.test('stdio: list, read, typed denial, audit chain verifies', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const { client, close } = await stdioClient(['--config', sb.configPath]);
  t.teardown(close);

  const { tools } = await client.listTools();
  const names = tools.map((x) => x.name).sort();
  for (const n of ['file_info', 'list_directory', 'read_file', 'search_files', 'query_database', 'list_tables', 'describe_table', 'run_javascript'])
    t.ok(names.includes(n), `${n} is listed`);
  for (const tool of tools) {
    t.equal(typeof tool.annotations?.readOnlyHint, 'boolean', `${tool.name} declares readOnlyHint`);
    t.equal(typeof tool.annotations?.destructiveHint, 'boolean', `${tool.name} declares destructiveHint`);
    t.equal(typeof tool.annotations?.openWorldHint, 'boolean', `${tool.name} declares openWorldHint`);
    t.ok(tool.outputSchema, `${tool.name} has an output schema`);
  }
  for (const tool of tools.filter((x) => ['read_file', 'list_directory', 'search_files', 'file_info', 'query_database'].includes(x.name))) {
    t.equal(tool.annotations?.readOnlyHint, true, `${tool.name} is read-only`);
  }

  const ok = await client.callTool({ name: 'read_file', arguments: { path: path.join(sb.root, 'hello.txt') } });
  t.notOk(ok.isError);
  t.equal((ok.content as { text: string }[])[0]?.text, 'hello, world\n');
  t.equal((ok.structuredContent as { sha256: string }).sha256, '853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020');

  const bad = await client.callTool({ name: 'read_file', arguments: { path: path.join(sb.outside, 'secret.txt') } });
  t.equal(bad.isError, true);
  const err = (bad.structuredContent as { error: { code: string; reasons: string[] } }).error;
  t.equal(err.code, 'path_rejected');
  t.ok(err.reasons.includes('path.outside_root'));
  t.notMatch(JSON.stringify(bad), SECRET);

  await close();
  const records = readAudit(sb.auditPath);
  const calls = records.filter((r) => r.tool === 'read_file');
  t.equal(calls.length, 2, 'both calls are in the audit log');
  t.equal(calls[0]!.outcome.status, 'ok');
  t.equal(calls[0]!.decision.allow, true);
  t.equal(calls[1]!.outcome.status, 'denied');
  t.equal(calls[1]!.outcome.code, 'path_rejected');
  t.equal(calls[0]!.principal.auth, 'stdio');
  const v = verify(sb.auditPath);
  t.equal(v.status, 0, v.stdout + v.stderr);
  t.equal(JSON.parse(v.stdout).ok, true);
});

t.test('HTTP: list, read, typed denial, audit chain verifies', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const server = await startHttpServer(['--config', sb.configPath]);
  t.teardown(() => server.stop());
  const client = await httpClient(server.url);
  t.teardown(() => client.close());

  const { tools } = await client.listTools();
  t.ok(tools.some((x) => x.name === 'read_file'));
  const ok = await client.callTool({ name: 'read_file', arguments: { path: 'sub/notes.md' } });
  t.notOk(ok.isError);
  t.match((ok.content as { text: string }[])[0]?.text, /beta needle gamma/);
  const bad = await client.callTool({ name: 'read_file', arguments: { path: '../outside/secret.txt' } });
  t.equal((bad.structuredContent as { error: { code: string } }).error.code, 'path_rejected');
  t.notMatch(JSON.stringify(bad), SECRET);

  await client.close();
  await server.stop();
  const calls = readAudit(sb.auditPath).filter((r) => r.tool === 'read_file');
  t.equal(calls.length, 2);
  t.equal(calls[0]!.transport, 'http');
  t.equal(calls[0]!.principal.auth, 'loopback');
  t.equal(calls[1]!.outcome.code, 'path_rejected');
  t.equal(verify(sb.auditPath).status, 0);
});
