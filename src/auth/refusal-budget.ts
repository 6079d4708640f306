/** Refusals from one address past its budget, in one interval: written as one audit record. */
export interface RefusalAggregate {
  /** The client address, or `*` for addresses past the table's bound. */
  readonly address: string;
  readonly count: number;
  /** Epoch milliseconds of the first and last refusal counted. */
  readonly first: number;
  readonly last: number;
  /** Refusals per reason code (`auth.missing`, `auth.locked_out`, …). */
  readonly reasons: Readonly<Record<string, number>>;
}

export interface RefusalBudgetOptions {
  /** Refusals per address and interval that get a record each. */
  readonly perAddress: number;
  readonly intervalMs: number;
  /** Addresses tracked at once; refusals from more are aggregated under `*`. */
  readonly maxAddresses: number;
}

interface Window {
  start: number;
  recorded: number;
  agg: { count: number; first: number; last: number; reasons: Record<string, number> } | undefined;
}

export const OVERFLOW_ADDRESS = '*';

/**
 * Which refusals of authentication get an audit record of their own (issue 17): a record is an
 * fsync, so without a bound one address without credentials could write gigabytes an hour. The
 * first `perAddress` refusals per address and interval are recorded one by one; the rest (and
 * every lockout 429) are counted, and each address's count becomes one record when its interval
 * ends (`due`) or at shutdown (`drain`). The log stays evidence — every refusal is in a record or
 * a count — and cannot be used to fill the disk. The table is bounded: addresses past
 * `maxAddresses` share one aggregate.
 */
export class RefusalBudget {
  private readonly windows = new Map<string, Window>();
  private readonly ended: RefusalAggregate[] = [];

  constructor(
    private readonly opts: RefusalBudgetOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Count a refusal; true when it should be recorded on its own. `individually: false` (a
   * lockout 429) always goes to the aggregate.
   */
  admit(address: string, reason: string, individually = true): boolean {
    const t = this.now();
    let key = address;
    let w = this.windows.get(key);
    if (!w && this.windows.size >= this.opts.maxAddresses) {
      key = OVERFLOW_ADDRESS;
      w = this.windows.get(key);
    }
    if (w && t - w.start >= this.opts.intervalMs) w = this.close(key, w, t);
    if (!w) {
      w = { start: t, recorded: 0, agg: undefined };
      this.windows.set(key, w);
    }
    if (individually && key !== OVERFLOW_ADDRESS && w.recorded < this.opts.perAddress) {
      w.recorded += 1;
      return true;
    }
    w.agg ??= { count: 0, first: t, last: t, reasons: {} };
    w.agg.count += 1;
    w.agg.last = t;
    w.agg.reasons[reason] = (w.agg.reasons[reason] ?? 0) + 1;
    return false;
  }

  /** Aggregates whose interval has ended; their addresses start afresh. */
  due(): RefusalAggregate[] {
    const t = this.now();
    for (const [key, w] of [...this.windows]) if (t - w.start >= this.opts.intervalMs) this.close(key, w, t);
    return this.ended.splice(0);
  }

  /** Every aggregate, ended or not (shutdown). */
  drain(): RefusalAggregate[] {
    for (const [key, w] of [...this.windows]) this.close(key, w, undefined);
    return this.ended.splice(0);
  }

  /**
   * End a window. An address that went past its budget stays counted-only for the next interval
   * too (a continuing flood gets no fresh `perAddress` records each interval); one quiet interval
   * and it starts afresh.
   */
  private close(key: string, w: Window, t: number | undefined): Window | undefined {
    this.windows.delete(key);
    if (!w.agg) return undefined;
    this.ended.push({ address: key, count: w.agg.count, first: w.agg.first, last: w.agg.last, reasons: w.agg.reasons });
    if (t === undefined) return undefined;
    const hot: Window = { start: t, recorded: this.opts.perAddress, agg: undefined };
    this.windows.set(key, hot);
    return hot;
  }
}
