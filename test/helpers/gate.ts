import crypto from 'node:crypto';
import { loadConfig } from '../../src/config/loader.js';
import { createApp, type App } from '../../src/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { runGate } from '../../src/gate/run.js';
import { unwrapSpawnHook } from './child-env.js';
import type { GateOutcome, TransportKind } from '../../src/core/call.js';

export interface InProcessGate {
  readonly app: App;
  call(tool: string, args: unknown, opts?: { transport?: TransportKind; clientIp?: string; signal?: AbortSignal }): Promise<GateOutcome>;
  close(): Promise<void>;
}

/** The real gate, in this process, on a config file (policy wasm, audit log and all). */
export async function inProcessGate(configPath: string, overrides: { roots?: string[] } = {}): Promise<InProcessGate> {
  unwrapSpawnHook();
  const loaded = loadConfig({ file: configPath, roots: overrides.roots });
  const app = await createApp(loaded, createLogger('error'));
  return {
    app,
    call: (tool, args, opts = {}) =>
      runGate(
        {
          tool,
          args,
          context: {
            transport: opts.transport ?? 'stdio',
            clientIp: opts.clientIp,
            requestId: crypto.randomUUID(),
            receivedAt: new Date(),
            signal: opts.signal ?? new AbortController().signal,
          },
        },
        app.deps,
      ),
    close: () => app.close(),
  };
}
