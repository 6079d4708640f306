import type { ProgressNotification } from '@modelcontextprotocol/sdk/types.js';
import type { CallContext } from '../core/call.js';

/** At most one progress notification per interval: a long search must not flood the client. */
export const PROGRESS_INTERVAL_MS = 100;

export type ProgressParams = ProgressNotification['params'];

/** The progress reporter a call's executors see, and the end of its reporting. */
export interface ProgressChannel {
  readonly report: NonNullable<CallContext['progress']>;
  /**
   * The call has its answer: send the update still held back (`deliverHeld`; the last update must
   * reach the client, and before the result), then ignore anything later. True when it sent one.
   */
  finish(deliverHeld: boolean): boolean;
}

/**
 * Progress throttled to one notification per interval, trailing edge kept: an update that arrives
 * inside the interval is held and sent at its end (or by `finish`), replaced by any newer one. A
 * leading-edge-only throttle drops the last update of a burst, which is the one a client shows.
 * The spec says each notification's progress increases: one that does not is dropped.
 */
export function throttledProgress(send: (params: ProgressParams) => void, token: string | number, intervalMs = PROGRESS_INTERVAL_MS): ProgressChannel {
  let lastSentAt = -Infinity;
  let lastProgress = -Infinity;
  let held: ProgressParams | undefined;
  let timer: NodeJS.Timeout | undefined;
  let finished = false;

  const emit = (params: ProgressParams): void => {
    lastSentAt = performance.now();
    held = undefined;
    send(params);
  };

  return {
    report: (progress, total, message) => {
      if (finished || !(progress > lastProgress)) return;
      lastProgress = progress;
      const params: ProgressParams = { progressToken: token, progress, ...(total === undefined ? {} : { total }), ...(message ? { message } : {}) };
      const since = performance.now() - lastSentAt;
      if (since >= intervalMs) {
        clearTimeout(timer);
        timer = undefined;
        emit(params);
        return;
      }
      held = params;
      timer ??= setTimeout(
        () => {
          timer = undefined;
          if (held && !finished) emit(held);
        },
        Math.max(0, intervalMs - since),
      );
    },
    finish: (deliverHeld) => {
      if (finished) return false;
      finished = true;
      clearTimeout(timer);
      timer = undefined;
      if (!held || !deliverHeld) return false;
      emit(held);
      return true;
    },
  };
}
