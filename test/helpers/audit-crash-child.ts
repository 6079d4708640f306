/**
 * Child process for test/audit-crash.test.ts: opens the audit log in `fsync` mode and appends
 * records (a few in flight at once) until killed, printing `ack <seq> <request_id>` for each
 * append that resolved (stdout to a pipe is synchronous on Linux, so an ack printed is an ack seen).
 * argv: <log path> <tag> [max records|-] [rotate bytes]
 */
import { AuditLog } from '../../src/audit/open-audit-log.js';

const [file, tag = 'c', maxArg, rotateArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: audit-crash-child <log> [tag] [max]\n');
  process.exit(2);
}
const max = maxArg && maxArg !== '-' ? Number(maxArg) : Infinity;
const rotation = rotateArg ? { maxBytes: Number(rotateArg) } : undefined;
const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5, rotation });
process.stdout.write(`ready ${log.lastSeq}\n`);
let n = 0;
const pad = 'x'.repeat(200 + Math.floor(Math.random() * 2000));
async function worker(w: number): Promise<void> {
  while (n < max) {
    const id = `${tag}-${w}-${n++}`;
    const a = await log.append({ request_id: id, tool: 'read_file', args: { path: `/data/${id}`, pad }, outcome: { status: 'ok', code: null, reasons: [] } });
    process.stdout.write(`ack ${a.seq} ${id}\n`);
  }
}
await Promise.all([0, 1, 2, 3].map(worker));
await log.close();
process.stdout.write('done\n');
