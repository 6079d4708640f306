/**
 * The audit record, version 1 (AUDIT_RECORD_VERSION): the one place that says what a record holds.
 *
 * Writing. The gate's writer (gate/record.ts) appends `OutcomeFields` and `IntentFields`, built by
 * audit/record.ts; the logs write `GenesisFields` (genesis.ts) and their own `RecoveryFields` and
 * `RefusedFields`. The log seals the fields with the `Envelope` (seal-record.ts). A new field is
 * added to its written type here, to its read type and its check below, and to SECURITY.md.
 *
 * Reading. `parseAuditLine` / `parseAuditRecord` check a record read back and return an
 * `AuditRecord` or an `AuditRecordError`; verify, the report, the CLI and the metrics read records
 * through them. Version 1 has grown fields since its first records (intent_seq, outcome.metrics and
 * caps, args_sha256_form, args_unrepresentable, the genesis policy_revision) and the log seals any
 * object it is given, so a reader gets a field only when it is there: the read types leave every
 * field but the envelope and the kind optional, and the parser guarantees that a field that is
 * there has its type, so a tampered or foreign value never reaches a reader as something else.
 * Codes, statuses and names are plain strings when read: a reader shows what the log holds.
 */
import type { DenialCode } from '../core/codes.js';
import type { Facts, OutcomeStatus, Principal, TransportKind } from '../core/call.js';
import { unsealLine } from './chain.js';

export const AUDIT_RECORD_VERSION = 1;

/** What the log seals around the fields it is given. */
export interface Envelope {
  readonly v: typeof AUDIT_RECORD_VERSION;
  readonly seq: number;
  readonly ts: string;
  /** The hash of the record before (64 zeros before the first). */
  readonly prev: string;
  /** SHA-256 over prev and the canonical JSON of the record without its hash. */
  readonly hash: string;
}

// ---------------------------------------------------------------- written

export type CallPrincipal = {
  readonly id: string;
  readonly roles: readonly string[];
  readonly auth: Principal['auth'];
  /** The verified attributes (from the key, token or config), when it has any: row filters read them. */
  readonly attributes?: Principal['attributes'];
};
export type CallDecision = {
  readonly allow: boolean;
  readonly reasons: readonly string[];
  /** What the policy obliged (outcome records; `{}` when denied): replay compares them. */
  readonly obligations?: Readonly<Record<string, unknown>>;
  readonly policy_revision: string;
};

export type CallOutcome = {
  readonly status: OutcomeStatus;
  readonly code: DenialCode | null;
  readonly reasons: readonly string[];
  readonly duration_ms: number;
  /** SHA-256 of the result's structured content as JSON, null when there was no result. */
  readonly result_sha256: string | null;
  readonly result_bytes: number;
  /** What executing cost (milliseconds to microsecond precision, counts as they are). */
  readonly metrics?: Readonly<Record<string, number>>;
  /** The caps the tool ran under. */
  readonly caps?: Readonly<Record<string, unknown>>;
};

/** What an outcome record and an intent record share: who, what, and the facts. */
type CallFields = {
  readonly request_id: string;
  readonly transport: TransportKind;
  readonly client_ip: string | null;
  /** The tool name as given (capped at 200 units; see recordedToolName). */
  readonly tool: string;
  /** Validated arguments (redacted as the tool asks), or null when only their hash is kept. */
  readonly args: unknown;
  /** SHA-256 of the RFC 8785 canonical JSON of the arguments as received. */
  readonly args_sha256: string;
  readonly args_bytes: number;
  /** Present when the arguments have no canonical form and were hashed as JSON.stringify writes them. */
  readonly args_sha256_form?: 'json';
  /** Present when the arguments were left out because they cannot be hashed reproducibly: why. */
  readonly args_unrepresentable?: string;
  /** Fields whose bodies were left out (`args` for unvalidated input). */
  readonly masked: readonly string[];
  readonly facts: Facts | null;
  readonly policy_revision: string;
};

