/**
 * `bulwark audit replay` (issue 12): re-evaluate every recorded decision with the policy that made
 * it and name each record whose decision would come out differently, and in which field. The
 * record names the policy revision and the hash of the exact input; the archive (policy/archive.ts)
 * gives the policy by revision, refusing an entry that does not hash to it, and the input copies
 * beside the log (audit/policy-inputs.ts) give the input, checked against the record's hash. A
 * record that cannot be replayed (no archive entry, no input copy, a copy that does not match) is
 * reported as such, never skipped.
 */
import { canonicalJson } from '../audit/canonical-json.js';
import { readPolicyInputs } from '../audit/policy-inputs.js';
import { parseAuditLine } from '../audit/record-type.js';
import type { Segment } from '../audit/verify.js';
import type { Decision } from '../core/decision.js';
import { PolicyArchiveError, POLICY_ENGINE, type PolicyArchive } from '../policy/archive.js';
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { DECISION_ENTRYPOINT, parseDecision } from '../policy/engine.js';
import { PolicyError } from '../policy/types.js';

export interface ReplayOptions {
  readonly segments: readonly Segment[];
  readonly archive: PolicyArchive;
  /** The input copies (`<stem>.inputs.jsonl`). */
  readonly inputsFile: string;
  readonly from?: number | undefined;
  readonly to?: number | undefined;
}

export type ReplayField = 'allow' | 'reasons' | 'obligations' | 'error';

export interface ReplayDifference {
  readonly field: ReplayField;
  readonly recorded: unknown;
  readonly replayed: unknown;
}

export interface ReplayedRecord {
  readonly seq: number;
  readonly request_id: string | undefined;
  readonly tool: string | undefined;
  readonly policy_revision: string | undefined;
}

