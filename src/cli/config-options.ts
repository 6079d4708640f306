import path from 'node:path';
import type { Config } from '../config/schema.js';
import { loadConfig, type LoadedConfig } from '../config/loader.js';

/** The options every config-reading command shares: `--config FILE`, `--root DIR`..., `--http [HOST:]PORT`. */
export interface ConfigOptions {
  config?: string | undefined;
  root?: string[] | undefined;
  http?: string | undefined;
}

export function loadFromOptions(values: ConfigOptions): LoadedConfig {
  return loadConfig({ file: values.config, roots: values.root, http: values.http });
}

/** For `audit` and `keys`: the config gives their defaults, and relative paths in it are read from its folder. */
export function configWithBase(file: string | undefined): { config: Readonly<Config>; baseDir: string } {
  return { config: loadConfig({ file }).config, baseDir: file ? path.dirname(path.resolve(file)) : process.cwd() };
}