/** A call's outcome, whatever stage ended it. */
export type OutcomeFields = CallFields & {
  readonly event?: undefined;
  readonly principal: CallPrincipal | null;
  readonly decision: CallDecision | null;
  readonly outcome: CallOutcome;
  /** The intent record written before the tool ran, for a side-effecting call. */
  readonly intent_seq?: number;
  /** SHA-256 of the RFC 8785 canonical JSON of the exact policy input (its copy is beside the log). */
  readonly policy_input_sha256?: string;
  /** What evaluated the policy (`@open-policy-agent/opa-wasm@VERSION`). */
  readonly policy_engine?: string;
  /** Present when the policy obliged a human's approval, or a requestState carried one. */
  readonly approval?: CallApproval;
};

/** Written, and durable, before a side-effecting tool runs; its outcome record names it. */
export type IntentFields = CallFields & {
  readonly event: 'intent';
  readonly principal: CallPrincipal;
  readonly decision: CallDecision & { readonly allow: true };
};

/**
 * What became of a human approval the policy asked for (gate/approval.ts). `requested`: the client
 * was asked (2026-07-28: the call ended input_required; 2025-11-25: the `approval` record written
 * before the ask); `granted` / `declined`: the client's answer; `expired`: the window passed;
 * `unsupported`: the client cannot be asked; `invalid`: a requestState that should carry the answer
 * was refused; `failed`: the ask itself failed (the client erred or the call was cancelled).
 */
export type ApprovalStatus = 'requested' | 'granted' | 'declined' | 'expired' | 'unsupported' | 'invalid' | 'failed';

export type CallApproval = {
  readonly status: ApprovalStatus;
  /** How the human was asked: form elicitation (2025-11-25), an input_required result (2026-07-28), or not at all. */
  readonly via: 'elicitation' | 'input_required' | 'none';
  /** The roles the policy named as approvers (shown to the human; Bulwark cannot verify who answered). */
  readonly approvers: readonly string[];
  readonly reason: string;
  readonly ttl_ms: number;
  /** The arguments hash the approval is bound to: this call's args_sha256. */
  readonly args_sha256: string;
  /** Who answered, as the client says (unverified, at most 200 characters). */
  readonly by?: string;
  /** The client's action: accept, decline or cancel. */
  readonly action?: string;
  /** The `approval` record written before the human was asked (2025-11-25). */
  readonly request_seq?: number;
  /** The request id of the call whose input_required result asked (2026-07-28). */
  readonly requested_in?: string;
};

/** Written, and durable, before a 2025-11-25 client is asked to approve a call; the outcome record names it. */
export type ApprovalRequestFields = CallFields & {
  readonly event: 'approval';
  readonly principal: CallPrincipal;
  readonly decision: CallDecision & { readonly allow: true };
  readonly approval: CallApproval;
};

/** The first record of a log (seq 1): what it is and which keys sign it. */
export type GenesisInfo = {
  readonly stream: string;
  readonly origin: string | null;
  readonly created_at: string;
  /** Verifier keys (note format) of the checkpoint signer(s); empty for an unsigned log. */
  readonly keys: readonly string[];
  readonly policy_revision: string | null;
  readonly checkpoint: { readonly every_records: number; readonly every_ms: number } | null;
};

export type GenesisFields = { readonly event: 'audit.genesis'; readonly genesis: GenesisInfo };

/** A torn last record found at start-up (file log): set aside in a file, or completed when only its newline was missing. */
export type TornTail = {
  readonly action: 'set_aside' | 'completed';
  readonly segment: string;
  readonly offset: number;
  readonly bytes: number;
  readonly sha256: string;
  readonly set_aside?: string;
};

/** Bytes past the last acknowledged record, set aside when the file log resumed. */
export type SetAsideBytes = { readonly file: string; readonly offset: number; readonly bytes: number; readonly sha256: string };

/** Appends refused while the log could not write: the count is exact, the request ids are the first few. */
export type RefusedAppendsSummary = {
  readonly count: number;
  readonly first_at: string | null;
  readonly last_at: string | null;
  readonly request_ids: readonly string[];
};

