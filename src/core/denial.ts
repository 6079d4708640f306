import type { DenialCode } from './codes.js';

/** A refusal: a stable code, one human sentence, and the finer reason codes of the stage or policy. */
export interface Denial {
  readonly code: DenialCode;
  readonly message: string;
  readonly reasons: readonly string[];
  /** Extra machine-readable detail that is safe to show the client (e.g. retry_after_s). */
  readonly detail?: Readonly<Record<string, unknown>>;
}

export function deny(code: DenialCode, message: string, reasons: readonly string[] = [], detail?: Record<string, unknown>): Denial {
  return detail === undefined ? { code, message, reasons: [...reasons] } : { code, message, reasons: [...reasons], detail };
}

/**
 * Thrown by analysers and executors for an expected refusal. The gate turns it into a Denial;
 * anything else thrown is a bug and becomes `internal_error` (fail closed).
 */
export class DenialError extends Error {
  readonly denial: Denial;
  constructor(denial: Denial) {
    super(denial.message);
    this.name = 'DenialError';
    this.denial = denial;
  }
}

export function refuse(code: DenialCode, message: string, reasons: readonly string[] = [], detail?: Record<string, unknown>): never {
  throw new DenialError(deny(code, message, reasons, detail));
}

export type Verdict<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly denial: Denial };

export function pass<T>(value: T): Verdict<T> {
  return { ok: true, value };
}

export function fail<T = never>(denial: Denial): Verdict<T> {
  return { ok: false, denial };
}
