/**
 * `bulwark audit report`: one self-contained HTML page about an audit log — the verifier's
 * verdict, counts by principal, tool and decision/outcome code, a timeline and every denial.
 *
 * Records carry model-controlled strings (arguments, tool names, reasons), so every value is
 * HTML-escaped, the page has no scripts and no external resources, and a Content-Security-Policy
 * forbids both should anything slip through. The log is streamed: only the aggregates (with a
 * bound on distinct keys) and at most `maxDenials` denial rows are held in memory.
 */
import fs from 'node:fs';
import { parseAuditLine, type AuditRecord, type ReadRecovery } from './record-type.js';
import { fileSegments, verifyFile, type Segment, type VerifyOptions, type VerifyReport } from './verify.js';

export const DEFAULT_MAX_DENIALS = 5000;
/** Distinct principals / tools / codes tracked before the rest is counted under "(other)". */
const MAX_KEYS = 10_000;
/** Rows shown per count table. */
const MAX_TABLE_ROWS = 500;
const OTHER = '(other)';

export interface DenialRow {
  readonly seq: number | null;
  readonly ts: string;
  readonly principal: string;
  readonly tool: string;
  readonly code: string;
  readonly reasons: readonly string[];
  /** The recorded (redacted) arguments as JSON, cut to ARGS_CHARS. */
  readonly args: string;
}

const ARGS_CHARS = 300;
/** Recovery records shown (each names a crash or an outage the log came back from). */
const MAX_RECOVERIES = 1000;

export interface RecoveryRow {
  readonly seq: number | null;
  readonly ts: string;
  /** `set_aside` / `completed` (a torn tail at start-up) or `resumed` (after a write failure). */
  readonly action: string;
  readonly detail: string;
}

/** A call whose policy obliged a human's approval (gate/approval.ts), from its outcome record. */
export interface ApprovalRow {
  readonly seq: number | null;
  readonly ts: string;
  readonly principal: string;
  readonly tool: string;
  /** requested, granted, declined, expired, unsupported, invalid, failed. */
  readonly status: string;
  /** Who answered, as the client said (unverified). */
  readonly by: string;
  readonly approvers: readonly string[];
  readonly argsSha256: string;
}

/** Approval rows shown. */
const MAX_APPROVALS = 5000;

export interface ReportData {
  readonly path: string;
  readonly generatedAt: string;
  readonly verdict: VerifyReport;
  readonly records: number;
  /** Lines that are not sealed JSON records (counted, not aggregated). */
  readonly unreadable: number;
  readonly firstTs?: string | undefined;
  readonly lastTs?: string | undefined;
  readonly byPrincipal: ReadonlyMap<string, number>;
  readonly byTool: ReadonlyMap<string, number>;
  readonly byDecision: ReadonlyMap<string, number>;
  readonly byOutcome: ReadonlyMap<string, number>;
  /** Records per minute (epoch minute → count); dropped to hours when it grows too large. */
  readonly perMinute: ReadonlyMap<number, number> | undefined;
  readonly perHour: ReadonlyMap<number, number>;
  readonly denials: readonly DenialRow[];
  readonly denialsTotal: number;
  readonly maxDenials: number;
  /** Intent records (written before a side-effecting call ran); they are not counted as calls. */
  readonly intents: number;
  readonly recoveries: readonly RecoveryRow[];
  /** Calls that needed a human's approval, and what became of it (absent in data built elsewhere). */
  readonly approvals?: readonly ApprovalRow[];
}

export interface ReportOptions extends VerifyOptions {
  readonly maxDenials?: number | undefined;
  readonly now?: Date | undefined;
}

function bump(m: Map<string, number>, k: string): void {
  const cur = m.get(k);
  if (cur !== undefined) m.set(k, cur + 1);
  else if (m.size < MAX_KEYS) m.set(k, 1);
  else m.set(OTHER, (m.get(OTHER) ?? 0) + 1);
}

function argsText(a: unknown): string {
  if (a === undefined || a === null) return '';
  const s = JSON.stringify(a) ?? '';
  return s.length > ARGS_CHARS ? `${s.slice(0, ARGS_CHARS)}…` : s;
}