/** Why the log stopped writing, when, and when it resumed. */
type Resumed = {
  readonly action: 'resumed';
  readonly reason: string;
  readonly code: string | null;
  readonly failed_at: string | null;
  readonly resumed_at: string;
  readonly refused_appends: RefusedAppendsSummary;
};

export type FileResumed = Resumed & { readonly set_aside: SetAsideBytes | null; readonly torn: TornTail | null };
export type PostgresResumed = Resumed & { readonly backend: 'postgres'; readonly stream: string };

/**
 * A file log's writer found records after its last checkpoint at start-up (the writer before it was
 * killed): this record marks where the new writer's life starts, and a checkpoint follows at once.
 */
export type Restarted = {
  readonly action: 'restarted';
  readonly last_checkpoint_size: number;
  /** The records the previous writer left unsigned. */
  readonly unsigned_from: number;
  readonly unsigned_to: number;
};

export type RecoveryFields = { readonly event: 'audit.recovery'; readonly recovery: TornTail | FileResumed | PostgresResumed | Restarted };

/** PostgreSQL: appends refused while the recovery record was being written, right after it. */
export type RefusedFields = {
  readonly event: 'audit.refused';
  readonly refused: { readonly backend: 'postgres'; readonly stream: string; readonly reason: string; readonly refused_appends: RefusedAppendsSummary };
};

/** Every record Bulwark writes, before the log seals it. */
export type AuditFields = OutcomeFields | IntentFields | ApprovalRequestFields | GenesisFields | RecoveryFields | RefusedFields;

// ---------------------------------------------------------------- read back

export interface ReadPrincipal {
  readonly id?: string;
  readonly roles?: readonly string[];
  readonly auth?: string;
}

export interface ReadDecision {
  readonly allow?: boolean;
  readonly reasons?: readonly string[];
  readonly obligations?: Readonly<Record<string, unknown>>;
  readonly policy_revision?: string;
}

export interface ReadOutcome {
  readonly status?: string;
  readonly code?: string | null;
  readonly reasons?: readonly string[];
  readonly duration_ms?: number;
  readonly result_sha256?: string | null;
  readonly result_bytes?: number;
  readonly metrics?: Readonly<Record<string, number>>;
  readonly caps?: Readonly<Record<string, unknown>>;
}

interface ReadCall {
  readonly request_id?: string;
  readonly transport?: string;
  readonly client_ip?: string | null;
  readonly principal?: ReadPrincipal | null;
  readonly tool?: string;
  readonly args?: unknown;
  readonly args_sha256?: string;
  readonly args_bytes?: number;
  readonly args_sha256_form?: string;
  readonly args_unrepresentable?: string;
  readonly masked?: readonly string[];
  /** Per tool family (core/facts.ts); readers do not interpret them. */
  readonly facts?: object | null;
  readonly decision?: ReadDecision | null;
  readonly policy_revision?: string;
}

export interface ReadOutcomeFields extends ReadCall {
  readonly event?: undefined;
  readonly outcome?: ReadOutcome;
  readonly intent_seq?: number;
  readonly policy_input_sha256?: string;
  readonly policy_engine?: string;
  readonly approval?: ReadApproval;
}

export interface ReadIntentFields extends ReadCall {
  readonly event: 'intent';
}

export interface ReadApproval {
  readonly status?: string;
  readonly via?: string;
  readonly approvers?: readonly string[];
  readonly reason?: string;
  readonly ttl_ms?: number;
  readonly args_sha256?: string;
  readonly by?: string;
  readonly action?: string;
  readonly request_seq?: number;
  readonly requested_in?: string;
}

export interface ReadApprovalRequestFields extends ReadCall {
  readonly event: 'approval';
  readonly approval?: ReadApproval;
}

export interface ReadGenesis {
  readonly stream?: string;
  readonly origin?: string | null;
  readonly created_at?: string;
  readonly keys?: readonly string[];
  readonly policy_revision?: string | null;
  readonly checkpoint?: { readonly every_records: number; readonly every_ms: number } | null;
}

export interface ReadGenesisFields {
  readonly event: 'audit.genesis';
  readonly genesis?: ReadGenesis;
}

