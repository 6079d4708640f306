/** At most one progress message per interval crosses the process boundary. */
export const CHILD_PROGRESS_INTERVAL_MS = 100;

/**
 * A task's progress, throttled with the trailing edge kept: the first update goes at once, one
 * that arrives inside the interval is held (replaced by any newer one) and sent at the interval's
 * end, and `flush` sends what is still held. The task runtime flushes before it sends the result,
 * so the last update of a task always reaches the parent, and before the result (a leading-edge
 * throttle dropped it: the update a client shows last).
 */
export function progressThrottle<T>(send: (update: T) => void, intervalMs = CHILD_PROGRESS_INTERVAL_MS): { report(update: T): void; flush(): void } {
  let lastSentAt = -Infinity;
  let held: { update: T } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const emit = (update: T): void => {
    lastSentAt = performance.now();
    held = undefined;
    send(update);
  };
  return {
    report(update) {
      const since = performance.now() - lastSentAt;
      // Due: send now, even if a timer is pending (a task that never yields never lets it fire).
      if (since >= intervalMs) {
        clearTimeout(timer);
        timer = undefined;
        emit(update);
        return;
      }
      held = { update };
      timer ??= setTimeout(
        () => {
          timer = undefined;
          if (held) emit(held.update);
        },
        Math.max(0, intervalMs - since),
      );
    },
    flush() {
      clearTimeout(timer);
      timer = undefined;
      if (held) emit(held.update);
    },
  };
}
