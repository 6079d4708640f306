/**
 * tap loads @tapjs/processinfo through NODE_OPTIONS and wraps child_process spawning so every
 * child inherits it again. Under Node's permission model that hook itself is refused
 * (process.binding), so the sandbox workers would die at start. Deployments have no such hook:
 * tests remove it, for servers they spawn and for the pools they start in-process.
 */
export function cleanChildEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')) env[k] = v;
  return { ...env, ...extra };
}

export function unwrapSpawnHook(): void {
  const state = (globalThis as Record<symbol, { unwrap?: () => void } | undefined>)[Symbol.for('process-on-spawn@*:singletonId')];
  if (state?.unwrap) {
    state.unwrap();
    state.unwrap = undefined;
  }
  delete process.env.NODE_OPTIONS;
}