export interface ReadRefusedAppends {
  readonly count?: number;
  readonly first_at?: string | null;
  readonly last_at?: string | null;
  readonly request_ids?: readonly string[];
}

/** The three kinds of recovery (TornTail, FileResumed, PostgresResumed) read as one: each field when present. */
export interface ReadRecovery {
  readonly action?: string;
  readonly backend?: string;
  readonly stream?: string;
  readonly segment?: string;
  readonly offset?: number;
  readonly bytes?: number;
  readonly sha256?: string;
  /** A torn tail: the file it went to; a resumed file log: the unacknowledged bytes, or null. */
  readonly set_aside?: string | SetAsideBytes | null;
  readonly torn?: ReadRecovery | null;
  readonly reason?: string;
  readonly code?: string | null;
  readonly failed_at?: string | null;
  readonly resumed_at?: string;
  readonly refused_appends?: ReadRefusedAppends;
  readonly last_checkpoint_size?: number;
  readonly unsigned_from?: number;
  readonly unsigned_to?: number;
}

export interface ReadRecoveryFields {
  readonly event: 'audit.recovery';
  readonly recovery?: ReadRecovery;
}

export interface ReadRefusedFields {
  readonly event: 'audit.refused';
  readonly refused?: { readonly backend?: string; readonly stream?: string; readonly reason?: string; readonly refused_appends?: ReadRefusedAppends };
}

export type ReadAuditFields = ReadOutcomeFields | ReadIntentFields | ReadApprovalRequestFields | ReadGenesisFields | ReadRecoveryFields | ReadRefusedFields;

/** A record read back from the log, checked. Narrow on `event` (absent: a call's outcome). */
export type AuditRecord = Envelope & ReadAuditFields;
export type OutcomeRecord = Envelope & ReadOutcomeFields;
export type IntentRecord = Envelope & ReadIntentFields;

/**
 * Compile-time: every record this build writes reads back as its read type, and names no field the
 * read type lacks (a new field needs its read type and its check).
 */
type Covers<W, R> = [W] extends [R] ? (Exclude<keyof W, keyof R> extends never ? true : false) : false;
type Holds<T extends true> = T;
export type WrittenRecordsReadBack = [
  Holds<Covers<OutcomeFields, ReadOutcomeFields>>,
  Holds<Covers<IntentFields, ReadIntentFields>>,
  Holds<Covers<ApprovalRequestFields, ReadApprovalRequestFields>>,
  Holds<Covers<CallApproval, ReadApproval>>,
  Holds<Covers<CallOutcome, ReadOutcome>>,
  Holds<Covers<GenesisFields, ReadGenesisFields>>,
  Holds<Covers<GenesisInfo, ReadGenesis>>,
  Holds<Covers<TornTail, ReadRecovery>>,
  Holds<Covers<FileResumed, ReadRecovery>>,
  Holds<Covers<PostgresResumed, ReadRecovery>>,
  Holds<Covers<Restarted, ReadRecovery>>,
  Holds<Covers<RefusedFields, ReadRefusedFields>>,
];

// ---------------------------------------------------------------- parser

export type AuditRecordError =
  | { readonly kind: 'not_sealed' | 'not_json' | 'not_object'; readonly message: string }
  | { readonly kind: 'version'; readonly found: unknown; readonly message: string }
  | { readonly kind: 'envelope' | 'field'; readonly field: string; readonly expected: string; readonly message: string }
  | { readonly kind: 'unknown_event'; readonly event: string; readonly message: string };

/** The record, or why it is not one; `envelope` when the envelope read but the fields did not. */
export type ParsedRecord =
  { readonly ok: true; readonly record: AuditRecord } | { readonly ok: false; readonly error: AuditRecordError; readonly envelope?: Envelope | undefined };

export type ParsedFields = { readonly ok: true; readonly fields: ReadAuditFields } | { readonly ok: false; readonly error: AuditRecordError };

type Obj = Readonly<Record<string, unknown>>;
type Guard<T> = (v: unknown) => v is T;

