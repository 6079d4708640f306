import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { AuditLog } from '../src/audit/open-audit-log.js';
import { collectFileReport, escapeHtml, renderHtml } from '../src/audit/report.js';
import { generateKey } from '../src/audit/note.js';
import { BIN, makeSandbox } from './helpers/fixtures.js';

const XSS = '<script>alert(1)</script>';
const REASON = 'path outside every configured root & not "allowed"';

function call(i: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    request_id: `r${i}`,
    transport: 'stdio',
    client_ip: null,
    principal: { id: i % 3 === 0 ? 'alice' : 'bob', roles: ['reader'], auth: 'api_key' },
    tool: i % 2 ? 'read_file' : 'list_dir',
    args: { path: `f${i}.txt` },
    masked: [],
    decision: { allow: true, reasons: [], policy_revision: 'rev' },
    outcome: { status: 'ok', code: null, reasons: [], duration_ms: 1 },
    ...over,
  };
}

function denied(i: number, args: unknown, reasons: string[]): Record<string, unknown> {
  return call(i, {
    principal: { id: `mallory${XSS}`, roles: [], auth: 'api_key' },
    args,
    decision: { allow: false, reasons, policy_revision: 'rev' },
    outcome: { status: 'denied', code: 'POLICY_DENIED', reasons, duration_ms: 1 },
  });
}

async function fixture(t: Test, denials = 2) {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'log', 'audit.jsonl');
  const log = await AuditLog.open({ path: file, durability: 'fsync', batchMs: 5 });
  for (let i = 0; i < 12; i++) await log.append(call(i));
  await log.append(denied(100, { path: XSS, note: `it's <b>"bold"</b> & more` }, [REASON, `tool said ${XSS}`]));
  for (let i = 1; i < denials; i++) await log.append(denied(100 + i, { path: `/etc/passwd${i}` }, [`denied number ${i}`]));
  await log.append(call(200, { outcome: { status: 'error', code: 'TOOL_TIMEOUT', reasons: ['took too long'], duration_ms: 9 } }));
  await log.close();
  return { sb, file, out: path.join(sb.dir, 'report.html') };
}

function report(args: string[]) {
  return spawnSync(process.execPath, [BIN, 'audit', 'report', ...args], { encoding: 'utf8' });
}

