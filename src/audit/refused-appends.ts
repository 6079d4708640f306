import type { RefusedAppendsSummary } from './record-type.js';

/** A request id is named in a recovery record up to this many characters. */
const ID_CHARS = 100;

/** What a recovery record says when nothing was refused. */
export const NO_REFUSED_APPENDS: RefusedAppendsSummary = { count: 0, first_at: null, last_at: null, request_ids: [] };

/**
 * The appends a log refused while it could not write, for the record that resumes it: the count
 * is exact, the request ids are the first `keepIds`. Both backends keep one; what they count
 * differs (see their noteRefused).
 */
export class RefusedAppends {
  private count = 0;
  private firstAt = '';
  private lastAt = '';
  private ids: string[] = [];

  constructor(private readonly keepIds: number) {}

  note(fields: Readonly<Record<string, unknown>>, now = new Date()): void {
    const at = now.toISOString();
    if (this.count === 0) this.firstAt = at;
    this.count++;
    this.lastAt = at;
    const id = fields.request_id;
    if (typeof id === 'string' && this.ids.length < this.keepIds) this.ids.push(id.slice(0, ID_CHARS));
  }

  /** The summary so far (undefined when nothing was refused), and a fresh count from here. */
  take(): RefusedAppendsSummary | undefined {
    if (this.count === 0) return undefined;
    const taken = { count: this.count, first_at: this.firstAt, last_at: this.lastAt, request_ids: this.ids };
    this.count = 0;
    this.ids = [];
    return taken;
  }

  /** Give back what was taken for a record that could not be written: it comes before what was counted since. */
  putBack(taken: RefusedAppendsSummary | undefined): void {
    if (!taken) return;
    if (this.count === 0) this.lastAt = taken.last_at ?? '';
    this.count += taken.count;
    this.firstAt = taken.first_at ?? this.firstAt;
    this.ids = [...taken.request_ids, ...this.ids].slice(0, this.keepIds);
  }
}
