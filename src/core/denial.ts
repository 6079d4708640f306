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

/**
 * What a caught value says, whatever was thrown: `throw null` and `Promise.reject()` happen, and a
 * catch block that reads `.message` from them would itself throw and lose the stage's typed answer.
 */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') return (err as { message: string }).message;
  return String(err);
}

/** The errno code of a system error (`ENOENT`, `EACCES`), or undefined for anything else thrown. */
export function errnoOf(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}
