import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import t from 'tap';
import postgres from 'postgres';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { installPostgresSchema } from '../src/audit/postgres-log.js';
import { generateKey } from '../src/audit/note.js';
import { BIN } from './helpers/fixtures.js';

// Issue 12 (5): the auditor's HTML report on a PostgreSQL log, against a real PostgreSQL (started
// by scripts/run-tests.mjs; without it this test fails, never skips).
const PGURL = process.env.PGURL;
if (!PGURL) {
  t.fail('PGURL is not set: run with scripts/run-tests.mjs');
} else {
  const admin = postgres(PGURL, { max: 1, onnotice: () => undefined });
  const KEY = generateKey('bulwark-pg-report');
  t.before(async () => {
    await installPostgresSchema(PGURL);
  });
  t.teardown(() => admin.end({ timeout: 5 }));

  t.test('audit report --html on a PostgreSQL stream: verdict, counts, denials escaped, outcome unknown; damage shows', async (t) => {
    const s = `report-${crypto.randomUUID().slice(0, 8)}`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-pg-report-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const log = await AuditLog.open({
      path: '',
      durability: 'fsync',
      batchMs: 5,
      backend: 'postgres',
      postgresUrl: PGURL,
      stream: s,
      checkpoint: { signer: KEY, everyRecords: 5, everyMs: 60_000, origin: `bulwark/audit/${s}` },
    });
    const principal = { id: 'alice', roles: ['analyst'], auth: 'api_key' };
    for (let i = 0; i < 12; i++) {
      await log.append({
        request_id: `ok-${i}`,
        principal,
        tool: 'read_file',
        decision: { allow: true, reasons: [] },
        outcome: { status: 'ok', code: null, reasons: [] },
      });
    }
    await log.append({
      request_id: 'deny-1',
      principal,
      tool: '<script>alert(1)</script>',
      args: { sql: '"><img src=x onerror=alert(2)>' },
      decision: { allow: false, reasons: ['policy.not_granted'] },
      outcome: { status: 'denied', code: 'policy_denied', reasons: ['policy.not_granted'] },
    });
    await log.append({ event: 'intent', request_id: 'lost-1', principal, tool: 'call_api', decision: { allow: true, reasons: [] } });
    await log.close();

    const html = path.join(dir, 'report.html');
    const r = spawnSync(process.execPath, [BIN, 'audit', 'report', PGURL, '--stream', s, '--html', html, '--public-key', KEY.encoded], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stdout + r.stderr);
    t.match(r.stdout, /^OK: wrote .*\(14 records, 1 denial\(s\)\)/);
    const page = fs.readFileSync(html, 'utf8');
    t.match(page, /id="verdict">VERIFIED: 14 records in 1 segment\(s\), chain intact, last seq 14; \d+\/\d+ checkpoint\(s\) matched \(signatures verified\)/);
    t.match(page, `postgres:${s}`, 'names the stream');
    t.notMatch(page, /<script>alert|<img src=x/, 'model-controlled strings are escaped');
    t.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    t.match(page, /policy_denied/);
    t.match(page, /Side effects whose outcome is unknown \(1\)/);
    t.match(page, /lost-1/);
    t.notMatch(r.stdout + r.stderr, /password=/);

    // The database owner rewrites a record behind the triggers: the report says DAMAGED, exit 1.
    await admin.unsafe('ALTER TABLE bulwark_audit DISABLE TRIGGER bulwark_audit_no_change');
    try {
      await admin`UPDATE bulwark_audit SET line = replace(line, '"ok-3"', '"ok-X"') WHERE stream = ${s} AND seq = 4`;
    } finally {
      await admin.unsafe('ALTER TABLE bulwark_audit ENABLE TRIGGER bulwark_audit_no_change');
    }
    const bad = spawnSync(process.execPath, [BIN, 'audit', 'report', PGURL, '--stream', s, '--html', html, '--public-key', KEY.encoded], { encoding: 'utf8' });
    t.equal(bad.status, 1, bad.stdout + bad.stderr);
    t.match(bad.stdout, /^DAMAGED: wrote/);
    t.match(fs.readFileSync(html, 'utf8'), /id="verdict">DAMAGED: postgres:[^ ]+ line 4 \(seq 4\): modified/);
  });

  t.test('a PostgreSQL stream whose first rows the owner deleted: head truncated, and a signed stream needs a key', async (t) => {
    const s = `head-${crypto.randomUUID().slice(0, 8)}`;
    const log = await AuditLog.open({
      path: '',
      durability: 'fsync',
      batchMs: 5,
      backend: 'postgres',
      postgresUrl: PGURL,
      stream: s,
      checkpoint: { signer: KEY, everyRecords: 5, everyMs: 60_000, origin: `bulwark/audit/${s}` },
    });
    for (let i = 0; i < 30; i++) await log.append({ request_id: `r${i}`, tool: 'read_file', outcome: { status: 'ok' } });
    await log.close();
    let v = spawnSync(process.execPath, [BIN, 'audit', 'verify', PGURL, '--stream', s, '--json'], { encoding: 'utf8' });
    t.equal(v.status, 1, 'checkpoints and no key: exit 1');
    t.equal(JSON.parse(v.stdout).problem.kind, 'no_trusted_key');
    await admin.unsafe('ALTER TABLE bulwark_audit DISABLE TRIGGER bulwark_audit_no_change');
    try {
      await admin`DELETE FROM bulwark_audit WHERE stream = ${s} AND seq <= 10`;
    } finally {
      await admin.unsafe('ALTER TABLE bulwark_audit ENABLE TRIGGER bulwark_audit_no_change');
    }
    v = spawnSync(process.execPath, [BIN, 'audit', 'verify', PGURL, '--stream', s, '--json', '--no-signatures'], { encoding: 'utf8' });
    t.equal(v.status, 1);
    const r = JSON.parse(v.stdout);
    t.equal(r.problem.kind, 'head_truncated', r.problem.message);
    t.match(r.problem.message, 'records 1..10 missing');
  });
}
