import type { Decision } from '../core/decision.js';
import type { Logger } from '../observability/logger.js';
import type { PolicyArchive } from './archive.js';
import { UnavailablePolicy, WasmPolicyEngine, type PolicyEvaluator } from './engine.js';
import { PolicyError } from './types.js';

/**
 * A policy that can be replaced while the server runs. Each call pins the engine it starts with
 * (`pin()`, read once as the call enters the gate), so a swap never changes a call half-way and
 * the call's record names the revision that decided it. Swapping is one assignment: there is no
 * moment when no policy, or half of one, is loaded.
 */
export class LivePolicy implements PolicyEvaluator {
  private current: PolicyEvaluator;
  private currentBundleRevision = '';

  constructor(initial: PolicyEvaluator) {
    this.current = initial;
  }

  get revision(): string {
    return this.current.revision;
  }

  get ready(): boolean {
    return this.current.ready;
  }

  /** The manifest revision of the loaded bundle ('' for the committed wasm or none). */
  get bundleRevision(): string {
    return this.currentBundleRevision;
  }

  decide(input: unknown): Decision {
    return this.current.decide(input);
  }

  visibleTools(input: unknown): string[] {
    return this.current.visibleTools(input);
  }

  pin(): PolicyEvaluator {
    return this.current;
  }

  swap(next: PolicyEvaluator, bundleRevision = ''): void {
    this.current = next;
    this.currentBundleRevision = bundleRevision;
  }
}

/** A policy as a source yields it, before it is compiled. */
export interface PolicyCandidate {
  readonly wasm: Uint8Array;
  /** Policy data as the source holds it; the config's overlay is applied by the reloader. */
  readonly data: unknown;
  readonly bundleRevision: string;
}

/** `same`: nothing new since the last fetch (an ETag answered 304, or the file's bytes did not change). */
export type Fetched = { readonly kind: 'same' } | ({ readonly kind: 'policy' } & PolicyCandidate);

export interface PolicySource {
  /** Names the source in logs and metrics: `wasm`, `bundle_file` or `bundle_url`. */
  readonly kind: string;
  /** Where it reads from (a path or URL), for logs. */
  readonly location: string;
  /** Fetch and verify; `force` skips the "nothing new" short-cuts (boot, SIGHUP). Throws PolicyError. */
  fetch(force: boolean): Promise<Fetched>;
  /** Call `onChange` when the source may have changed (file events, a poll timer); returns a stop function. */
  watch?(onChange: () => void): () => void;
}

export type ReloadTrigger = 'boot' | 'sighup' | 'watch';
export type ReloadResult = 'loaded' | 'unchanged' | 'refused';

export interface ReloadOutcome {
  readonly result: ReloadResult;
  readonly trigger: ReloadTrigger;
  /** The revision serving after this attempt (the old one when refused or unchanged). */
  readonly revision: string;
  /** The `policy.*` reason when refused. */
  readonly reason?: string;
  /** False when the source had nothing new to look at (not logged, not counted). */
  readonly examined: boolean;
}

/** A fixed question every policy must answer well before it serves: a stranger asking for a file. */
const SMOKE_INPUT = Object.freeze({
  principal: { id: 'bulwark-policy-smoke-test', roles: [], auth: 'stdio' },
  tool: 'read_file',
  args: { path: 'smoke.txt' },
  facts: { path: { canonical: '/nonexistent/smoke.txt', root: '/nonexistent', kind: 'file', size: 0 } },
  context: { transport: 'stdio', time: '2026-01-01T00:00:00Z', request_id: 'policy-smoke-test' },
});

/** Evaluate the fixed input on both entrypoints; anything but a well-formed answer refuses the policy. */
export function smokeEvaluate(engine: PolicyEvaluator): void {
  try {
    engine.decide(SMOKE_INPUT);
    engine.visibleTools({ principal: SMOKE_INPUT.principal, tools: ['read_file'] });
  } catch (err) {
    const inner = err instanceof PolicyError ? `${err.reason}: ${err.message}` : (err as Error).message;
    throw new PolicyError('policy.smoke_failed', `the policy did not answer the smoke-test input well (${inner})`);
  }
}

export interface ReloaderOptions {
  readonly live: LivePolicy;
  readonly source: PolicySource;
  /** Fold the config's settings into the policy data (app.ts): the same for every revision. */
  readonly overlay: (data: unknown) => unknown;
  readonly maxInputBytes: number;
  /** Every revision is archived before it serves (issue 12's replay reads it). */
  readonly archive?: PolicyArchive | undefined;
  readonly logger: Logger;
}