export interface ReplayReport {
  /** Outcome records in range whose decision was replayed. */
  readonly replayed: number;
  readonly same: number;
  readonly differ: readonly (ReplayedRecord & { readonly differences: readonly ReplayDifference[] })[];
  readonly cannot: readonly (ReplayedRecord & { readonly reason: string })[];
  /** Outcome records in range that were refused before the policy was asked (nothing to replay). */
  readonly undecided: number;
  readonly warnings: readonly string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

/** What replay reads of an outcome record. */
interface Replayable extends ReplayedRecord {
  readonly input: string | undefined;
  readonly decision: { readonly allow: boolean; readonly reasons: readonly string[]; readonly obligations?: Readonly<Record<string, unknown>> } | null;
  readonly code: string | undefined;
  readonly engine: string | undefined;
}

type Candidate = Replayable & { readonly input: string };

/** Replay evaluates the input's JSON bytes as stored; the engine's decision checks apply (parseDecision). */
type Evaluator = { readonly decide: (input: Uint8Array) => Decision } | { readonly error: string };

/** The engine's memory bounds (engine.ts): the same wasm, the same limits. */
const MEMORY = { initial: 32, maximum: 1024 } as const;

/** What the policy said then, or the error it failed with (a recorded policy_error). */
type Said = { readonly decision: Decision } | { readonly error: string };

function compare(c: Candidate, replayed: Said): ReplayDifference[] {
  const then = c.decision;
  if (!then) {
    // Recorded without a decision: the policy could not be evaluated (policy_error).
    return 'error' in replayed ? [] : [{ field: 'error', recorded: c.code ?? 'policy_error', replayed: 'a decision' }];
  }
  if ('error' in replayed) return [{ field: 'error', recorded: 'a decision', replayed: replayed.error }];
  const now = replayed.decision;
  const out: ReplayDifference[] = [];
  if (then.allow !== now.allow) out.push({ field: 'allow', recorded: then.allow, replayed: now.allow });
  const reasons = [...now.reasons];
  if (canonicalJson(then.reasons ?? []) !== canonicalJson(reasons)) out.push({ field: 'reasons', recorded: then.reasons ?? [], replayed: reasons });
  // Records written before obligations were recorded have none to compare.
  if (then.obligations !== undefined) {
    const obligations = { ...now.obligations };
    if (canonicalJson(then.obligations) !== canonicalJson(obligations)) out.push({ field: 'obligations', recorded: then.obligations, replayed: obligations });
  }
  return out;
}

async function evaluatorFor(archive: PolicyArchive, revision: string): Promise<Evaluator> {
  if (revision === 'unavailable') return { error: 'the policy had not loaded when this record was written (revision "unavailable")' };
  let files;
  try {
    files = await archive.get(revision);
  } catch (err) {
    if (err instanceof PolicyArchiveError) return { error: err.message };
    throw err;
  }
  if (!files) return { error: `policy revision ${revision} is not in the archive (${archive.dir})` };
  let policy: LoadedPolicy;
  try {
    policy = await loadPolicy(files.wasm, MEMORY);
    policy.setData(JSON.parse(files.data) as object);
  } catch (err) {
    return { error: `archived revision ${revision} does not load: ${(err as Error).message}` };
  }
  // The input was accepted under the cap of its day: replay evaluates it whatever its size.
  return {
    decide: (input) => {
      let rs: unknown;
      try {
        rs = policy.evaluate(input.buffer as ArrayBuffer, DECISION_ENTRYPOINT);
      } catch (err) {
        throw new PolicyError('policy.evaluation_failed', `policy evaluation failed: ${String((err as Error)?.message ?? err)}`);
      }
      return parseDecision(rs);
    },
  };
}

/**
 * The outcome record on a line, or undefined for another kind or a line that does not read. Replay
 * re-decides; it does not verify (`audit verify` does): the full record parser is skipped for speed
 * when the line holds no "event" key, and used otherwise.
 */
function readOutcome(line: string): Replayable | undefined {
  let r: Record<string, unknown>;
  if (line.includes('"event":')) {
    const parsed = parseAuditLine(line);
    if (!parsed.ok || parsed.record.event !== undefined) return undefined;
    r = parsed.record as unknown as Record<string, unknown>;
  } else {
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    if (r === null || typeof r !== 'object') return undefined;
  }
  if (typeof r.seq !== 'number' || !Number.isSafeInteger(r.seq)) return undefined;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const d = r.decision as Record<string, unknown> | null | undefined;
  const outcome = r.outcome as Record<string, unknown> | null | undefined;
  const input = r.policy_input_sha256;
  return {
    seq: r.seq,
    request_id: str(r.request_id),
    tool: str(r.tool),
    policy_revision: str(r.policy_revision),
    input: typeof input === 'string' && HEX64.test(input) ? input : undefined,
    engine: str(r.policy_engine),
    decision:
      d !== null && typeof d === 'object' && typeof d.allow === 'boolean'
        ? {
            allow: d.allow,
            reasons: Array.isArray(d.reasons) ? (d.reasons as unknown[]).map(String) : [],
            ...(d.obligations !== null && typeof d.obligations === 'object' ? { obligations: d.obligations as Record<string, unknown> } : {}),
          }
        : null,
    code: outcome !== null && typeof outcome === 'object' ? str(outcome.code) : undefined,
  };
}

export async function replayLog(opts: ReplayOptions): Promise<ReplayReport> {
  const candidates: Candidate[] = [];
  const cannot: (ReplayedRecord & { reason: string })[] = [];
  const warnings: string[] = [];
  let undecided = 0;
  for (const seg of opts.segments) {
    if (!seg.exists) continue;
    await seg.scan((buf, start, end) => {
      const r = readOutcome(buf.toString('utf8', start, end));
      if (!r) return true;
      if (opts.from !== undefined && r.seq < opts.from) return true;
      if (opts.to !== undefined && r.seq > opts.to) return false;
      const asked = r.input !== undefined || r.decision || r.code === 'policy_error';
      if (!asked) {
        undecided++;
        return true;
      }
      const base = { seq: r.seq, request_id: r.request_id, tool: r.tool, policy_revision: r.policy_revision };
      if (r.input === undefined) cannot.push({ ...base, reason: 'the record names no policy input (written before replay was supported)' });
      else candidates.push({ ...r, input: r.input });
      return true;
    });
  }
  const { inputs, bad } = readPolicyInputs(opts.inputsFile, new Set(candidates.map((c) => c.input)));
  const evaluators = new Map<string, Evaluator>();
  const differ: (ReplayedRecord & { differences: ReplayDifference[] })[] = [];
  const engines = new Set<string>();
  let same = 0;
  for (const c of candidates) {
    const revision = c.policy_revision ?? '';
    let ev = evaluators.get(revision);
    if (!ev) {
      ev = await evaluatorFor(opts.archive, revision);
      evaluators.set(revision, ev);
    }
    if ('error' in ev) {
      cannot.push({ ...c, reason: ev.error });
      continue;
    }
    const bytes = inputs.get(c.input);
    if (bytes === undefined) {
      cannot.push({
        ...c,
        reason: bad.has(c.input)
          ? `the copy of policy input ${c.input} does not match its hash (${opts.inputsFile})`
          : `no copy of policy input ${c.input} (${opts.inputsFile})`,
      });
      continue;
    }
    if (c.engine) engines.add(c.engine);
    let said: Said;
    try {
      said = { decision: ev.decide(bytes) };
    } catch (err) {
      said = { error: err instanceof PolicyError ? err.reason : (err as Error).message };
    }
    const differences = compare(c, said);
    if (differences.length) differ.push({ seq: c.seq, request_id: c.request_id, tool: c.tool, policy_revision: c.policy_revision, differences });
    else same++;
  }
  for (const e of engines)
    if (e !== POLICY_ENGINE) warnings.push(`records were decided by ${e}; this replay evaluates with ${POLICY_ENGINE} (the same wasm, another runtime)`);
  cannot.sort((a, b) => a.seq - b.seq);
  return {
    replayed: same + differ.length,
    same,
    differ,
    cannot: cannot.map(({ seq, request_id, tool, policy_revision, reason }) => ({ seq, request_id, tool, policy_revision, reason })),
    undecided,
    warnings,
  };
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The report as an auditor reads it: one line per record that differs or cannot be replayed, then a summary. */
export function formatReplay(r: ReplayReport): string {
  const lines: string[] = [];
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  const who = (x: ReplayedRecord): string => `seq ${x.seq} (${x.tool ?? '?'}, request ${x.request_id ?? '?'})`;
  for (const d of r.differ)
    lines.push(`DIFFERS ${who(d)}: ${d.differences.map((f) => `${f.field}: recorded ${show(f.recorded)}, replayed ${show(f.replayed)}`).join('; ')}`);
  for (const c of r.cannot) lines.push(`CANNOT REPLAY ${who(c)}: ${c.reason}`);
  lines.push(
    `${r.replayed} decision(s) replayed: ${r.same} same, ${r.differ.length} differ; ${r.cannot.length} cannot be replayed; ${r.undecided} record(s) refused before the policy was asked`,
  );
  return `${lines.join('\n')}\n`;
}
