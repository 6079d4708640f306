import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../config/schema.js';
import { parseAuditLine, type Envelope, type ParsedRecord } from '../audit/record-type.js';
import { loadCheckpoints, type LoadedCheckpoint } from '../audit/checkpoint.js';
import { mirrorsFromConfig, verifiersFromConfig } from '../audit/config.js';
import { logPaths } from '../audit/files.js';
import { generateKey, loadVerifier, type NoteVerifier } from '../audit/note.js';
import { buildConsistencyProof, buildInclusionProof, checkConsistency, checkInclusion, type ConsistencyProof, type InclusionProof } from '../audit/proofs.js';
import { fileSegments, verifyFile, type Segment, type VerifyOptions, type VerifyReport } from '../audit/verify.js';
import { auditOptionsFromConfig, policyArchiveDir, witnessesFromConfig } from '../audit/config.js';
import { policyInputsPath } from '../audit/policy-inputs.js';
import { openPolicyArchive, type PolicyArchive } from '../policy/archive.js';
import { formatReplay, replayLog } from './audit-replay.js';
import { loadWitnessVerifier, type WitnessVerifier } from '../audit/witness-cosignature.js';
import {
  AnchorError,
  makePruneStatement,
  prunePath,
  readPruneStatement,
  readTrustedCheckpoint,
  type Anchor,
  type PruneFile,
  type PruneLink,
} from '../audit/genesis.js';
import { proofFromFrontier } from '../audit/witness-client.js';
import { acquireLock } from '../audit/files.js';
import { Frontier, leafHashLatin1 } from '../audit/merkle.js';
import type { NoteSigner } from '../audit/note.js';

const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export const AUDIT_HELP = `Usage:
  bulwark audit verify [PATH|POSTGRES_URL] [--public-key K]... [--mirror FILE]... [--from SEQ] [--to SEQ]
                       [--merkle] [--strict] [--stream NAME] [--json]
                       [--from-checkpoint FILE] [--trust-genesis | --no-signatures] [--require-genesis]
                       [--witness-key W]... [--witness-quorum K]
        exit 0 when intact; 1 naming the first bad record (segment, line, seq) and the damage:
        modified, inserted, deleted, reordered, truncated, malformed, bad_signature,
        missing_segment, rollback, head_truncated, missing_genesis, no_trusted_key, unsigned_gap,
        unwitnessed.
        A log must start at its genesis record (seq 1), after a signed prune statement
        (<stem>.prune.json), or after --from-checkpoint FILE (a checkpoint note signed by a
        trusted key). A signed log needs a trusted key (--public-key, audit.checkpoint.public_keys,
        or --trust-genesis: the keys its genesis record names, with a warning); --no-signatures
        checks the hash chain only, and says so. --require-genesis: a signed log without a genesis
        record fails (otherwise a warning). --witness-key W (cosignature/v1 key; default: the
        configured audit.witnesses): some checkpoint must be cosigned by K of them (default all),
        and the log must match every cosigned checkpoint (<stem>.cosignatures.jsonl); else
        unwitnessed / modified. Records after the last witnessed checkpoint are named in a warning.
  bulwark audit prune --before SEQ [PATH]                 delete the rotated segments that end before
        SEQ, after writing a prune statement signed with audit.checkpoint.private_key (the writer
        must be stopped: the log's lock is taken)
  bulwark audit verify --inclusion PROOF.json [--public-key K]...
  bulwark audit verify --consistency OLD NEW [PATH] [--public-key K]...
        OLD, NEW: checkpoint notes (files), or one proof file from \`audit prove --consistency\`
  bulwark audit prove SEQ [PATH] [--checkpoint SIZE]     inclusion proof (JSON) under a signed checkpoint
  bulwark audit prove --consistency OLD_SIZE NEW_SIZE [PATH]
  bulwark audit tail [PATH] [-n N] [-f]                   print the last N records (default 10); -f: then
                                                          follow new records (polls every 200 ms; Ctrl-C ends)
  bulwark audit show SEQ [PATH]                           print the record with sequence number SEQ
  bulwark audit export [PATH] [--since T] [--until T] [--format jsonl|csv]
        T: a seq number or an RFC 3339 time (ts); --until is inclusive
  bulwark audit replay [PATH] [--from SEQ] [--to SEQ] [--archive DIR] [--inputs FILE] [--json]
        re-evaluate every recorded decision with the archived policy of its revision (DIR, default
        audit.policy_archive or policies/ beside the log) and its exact input (FILE, default
        <stem>.inputs.jsonl beside the log, checked against the record's policy_input_sha256);
        name each record whose replayed decision differs (allow, reasons, obligations, error) and
        each that cannot be replayed (revision not archived or its entry forged, input copy
        missing or altered). Exit 0 when every decision in range replayed the same, 1 otherwise
  bulwark audit keygen --out DIR [--name NAME]            Ed25519 checkpoint key pair (NAME.key 0600, NAME.pub)
  bulwark audit report [PATH] --html FILE [--public-key K]... [--trust-genesis | --no-signatures]
                       [--mirror FILE]... [--witness-key W]...
        self-contained HTML page: verification verdict, counts by principal, tool, decision and
        outcome code, a timeline and every denial (first 5,000); exit 1 when the log is damaged.
        Keys as for verify: a signed log needs a trusted key (or --trust-genesis, or an explicit
        --no-signatures), else the verdict is no_trusted_key and the exit 1
PATH defaults to the configured audit log (--config FILE, or .bulwark/audit.jsonl); with
audit.backend postgres, to the configured postgres_url and stream. K is a verifier key
(NAME+KEYID+BASE64) or a file holding one; configured audit.checkpoint.public_keys are used too.
`;

