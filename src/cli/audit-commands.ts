import fs from 'node:fs';
import readline from 'node:readline';
import { verifyFile } from '../audit/verify.js';
import { unsealLine } from '../audit/chain.js';

export async function auditVerify(file: string, json: boolean): Promise<number> {
  if (!fs.existsSync(file)) {
    process.stderr.write(`bulwark audit verify: ${file} does not exist\n`);
    return 2;
  }
  const r = await verifyFile(file);
  if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else if (r.ok) process.stdout.write(`OK: ${r.records} records, chain intact, last seq ${r.last_seq}, head ${r.last_hash}\n`);
  else {
    const p = r.problem!;
    process.stdout.write(`DAMAGED: ${file} line ${p.line}${p.seq === undefined ? '' : ` (seq ${p.seq})`}: ${p.kind}: ${p.message}\n` +
      `${r.records} records before it verified; last good seq ${r.last_seq}\n`);
  }
  return r.ok ? 0 : 1;
}

async function* records(file: string): AsyncGenerator<{ line: string; rec: Record<string, unknown> }> {
  const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of rl) {
    const s = unsealLine(line);
    if (!s) continue;
    yield { line, rec: JSON.parse(s.body) as Record<string, unknown> };
  }
}

export async function auditTail(file: string, n: number): Promise<number> {
  const last: string[] = [];
  for await (const { line } of records(file)) {
    last.push(line);
    if (last.length > n) last.shift();
  }
  for (const l of last) process.stdout.write(`${l}\n`);
  return 0;
}

export async function auditShow(file: string, seq: number): Promise<number> {
  for await (const { line, rec } of records(file)) {
    if (rec.seq === seq) {
      process.stdout.write(`${line}\n`);
      return 0;
    }
  }
  process.stderr.write(`bulwark audit show: no record with seq ${seq}\n`);
  return 1;
}