/** A recovery (a torn tail at start-up, a resumed log) or the appends refused while PostgreSQL resumed. */
function recoveryRow(rec: Extract<AuditRecord, { event: 'audit.recovery' | 'audit.refused' }>): RecoveryRow {
  const r: ReadRecovery = (rec.event === 'audit.refused' ? { action: 'refused', ...rec.refused } : rec.recovery) ?? {};
  const refused = r.refused_appends;
  const parts = [
    r.reason !== undefined ? `failure: ${r.reason}` : '',
    r.failed_at !== undefined ? `from ${r.failed_at ?? ''} to ${r.resumed_at ?? ''}` : '',
    refused?.count !== undefined ? `${refused.count} append(s) refused meanwhile` : '',
    r.set_aside ? `set aside: ${argsText(r.set_aside)}` : '',
    r.bytes !== undefined ? `${r.bytes} torn byte(s) at offset ${r.offset ?? ''}` : '',
  ].filter(Boolean);
  return { seq: rec.seq, ts: rec.ts, action: r.action ?? '(unknown)', detail: parts.join('; ') };
}

/** Walk the segments once and aggregate; `verdict` comes from the verifier (a separate pass). */
export async function collectReport(label: string, segments: readonly Segment[], verdict: VerifyReport, opts: ReportOptions = {}): Promise<ReportData> {
  const maxDenials = opts.maxDenials ?? DEFAULT_MAX_DENIALS;
  const byPrincipal = new Map<string, number>();
  const byTool = new Map<string, number>();
  const byDecision = new Map<string, number>();
  const byOutcome = new Map<string, number>();
  let perMinute: Map<number, number> | undefined = new Map();
  const perHour = new Map<number, number>();
  const denials: DenialRow[] = [];
  let denialsTotal = 0;
  let intents = 0;
  const recoveries: RecoveryRow[] = [];
  const approvals: ApprovalRow[] = [];
  let records = 0;
  let unreadable = 0;
  let firstTs: string | undefined;
  let lastTs: string | undefined;
  for (const seg of segments) {
    if (!seg.exists) continue;
    await seg.scan((buf, start, end) => {
      const parsed = parseAuditLine(buf.toString('utf8', start, end));
      // An event a later build writes is counted as an event; any other record that does not read is not.
      const unknownEvent = !parsed.ok && parsed.error.kind === 'unknown_event' ? parsed.error.event : undefined;
      const envelope = parsed.ok ? parsed.record : unknownEvent !== undefined ? parsed.envelope : undefined;
      if (!envelope) {
        unreadable++;
        return true;
      }
      records++;
      const ts = envelope.ts;
      const t = Date.parse(ts);
      if (!Number.isNaN(t)) {
        firstTs ??= ts;
        lastTs = ts;
        const minute = Math.floor(t / 60_000);
        const hour = Math.floor(t / 3_600_000);
        perHour.set(hour, (perHour.get(hour) ?? 0) + 1);
        if (perMinute) {
          perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
          if (perMinute.size > 24 * 60) perMinute = undefined;
        }
      }
      if (!parsed.ok) {
        bump(byPrincipal, '(none)');
        bump(byTool, `event: ${unknownEvent ?? ''}`);
        bump(byDecision, 'n/a (event record)');
        bump(byOutcome, '(none)');
        return true;
      }
      const rec = parsed.record;
      if (rec.event === 'intent') {
        // The call's outcome record follows and is counted; the intent is evidence of order.
        intents++;
        return true;
      }
      if (rec.event === 'audit.recovery' || rec.event === 'audit.refused') {
        if (recoveries.length < MAX_RECOVERIES) recoveries.push(recoveryRow(rec));
      }
      if (rec.event !== undefined) {
        bump(byPrincipal, '(none)');
        bump(byTool, `event: ${rec.event}`);
        bump(byDecision, 'n/a (event record)');
        bump(byOutcome, '(none)');
        return true;
      }
      const pid = rec.principal ? (rec.principal.id ?? '(none)') : '(none)';
      const tool = rec.tool ?? '(none)';
      bump(byPrincipal, pid);
      bump(byTool, tool);
      const decision = rec.decision;
      const dKey = decision ? (decision.allow === true ? 'allow' : decision.allow === false ? 'deny' : 'unknown') : 'no decision (before policy)';
      bump(byDecision, dKey);
      const outcome = rec.outcome;
      if (rec.approval && approvals.length < MAX_APPROVALS) {
        const a = rec.approval;
        approvals.push({
          seq: rec.seq,
          ts,
          principal: pid,
          tool,
          status: a.status ?? '(none)',
          by: a.by ?? '',
          approvers: a.approvers ?? [],
          argsSha256: a.args_sha256 ?? '',
        });
      }
      const status = outcome?.status ?? '(none)';
      const code = outcome?.code ?? '';
      bump(byOutcome, code ? `${status} / ${code}` : status);
      if (status === 'denied' || decision?.allow === false) {
        denialsTotal++;
        if (denials.length < maxDenials) {
          const reasons: string[] = [];
          for (const src of [outcome?.reasons, decision?.reasons]) for (const r of src ?? []) if (!reasons.includes(r)) reasons.push(r);
          denials.push({
            seq: rec.seq,
            ts,
            principal: pid,
            tool,
            code: code || (decision?.allow === false ? 'policy deny' : ''),
            reasons,
            args: argsText(rec.args),
          });
        }
      }
      return true;
    });
  }
  return {
    path: label,
    generatedAt: (opts.now ?? new Date()).toISOString(),
    verdict,
    records,
    unreadable,
    firstTs,
    lastTs,
    byPrincipal,
    byTool,
    byDecision,
    byOutcome,
    perMinute,
    perHour,
    denials,
    denialsTotal,
    maxDenials,
    intents,
    recoveries,
    approvals,
  };
}