class FieldError extends Error {
  constructor(
    readonly field: string,
    readonly expected: string,
  ) {
    super(`${field}: expected ${expected}`);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStrs = (v: unknown): v is readonly string[] => Array.isArray(v) && v.every(isStr);
const isStrOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isNums = (v: unknown): v is Readonly<Record<string, number>> => isObj(v) && Object.values(v).every(isNum);
const isObjOrNull = (v: unknown): v is Obj | null => v === null || isObj(v);
const isHex64 = (v: unknown): v is string => typeof v === 'string' && HEX64.test(v);

/** The field when present and of its type, undefined when absent; a FieldError otherwise. */
function opt<T>(o: Obj, key: string, at: string, guard: Guard<T>, expected: string): T | undefined {
  const v = o[key];
  if (v === undefined || guard(v)) return v;
  throw new FieldError(`${at}${key}`, expected);
}

/** A nested object read by `read`, null where `nullable`, undefined when absent. */
function nested<T>(o: Obj, key: string, at: string, read: (o: Obj, at: string) => T): T | undefined;
function nested<T>(o: Obj, key: string, at: string, read: (o: Obj, at: string) => T, nullable: true): T | null | undefined;
function nested<T>(o: Obj, key: string, at: string, read: (o: Obj, at: string) => T, nullable = false): T | null | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (v === null && nullable) return null;
  if (!isObj(v)) throw new FieldError(`${at}${key}`, nullable ? 'an object or null' : 'an object');
  return read(v, `${at}${key}.`);
}

const readPrincipal = (o: Obj, at: string): ReadPrincipal => ({
  id: opt(o, 'id', at, isStr, 'a string'),
  roles: opt(o, 'roles', at, isStrs, 'strings'),
  auth: opt(o, 'auth', at, isStr, 'a string'),
});

const readApproval = (o: Obj, at: string): ReadApproval => ({
  status: opt(o, 'status', at, isStr, 'a string'),
  via: opt(o, 'via', at, isStr, 'a string'),
  approvers: opt(o, 'approvers', at, isStrs, 'strings'),
  reason: opt(o, 'reason', at, isStr, 'a string'),
  ttl_ms: opt(o, 'ttl_ms', at, isInt, 'an integer'),
  args_sha256: opt(o, 'args_sha256', at, isHex64, '64 hex digits'),
  by: opt(o, 'by', at, isStr, 'a string'),
  action: opt(o, 'action', at, isStr, 'a string'),
  request_seq: opt(o, 'request_seq', at, isInt, 'an integer'),
  requested_in: opt(o, 'requested_in', at, isStr, 'a string'),
});

const readDecision = (o: Obj, at: string): ReadDecision => ({
  allow: opt(o, 'allow', at, isBool, 'a boolean'),
  reasons: opt(o, 'reasons', at, isStrs, 'strings'),
  obligations: opt(o, 'obligations', at, isObj, 'an object'),
  policy_revision: opt(o, 'policy_revision', at, isStr, 'a string'),
});

const readOutcome = (o: Obj, at: string): ReadOutcome => ({
  status: opt(o, 'status', at, isStr, 'a string'),
  code: opt(o, 'code', at, isStrOrNull, 'a string or null'),
  reasons: opt(o, 'reasons', at, isStrs, 'strings'),
  duration_ms: opt(o, 'duration_ms', at, isNum, 'a number'),
  result_sha256: opt(o, 'result_sha256', at, isStrOrNull, 'a string or null'),
  result_bytes: opt(o, 'result_bytes', at, isInt, 'an integer'),
  metrics: opt(o, 'metrics', at, isNums, 'numbers by name'),
  caps: opt(o, 'caps', at, isObj, 'an object'),
});

function readCall(o: Obj): ReadCall {
  return {
    request_id: opt(o, 'request_id', '', isStr, 'a string'),
    transport: opt(o, 'transport', '', isStr, 'a string'),
    client_ip: opt(o, 'client_ip', '', isStrOrNull, 'a string or null'),
    principal: nested(o, 'principal', '', readPrincipal, true),
    tool: opt(o, 'tool', '', isStr, 'a string'),
    args: o.args,
    args_sha256: opt(o, 'args_sha256', '', isStr, 'a string'),
    args_bytes: opt(o, 'args_bytes', '', isInt, 'an integer'),
    args_sha256_form: opt(o, 'args_sha256_form', '', isStr, 'a string'),
    args_unrepresentable: opt(o, 'args_unrepresentable', '', isStr, 'a string'),
    masked: opt(o, 'masked', '', isStrs, 'strings'),
    facts: opt(o, 'facts', '', isObjOrNull, 'an object or null'),
    decision: nested(o, 'decision', '', readDecision, true),
    policy_revision: opt(o, 'policy_revision', '', isStr, 'a string'),
  };
}

const isCheckpointEvery = (v: unknown): v is { every_records: number; every_ms: number } | null =>
  v === null || (isObj(v) && isInt(v.every_records) && isInt(v.every_ms));

const readGenesis = (o: Obj, at: string): ReadGenesis => ({
  stream: opt(o, 'stream', at, isStr, 'a string'),
  origin: opt(o, 'origin', at, isStrOrNull, 'a string or null'),
  created_at: opt(o, 'created_at', at, isStr, 'a string'),
  keys: opt(o, 'keys', at, isStrs, 'strings'),
  policy_revision: opt(o, 'policy_revision', at, isStrOrNull, 'a string or null'),
  checkpoint: opt(o, 'checkpoint', at, isCheckpointEvery, '{every_records, every_ms} or null'),
});

const readRefusedAppends = (o: Obj, at: string): ReadRefusedAppends => ({
  count: opt(o, 'count', at, isInt, 'an integer'),
  first_at: opt(o, 'first_at', at, isStrOrNull, 'a string or null'),
  last_at: opt(o, 'last_at', at, isStrOrNull, 'a string or null'),
  request_ids: opt(o, 'request_ids', at, isStrs, 'strings'),
});

const isSetAsideBytes = (v: unknown): v is SetAsideBytes => isObj(v) && isStr(v.file) && isInt(v.offset) && isInt(v.bytes) && isStr(v.sha256);
const isSetAside = (v: unknown): v is string | SetAsideBytes | null => v === null || isStr(v) || isSetAsideBytes(v);

function readRecovery(o: Obj, at: string): ReadRecovery {
  return {
    action: opt(o, 'action', at, isStr, 'a string'),
    backend: opt(o, 'backend', at, isStr, 'a string'),
    stream: opt(o, 'stream', at, isStr, 'a string'),
    segment: opt(o, 'segment', at, isStr, 'a string'),
    offset: opt(o, 'offset', at, isInt, 'an integer'),
    bytes: opt(o, 'bytes', at, isInt, 'an integer'),
    sha256: opt(o, 'sha256', at, isStr, 'a string'),
    set_aside: opt(o, 'set_aside', at, isSetAside, 'a file name, {file, offset, bytes, sha256} or null'),
    torn: nested(o, 'torn', at, readRecovery, true),
    reason: opt(o, 'reason', at, isStr, 'a string'),
    code: opt(o, 'code', at, isStrOrNull, 'a string or null'),
    failed_at: opt(o, 'failed_at', at, isStrOrNull, 'a string or null'),
    resumed_at: opt(o, 'resumed_at', at, isStr, 'a string'),
    refused_appends: nested(o, 'refused_appends', at, readRefusedAppends),
    last_checkpoint_size: opt(o, 'last_checkpoint_size', at, isInt, 'an integer'),
    unsigned_from: opt(o, 'unsigned_from', at, isInt, 'an integer'),
    unsigned_to: opt(o, 'unsigned_to', at, isInt, 'an integer'),
  };
}

const readRefused = (o: Obj, at: string): NonNullable<ReadRefusedFields['refused']> => ({
  backend: opt(o, 'backend', at, isStr, 'a string'),
  stream: opt(o, 'stream', at, isStr, 'a string'),
  reason: opt(o, 'reason', at, isStr, 'a string'),
  refused_appends: nested(o, 'refused_appends', at, readRefusedAppends),
});

/** The fields of one record by its kind; throws FieldError, or answers an unknown event. */
function readFields(o: Obj): ReadAuditFields | { readonly unknownEvent: string } {
  const event = opt(o, 'event', '', isStr, 'a string');
  switch (event) {
    case undefined:
      // Object.assign onto the object just built: a spread copies every field again, and this runs per record.
      return Object.assign(readCall(o), {
        outcome: nested(o, 'outcome', '', readOutcome),
        intent_seq: opt(o, 'intent_seq', '', isInt, 'an integer'),
        policy_input_sha256: opt(o, 'policy_input_sha256', '', isHex64, '64 hex digits'),
        policy_engine: opt(o, 'policy_engine', '', isStr, 'a string'),
        approval: nested(o, 'approval', '', readApproval),
      });
    case 'intent':
      return Object.assign(readCall(o), { event });
    case 'approval':
      return Object.assign(readCall(o), { event, approval: nested(o, 'approval', '', readApproval) });
    case 'audit.genesis':
      return { event, genesis: nested(o, 'genesis', '', readGenesis) };
    case 'audit.recovery':
      return { event, recovery: nested(o, 'recovery', '', readRecovery) };
    case 'audit.refused':
      return { event, refused: nested(o, 'refused', '', readRefused) };
    default:
      return { unknownEvent: event };
  }
}

function fieldsOf(o: Obj): ParsedFields {
  try {
    const f = readFields(o);
    if ('unknownEvent' in f)
      return { ok: false, error: { kind: 'unknown_event', event: f.unknownEvent, message: `an event this build does not know: ${f.unknownEvent}` } };
    return { ok: true, fields: f };
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    return { ok: false, error: { kind: 'field', field: err.field, expected: err.expected, message: err.message } };
  }
}

function envelopeOf(o: Obj, hash: unknown): Envelope | AuditRecordError {
  if (o.v !== AUDIT_RECORD_VERSION)
    return { kind: 'version', found: o.v, message: `record version ${JSON.stringify(o.v) ?? 'missing'}; this build reads version ${AUDIT_RECORD_VERSION}` };
  const bad = (field: string, expected: string): AuditRecordError => ({ kind: 'envelope', field, expected, message: `${field}: expected ${expected}` });
  if (!isInt(o.seq) || o.seq < 1) return bad('seq', 'a positive integer');
  if (!isStr(o.ts)) return bad('ts', 'a string');
  if (!isStr(o.prev) || !HEX64.test(o.prev)) return bad('prev', '64 hex digits');
  if (!isStr(hash) || !HEX64.test(hash)) return bad('hash', '64 hex digits');
  return { v: AUDIT_RECORD_VERSION, seq: o.seq, ts: o.ts, prev: o.prev, hash };
}

function recordOf(o: Obj, hash: unknown): ParsedRecord {
  const envelope = envelopeOf(o, hash);
  if ('kind' in envelope) return { ok: false, error: envelope };
  const f = fieldsOf(o);
  if (!f.ok) return { ok: false, error: f.error, envelope };
  return { ok: true, record: Object.assign(f.fields, envelope) };
}

/** A record read back as a JSON value (the whole stored line, hash included). */
export function parseAuditRecord(value: unknown): ParsedRecord {
  if (!isObj(value)) return { ok: false, error: { kind: 'not_object', message: 'not a JSON object' } };
  return recordOf(value, value.hash);
}

/** A stored line: sealed, JSON, and a record of this version. */
export function parseAuditLine(line: string): ParsedRecord {
  const sealed = unsealLine(line);
  if (!sealed) return { ok: false, error: { kind: 'not_sealed', message: 'not a sealed record (no hash at its end)' } };
  let value: unknown;
  try {
    value = JSON.parse(sealed.body);
  } catch {
    return { ok: false, error: { kind: 'not_json', message: 'not JSON' } };
  }
  if (!isObj(value)) return { ok: false, error: { kind: 'not_object', message: 'not a JSON object' } };
  return recordOf(value, sealed.hash);
}

/** Fields before the log seals them (what an append is given), checked as a reader would. */
export function parseAuditFields(value: unknown): ParsedFields {
  if (!isObj(value)) return { ok: false, error: { kind: 'not_object', message: 'not a JSON object' } };
  return fieldsOf(value);
}
