/**
 * `bulwark serve --profile`: which tool set the server runs. `conformance` is a test-only profile
 * (the official MCP conformance suite's fixtures as a gated family) and is refused anywhere a real
 * deployment could be: it runs only on the embedded defaults (no --config file), in loopback-only
 * mode, over stdio or HTTP bound to a loopback address. There is no config key for it, so no
 * config file, environment variable or policy bundle can turn it on.
 */
import { isLoopback } from '../analysis/ip-ranges.js';
import type { ServeProfile } from '../app.js';
import type { LoadedConfig } from '../config/loader.js';
import { StartupError } from './startup-checks.js';

export const PROFILES: readonly ServeProfile[] = ['default', 'conformance'];

function isProfile(v: string): v is ServeProfile {
  return (PROFILES as readonly string[]).includes(v);
}

function loopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || isLoopback(h);
}

/** The profile the flag names, after the checks above; throws StartupError (exit 2) naming the rule broken. */
export function checkedProfile(flag: string | undefined, loaded: LoadedConfig): ServeProfile {
  if (flag === undefined) return 'default';
  if (!isProfile(flag)) throw new StartupError(`--profile ${JSON.stringify(flag)}: expected one of ${PROFILES.join(', ')}`);
  if (flag === 'default') return flag;
  const refuse = (why: string): never => {
    throw new StartupError(`--profile conformance is test-only and is refused ${why}`);
  };
  if (loaded.source !== 'embedded defaults') refuse(`with a config file (${loaded.source}): it runs on the embedded defaults only`);
  const { config } = loaded;
  if (config.auth.http !== 'loopback-only') refuse(`unless auth.http is loopback-only`);
  if (config.server.transport === 'http' && !loopbackHost(config.server.http.host)) {
    refuse(`on a non-loopback address (${config.server.http.host}): bind it to 127.0.0.1, ::1 or localhost`);
  }
  return flag;
}
