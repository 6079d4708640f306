import { Worker } from 'node:worker_threads';
import { readWithNodeSqlParser, type NspReading } from './sql-agree.js';
import { CTL, CTL_WORDS, type SecondOpinionChannel } from './sql-agree-channel.js';

/**
 * node-sql-parser on a thread of its own. Its parse is most of a simple query's analysis (≈ 120–200 µs
 * of ≈ 300), and nothing in libpg-query's parse or walk depends on it, so the analyser hands it the
 * text first, parses and walks with libpg-query meanwhile, and then waits for the reading. Both
 * parsers still read every text; only the wall time is shared.
 *
 * The channel is shared memory and Atomics (a message port needs the event loop, and the analyser is
 * synchronous). The thread is an accelerator, never a judge: whenever it is not ready, is still busy
 * past RESULT_TIMEOUT_MS, has died, or cannot fit the text or the reading, the analysing thread reads
 * the text with node-sql-parser itself, so the verdict is always the one an inline read would give.
 */

const REQUEST_BYTES = 1 << 20;
const RESPONSE_BYTES = 1 << 20;
/** A reading takes ≈ 30 ms for a 10 KB text here; past this the thread is taken for stuck. */
const RESULT_TIMEOUT_MS = 2_000;
/** After a thread died or was given up on, wait this long before starting another. */
const RESPAWN_AFTER_MS = 10_000;

export interface SecondOpinionTicket {
  readonly seq: number;
  readonly text: string;
  /** The thread the text went to (a ticket is only redeemed with the thread that holds its text). */
  readonly owner?: object;
}

interface Thread {
  readonly worker: Worker;
  readonly ctl: Int32Array;
  readonly req: Buffer;
  readonly res: Buffer;
  ready: boolean;
  dead: boolean;
  /** The request whose reading has not been taken yet (0: none). */
  outstanding: number;
  seq: number;
}

let mode: 'thread' | 'inline' = 'thread';
let thread: Thread | undefined;
let starting: Promise<void> | undefined;
let diedAt = Number.NEGATIVE_INFINITY;

/** 'inline' reads every text on the analysing thread (the benchmark compares the two). */
export function setSecondOpinionMode(m: 'thread' | 'inline'): void {
  mode = m;
}

/** Start the thread and wait until it has loaded the parser (resolves, not rejects, if it cannot start). */
export function startSecondOpinionThread(): Promise<void> {
  if (thread !== undefined && !thread.dead) return starting ?? Promise.resolve();
  const channel: SecondOpinionChannel = {
    control: new SharedArrayBuffer(CTL_WORDS * 4),
    request: new SharedArrayBuffer(REQUEST_BYTES),
    response: new SharedArrayBuffer(RESPONSE_BYTES),
  };
  let worker: Worker;
  try {
    worker = new Worker(new URL('./sql-agree-worker.js', import.meta.url), { workerData: channel, stdout: false, stderr: false });
  } catch {
    diedAt = performance.now();
    return Promise.resolve();
  }
  worker.unref();
  const t: Thread = {
    worker,
    ctl: new Int32Array(channel.control),
    req: Buffer.from(channel.request),
    res: Buffer.from(channel.response),
    ready: false,
    dead: false,
    outstanding: 0,
    seq: 0,
  };
  thread = t;
  const died = (): void => {
    t.dead = true;
    diedAt = performance.now();
  };
  worker.on('error', died);
  worker.on('exit', died);
  const ready = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 30_000);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    worker.once('message', done);
    worker.once('exit', done);
    worker.once('error', done);
  });
  const p = ready.then(() => {
    t.ready = Atomics.load(t.ctl, CTL.ready) === 1 && !t.dead;
    if (starting === p) starting = undefined;
  });
  starting = p;
  return p;
}

/** Stop the thread (tests, shutdown); later texts are read inline until it is started again. */
export async function stopSecondOpinionThread(): Promise<void> {
  const t = thread;
  thread = undefined;
  if (t === undefined) return;
  Atomics.store(t.ctl, CTL.stop, 1);
  Atomics.add(t.ctl, CTL.requestSeq, 1);
  Atomics.notify(t.ctl, CTL.requestSeq);
  await t.worker.terminate();
}

function giveUp(t: Thread): void {
  t.dead = true;
  diedAt = performance.now();
  if (thread === t) thread = undefined;
  void t.worker.terminate();
}

/** Wait until the thread has answered request `seq`; false if it did not in time. */
function awaitResponse(t: Thread, seq: number): boolean {
  const deadline = performance.now() + RESULT_TIMEOUT_MS;
  for (;;) {
    const cur = Atomics.load(t.ctl, CTL.responseSeq);
    if (cur === seq) return true;
    const left = deadline - performance.now();
    if (left <= 0 || t.dead) return false;
    Atomics.wait(t.ctl, CTL.responseSeq, cur, left);
  }
}

/** Hand `text` to the thread; the ticket is redeemed with takeSecondOpinion. */
export function submitSecondOpinion(text: string): SecondOpinionTicket {
  const none = { seq: 0, text };
  if (mode !== 'thread') return none;
  const t = thread;
  if (t === undefined || t.dead) {
    if (performance.now() - diedAt >= RESPAWN_AFTER_MS && starting === undefined) void startSecondOpinionThread();
    return none;
  }
  if (!t.ready) return none;
  // A text whose reading was never taken (its analysis was refused before the agreement step):
  // if the thread is still on it, this text is read inline rather than made to wait.
  if (t.outstanding !== 0) {
    if (Atomics.load(t.ctl, CTL.responseSeq) !== t.outstanding) return none;
    t.outstanding = 0;
  }
  if (Buffer.byteLength(text) > t.req.length) return none;
  const bytes = t.req.write(text, 0, 'utf8');
  const seq = ++t.seq;
  Atomics.store(t.ctl, CTL.requestBytes, bytes);
  Atomics.store(t.ctl, CTL.requestSeq, seq);
  Atomics.notify(t.ctl, CTL.requestSeq);
  t.outstanding = seq;
  return { seq, text, owner: t };
}

/** The reading for a ticket: the thread's when it answers in time, else one made here. */
export function takeSecondOpinion(ticket: SecondOpinionTicket): NspReading {
  const t = thread;
  if (ticket.seq === 0 || t === undefined || ticket.owner !== t || t.outstanding !== ticket.seq) return readWithNodeSqlParser(ticket.text);
  if (!awaitResponse(t, ticket.seq)) {
    giveUp(t);
    return readWithNodeSqlParser(ticket.text);
  }
  t.outstanding = 0;
  const bytes = Atomics.load(t.ctl, CTL.responseBytes);
  if (bytes < 0) return readWithNodeSqlParser(ticket.text);
  return JSON.parse(t.res.toString('utf8', 0, bytes)) as NspReading;
}
