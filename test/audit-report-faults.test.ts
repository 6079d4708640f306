/**
 * What a crash or an outage leaves in the log, as verify and the HTML report show it: intents
 * without an outcome ("outcome unknown", not damage) and recovery records.
 */
import path from 'node:path';
import t from 'tap';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { verifyFile } from '../src/audit/verify.js';
import { collectFileReport, renderHtml } from '../src/audit/report.js';
import { makeSandbox } from './helpers/fixtures.js';

t.test('an intent without an outcome is reported as outcome unknown by verify and the report; one named by its outcome is not', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'log', 'audit.jsonl');
  const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5 });
  const principal = { id: 'bob', roles: ['developer'], auth: 'loopback' };
  const done = await log.append({ event: 'intent', request_id: 'req-done', tool: 'call_api', principal, args: { method: 'POST' } });
  await log.append({ request_id: 'req-done', tool: 'call_api', principal, outcome: { status: 'ok', code: null, reasons: [] }, intent_seq: done.seq });
  const cut = await log.append({ event: 'intent', request_id: 'req-cut<script>', tool: 'call_api', principal, args: { method: 'DELETE' } });
  // A record that merely mentions "intent" in its arguments is not an intent.
  await log.append({
    request_id: 'req-other',
    tool: 'read_file',
    principal,
    args: { path: '"intent_seq":1 "event":"intent"' },
    outcome: { status: 'ok', code: null, reasons: [] },
  });
  await log.append({
    event: 'audit.recovery',
    recovery: {
      action: 'resumed',
      reason: 'ENOSPC: no space left on device',
      code: 'ENOSPC',
      failed_at: 'a',
      resumed_at: 'b',
      refused_appends: { count: 7, request_ids: [] },
    },
  });
  await log.close();

  const v = await verifyFile(file);
  t.equal(v.ok, true, 'an intent without an outcome is not damage');
  t.same(
    v.outcome_unknown.map((u) => [u.seq, u.request_id, u.tool]),
    [[cut.seq, 'req-cut<script>', 'call_api']],
  );
  t.match(v.warnings.join('\n'), /1 intent record\(s\) without an outcome/);

  const d = await collectFileReport(file);
  t.equal(d.intents, 2, 'intents are counted apart');
  t.equal(d.byTool.get('call_api'), 1, 'and not as calls');
  t.equal(d.recoveries.length, 1);
  t.match(d.recoveries[0]?.detail, /7 append\(s\) refused meanwhile/);
  const html = renderHtml(d);
  t.match(html, /Side effects whose outcome is unknown \(1\)/);
  t.match(html, /req-cut&lt;script&gt;/, 'escaped');
  t.notMatch(html, /req-cut<script>/);
  t.match(html, /Recoveries \(1\)/);
  t.match(html, /ENOSPC: no space left on device/);
});
