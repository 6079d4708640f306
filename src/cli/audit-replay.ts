/**
 * `bulwark audit replay` (issue 12): re-evaluate every recorded decision with the policy that made
 * it and name each record whose decision would come out differently, and in which field. The
 * record names the policy revision and the hash of the exact input; the archive (policy/archive.ts)
 * gives the policy by revision, refusing an entry that does not hash to it, and the input copies
 * beside the log (audit/policy-inputs.ts) give the input, checked against the record's hash. A
 * record that cannot be replayed (no archive entry, no input copy, a copy that does not match) is
 * reported as such, never skipped.
 */
import { readPolicyInputs } from '../audit/policy-inputs.js';
import type { Segment } from '../audit/verify.js';
import type { Decision } from '../core/decision.js';
import { PolicyArchiveError, POLICY_ENGINE, type PolicyArchive } from '../policy/archive.js';
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { DECISION_ENTRYPOINT, parseDecision } from '../policy/engine.js';
import { PolicyError } from '../policy/types.js';

export interface ReplayOptions {
  readonly segments: readonly Segment[];
  readonly archive: PolicyArchive;
  /** The input copies (`<stem>.inputs.jsonl`); with `loadInputs`, only what messages name. */
  readonly inputsFile: string;
  /** Where the copies come from when not from `inputsFile` (PostgreSQL: bulwark_audit_policy_input). */
  readonly loadInputs?: ((wanted: ReadonlySet<string>) => Promise<{ inputs: Map<string, Uint8Array>; bad: Set<string> }>) | undefined;
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
  if (!sameJson(then.reasons ?? [], reasons)) out.push({ field: 'reasons', recorded: then.reasons ?? [], replayed: reasons });
  // Records written before obligations were recorded have none to compare.
  if (then.obligations !== undefined) {
    const obligations = { ...now.obligations };
    if (!sameJson(then.obligations, obligations)) out.push({ field: 'obligations', recorded: then.obligations, replayed: obligations });
  }
  return out;
}

/**
 * The same JSON value (what comparing the canonical JSON of both says, without writing it: replay
 * compares every record's reasons and obligations). Key order does not matter; `undefined` members
 * count as absent, as in JSON.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  if (ak.length !== bk.length) return false;
  for (const k of ak) if (!Object.prototype.hasOwnProperty.call(bo, k) || !sameJson(ao[k], bo[k])) return false;
  return true;
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
  // The engine takes an ArrayBuffer holding exactly the input's bytes: one per length, reused
  // (evaluate copies it into the wasm memory), rather than one per record.
  const byLength = new Map<number, Uint8Array>();
  // The input was accepted under the cap of its day: replay evaluates it whatever its size.
  return {
    decide: (input) => {
      let exact = byLength.get(input.length);
      if (!exact) {
        exact = new Uint8Array(input.length);
        if (byLength.size < 4096) byLength.set(input.length, exact);
      }
      exact.set(input);
      let rs: unknown;
      try {
        rs = policy.evaluate(exact.buffer as ArrayBuffer, DECISION_ENTRYPOINT);
      } catch (err) {
        throw new PolicyError('policy.evaluation_failed', `policy evaluation failed: ${String((err as Error)?.message ?? err)}`);
      }
      return parseDecision(rs);
    },
  };
}

/** The top-level fields replay reads, by their key's bytes. */
const FIELDS = ['event', 'seq', 'request_id', 'tool', 'policy_revision', 'policy_input_sha256', 'policy_engine', 'decision', 'outcome'] as const;
type FieldName = (typeof FIELDS)[number];
const FIELD_KEYS = FIELDS.map((f) => Buffer.from(f, 'latin1'));

/** The end of the JSON string whose opening quote is at `i` (the index after its closing quote). */
function skipString(buf: Buffer, i: number, end: number): number {
  for (;;) {
    // The next quote natively (memchr); it closes the string unless an odd run of backslashes escapes it.
    const q = buf.indexOf(0x22, i + 1);
    if (q < 0 || q >= end) return -1;
    let b = q - 1;
    while (buf[b] === 0x5c) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    i = q;
  }
}