t.test('escapeHtml escapes & < > " and \'', async (t) => {
  t.equal(escapeHtml(`<a href="x" title='y'>&amp;</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
  t.equal(escapeHtml(5), '5');
});

t.test('the HTML report: verdict, counts, timeline, denials; every value escaped, no scripts or external resources', async (t) => {
  const { file, out } = await fixture(t);
  const r = report([file, '--html', out]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^OK: wrote .*report\.html \(15 records, 2 denial\(s\)\)/);
  const html = fs.readFileSync(out, 'utf8');
  t.match(html, /VERIFIED: 15 records in 1 segment\(s\), chain intact, last seq 15/);
  t.notOk(/<script/i.test(html), 'no script element anywhere');
  t.notOk(/\b(src|href)\s*=/i.test(html), 'no external resources');
  t.notOk(/<link|@import|url\(/i.test(html), 'no stylesheets or urls');
  t.match(html, /default-src 'none'/, 'a CSP forbids scripts should anything slip through');
  t.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the injected script is shown as text');
  t.ok(html.includes('it&#39;s &lt;b&gt;\\&quot;bold\\&quot;&lt;/b&gt; &amp; more'), 'quotes, apostrophes and ampersands in args are escaped');
  t.ok(html.includes(escapeHtml(REASON)), 'the denial reason is listed');
  t.ok(html.includes('mallory&lt;script&gt;'), 'a principal id is escaped');
  t.match(html, /<td class="mono">alice<\/td><td class="n">4<\/td>/, 'count by principal');
  t.match(html, /<td class="mono">read_file<\/td><td class="n">7<\/td>/, 'count by tool');
  t.match(html, /<td class="mono">denied \/ POLICY_DENIED<\/td><td class="n">2<\/td>/, 'count by outcome code');
  t.match(html, /<td class="mono">error \/ TOOL_TIMEOUT<\/td><td class="n">1<\/td>/);
  t.match(html, /<td class="mono">deny<\/td><td class="n">2<\/td>/, 'count by decision');
  t.match(html, /Records per minute \(UTC\)/, 'a timeline');
  t.match(html, /<h2>Denials \(2\)<\/h2>/);
});

t.test('the denial list is capped with a note; a damaged log is reported as such (exit 1)', async (t) => {
  const { file, out } = await fixture(t, 8);
  const d = await collectFileReport(file, { maxDenials: 3 });
  t.equal(d.denialsTotal, 8);
  t.equal(d.denials.length, 3);
  t.match(renderHtml(d), /Showing the first 3 of 8 denials \(cap 3\)/);
  const text = fs.readFileSync(file, 'utf8');
  const at = text.indexOf('"f3.txt"');
  fs.writeFileSync(file, `${text.slice(0, at)}"f4.txt"${text.slice(at + 8)}`);
  const r = report([file, '--html', out]);
  t.equal(r.status, 1, r.stderr);
  t.match(r.stdout, /^DAMAGED: wrote/);
  const html = fs.readFileSync(out, 'utf8');
  t.match(html, /DAMAGED: audit\.jsonl line 4 \(seq 4\): modified/);
  t.match(html, /<h2>Denials \(8\)<\/h2>/, 'aggregates still cover every readable line');
});

t.test('usage: --html is required; a missing log is a usage error', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  t.equal(report([path.join(sb.dir, 'nope.jsonl'), '--html', path.join(sb.dir, 'x.html')]).status, 2);
  const { file } = await fixture(t);
  const r = report([file]);
  t.equal(r.status, 2);
  t.match(r.stderr, /--html FILE is required/);
});

function chromium(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

t.test('headless Chromium renders the report: verdict and denial reason in the DOM, the injected script stays text', async (t) => {
  const bin = chromium();
  if (!bin) {
    t.fail("chromium is not on PATH: run scripts/toolchain.sh (it apt-get installs Debian's chromium)");
    return;
  }
  const { sb, file, out } = await fixture(t);
  t.equal(report([file, '--html', out]).status, 0);
  const profile = fs.mkdtempSync(path.join(sb.dir, 'chromium-'));
  const r = spawnSync(
    bin,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      '--dump-dom',
      `file://${out}`,
    ],
    { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
  );
  t.equal(r.error, undefined, `chromium ran (${r.error?.message ?? ''})`);
  if (r.status !== 0) t.comment(r.stderr.slice(-2000));
  t.equal(r.status, 0, 'chromium exited 0');
  const dom = r.stdout;
  t.match(dom, /VERIFIED: 15 records in 1 segment\(s\), chain intact/, 'the verdict is in the rendered DOM');
  t.ok(dom.includes(escapeHtml(REASON).replace(/&quot;/g, '"')), 'the denial reason is in the rendered DOM');
  t.ok(dom.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'the injected markup is text in the DOM');
  t.notOk(/<script/i.test(dom), 'no script element was created');
  t.notOk(dom.includes('<b>'), 'no element from args markup either');
});

t.test('audit tail -f prints the last N, then follows new records across rotations until SIGINT', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const file = path.join(sb.dir, 'log', 'audit.jsonl');
  const opts = { path: file, durability: 'fsync' as const, batchMs: 5, rotation: { maxBytes: 2048 } };
  let log = await AuditLog.open(opts);
  for (let i = 0; i < 3; i++) await log.append(call(i));
  await log.close();
  const child = spawn(process.execPath, [BIN, 'audit', 'tail', file, '-n', '2', '-f'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((res) => child.once('close', (code) => res(code)));
  const seqs = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { seq: number }).seq);
  const until = async (n: number) => {
    for (let i = 0; i < 150 && seqs().length < n; i++) await new Promise((r) => setTimeout(r, 100));
  };
  await until(2);
  t.same(seqs(), [2, 3], 'the last two records first');
  log = await AuditLog.open(opts);
  for (let i = 0; i < 20; i++) {
    await log.append(call(10 + i, { args: { pad: 'p'.repeat(400) } }));
    if (i % 5 === 0) await new Promise((r) => setTimeout(r, 250));
  }
  await log.close();
  await until(22);
  t.ok(
    fs.readdirSync(path.dirname(file)).some((f) => /^audit\.\d{12}\.jsonl$/.test(f)),
    'the log rotated meanwhile',
  );
  t.same(
    seqs(),
    Array.from({ length: 22 }, (_, k) => k + 2),
    'every new record once, in order, across rotations',
  );
  child.kill('SIGINT');
  t.equal(await exited, 0, `exits 0 on SIGINT ${err}`);
});

