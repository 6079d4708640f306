import { parentPort, workerData } from 'node:worker_threads';
import { readWithNodeSqlParser } from './sql-agree.js';
import { CTL, type SecondOpinionChannel } from './sql-agree-channel.js';

/**
 * The second-opinion thread (sql-agree-thread.ts): waits on the shared control words for a text,
 * reads it with node-sql-parser and writes the reading back as JSON. It never decides anything: the
 * comparison with libpg-query's tree stays on the analysing thread.
 */
const { control, request, response } = workerData as SecondOpinionChannel;
const ctl = new Int32Array(control);
const req = Buffer.from(request);
const res = Buffer.from(response);

// Load the parser before saying ready, so the first query does not pay for it.
readWithNodeSqlParser('SELECT 1');
Atomics.store(ctl, CTL.ready, 1);
Atomics.notify(ctl, CTL.ready);
parentPort?.postMessage('ready');

let seen = Atomics.load(ctl, CTL.requestSeq);
for (;;) {
  Atomics.wait(ctl, CTL.requestSeq, seen);
  if (Atomics.load(ctl, CTL.stop) === 1) break;
  seen = Atomics.load(ctl, CTL.requestSeq);
  const text = req.toString('utf8', 0, Atomics.load(ctl, CTL.requestBytes));
  const json = JSON.stringify(readWithNodeSqlParser(text));
  const bytes = Buffer.byteLength(json);
  if (bytes <= res.length) {
    res.write(json, 0, 'utf8');
    Atomics.store(ctl, CTL.responseBytes, bytes);
  } else {
    // Too large to hand back: the analysing thread reads the text itself.
    Atomics.store(ctl, CTL.responseBytes, -1);
  }
  Atomics.store(ctl, CTL.responseSeq, seen);
  Atomics.notify(ctl, CTL.responseSeq);
}
