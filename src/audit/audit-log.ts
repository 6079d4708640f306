/**
 * What the gate needs from an audit backend, and what every backend shares. The backends live in
 * file-log.ts and postgres-log.ts; open-audit-log.ts picks one. What a record holds is in
 * record-type.ts: the log itself seals any JSON object it is given.
 */
import type { CheckpointOptions } from './checkpoint.js';
import type { WitnessEndpoint } from './witness-cosignature.js';

export type Durability = 'fsync' | 'batch' | 'async';

export type { CheckpointOptions } from './checkpoint.js';

export interface RotationOptions {
  /** Start a new segment once the active one reaches this many bytes. */
  readonly maxBytes?: number | undefined;
  /** … or once it is this old (checked on append and once a second). */
  readonly maxAgeMs?: number | undefined;
}

export interface AuditLogOptions {
  readonly path: string;
  readonly durability: Durability;
  /** `batch`: the longest a written record waits for its fdatasync. */
  readonly batchMs: number;
  readonly backend?: 'file' | 'postgres' | undefined;
  /** PostgreSQL backend: connection URL and stream name (one chain per stream). */
  readonly postgresUrl?: string | undefined;
  readonly stream?: string | undefined;
  readonly checkpoint?: CheckpointOptions | undefined;
  readonly rotation?: RotationOptions | undefined;
  readonly maxLineBytes?: number | undefined;
  /** Recovery and checkpoint-sink problems are reported here (the app passes its logger). */
  readonly onWarning?: ((message: string, detail: Record<string, unknown>) => void) | undefined;
  /** Each fdatasync of appended records, in seconds (metrics; one sync may cover many records). */
  readonly onSync?: ((seconds: number) => void) | undefined;
  /**
   * Write a genesis record as seq 1 of a new log (see genesis.ts), naming the keys that will sign
   * it. Off unless asked for here; the config turns it on for every new log (audit.genesis, default on).
   */
  readonly genesis?: boolean | undefined;
  /**
   * PostgreSQL backend: the witnesses its writer sends each checkpoint it signs to (the file
   * backend's client comes in through onCheckpoint); cosignatures go to bulwark_audit_cosignature.
   */
  readonly witnesses?: readonly WitnessEndpoint[] | undefined;
  /** Each signed checkpoint once it is written (the witness client submits it). */
  readonly onCheckpoint?: ((note: string, size: number) => Promise<void> | void) | undefined;
  /** The policy revision when the log is created, named in its genesis record. */
  readonly policyRevision?: string | undefined;
  /**
   * Where the copies of the policy inputs go (policy-inputs.ts); without it a record keeps only
   * the input's hash and cannot be replayed.
   */
  readonly policyInputs?: string | undefined;
}

export class AuditUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditUnavailableError';
  }
}

export interface Appended {
  readonly seq: number;
  readonly hash: string;
}

/** What the gate needs from an audit backend. */
export interface AuditLog {
  /** False once a write failed or the log was closed: the gate then withholds every result. */
  readonly writable: boolean;
  readonly lastSeq: number;
  /**
   * Seal the record (v, seq, ts, prev, hash) and resolve when it is as durable as the mode
   * promises. Throws AuditUnavailableError if it cannot be recorded (the caller withholds the
   * result) and CanonicalJsonError if the fields cannot be hashed reproducibly (nothing is written).
   */
  append(fields: Readonly<Record<string, unknown>>): Promise<Appended>;
  close(): Promise<void>;
}

/** The code of a failed write (an errno name, a SQLSTATE), for the recovery record. */
export function errorCode(err: Error): string | null {
  const code: unknown = 'code' in err ? err.code : undefined;
  return typeof code === 'string' ? code : null;
}