/** Verify and aggregate a file log (its segments in order). */
export async function collectFileReport(target: string, opts: ReportOptions = {}): Promise<ReportData> {
  const verdict = await verifyFile(target, opts);
  const { segments, active } = fileSegments(target);
  return collectReport(active, segments, verdict, opts);
}

/** Escape for HTML text and attribute values (double- or single-quoted). */
export function escapeHtml(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a}.verdict{padding:12px 16px;border-radius:6px;margin:16px 0;font-weight:600}
.ok{background:#dafbe1;border:1px solid #4ac26b}.bad{background:#ffebe9;border:1px solid #ff8182}
table{border-collapse:collapse;margin:4px 0 8px}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:10px;background:#0969da;vertical-align:middle}
.grid{display:flex;flex-wrap:wrap;gap:24px}.note{color:#57606a;font-style:italic}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
ul.r{margin:0;padding-left:18px}
`;

function countTable(title: string, col: string, m: ReadonlyMap<string, number>): string {
  const rows = [...m.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const shown = rows.slice(0, MAX_TABLE_ROWS);
  const body = shown.map(([k, n]) => `<tr><td class="mono">${escapeHtml(k)}</td><td class="n">${n}</td></tr>`).join('');
  const more = rows.length > shown.length ? `<p class="note">${rows.length - shown.length} more not shown.</p>` : '';
  return `<section><h3>${escapeHtml(title)}</h3><table><thead><tr><th>${escapeHtml(col)}</th><th>records</th></tr></thead><tbody>${body || '<tr><td colspan="2" class="note">none</td></tr>'}</tbody></table>${more}</section>`;
}

function minMax(xs: Iterable<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of xs) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

function timeline(d: ReportData): string {
  let unit: 'minute' | 'hour' | 'day';
  let buckets: Map<number, number>;
  let step: number;
  const mins = d.perMinute;
  const minuteSpan = mins && mins.size ? (([a, b]) => b - a + 1)(minMax(mins.keys())) : Infinity;
  if (mins && minuteSpan <= 240) {
    unit = 'minute';
    buckets = new Map(mins);
    step = 60_000;
  } else {
    const [hLo, hHi] = minMax(d.perHour.keys());
    const hourSpan = d.perHour.size ? hHi - hLo + 1 : 0;
    if (hourSpan <= 24 * 14) {
      unit = 'hour';
      buckets = new Map(d.perHour);
      step = 3_600_000;
    } else {
      unit = 'day';
      buckets = new Map();
      for (const [h, n] of d.perHour) buckets.set(Math.floor(h / 24), (buckets.get(Math.floor(h / 24)) ?? 0) + n);
      step = 86_400_000;
    }
  }
  if (!buckets.size) return '<p class="note">No timestamped records.</p>';
  const [lo, hi] = minMax(buckets.keys());
  const max = minMax(buckets.values())[1];
  const rows: string[] = [];
  const LIMIT = 1000;
  for (let k = lo; k <= hi && rows.length < LIMIT; k++) {
    const n = buckets.get(k) ?? 0;
    const label = new Date(k * step)
      .toISOString()
      .slice(0, unit === 'day' ? 10 : 16)
      .replace('T', ' ');
    const w = max ? Math.round((n / max) * 300) : 0;
    rows.push(`<tr><td class="mono">${escapeHtml(label)}</td><td class="n">${n}</td><td><span class="bar" style="width:${w}px"></span></td></tr>`);
  }
  const cut = hi - lo + 1 > LIMIT ? `<p class="note">Showing the first ${LIMIT} ${unit}s of ${hi - lo + 1}.</p>` : '';
  return `<p class="meta">Records per ${unit} (UTC).</p><table class="timeline"><thead><tr><th>${unit} starting</th><th>records</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>${cut}`;
}

function verdictBlock(v: VerifyReport): string {
  const cps = v.checkpoints.total
    ? `${v.checkpoints.matched}/${v.checkpoints.total} checkpoint(s) matched (signatures ${v.checkpoints.signatures.replace('_', ' ')})`
    : 'no checkpoints';
  const wit = v.witnessed
    ? `; witnessed up to size ${v.witnessed.size} by ${v.witnessed.by.join(', ') || 'no witness'} (${v.witnessed.quorum} of ${v.witnessed.keys} witness key(s) required)`
    : '';
  if (v.ok) {
    return (
      `<div class="verdict ok" id="verdict">VERIFIED: ${v.records} records in ${v.segments.length} segment(s), chain intact, last seq ${v.last_seq}; ${escapeHtml(cps)}${escapeHtml(wit)}${v.partial ? ' (partial range)' : ''}.</div>` +
      `<p class="meta">Chain head: <code>${escapeHtml(v.last_hash)}</code></p>`
    );
  }
  const p = v.problem;
  const where = p
    ? `${escapeHtml(p.segment)} line ${p.line}${p.seq === undefined ? '' : ` (seq ${p.seq})`}: ${escapeHtml(p.kind)}: ${escapeHtml(p.message)}`
    : 'unknown problem';
  return `<div class="verdict bad" id="verdict">DAMAGED: ${where}</div><p class="meta">${v.records} records before it verified; last good seq ${v.last_seq}. Counts below include every readable line, verified or not.</p>`;
}

/** The page. Every value from the log goes through escapeHtml; numbers are produced here. */
export function renderHtml(d: ReportData): string {
  const v = d.verdict;
  const warnings = v.warnings.length ? `<ul>${v.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>` : '';
  const denialRows = d.denials
    .map(
      (r) =>
        `<tr><td class="n">${r.seq ?? ''}</td><td class="mono">${escapeHtml(r.ts)}</td><td class="mono">${escapeHtml(r.principal)}</td><td class="mono">${escapeHtml(r.tool)}</td><td class="mono">${escapeHtml(r.code)}</td><td class="mono">${escapeHtml(r.args)}</td>` +
        `<td>${r.reasons.length ? `<ul class="r">${r.reasons.map((x) => `<li>${escapeHtml(x)}</li>`).join('')}</ul>` : ''}</td></tr>`,
    )
    .join('');
  const capNote =
    d.denialsTotal > d.denials.length
      ? `<p class="note" id="denials-capped">Showing the first ${d.denials.length} of ${d.denialsTotal} denials (cap ${d.maxDenials}); use <code>bulwark audit export</code> for all.</p>`
      : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="referrer" content="no-referrer">
<title>Bulwark audit report</title>
<style>${CSS}</style></head>
<body>
<h1>Bulwark audit report</h1>
<p class="meta">Log: <code>${escapeHtml(d.path)}</code> · generated ${escapeHtml(d.generatedAt)} · ${d.records} records${d.unreadable ? ` · ${d.unreadable} unreadable line(s)` : ''}${d.firstTs ? ` · ${escapeHtml(d.firstTs)} to ${escapeHtml(d.lastTs ?? '')}` : ''}</p>
<h2>Verification</h2>
${verdictBlock(v)}${warnings}
<h2>Counts</h2>
<div class="grid">
${countTable('By principal', 'principal', d.byPrincipal)}
${countTable('By tool', 'tool', d.byTool)}
${countTable('By decision', 'decision', d.byDecision)}
${countTable('By outcome', 'status / code', d.byOutcome)}
</div>
<h2>Side effects whose outcome is unknown (${v.outcome_unknown.length})</h2>
<p class="meta">${d.intents} intent record(s): each is written, and made durable, before a side-effecting call runs; its outcome record names it. An intent without an outcome means the process stopped mid-call: whether the side effect happened is unknown. This is not damage.</p>
<table id="outcome-unknown"><thead><tr><th>seq</th><th>time</th><th>tool</th><th>request id</th></tr></thead>
<tbody>${v.outcome_unknown.map((u) => `<tr><td class="n">${u.seq}</td><td class="mono">${escapeHtml(u.ts ?? '')}</td><td class="mono">${escapeHtml(u.tool ?? '')}</td><td class="mono">${escapeHtml(u.request_id ?? '')}</td></tr>`).join('') || '<tr><td colspan="4" class="note">None.</td></tr>'}</tbody></table>
<h2>Approvals (${d.approvals?.length ?? 0})</h2>
<p class="meta">Calls the policy let run only with a human's approval. "By" is what the client said; the approval is bound to the arguments hash shown.</p>
<table id="approvals"><thead><tr><th>seq</th><th>time</th><th>principal</th><th>tool</th><th>approval</th><th>by</th><th>approvers</th><th>arguments sha256</th></tr></thead>
<tbody>${(d.approvals ?? []).map((a) => `<tr><td class="n">${a.seq ?? ''}</td><td class="mono">${escapeHtml(a.ts)}</td><td class="mono">${escapeHtml(a.principal)}</td><td class="mono">${escapeHtml(a.tool)}</td><td class="mono">${escapeHtml(a.status)}</td><td class="mono">${escapeHtml(a.by)}</td><td class="mono">${escapeHtml(a.approvers.join(', '))}</td><td class="mono">${escapeHtml(a.argsSha256)}</td></tr>`).join('') || '<tr><td colspan="8" class="note">None.</td></tr>'}</tbody></table>
<h2>Recoveries (${d.recoveries.length})</h2>
<p class="meta">Where the log came back from a crash (a torn last record set aside at start-up) or from a write failure (resumed without a restart).</p>
<table id="recoveries"><thead><tr><th>seq</th><th>time</th><th>action</th><th>detail</th></tr></thead>
<tbody>${d.recoveries.map((r) => `<tr><td class="n">${r.seq ?? ''}</td><td class="mono">${escapeHtml(r.ts)}</td><td class="mono">${escapeHtml(r.action)}</td><td class="mono">${escapeHtml(r.detail)}</td></tr>`).join('') || '<tr><td colspan="4" class="note">None.</td></tr>'}</tbody></table>
<h2>Timeline</h2>
${timeline(d)}
<h2>Denials (${d.denialsTotal})</h2>
${capNote}
<table id="denials"><thead><tr><th>seq</th><th>time</th><th>principal</th><th>tool</th><th>code</th><th>arguments</th><th>reasons</th></tr></thead>
<tbody>${denialRows || '<tr><td colspan="7" class="note">No denials.</td></tr>'}</tbody></table>
</body></html>
`;
}

/** Verify, aggregate and write the page for a file log; returns the data behind it. */
export async function writeFileReport(target: string, outFile: string, opts: ReportOptions = {}): Promise<ReportData> {
  const d = await collectFileReport(target, opts);
  fs.writeFileSync(outFile, renderHtml(d), { mode: 0o600 });
  return d;
}
