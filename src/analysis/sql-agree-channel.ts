/** The shared memory between the analysing thread and the second-opinion thread (sql-agree-thread.ts). */
export interface SecondOpinionChannel {
  /** Int32 control words, indexed by CTL. */
  readonly control: SharedArrayBuffer;
  /** The text to read, UTF-8. */
  readonly request: SharedArrayBuffer;
  /** The reading, JSON in UTF-8. */
  readonly response: SharedArrayBuffer;
}

export const CTL = {
  /** Bumped by the analysing thread for each text (the worker waits on it). */
  requestSeq: 0,
  /** Set to the request's number once its reading is written (the analysing thread waits on it). */
  responseSeq: 1,
  requestBytes: 2,
  /** The reading's length, or -1 when it did not fit. */
  responseBytes: 3,
  /** 1 once the worker has loaded node-sql-parser. */
  ready: 4,
  /** 1 asks the worker to leave its loop. */
  stop: 5,
} as const;

export const CTL_WORDS = 8;
