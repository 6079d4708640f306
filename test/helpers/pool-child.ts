/**
 * A pool worker for the fault tests (test/fault-workers.test.ts): real child process, real IPC,
 * behaviour steered by a control file the test rewrites. `die` as the file's content makes every
 * new worker exit before it says ready, which is a crash loop; anything else lets workers start.
 */
import fs from 'node:fs';
import { serveTasks } from '../../sandbox/pool/child-runtime.js';

const control = process.env.POOL_CHILD_CONTROL ?? '';
const mode = control && fs.existsSync(control) ? fs.readFileSync(control, 'utf8').trim() : 'ok';
if (mode === 'die') process.exit(3);

serveTasks({
  echo: (p: unknown) => p,
  sleep: async (p: { ms: number; mark?: string }) => {
    if (p.mark) fs.writeFileSync(p.mark, String(process.pid));
    await new Promise((r) => setTimeout(r, p.ms));
    return process.pid;
  },
  mark: (p: { file: string }) => {
    fs.writeFileSync(p.file, String(process.pid));
    return process.pid;
  },
  pid: () => process.pid,
});