export type ConfigLoader = (file: string | undefined) => { config: Config; baseDir: string };

interface Target {
  readonly kind: 'file' | 'postgres';
  readonly where: string;
  readonly stream: string;
}

const OPTIONS = {
  json: { type: 'boolean' },
  config: { type: 'string' },
  n: { type: 'string', short: 'n' },
  help: { type: 'boolean', short: 'h' },
  'public-key': { type: 'string', multiple: true },
  mirror: { type: 'string', multiple: true },
  from: { type: 'string' },
  to: { type: 'string' },
  merkle: { type: 'boolean' },
  strict: { type: 'boolean' },
  stream: { type: 'string' },
  inclusion: { type: 'string' },
  consistency: { type: 'string' },
  checkpoint: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  format: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  html: { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
  'from-checkpoint': { type: 'string' },
  'trust-genesis': { type: 'boolean' },
  'no-signatures': { type: 'boolean' },
  'require-genesis': { type: 'boolean' },
  'witness-key': { type: 'string', multiple: true },
  'witness-quorum': { type: 'string' },
  before: { type: 'string' },
  archive: { type: 'string' },
  inputs: { type: 'string' },
} as const;

class UsageError extends Error {}

function positiveInt(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${what} must be a positive integer`);
  return n;
}

export async function runAuditCli(argv: string[], loadConfig: ConfigLoader): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(AUDIT_HELP);
    return EXIT.ok;
  }
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`bulwark audit ${sub}: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(AUDIT_HELP);
    return EXIT.ok;
  }
  let cfg: { config: Config; baseDir: string } | undefined;
  const config = () => (cfg ??= loadConfig(values.config));
  const keys = (): NoteVerifier[] => {
    const given = (values['public-key'] ?? []).map((k) => loadVerifier(k));
    let configured: NoteVerifier[] = [];
    try {
      configured = values.config || !given.length ? verifiersFromConfig(config().config.audit, config().baseDir) : [];
    } catch (err) {
      if (values.config) throw err;
    }
    return [...given, ...configured];
  };
  const target = (p: string | undefined): Target => {
    if (p && /^postgres(ql)?:\/\//.test(p)) return { kind: 'postgres', where: p, stream: values.stream ?? 'default' };
    if (p) return { kind: 'file', where: path.resolve(p), stream: values.stream ?? 'default' };
    const a = config().config.audit;
    if (a.backend === 'postgres') {
      if (!a.postgres_url) throw new UsageError('audit.backend is postgres but audit.postgres_url is not set');
      return { kind: 'postgres', where: a.postgres_url, stream: values.stream ?? a.stream };
    }
    return { kind: 'file', where: a.path, stream: a.stream };
  };
  try {
    switch (sub) {
      case 'verify': {
        if (values.inclusion) return verifyInclusionCmd(values.inclusion, keys(), values.json ?? false);
        if (values.consistency) return await verifyConsistencyCmd(values.consistency, positionals, keys(), values.json ?? false, target);
        if (values['no-signatures'] && (values['trust-genesis'] || values['public-key']?.length || values['from-checkpoint']))
          throw new UsageError('--no-signatures cannot be combined with --public-key, --trust-genesis or --from-checkpoint');
        const noSig = values['no-signatures'] ?? false;
        const k = noSig ? [] : keys();
        let anchor: Anchor | undefined;
        if (values['from-checkpoint']) {
          try {
            anchor = readTrustedCheckpoint(values['from-checkpoint'], k);
          } catch (err) {
            if (!(err instanceof AnchorError)) throw err;
            process.stderr.write(`bulwark audit verify: ${err.message}\n`);
            return EXIT.failed;
          }
        }
        if (noSig) process.stderr.write('warning: --no-signatures: checkpoint signatures are not checked; a rewrite of the whole log would pass\n');
        return await verifyCmd(target(positionals[0]), {
          keys: k,
          signatures: noSig ? 'optional' : 'require',
          trustGenesis: values['trust-genesis'] ?? false,
          requireGenesis: values['require-genesis'] ?? false,
          witnessKeys: values['witness-key']?.length
            ? values['witness-key'].map((w) => loadWitnessVerifier(w))
            : safe(() => (values.config || !positionals[0] ? witnessesFromConfig(config().config.audit, config().baseDir).keys : []), []),
          witnessQuorum:
            positiveInt(values['witness-quorum'], '--witness-quorum') ??
            safe(() => (values.config || !positionals[0] ? witnessesFromConfig(config().config.audit, config().baseDir).quorum : undefined), undefined),
          anchor,
          intervalMs: safe(() => (values.config || !positionals[0] ? config().config.audit.checkpoint?.every_ms : undefined), undefined),
          mirrors: [
            ...(values.mirror ?? []),
            ...(positionals[0] || values.mirror ? [] : safe(() => mirrorsFromConfig(config().config.audit, config().baseDir), [])),
          ],
          from: positiveInt(values.from, '--from'),
          to: positiveInt(values.to, '--to'),
          merkle: values.merkle ?? false,
          strict: values.strict ?? false,
          json: values.json ?? false,
        });
      }
      case 'prune': {
        const before = positiveInt(values.before, '--before');
        if (!before) throw new UsageError('usage: bulwark audit prune --before SEQ [PATH]');
        const t = target(positionals[0]);
        if (t.kind !== 'file') throw new UsageError('prune works on file logs');
        const a = config().config.audit;
        if (!a.checkpoint?.private_key) throw new UsageError('audit.checkpoint.private_key is needed to sign the prune statement');
        const opts = auditOptionsFromConfig(a, config().baseDir);
        return await pruneCmd(t.where, before, opts.checkpoint!.signer, opts.checkpoint!.origin);
      }
      case 'prove': {
        if (values.consistency) {
          const oldSize = positiveInt(values.consistency, '--consistency OLD_SIZE') as number;
          const newSize = positiveInt(positionals[0], 'NEW_SIZE');
          if (!newSize) throw new UsageError('usage: bulwark audit prove --consistency OLD_SIZE NEW_SIZE [PATH]');
          return await proveConsistencyCmd(target(positionals[1]), oldSize, newSize);
        }
        const seq = positiveInt(positionals[0], 'SEQ');
        if (!seq) throw new UsageError('usage: bulwark audit prove SEQ [PATH] [--checkpoint SIZE]');
        return await proveCmd(target(positionals[1]), seq, positiveInt(values.checkpoint, '--checkpoint'));
      }
      case 'tail':
        return await tailCmd(target(positionals[0]), positiveInt(values.n ?? '10', '-n') as number, values.follow ?? false);
      case 'show': {
        const seq = positiveInt(positionals[0], 'SEQ');
        if (!seq) throw new UsageError('SEQ must be a positive integer');
        return await showCmd(target(positionals[1]), seq);
      }
      case 'export':
        return await exportCmd(target(positionals[0]), values.since, values.until, values.format ?? 'jsonl');
      case 'replay': {
        const t = target(positionals[0]);
        const fromConfig = !positionals[0] || values.config;
        const archiveDir =
          values.archive ??
          (fromConfig ? safe(() => policyArchiveDir(config().config.audit, config().baseDir), undefined) : undefined) ??
          path.join(path.dirname(t.kind === 'file' ? t.where : config().config.audit.path), 'policies');
        // A PostgreSQL stream keeps its input copies in bulwark_audit_policy_input (--inputs FILE reads a file instead).
        const inputsFile = values.inputs ?? (t.kind === 'file' ? policyInputsPath(logPaths(t.where)) : `postgres:bulwark_audit_policy_input#${t.stream}`);
        return await replayCmd(
          t,
          openPolicyArchive(archiveDir),
          inputsFile,
          positiveInt(values.from, '--from'),
          positiveInt(values.to, '--to'),
          values.json ?? false,
        );
      }
      case 'keygen':
        return keygenCmd(values.out, values.name ?? 'bulwark-audit');
      case 'report': {
        // The same key rules as verify: a report's verdict is a verify.
        if (values['no-signatures'] && (values['trust-genesis'] || values['public-key']?.length))
          throw new UsageError('--no-signatures cannot be combined with --public-key or --trust-genesis');
        const noSig = values['no-signatures'] ?? false;
        if (noSig) process.stderr.write('warning: --no-signatures: checkpoint signatures are not checked; a rewrite of the whole log would pass\n');
        return await reportCmd(target(positionals[0]), values.html, {
          publicKeys: noSig ? [] : keys(),
          signatures: noSig ? 'optional' : 'require',
          trustGenesis: values['trust-genesis'] ?? false,
          witnessKeys: (values['witness-key'] ?? []).map((w) => loadWitnessVerifier(w)),
          witnessQuorum: positiveInt(values['witness-quorum'], '--witness-quorum'),
          mirrors: [
            ...(values.mirror ?? []),
            ...(positionals[0] || values.mirror ? [] : safe(() => mirrorsFromConfig(config().config.audit, config().baseDir), [])),
          ],
        });
      }
      default:
        process.stderr.write(`bulwark audit: unknown subcommand ${sub}\n${AUDIT_HELP}`);
        return EXIT.usage;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`bulwark audit ${sub}: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
}

async function replayCmd(
  t: Target,
  archive: PolicyArchive,
  inputsFile: string,
  from: number | undefined,
  to: number | undefined,
  json: boolean,
): Promise<number> {
  const src = await segmentsOf(t);
  try {
    const fromTable = t.kind === 'postgres' && inputsFile.startsWith('postgres:');
    const { postgresPolicyInputs } = fromTable ? await import('../audit/postgres-log.js') : { postgresPolicyInputs: undefined };
    const loadInputs = postgresPolicyInputs ? (wanted: ReadonlySet<string>) => postgresPolicyInputs(t.where, t.stream, wanted) : undefined;
    const r = await replayLog({ segments: src.segments, archive, inputsFile, loadInputs, from, to });
    process.stdout.write(json ? `${JSON.stringify(r)}\n` : formatReplay(r));
    return r.differ.length || r.cannot.length ? EXIT.failed : EXIT.ok;
  } finally {
    await src.close();
  }
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

async function segmentsOf(t: Target): Promise<{ segments: Segment[]; checkpoints: string[]; close: () => Promise<void> }> {
  if (t.kind === 'file') {
    if (!fs.existsSync(t.where)) throw new UsageError(`${t.where} does not exist`);
    const { segments } = fileSegments(t.where);
    return { segments, checkpoints: [logPaths(t.where).checkpoints], close: async () => undefined };
  }
  const { connect, postgresSegment, postgresCheckpointLines } = await import('../audit/postgres-log.js');
  const sql = connect(t.where);
  const tmp = fs.mkdtempSync(path.join((await import('node:os')).tmpdir(), 'bulwark-audit-'));
  const cpFile = path.join(tmp, 'checkpoints.jsonl');
  fs.writeFileSync(cpFile, await postgresCheckpointLines(sql, t.stream), { mode: 0o600 });
  return {
    segments: [postgresSegment(sql, t.stream)],
    checkpoints: [cpFile],
    close: async () => {
      await sql.end({ timeout: 5 });
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

function printReport(r: VerifyReport, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  if (r.ok) {
    const cps = r.checkpoints.total
      ? `; ${r.checkpoints.matched}/${r.checkpoints.total} checkpoint(s) matched (signatures ${r.checkpoints.signatures.replace('_', ' ')})`
      : '; no checkpoints';
    process.stdout.write(
      `OK: ${r.records} records in ${r.segments.length} segment(s), chain intact, last seq ${r.last_seq}, head ${r.last_hash}${cps}${r.partial ? ' (partial range)' : ''}\n`,
    );
    return;
  }
  const p = r.problem!;
  process.stdout.write(
    `DAMAGED: ${p.segment} line ${p.line}${p.seq === undefined ? '' : ` (seq ${p.seq})`}: ${p.kind}: ${p.message}\n` +
      `${r.records} records before it verified; last good seq ${r.last_seq}\n`,
  );
}

async function verifyCmd(
  t: Target,
  o: {
    keys: NoteVerifier[];
    mirrors: string[];
    from?: number | undefined;
    to?: number | undefined;
    merkle: boolean;
    strict: boolean;
    json: boolean;
    signatures: 'require' | 'optional';
    trustGenesis: boolean;
    requireGenesis: boolean;
    witnessKeys: WitnessVerifier[];
    witnessQuorum: number | undefined;
    anchor: Anchor | undefined;
    intervalMs: number | undefined;
  },
): Promise<number> {
  const opts: VerifyOptions = {
    publicKeys: o.keys,
    mirrors: o.mirrors,
    from: o.from,
    to: o.to,
    merkle: o.merkle,
    strict: o.strict,
    signatures: o.signatures,
    trustGenesis: o.trustGenesis,
    requireGenesis: o.requireGenesis,
    witnessKeys: o.witnessKeys,
    witnessQuorum: o.witnessQuorum,
    anchor: o.anchor,
    checkpointIntervalMs: o.intervalMs,
  };
  let r: VerifyReport;
  if (t.kind === 'postgres') {
    const { verifyPostgres } = await import('../audit/postgres-log.js');
    r = await verifyPostgres(t.where, t.stream, opts);
  } else {
    if (!fs.existsSync(t.where) && !fs.existsSync(logPaths(t.where).manifest)) {
      process.stderr.write(`bulwark audit verify: ${t.where} does not exist\n`);
      return EXIT.usage;
    }
    r = await verifyFile(t.where, opts);
  }
  printReport(r, o.json);
  return r.ok ? EXIT.ok : EXIT.failed;
}

function readJsonOrNote(file: string): { proof?: InclusionProof | ConsistencyProof; note?: string } {
  const text = fs.readFileSync(file, 'utf8');
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const obj = JSON.parse(trimmed) as Record<string, unknown>;
    if (obj.type === 'inclusion' || obj.type === 'consistency') return { proof: obj as unknown as InclusionProof };
    if (typeof obj.note === 'string') return { note: obj.note };
    if (typeof obj.checkpoint === 'string') return { note: obj.checkpoint };
    throw new UsageError(`${file}: not a proof or checkpoint`);
  }
  return { note: text };
}

function verifyInclusionCmd(file: string, keys: NoteVerifier[], json: boolean): number {
  const { proof } = readJsonOrNote(file);
  if (!proof || proof.type !== 'inclusion') throw new UsageError(`${file} is not an inclusion proof (from \`bulwark audit prove SEQ\`)`);
  const c = checkInclusion(proof, keys);
  if (json) process.stdout.write(`${JSON.stringify(c)}\n`);
  else process.stdout.write(`${c.ok ? 'OK' : 'FAILED'}: ${c.message}\n`);
  if (c.ok && !c.signed && !json) process.stderr.write('warning: no signed checkpoint was checked (give --public-key)\n');
  return c.ok ? EXIT.ok : EXIT.failed;
}

async function verifyConsistencyCmd(
  oldArg: string,
  positionals: string[],
  keys: NoteVerifier[],
  json: boolean,
  target: (p: string | undefined) => Target,
): Promise<number> {
  const first = readJsonOrNote(oldArg);
  let proof: ConsistencyProof;
  if (first.proof) {
    if (first.proof.type !== 'consistency') throw new UsageError(`${oldArg} is not a consistency proof`);
    proof = first.proof;
  } else {
    const newArg = positionals[0];
    if (!newArg) throw new UsageError('usage: bulwark audit verify --consistency OLD NEW [PATH]');
    const { readCheckpointNote } = await import('../audit/note.js');
    const oldNote = first.note as string;
    const newNote = readJsonOrNote(newArg).note;
    if (!newNote) throw new UsageError(`${newArg} is not a checkpoint note`);
    const o = readCheckpointNote(oldNote, keys);
    const n = readCheckpointNote(newNote, keys);
    if (o.size > n.size) throw new UsageError(`OLD (size ${o.size}) is larger than NEW (size ${n.size})`);
    // The proof hashes come from the log; the verdict rests on the two signed roots.
    const src = await segmentsOf(target(positionals[1]));
    try {
      proof = await buildConsistencyProof(src.segments, o.size, n.size, oldNote, newNote);
    } finally {
      await src.close();
    }
  }
  const c = checkConsistency(proof, keys);
  if (json) process.stdout.write(`${JSON.stringify(c)}\n`);
  else process.stdout.write(`${c.ok ? 'OK' : 'FAILED'}: ${c.message}\n`);
  return c.ok ? EXIT.ok : EXIT.failed;
}

function checkpointsOf(files: string[]): LoadedCheckpoint[] {
  return files.flatMap((f) => loadCheckpoints(f, []).checkpoints).sort((a, b) => a.size - b.size);
}

async function proveCmd(t: Target, seq: number, size: number | undefined): Promise<number> {
  const src = await segmentsOf(t);
  try {
    const cps = checkpointsOf(src.checkpoints);
    const cp = size !== undefined ? cps.find((c) => c.size === size) : cps.find((c) => c.size >= seq);
    if (size !== undefined && !cp) throw new UsageError(`no checkpoint with tree size ${size}`);
    let treeSize = cp?.size;
    if (treeSize === undefined) {
      // No signed checkpoint covers the record yet: prove against the log as it stands (unsigned).
      const r = t.kind === 'file' ? await verifyFile(t.where) : undefined;
      treeSize = r?.last_seq ?? seq;
      process.stderr.write(`warning: no signed checkpoint covers seq ${seq} yet; the proof is against the unsigned size ${treeSize}\n`);
    }
    if (seq > treeSize) throw new UsageError(`seq ${seq} is beyond tree size ${treeSize}`);
    const proof = await buildInclusionProof(src.segments, seq, treeSize, cp?.note ?? null);
    process.stdout.write(`${JSON.stringify(proof, null, 2)}\n`);
    return EXIT.ok;
  } finally {
    await src.close();
  }
}

async function proveConsistencyCmd(t: Target, oldSize: number, newSize: number): Promise<number> {
  if (oldSize > newSize) throw new UsageError('OLD_SIZE must not exceed NEW_SIZE');
  const src = await segmentsOf(t);
  try {
    const cps = checkpointsOf(src.checkpoints);
    const proof = await buildConsistencyProof(
      src.segments,
      oldSize,
      newSize,
      cps.find((c) => c.size === oldSize)?.note ?? null,
      cps.find((c) => c.size === newSize)?.note ?? null,
    );
    process.stdout.write(`${JSON.stringify(proof, null, 2)}\n`);
    return EXIT.ok;
  } finally {
    await src.close();
  }
}

/** Each stored line whose envelope reads, in order, with what the parser made of it; `false` from fn stops. */
async function forEachRecord(t: Target, fn: (line: string, envelope: Envelope, parsed: ParsedRecord) => boolean | void): Promise<void> {
  const src = await segmentsOf(t);
  try {
    let stop = false;
    for (const seg of src.segments) {
      if (stop) break;
      if (!seg.exists) continue;
      await seg.scan((buf, start, end) => {
        const line = buf.toString('utf8', start, end);
        const parsed = parseAuditLine(line);
        const envelope = parsed.ok ? parsed.record : parsed.envelope;
        if (!envelope) return true;
        if (fn(line, envelope, parsed) === false) {
          stop = true;
          return false;
        }
        return true;
      });
    }
  } finally {
    await src.close();
  }
}

async function tailCmd(t: Target, n: number, follow = false): Promise<number> {
  if (follow && t.kind !== 'file') throw new UsageError('-f follows file logs only');
  const last: string[] = [];
  let lastSeq = 0;
  await forEachRecord(t, (line, { seq }) => {
    last.push(line);
    if (last.length > n) last.shift();
    if (seq > lastSeq) lastSeq = seq;
  });
  for (const l of last) process.stdout.write(`${l}\n`);
  return follow ? followActive(t.where, lastSeq) : EXIT.ok;
}

/**
 * Print records with seq > `after` as they are appended to the active segment, polling every
 * 200 ms, until SIGINT. Complete lines only; a rotation (the path names a new file) is followed
 * after draining the old file through the descriptor still open on it; seq filters repeats.
 */
async function followActive(file: string, after: number): Promise<number> {
  let lastSeq = after;
  let fd: number | undefined;
  let ino = -1;
  let pos = 0;
  let pending = Buffer.alloc(0);
  const chunk = Buffer.alloc(1 << 16);
  const open = (): void => {
    try {
      fd = fs.openSync(file, 'r');
      ino = fs.fstatSync(fd).ino;
      pos = 0;
      pending = Buffer.alloc(0);
    } catch {
      fd = undefined;
    }
  };
  // Records missed in segments sealed and replaced between two polls: read them from the sealed segments.
  const catchUp = async (before: number): Promise<void> => {
    for (const seg of fileSegments(file).segments) {
      if (!seg.exists || (seg.last_seq !== undefined && seg.last_seq <= lastSeq) || seg.first_seq >= before) continue;
      await seg.scan((buf, start, end) => {
        const line = buf.toString('utf8', start, end);
        const seq = seqOf(line);
        if (seq === undefined || seq <= lastSeq) return true;
        if (seq >= before) return false;
        lastSeq = seq;
        process.stdout.write(`${line}\n`);
        return true;
      });
    }
  };
  const drain = async (): Promise<void> => {
    if (fd === undefined) return;
    for (;;) {
      const got = fs.readSync(fd, chunk, 0, chunk.length, pos);
      if (got <= 0) break;
      pos += got;
      pending = Buffer.concat([pending, chunk.subarray(0, got)]);
      let nl: number;
      while ((nl = pending.indexOf(0x0a)) >= 0) {
        const line = pending.toString('utf8', 0, nl);
        pending = pending.subarray(nl + 1);
        const seq = seqOf(line);
        if (seq !== undefined && seq <= lastSeq) continue;
        if (seq !== undefined && seq > lastSeq + 1) await catchUp(seq);
        if (seq !== undefined) lastSeq = seq;
        process.stdout.write(`${line}\n`);
      }
    }
  };
  const poll = async (): Promise<void> => {
    if (fd === undefined) open();
    await drain();
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(file);
    } catch {
      st = undefined;
    }
    if (fd !== undefined && (st === undefined || st.ino !== ino || st.size < pos)) {
      // Rotated (or cut back by recovery): finish the old file, then start on the new one.
      await drain();
      fs.closeSync(fd);
      fd = undefined;
      if (st) {
        open();
        await drain();
      }
    }
  };
  let busy: Promise<void> = Promise.resolve();
  const tick = (): Promise<void> =>
    (busy = busy.then(poll).catch((err: unknown) => {
      process.stderr.write(`bulwark audit tail: ${(err as Error).message}\n`);
    }));
  return new Promise<number>((resolve) => {
    void tick();
    const timer = setInterval(() => void tick(), 200);
    process.once('SIGINT', () => {
      clearInterval(timer);
      void tick().finally(() => {
        if (fd !== undefined) fs.closeSync(fd);
        resolve(EXIT.ok);
      });
    });
  });
}

function seqOf(line: string): number | undefined {
  const parsed = parseAuditLine(line);
  return parsed.ok ? parsed.record.seq : parsed.envelope?.seq;
}

async function showCmd(t: Target, seq: number): Promise<number> {
  let found: string | undefined;
  await forEachRecord(t, (line, envelope) => {
    if (envelope.seq === seq) {
      found = line;
      return false;
    }
    return true;
  });
  if (found === undefined) {
    process.stderr.write(`bulwark audit show: no record with seq ${seq}\n`);
    return EXIT.failed;
  }
  process.stdout.write(`${found}\n`);
  return EXIT.ok;
}

function bound(v: string | undefined, what: string): { seq?: number; time?: number } | undefined {
  if (v === undefined) return undefined;
  if (/^[0-9]+$/.test(v)) return { seq: Number(v) };
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`${what}: expected a seq number or an RFC 3339 time, got ${JSON.stringify(v)}`);
  return { time: t };
}

const CSV_COLUMNS = [
  'seq',
  'ts',
  'request_id',
  'transport',
  'principal',
  'tool',
  'allow',
  'status',
  'code',
  'duration_ms',
  'args_sha256',
  'result_sha256',
  'policy_revision',
  'hash',
] as const;

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = typeof v === 'string' ? v : JSON.stringify(v);
  // A cell that a spreadsheet would run as a formula is prefixed (CSV injection).
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function exportCmd(t: Target, since: string | undefined, until: string | undefined, format: string): Promise<number> {
  if (format !== 'jsonl' && format !== 'csv') throw new UsageError('--format must be jsonl or csv');
  const lo = bound(since, '--since');
  const hi = bound(until, '--until');
  if (format === 'csv') process.stdout.write(`${CSV_COLUMNS.join(',')}\n`);
  await forEachRecord(t, (line, { seq, ts: time, hash }, parsed) => {
    const ts = Date.parse(time);
    if (lo?.seq !== undefined && seq < lo.seq) return true;
    if (lo?.time !== undefined && ts < lo.time) return true;
    if (hi?.seq !== undefined && seq > hi.seq) return false;
    if (hi?.time !== undefined && ts > hi.time) return true;
    if (format === 'jsonl') {
      process.stdout.write(`${line}\n`);
      return true;
    }
    const rec = parsed.ok ? parsed.record : undefined;
    const call = rec?.event === undefined || rec.event === 'intent' ? rec : undefined;
    const outcome = rec?.event === undefined ? rec?.outcome : undefined;
    // An event of a later build is named; a record whose fields do not read shows its envelope only.
    const what = rec ? (call?.tool ?? rec.event) : !parsed.ok && parsed.error.kind === 'unknown_event' ? parsed.error.event : undefined;
    const row = [
      seq,
      time,
      call?.request_id,
      call?.transport,
      call?.principal?.id,
      what,
      call?.decision?.allow,
      outcome?.status,
      outcome?.code,
      outcome?.duration_ms,
      call?.args_sha256,
      outcome?.result_sha256,
      call?.policy_revision,
      hash,
    ];
    process.stdout.write(`${row.map(csvCell).join(',')}\n`);
    return true;
  });
  return EXIT.ok;
}

async function reportCmd(
  t: Target,
  html: string | undefined,
  opts: {
    publicKeys: NoteVerifier[];
    signatures: 'require' | 'optional';
    trustGenesis: boolean;
    mirrors: string[];
    witnessKeys: WitnessVerifier[];
    witnessQuorum: number | undefined;
  },
): Promise<number> {
  if (!html) throw new UsageError('--html FILE is required');
  const { collectReport, renderHtml, writeFileReport } = await import('../audit/report.js');
  let d: Awaited<ReturnType<typeof writeFileReport>>;
  if (t.kind === 'file') {
    if (!fs.existsSync(t.where) && !fs.existsSync(logPaths(t.where).manifest)) throw new UsageError(`${t.where} does not exist`);
    d = await writeFileReport(t.where, html, opts);
  } else {
    const { verifyPostgres } = await import('../audit/postgres-log.js');
    const verdict = await verifyPostgres(t.where, t.stream, opts);
    const src = await segmentsOf(t);
    try {
      d = await collectReport(`postgres:${t.stream}`, src.segments, verdict, opts);
    } finally {
      await src.close();
    }
    fs.writeFileSync(html, renderHtml(d), { mode: 0o600 });
  }
  const v = d.verdict;
  process.stdout.write(`${v.ok ? 'OK' : 'DAMAGED'}: wrote ${html} (${d.records} records, ${d.denialsTotal} denial(s))\n`);
  return v.ok ? EXIT.ok : EXIT.failed;
}

function keygenCmd(out: string | undefined, name: string): number {
  if (!out) throw new UsageError('--out DIR is required');
  const key = generateKey(name);
  fs.mkdirSync(out, { recursive: true, mode: 0o700 });
  const priv = path.join(out, `${name}.key`);
  const pub = path.join(out, `${name}.pub`);
  // wx: never overwrite an existing key (a lost signing key cannot be recovered).
  fs.writeFileSync(priv, `${key.encodedPrivate}\n`, { mode: 0o600, flag: 'wx' });
  fs.chmodSync(priv, 0o600);
  fs.writeFileSync(pub, `${key.encoded}\n`, { mode: 0o644, flag: 'wx' });
  process.stdout.write(
    `private key: ${priv} (mode 0600; set audit.checkpoint.private_key to this file)\n` +
      `public key:  ${pub}\nverifier key: ${key.encoded}\n` +
      `add the verifier key to audit.checkpoint.public_keys; keep old ones listed after a rotation.\n`,
  );
  return EXIT.ok;
}

/**
 * Prune: the rotated segments that end before `before` are deleted, after a prune statement at
 * their end (size, Merkle root, chain head, signed) is durable beside the log. The segments are
 * verified first (a damaged head is not pruned into a clean-looking log), under the log's lock.
 */
async function pruneCmd(active: string, before: number, signer: NoteSigner, origin: string): Promise<number> {
  const p = logPaths(active);
  const release = acquireLock(p.lock);
  try {
    const { segments, manifest } = fileSegments(active);
    if (!manifest) throw new UsageError(`${active} has no manifest: only rotated segments can be pruned`);
    const file = prunePath(p);
    // A log pruned before: the new statement carries the tree on from the last one's frontier (the
    // records before it are gone) and names it, with a proof that its tree is a prefix of the new one.
    let prior: { anchor: Anchor; raw: PruneFile } | undefined;
    try {
      const anchor = readPruneStatement(file, [signer]);
      if (anchor) prior = { anchor, raw: JSON.parse(fs.readFileSync(file, 'utf8')) as PruneFile };
    } catch (err) {
      if (!(err instanceof AnchorError)) throw err;
      process.stderr.write(`bulwark audit prune: the existing prune statement does not check: ${err.message}\n`);
      return EXIT.failed;
    }
    const from = prior?.anchor.size ?? 0;
    if (prior && !prior.anchor.frontier) throw new UsageError(`${file} carries no Merkle frontier to continue from`);
    const sealed = segments.filter((s) => s.exists && s.first_seq > from && s.last_seq !== undefined && (s.last_seq as number) < before);
    if (!sealed.length) throw new UsageError(`no rotated segment ${from ? `after the last prune (seq ${from}) ` : ''}ends before seq ${before}`);
    const cut = sealed[sealed.length - 1] as Segment;
    const size = cut.last_seq as number;
    if (segments.some((s) => s.first_seq > from && s.first_seq <= size && !s.exists))
      throw new UsageError(`a segment between seq ${from + 1} and ${size} is missing`);
    if (segments.some((s) => s.first_seq <= from && s.exists) && prior)
      throw new UsageError(`segments before the last prune (seq ${from}) are still there; remove them or restore the statement`);
    // The records to prune must verify, from the genesis or from the last prune.
    const verdict = await verifyFile(active, { to: size, publicKeys: [signer] });
    if (!verdict.ok) {
      process.stderr.write(`bulwark audit prune: the records to prune do not verify: ${verdict.problem?.message}\n`);
      return EXIT.failed;
    }
    const frontier = prior ? Frontier.fromState(from, prior.anchor.frontier?.snapshot() ?? []) : new Frontier();
    let head = prior?.anchor.chainHead ?? '';
    const leaves: Buffer[] = [];
    for (const s of segments) {
      if (s.first_seq <= from) continue;
      if (s.first_seq > size) break;
      await s.scan((buf, start, end) => {
        frontier.appendLatin1(leafHashLatin1(buf.subarray(start, end)));
        if (prior) leaves.push(Buffer.from(buf.subarray(start, end)));
        head = buf.toString('latin1', end - 66, end - 2);
      });
    }
    if (frontier.size !== size || head !== cut.last_hash) throw new Error(`the segments hold ${frontier.size} records up to the cut, expected ${size}`);
    let previous: PruneLink[] = [];
    if (prior) {
      const start = prior.anchor.frontier as Frontier;
      const proof = await proofFromFrontier(start, prior.anchor.root, size, frontier.root(), (feed) => {
        for (const l of leaves) if (!feed(l)) break;
      });
      if (!proof) throw new Error(`the records after seq ${from} do not extend the last prune's tree`);
      previous = [...(prior.raw.previous ?? []), { note: prior.raw.note, size: from, consistency: proof }];
    }
    const stmt = makePruneStatement(signer, origin, size, head, frontier, new Date(), previous);
    const tmp = `${file}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(stmt)}\n`);
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    const dfd = fs.openSync(p.dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
    for (const s of sealed) fs.rmSync(path.join(p.dir, s.name), { force: true });
    process.stdout.write(
      `pruned records ${from + 1}..${size} (${sealed.length} segment(s))${previous.length ? `, after ${previous.length} earlier prune(s)` : ''}; prune statement ${file}\n`,
    );
    return EXIT.ok;
  } finally {
    release();
  }
}