t.test('a rotated, checkpointed log: the report covers every segment and checks signatures with --public-key', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const key = generateKey('report-test');
  const file = path.join(sb.dir, 'log', 'audit.jsonl');
  const log = await AuditLog.open({
    path: file,
    durability: 'fsync',
    batchMs: 5,
    rotation: { maxBytes: 2048 },
    checkpoint: { signer: key, everyRecords: 5, everyMs: 60_000, origin: 'bulwark/audit/report' },
  });
  for (let i = 0; i < 30; i++) await log.append(i % 10 === 9 ? denied(i, { i }, [`reason ${i}`]) : call(i, { args: { pad: 'p'.repeat(300) } }));
  await log.close();
  const out = path.join(sb.dir, 'r.html');
  const r = report([file, '--html', out, '--public-key', key.encoded]);
  t.equal(r.status, 0, r.stderr);
  const html = fs.readFileSync(out, 'utf8');
  t.match(html, /VERIFIED: 30 records in \d+ segment\(s\), chain intact, last seq 30; \d+\/\d+ checkpoint\(s\) matched \(signatures verified\)/);
  t.match(html, /<h2>Denials \(3\)<\/h2>/);
  for (const n of [9, 19, 29]) t.ok(html.includes(`reason ${n}`), `denial ${n} from its segment`);
});

t.test('audit report needs a trusted key for a signed log, as verify does', async (t) => {
  const sb = makeSandbox();
  t.teardown(sb.cleanup);
  const key = generateKey('report-keys');
  const file = path.join(sb.dir, 'log', 'audit.jsonl');
  const log = await AuditLog.open({
    path: file,
    durability: 'fsync',
    batchMs: 5,
    genesis: true,
    checkpoint: { signer: key, everyRecords: 5, everyMs: 60_000, origin: 'bulwark/audit/report-keys' },
  });
  for (let i = 0; i < 12; i++) await log.append(call(i));
  await log.close();
  const out = path.join(sb.dir, 'r.html');

  // No key: the report is written, its verdict says why, and the exit is 1.
  let r = report([file, '--html', out]);
  t.equal(r.status, 1, `no key: exit 1 (${r.stdout}${r.stderr})`);
  t.match(r.stdout, /^DAMAGED: wrote /);
  t.match(fs.readFileSync(out, 'utf8'), /no_trusted_key/, 'the verdict names the missing key');

  // The signer's key, pinned.
  r = report([file, '--html', out, '--public-key', key.encoded]);
  t.equal(r.status, 0, `with the key: exit 0 ${r.stderr}`);
  t.match(fs.readFileSync(out, 'utf8'), /signatures verified/);

  r = report([file, '--html', out, '--trust-genesis']);
  t.equal(r.status, 0, `--trust-genesis: exit 0 ${r.stderr}`);
  t.match(fs.readFileSync(out, 'utf8'), /trusting the key\(s\) named by the genesis record/, 'with its warning in the report');

  r = report([file, '--html', out, '--no-signatures']);
  t.equal(r.status, 0, '--no-signatures, explicitly: exit 0');
  t.match(r.stderr, /warning: --no-signatures/);

  r = report([file, '--html', out, '--no-signatures', '--public-key', key.encoded]);
  t.equal(r.status, 2, '--no-signatures with a key is a usage error');

  // A forged key of the same name is not trusted.
  const evil = generateKey('report-keys');
  r = report([file, '--html', out, '--public-key', evil.encoded]);
  t.equal(r.status, 1, 'a key that did not sign it: exit 1');
});
