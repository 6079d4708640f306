// read_file of a small file over stdio: Bulwark against the reference filesystem server, one call
// in flight, interleaved call by call in the same run so machine noise hits both alike.
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ROOT, summarise, workspace } from './lib.mjs';

async function connect(args) {
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args, stderr: 'ignore' }));
  return client;
}

export async function benchStdioRead({ rounds = 2000 }) {
  const wsFsync = workspace('fsync');
  const wsBatch = workspace('batch');
  const servers = {
    reference: {
      client: await connect([path.join(ROOT, 'node_modules', '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js'), wsFsync.root]),
      tool: 'read_text_file',
      file: wsFsync.file,
    },
    bulwark_fsync: {
      client: await connect([path.join(ROOT, 'bin', 'bulwark.js'), 'serve', '--config', wsFsync.config]),
      tool: 'read_file',
      file: wsFsync.file,
    },
    bulwark_batch: {
      client: await connect([path.join(ROOT, 'bin', 'bulwark.js'), 'serve', '--config', wsBatch.config]),
      tool: 'read_file',
      file: wsBatch.file,
    },
  };
  const lat = Object.fromEntries(Object.keys(servers).map((k) => [k, []]));
  const once = async (s) => {
    const t0 = performance.now();
    const r = await s.client.callTool({ name: s.tool, arguments: { path: s.file } });
    const dt = performance.now() - t0;
    if (r.isError) throw new Error(`bench read failed: ${JSON.stringify(r.content)}`);
    return dt;
  };
  for (let i = 0; i < 200; i++) for (const s of Object.values(servers)) await once(s);
  for (let i = 0; i < rounds; i++) {
    for (const [k, s] of Object.entries(servers)) lat[k].push(await once(s));
  }
  for (const s of Object.values(servers)) await s.client.close();
  wsFsync.cleanup();
  wsBatch.cleanup();
  const stats = Object.fromEntries(Object.entries(lat).map(([k, v]) => [k, summarise(v)]));
  const ratio = (k) => Math.round((stats[k].p50 / stats.reference.p50) * 100) / 100;
  return { rounds, latency_ms: stats, median_ratio_vs_reference: { bulwark_fsync: ratio('bulwark_fsync'), bulwark_batch: ratio('bulwark_batch') } };
}