/** The end of the JSON value starting at `i`; -1 when it does not end within the line. */
function skipValue(buf: Buffer, i: number, end: number): number {
  const c = buf[i];
  if (c === 0x22) return skipString(buf, i, end);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    while (i < end) {
      const d = buf[i] as number;
      if (d === 0x22) {
        i = skipString(buf, i, end);
        if (i < 0) return -1;
        continue;
      }
      if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  while (i < end) {
    const d = buf[i];
    if (d === 0x2c || d === 0x7d || d === 0x5d) return i;
    i++;
  }
  return i;
}

/**
 * Where the top-level values replay reads sit in a sealed line (byte offsets, -1 when absent), found
 * in one pass over its bytes: only those values are decoded, not the arguments and facts that make
 * up most of a record. False when the line is not one JSON object of string keys.
 */
function topLevelFields(buf: Buffer, start: number, end: number, at: Int32Array): boolean {
  at.fill(-1);
  let i = start;
  if (buf[i] !== 0x7b) return false;
  i++;
  while (i < end) {
    if (buf[i] === 0x7d) return true;
    if (buf[i] !== 0x22) return false;
    const ks = i + 1;
    const ke = skipString(buf, i, end);
    if (ke < 0 || buf[ke] !== 0x3a) return false;
    const vs = ke + 1;
    const ve = skipValue(buf, vs, end);
    if (ve < 0) return false;
    const len = ke - 1 - ks;
    for (let f = 0; f < FIELD_KEYS.length; f++) {
      const k = FIELD_KEYS[f] as Buffer;
      if (k.length === len && buf.compare(k, 0, len, ks, ke - 1) === 0) {
        at[2 * f] = vs;
        at[2 * f + 1] = ve;
        break;
      }
    }
    i = ve;
    if (buf[i] === 0x2c) i++;
  }
  return false;
}

/**
 * The outcome record on a line, or undefined for another kind or a line that does not read. Replay
 * re-decides; it does not verify (`audit verify` does): it decodes only the fields it compares, and
 * checks their types as the record parser does.
 */
function readOutcome(buf: Buffer, start: number, end: number, at: Int32Array): Replayable | undefined {
  if (!topLevelFields(buf, start, end, at)) return undefined;
  const raw = (f: FieldName): string | undefined => {
    const k = FIELDS.indexOf(f);
    const vs = at[2 * k] as number;
    return vs < 0 ? undefined : buf.toString('utf8', vs, at[2 * k + 1] as number);
  };
  if (at[0] !== -1) return undefined; // an event: not an outcome record
  const value = (f: FieldName): unknown => {
    const text = raw(f);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  };
  const seq = value('seq');
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) return undefined;
  const str = (f: FieldName): string | undefined => {
    const k = FIELDS.indexOf(f);
    const vs = at[2 * k] as number;
    const ve = at[2 * k + 1] as number;
    // A plain string (no escapes) is its bytes between the quotes; anything else goes through JSON.parse.
    if (vs >= 0 && buf[vs] === 0x22 && buf.subarray(vs, ve).indexOf(0x5c) < 0) return buf.toString('utf8', vs + 1, ve - 1);
    const v = value(f);
    return typeof v === 'string' ? v : undefined;
  };
  const d = value('decision') as Record<string, unknown> | null | undefined;
  // The outcome's code matters only for a record without a decision (a recorded policy_error).
  const outcome = d === null || d === undefined ? (value('outcome') as Record<string, unknown> | null | undefined) : undefined;
  const input = str('policy_input_sha256');
  const code = outcome !== null && typeof outcome === 'object' ? outcome.code : undefined;
  return {
    seq,
    request_id: str('request_id'),
    tool: str('tool'),
    policy_revision: str('policy_revision'),
    input: input !== undefined && HEX64.test(input) ? input : undefined,
    engine: str('policy_engine'),
    decision:
      d !== null && typeof d === 'object' && typeof d.allow === 'boolean'
        ? {
            allow: d.allow,
            reasons: Array.isArray(d.reasons) ? (d.reasons as unknown[]).map(String) : [],
            ...(d.obligations !== null && typeof d.obligations === 'object' && !Array.isArray(d.obligations)
              ? { obligations: d.obligations as Record<string, unknown> }
              : {}),
          }
        : null,
    code: typeof code === 'string' ? code : undefined,
  };
}

export async function replayLog(opts: ReplayOptions): Promise<ReplayReport> {
  const candidates: Candidate[] = [];
  const cannot: (ReplayedRecord & { reason: string })[] = [];
  const warnings: string[] = [];
  let undecided = 0;
  const at = new Int32Array(2 * FIELDS.length);
  for (const seg of opts.segments) {
    if (!seg.exists) continue;
    await seg.scan((buf, start, end) => {
      const r = readOutcome(buf, start, end, at);
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
  const wanted = new Set(candidates.map((c) => c.input));
  const { inputs, bad } = opts.loadInputs ? await opts.loadInputs(wanted) : readPolicyInputs(opts.inputsFile, wanted);
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
