/**
 * Shared pieces of the fault-injection suites: a bounded load of real MCP calls, the answers it
 * got (code, request id, time to answer), every record of a file audit log, and the invariants
 * each scenario checks — every call answered within its deadline plus a bound, every answered
 * call with exactly one outcome record, the log verifying.
 */
import { spawnSync } from 'node:child_process';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Test } from 'tap';
import { unsealLine } from '../../src/audit/chain.js';
import { fileSegments } from '../../src/audit/verify.js';
import { BIN } from './fixtures.js';
import { cleanChildEnv } from './child-env.js';

export interface Answer {
  readonly tool: string;
  /** 'ok', a denial code, or 'no_answer' when the client got no MCP answer (connection lost). */
  readonly code: string;
  readonly requestId: string | undefined;
  readonly ms: number;
  readonly reasons: readonly string[];
  readonly error?: string;
}

type CallResult = { isError?: boolean; structuredContent?: Record<string, any>; _meta?: Record<string, unknown> };

/** One tools/call through a real SDK client, classified. Never throws. */
export async function callOnce(client: Client, tool: string, args: Record<string, unknown>, timeoutMs = 60_000): Promise<Answer> {
  const t0 = performance.now();
  try {
    const r = (await client.callTool({ name: tool, arguments: args }, undefined, { timeout: timeoutMs })) as CallResult;
    const ms = performance.now() - t0;
    if (r.isError) {
      const e = (r.structuredContent?.error ?? {}) as { code?: string; request_id?: string; reasons?: string[] };
      return { tool, code: e.code ?? 'unknown', requestId: e.request_id, ms, reasons: e.reasons ?? [] };
    }
    return { tool, code: 'ok', requestId: r._meta?.['bulwark/request_id'] as string | undefined, ms, reasons: [] };
  } catch (err) {
    return { tool, code: 'no_answer', requestId: undefined, ms: performance.now() - t0, reasons: [], error: (err as Error).message.slice(0, 200) };
  }
}

/**
 * `clients` loops, each making calls back to back until `until()` says stop or `maxCalls` calls
 * were made in total (a bound in count as well as in time).
 */
export async function runLoad(
  clients: readonly Client[],
  next: (i: number) => { tool: string; args: Record<string, unknown> },
  until: () => boolean,
  maxCalls = 5000,
  timeoutMs = 60_000,
): Promise<Answer[]> {
  const answers: Answer[] = [];
  let n = 0;
  await Promise.all(
    clients.map(async (client) => {
      while (!until() && n < maxCalls) {
        const { tool, args } = next(n++);
        answers.push(await callOnce(client, tool, args, timeoutMs));
      }
    }),
  );
  return answers;
}

export type AuditRecord = Record<string, any> & { seq: number };

/** Every complete record of a file audit log, across its segments, in order. */
export async function fileRecords(auditPath: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for (const seg of fileSegments(auditPath).segments) {
    if (!seg.exists) continue;
    await seg.scan((buf, start, end) => {
      const s = unsealLine(buf.toString('utf8', start, end));
      if (s) out.push(JSON.parse(s.body) as AuditRecord);
    });
  }
  return out;
}

/** Outcome records (not intents, not recovery or other event records) by request id. */
export function outcomesByRequest(records: readonly AuditRecord[]): Map<string, AuditRecord[]> {
  const m = new Map<string, AuditRecord[]>();
  for (const r of records) {
    if (r.event !== undefined || typeof r.request_id !== 'string') continue;
    const list = m.get(r.request_id) ?? [];
    list.push(r);
    m.set(r.request_id, list);
  }
  return m;
}

export interface Summary {
  readonly calls: number;
  readonly codes: Record<string, number>;
  readonly max_answer_ms: number;
  readonly records: number;
}

export function summarise(answers: readonly Answer[], records: readonly AuditRecord[]): Summary {
  const codes: Record<string, number> = {};
  for (const a of answers) codes[a.code] = (codes[a.code] ?? 0) + 1;
  return { calls: answers.length, codes, max_answer_ms: Math.round(Math.max(0, ...answers.map((a) => a.ms))), records: records.length };
}

/**
 * The invariants of every scenario: each call answered (an MCP answer, not a lost connection)
 * within `deadlineMs + boundMs`, with a code from `allowed`, and each answered call that the log
 * could record has exactly one outcome record. Calls answered `audit_unavailable` may have none
 * (the log could not be written); they must then be counted in a recovery record.
 */
export function checkAnswered(
  t: Test,
  answers: readonly Answer[],
  records: readonly AuditRecord[],
  opts: { deadlineMs: number; boundMs: number; allowed: readonly string[] },
): void {
  const byReq = outcomesByRequest(records);
  const slow = answers.filter((a) => a.ms > opts.deadlineMs + opts.boundMs);
  t.equal(
    slow.length,
    0,
    `every call answered within ${opts.deadlineMs} + ${opts.boundMs} ms${slow.length ? ` (slowest ${Math.round(Math.max(...slow.map((a) => a.ms)))} ms)` : ''}`,
  );
  const lost = answers.filter((a) => a.code === 'no_answer');
  t.equal(lost.length, 0, `every call got an MCP answer${lost.length ? `: ${lost[0]?.error}` : ''}`);
  const odd = answers.filter((a) => !opts.allowed.includes(a.code));
  t.equal(
    odd.length,
    0,
    `answers only ${opts.allowed.join(' / ')}${odd.length ? `; got ${[...new Set(odd.map((a) => `${a.code}(${a.reasons.join(',')})`))].join(', ')}` : ''}`,
  );
  const noId = answers.filter((a) => a.code !== 'no_answer' && !a.requestId);
  t.equal(noId.length, 0, 'every answer names its request id');
  // Recovery records (and PostgreSQL's audit.refused) name the first refused request ids and count the rest.
  const refusals = records
    .flatMap((r) => (r.event === 'audit.recovery' ? [r.recovery?.refused_appends] : r.event === 'audit.refused' ? [r.refused?.refused_appends] : []))
    .filter(Boolean);
  const refusedIds = new Set(refusals.flatMap((x) => (x.request_ids ?? []) as string[]));
  const countedOnly = refusals.reduce((n, x) => n + Math.max(0, (x.count ?? 0) - (x.request_ids?.length ?? 0)), 0);
  let missing = 0;
  let doubled = 0;
  let unaccounted = 0;
  for (const a of answers) {
    if (!a.requestId) continue;
    const n = byReq.get(a.requestId)?.length ?? 0;
    if (n > 1) doubled++;
    if (n === 0) {
      if (a.code !== 'audit_unavailable') missing++;
      else if (!refusedIds.has(a.requestId)) unaccounted++;
    }
  }
  t.equal(doubled, 0, 'no call has two outcome records');
  t.equal(missing, 0, 'every answered call (but audit_unavailable) has its outcome record');
  t.ok(
    unaccounted <= countedOnly,
    `every audit_unavailable call without a record is named (or counted) in a recovery record (${unaccounted} counted only, ${countedOnly} unnamed refusals)`,
  );
}

/** `bulwark audit verify` on a log as it is (exit code and output). */
export function verifyCli(target: string, extra: string[] = []): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [BIN, 'audit', 'verify', target, '--json', ...extra], { encoding: 'utf8', env: cleanChildEnv(), timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