/**
 * Loads the policy at boot and again on SIGHUP and whenever the source signals a change: fetch
 * and verify (the source), compile, smoke-evaluate, archive, then swap. Any failure before the swap
 * leaves the loaded policy in place, logs one line naming the reason and is reported to observers
 * (metrics). Attempts run one at a time, in order.
 */
export class PolicyReloader {
  private chain: Promise<unknown> = Promise.resolve();
  private stopWatch: (() => void) | undefined;
  private readonly observers: ((o: ReloadOutcome) => void)[] = [];
  private data: unknown = {};
  private lastOutcome: ReloadOutcome | undefined;
  private lastRefusal: string | undefined;

  constructor(private readonly opts: ReloaderOptions) {}

  get live(): LivePolicy {
    return this.opts.live;
  }

  get source(): PolicySource {
    return this.opts.source;
  }

  /** The effective data of the policy loaded at boot or since (tools read blocked names from it). */
  get loadedData(): unknown {
    return this.data;
  }

  /** The outcome of the last examined attempt (boot's, until another one). */
  get last(): ReloadOutcome | undefined {
    return this.lastOutcome;
  }

  onOutcome(fn: (o: ReloadOutcome) => void): void {
    this.observers.push(fn);
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const next = this.chain.then(() => this.attempt(trigger));
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Start watching the source (file events, polling). */
  start(): void {
    if (this.stopWatch || !this.opts.source.watch) return;
    this.stopWatch = this.opts.source.watch(() => void this.reload('watch'));
  }

  async close(): Promise<void> {
    this.stopWatch?.();
    this.stopWatch = undefined;
    await this.chain;
  }

  private async attempt(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const { live, source, logger } = this.opts;
    const detail = { source: source.kind, location: source.location, trigger };
    let outcome: ReloadOutcome;
    try {
      const fetched = await source.fetch(trigger !== 'watch');
      if (fetched.kind === 'same') return { result: 'unchanged', trigger, revision: live.revision, examined: false };
      const data = this.opts.overlay(fetched.data);
      const dataJson = JSON.stringify(data ?? {});
      const engine = await WasmPolicyEngine.fromBytes(fetched.wasm, dataJson, this.opts.maxInputBytes, `${source.kind} ${source.location}`);
      smokeEvaluate(engine);
      if (live.ready && engine.revision === live.revision) {
        outcome = { result: 'unchanged', trigger, revision: live.revision, examined: true };
        if (trigger === 'sighup') logger.info('policy unchanged', { ...detail, revision: live.revision });
      } else {
        if (this.opts.archive) {
          try {
            await this.opts.archive.put(engine.revision, { wasm: fetched.wasm, data: dataJson });
          } catch (err) {
            // A revision that could not be archived could not be replayed: it does not serve.
            throw new PolicyError('policy.archive_failed', `cannot archive revision ${engine.revision}: ${(err as Error).message}`);
          }
        }
        const previous = live.revision;
        live.swap(engine, fetched.bundleRevision);
        this.data = data;
        outcome = { result: 'loaded', trigger, revision: engine.revision, examined: true };
        logger.info('policy loaded', { ...detail, revision: engine.revision, bundle_revision: fetched.bundleRevision, previous });
      }
    } catch (err) {
      const pe = err instanceof PolicyError ? err : new PolicyError('policy.load_failed', (err as Error).message);
      if (!live.ready && live.pin() instanceof UnavailablePolicy) live.swap(new UnavailablePolicy(pe));
      outcome = { result: 'refused', trigger, revision: live.revision, reason: pe.reason, examined: true };
      // A source that keeps failing the same way (a bundle server down) logs once until something changes, not at every poll.
      const key = `${pe.reason}\0${pe.message}`;
      const repeated = trigger === 'watch' && key === this.lastRefusal;
      this.lastRefusal = key;
      const message = live.ready ? 'policy reload refused; the loaded policy stays' : 'policy failed to load; every call will be denied with policy_error';
      const fields = { ...detail, reason: pe.reason, error: pe.message, revision: live.revision };
      if (repeated) logger.debug(message, fields);
      else logger.error(message, fields);
    }
    if (outcome.result !== 'refused') this.lastRefusal = undefined;
    this.lastOutcome = outcome;
    for (const fn of this.observers) fn(outcome);
    return outcome;
  }
}
