import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson, MAX_LINE_BYTES, parseStrict } from './canonical-json.js';
import { chainHash, GENESIS_PREV, HASH_SUFFIX_LENGTH, unsealLine } from './chain.js';
import { loadCheckpoints, type LoadedCheckpoint } from './checkpoint.js';
import { logPaths, ManifestError, readManifest, scanLines, segmentFilesOnDisk, type Manifest } from './files.js';
import { Frontier, leafHashLatin1 } from './merkle.js';
import { AnchorError, parseGenesisLine, prunePath, readPruneStatement, type Anchor } from './genesis.js';
import { openNote, parseVerifierKey, trusted, type NoteVerifier } from './note.js';
import { parseAuditLine, type GenesisInfo } from './record-type.js';
import { checkCosignatures, CosignatureError, type WitnessVerifier } from './witness-cosignature.js';

export type DamageKind =
  | 'malformed'
  | 'modified'
  | 'deleted'
  | 'reordered'
  | 'inserted'
  | 'truncated'
  | 'bad_signature'
  | 'missing_segment'
  | 'rollback'
  /** Records 1..N are gone and no signed prune statement or trusted checkpoint says where the log may start. */
  | 'head_truncated'
  /** A complete, signed log whose first record is not its genesis record. */
  | 'missing_genesis'
  /** The log carries checkpoints (or its genesis names signing keys) but no trusted key was given. */
  | 'no_trusted_key'
  /** A signed log with a span of records longer than its checkpoint interval that no checkpoint covers. */
  | 'unsigned_gap'
  /** Witness keys were given, and no checkpoint of the log is cosigned by enough of them. */
  | 'unwitnessed';

export interface VerifyProblem {
  readonly kind: DamageKind;
  /** The segment file (or `postgres:<stream>`) and the 1-based line in it. */
  readonly segment: string;
  readonly line: number;
  readonly seq?: number | undefined;
  readonly message: string;
  /** For damage shown by a checkpoint: which one, and the seq range it leaves in doubt. */
  readonly checkpoint?: { readonly file: string; readonly line: number; readonly size: number } | undefined;
  readonly range?: { readonly from: number; readonly to: number } | undefined;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly path: string;
  readonly records: number;
  readonly first_seq: number;
  readonly last_seq: number;
  readonly last_hash: string;
  readonly segments: readonly string[];
  readonly checkpoints: {
    readonly total: number;
    readonly matched: number;
    readonly latest_size: number;
    readonly signatures: 'verified' | 'not_checked';
    readonly sources: readonly string[];
  };
  readonly merkle_root?: string | undefined;
  readonly partial: boolean;
  /**
   * Where the verified records start: at the genesis record, at seq 1 of a log without one (written
   * before genesis records, unsigned), after a signed prune statement, after a checkpoint the
   * auditor gave (`--from-checkpoint`), or at `--from` (partial).
   */
  readonly start: {
    readonly kind: 'genesis' | 'no_genesis' | 'pruned' | 'from_checkpoint' | 'partial';
    readonly size: number;
    readonly source?: string | undefined;
  };
  readonly genesis?: GenesisInfo | undefined;
  /** With witness keys: the largest checkpoint size cosigned by at least `quorum` of them. */
  readonly witnessed?: { readonly size: number; readonly quorum: number; readonly keys: number; readonly by: readonly string[] } | undefined;
  readonly warnings: readonly string[];
  /**
   * Intent records (written before a side-effecting tool ran) that no outcome record names: the
   * process stopped mid-call, so whether the side effect happened is unknown. Not damage.
   */
  readonly outcome_unknown: readonly OutcomeUnknown[];
  readonly problem?: VerifyProblem | undefined;
}

export interface OutcomeUnknown {
  readonly seq: number;
  readonly request_id: string | null;
  readonly tool: string | null;
  readonly ts: string | null;
}

export interface VerifyOptions {
  /** Verifier keys (note format); without them checkpoints are compared but signatures are not checked. */
  readonly publicKeys?: readonly NoteVerifier[] | undefined;
  /** More checkpoint files (mirrors): a log rolled back together with its own checkpoints still shows. */
  readonly mirrors?: readonly string[] | undefined;
  /** Check only records in [from, to] (segments before `from` are skipped; nothing after `to` is required). */
  readonly from?: number | undefined;
  readonly to?: number | undefined;
  /** Also recompute the Merkle root at every checkpoint (the chain head alone already binds the records). */
  readonly merkle?: boolean | undefined;
  /** Parse every record: valid canonical JSON, top-level seq and prev as expected, no duplicate keys. */
  readonly strict?: boolean | undefined;
  readonly maxLineBytes?: number | undefined;
  /**
   * 'require' (the CLI's default): a log that carries checkpoints, or whose genesis names signing
   * keys, fails with no_trusted_key unless a trusted key is given. 'optional' (the library default):
   * signatures are checked when keys are given, and a warning says so when not.
   */
  readonly signatures?: 'require' | 'optional' | undefined;
  /** Trust the keys the genesis record names (weaker than a pinned key: a warning says so). */
  readonly trustGenesis?: boolean | undefined;
  /** A trusted checkpoint the records may start after (`--from-checkpoint`). */
  readonly anchor?: Anchor | undefined;
  /** The prune statement file (file backend: `<stem>.prune.json` beside the log). */
  readonly pruneFile?: string | undefined;
  /**
   * A signed log must start with a genesis record (`--require-genesis`); otherwise a log without
   * one is reported in the warnings. Logs written before genesis records, and PostgreSQL streams
   * (whose writer does not write one yet), are checked for seq 1 and the zero hash only.
   */
  readonly requireGenesis?: boolean | undefined;
  /** The configured checkpoint interval; otherwise the signed genesis record's, otherwise 1 s. */
  readonly checkpointIntervalMs?: number | undefined;
  /** Witness keys (cosignature/v1) and how many of them must cosign (k of n; default all). */
  readonly witnessKeys?: readonly WitnessVerifier[] | undefined;
  readonly witnessQuorum?: number | undefined;
  /** The cosignatures file (file backend: `<stem>.cosignatures.jsonl`); read as checkpoints too. */
  readonly cosignaturesFile?: string | undefined;
}

/** How long a signed log may go without a checkpoint: the writer signs within one interval and a tick. */
export function coverageBoundMs(intervalMs: number): number {
  return 2 * intervalMs + 2000;
}

const HASH_KEY = Buffer.from(',"hash":"');

function hashKeyAt(buf: Buffer, at: number): boolean {
  for (let i = 0; i < 9; i++) if (buf[at + i] !== HASH_KEY[i]) return false;
  return true;
}
const SEQ_KEY = Buffer.from(',"seq":');
/** The top-level ts: keys are sorted and only "v" follows it, so the last occurrence is the record's own. */
const TS_KEY = Buffer.from(',"ts":"');
/** In `"event":"intent"` and in `"intent_seq":`; rare elsewhere, so only lines holding it are parsed. */
const INTENT_MARK = Buffer.from('"intent');
const HS = HASH_SUFFIX_LENGTH;
const hashHex: (b: Uint8Array) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (b) => (crypto as unknown as { hash(a: string, d: Uint8Array, e: 'hex'): string }).hash('sha256', b, 'hex')
    : (b) => crypto.createHash('sha256').update(b).digest('hex');

/** A source of lines in order: the segments of a file log, or the rows of a PostgreSQL stream. */
export interface Segment {
  readonly name: string;
  readonly first_seq: number;
  readonly prev: string;
  /** For sealed (rotated) segments: what the manifest says the segment ends with. */
  readonly last_seq?: number | undefined;
  readonly last_hash?: string | undefined;
  readonly exists: boolean;
  /**
   * Feeds lines to the sink; returns the bytes after the last newline, if any. The sink may
   * overwrite bytes before `start` (lines it was already given): they are not read again.
   */
  scan(sink: (buf: Buffer, start: number, end: number, lineNo: number) => boolean | void): Promise<{ tail?: Buffer | undefined }>;
  /** Lines [from, from+count) as strings, for classifying damage. */
  lines(from: number, count: number): Promise<string[]>;
}

interface CheckpointRef {
  readonly cp: LoadedCheckpoint;
  readonly mirror: boolean;
}

class Found extends Error {
  constructor(readonly problem: VerifyProblem) {
    super(problem.message);
  }
}

/**
 * The walk over all records: the hash chain over the exact stored bytes, seq counting up by one,
 * and each checkpoint's chain head (and Merkle root) at its size. Stops at the first damage and
 * names it.
 */
export async function verifySegments(
  label: string,
  segments: readonly Segment[],
  sources: { file: string; mirror: boolean }[],
  opts: VerifyOptions,
  extraWarnings: string[] = [],
): Promise<VerifyReport> {
  const warnings = [...extraWarnings];
  let keys = opts.publicKeys ?? [];
  const maxLine = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const cps: CheckpointRef[] = [];
  let firstProblem: VerifyProblem | undefined;
  const setProblem = (p: VerifyProblem) => {
    firstProblem ??= p;
  };
  const head = segments[0];
  const genesis = head && head.exists && head.first_seq === 1 ? parseGenesisLine((await head.lines(1, 1))[0] ?? '') : undefined;
  if (opts.trustGenesis) {
    if (genesis?.keys.length) {
      try {
        keys = [...keys, ...genesis.keys.map((k) => parseVerifierKey(k))];
        warnings.push(
          `trusting the key(s) named by the genesis record (--trust-genesis: ${genesis.keys.map((k) => k.split('+')[0]).join(', ')}): this shows the log is the one its genesis started, not that the genesis is genuine; pin the public key for that`,
        );
      } catch (err) {
        setProblem({
          kind: 'bad_signature',
          segment: head?.name ?? label,
          line: 1,
          seq: 1,
          message: `the genesis record names a key that cannot be read: ${(err as Error).message}`,
        });
      }
    } else {
      warnings.push('--trust-genesis: the log has no genesis record naming keys');
    }
  }
  let anchor = opts.anchor;
  let anchorKind: 'pruned' | 'from_checkpoint' | undefined = anchor ? 'from_checkpoint' : undefined;
  if (!anchor && opts.pruneFile) {
    try {
      anchor = readPruneStatement(opts.pruneFile, keys);
      if (anchor) anchorKind = 'pruned';
    } catch (err) {
      if (!(err instanceof AnchorError)) throw err;
      setProblem({ kind: 'bad_signature', segment: path.basename(opts.pruneFile), line: 1, message: err.message });
    }
  }
  let rawCheckpoints = 0;
  // Cosigned checkpoints are checkpoints too: the log must match each (a rewrite re-signed with
  // the log's key cannot carry the witnesses' cosignatures along).
  const allSources = opts.cosignaturesFile ? [...sources, { file: opts.cosignaturesFile, mirror: true }] : sources;
  const witnessKeys = opts.witnessKeys ?? [];
  const quorum = Math.max(1, Math.min(opts.witnessQuorum ?? witnessKeys.length, witnessKeys.length || 1));
  const cosigned = new Map<number, Set<string>>();
  if (witnessKeys.length && opts.cosignaturesFile) {
    let text = '';
    try {
      text = fs.readFileSync(opts.cosignaturesFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    text.split('\n').forEach((l, i) => {
      if (!l) return;
      try {
        const c = JSON.parse(l) as { note?: unknown; cosignature?: unknown };
        if (typeof c.note !== 'string' || typeof c.cosignature !== 'string') return;
        const opened = openNote(c.note, keys);
        // A cosignature counts only on a checkpoint the log's trusted key signed.
        if (keys.length && !trusted(opened)) return;
        const size = Number(opened.text.split('\n')[1]);
        for (const ok of checkCosignatures(opened.text, [c.cosignature], witnessKeys)) {
          const set = cosigned.get(size) ?? new Set<string>();
          set.add(ok.witness.encoded);
          cosigned.set(size, set);
        }
      } catch (err) {
        if (err instanceof CosignatureError)
          setProblem({ kind: 'bad_signature', segment: path.basename(opts.cosignaturesFile as string), line: i + 1, message: err.message });
      }
    });
  }
  for (const src of allSources) {
    const loaded = loadCheckpoints(src.file, keys);
    rawCheckpoints += loaded.checkpoints.length;
    for (const pr of loaded.problems)
      setProblem({
        kind: 'bad_signature',
        segment: path.basename(src.file),
        line: pr.line,
        message: pr.message,
        checkpoint: { file: src.file, line: pr.line, size: 0 },
      });
    for (const cp of loaded.checkpoints) {
      if (keys.length && !trusted(cp)) {
        const bad = cp.signatures.find((s) => s.valid === false);
        setProblem({
          kind: 'bad_signature',
          segment: path.basename(src.file),
          line: cp.line,
          seq: cp.size,
          message: bad
            ? `checkpoint at size ${cp.size} has a signature by ${bad.name} that does not verify`
            : `checkpoint at size ${cp.size} is signed by no trusted key (${cp.signatures.map((s) => s.name).join(', ')})`,
          checkpoint: { file: src.file, line: cp.line, size: cp.size },
        });
        continue;
      }
      cps.push({ cp, mirror: src.mirror });
    }
  }
  const signed = rawCheckpoints > 0 || (genesis?.keys.length ?? 0) > 0;
  if (!keys.length && signed) {
    if (opts.signatures === 'require') {
      setProblem({
        kind: 'no_trusted_key',
        segment: label,
        line: 0,
        message: `the log is signed (${rawCheckpoints} checkpoint(s)${genesis?.keys.length ? `, genesis names ${genesis.keys.length} key(s)` : ''}) but no trusted public key was given: pass --public-key K, configure audit.checkpoint.public_keys, --trust-genesis, or --no-signatures to check the hash chain only`,
      });
    } else if (cps.length) {
      warnings.push('checkpoint signatures were not checked: pass --public-key (or configure audit.checkpoint.public_keys)');
    }
  }
  // With trusted keys, every span of records must be covered by a checkpoint within the interval.
  const coverage = keys.length > 0;
  cps.sort((a, b) => a.cp.size - b.cp.size);
  const merkle = opts.merkle === true || cps.some((c) => !c.cp.chainHead);

  const from = opts.from ?? 1;
  const to = opts.to ?? Infinity;
  let startIdx = 0;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i] as Segment;
    if (s.first_seq <= from) startIdx = i;
  }
  const rangeStart = startIdx > 0 || from > 1;
  // An anchor (prune statement, trusted checkpoint): segments wholly before it are not needed.
  let anchorCheck: Anchor | undefined;
  let anchorFrontier: Frontier | undefined;
  if (anchor && !rangeStart) {
    while (
      startIdx < segments.length - 1 &&
      (segments[startIdx] as Segment).last_seq !== undefined &&
      ((segments[startIdx] as Segment).last_seq as number) <= anchor.size
    )
      startIdx++;
    const s = segments[startIdx];
    if (s && s.first_seq - 1 === anchor.size) {
      if (s.prev !== anchor.chainHead)
        setProblem({
          kind: 'modified',
          segment: s.name,
          line: 1,
          seq: s.first_seq,
          message: `segment ${s.name} does not continue the ${anchorKind === 'pruned' ? 'prune statement' : 'trusted checkpoint'} at size ${anchor.size} (${path.basename(anchor.source)}): its chain head differs`,
        });
      anchorFrontier = anchor.frontier;
    } else if (s && s.first_seq - 1 < anchor.size) {
      // The records up to the anchor are walked, and the chain head there must be the anchor's.
      anchorCheck = anchor;
    }
  }
  const partial = rangeStart || to !== Infinity;
  if (partial && merkle) warnings.push('a partial range cannot check Merkle roots; only chain heads are compared');
  const useMerkle = merkle && !partial && (startIdx === 0 || anchorFrontier !== undefined) && !anchorCheck;
  if (merkle && !partial && !useMerkle)
    warnings.push('the log starts after a prune statement or trusted checkpoint without a Merkle frontier; only chain heads are compared');

  /** Listed segments before `first` are gone: records from `s` up to `first` are missing. */
  const headGone = (s: Segment, gone: readonly Segment[], first: Segment, why: string): void => {
    const n = first.first_seq - 1;
    setProblem({
      kind: 'head_truncated',
      segment: s.name,
      line: 0,
      seq: s.first_seq,
      message: `head truncated: records ${s.first_seq}..${n} missing (${n - s.first_seq + 1} record(s)): segment(s) ${gone.map((x) => x.name).join(', ')} are gone${why}`,
      range: { from: s.first_seq, to: n },
    });
  };
  let P = segments[startIdx]?.prev ?? GENESIS_PREV;
  let E = segments[startIdx]?.first_seq ?? 1;
  let startKind: VerifyReport['start']['kind'] = partial && rangeStart ? 'partial' : genesis ? 'genesis' : 'no_genesis';
  if (!rangeStart) {
    const s = segments[startIdx];
    if (anchor && (anchorFrontier !== undefined || anchorCheck || (s && s.first_seq - 1 === anchor.size))) {
      startKind = anchorKind ?? 'from_checkpoint';
      const k = segments.findIndex((x, i) => i >= startIdx && x.exists);
      // The segments right after the anchor are gone too: cut beyond what the statement covers.
      if (s && !s.exists && k > startIdx) {
        headGone(
          s,
          segments.slice(startIdx, k),
          segments[k] as Segment,
          `, and the ${anchorKind === 'pruned' ? 'prune statement' : 'trusted checkpoint'} covers records up to ${anchor.size} only`,
        );
      }
    } else if (s && !s.exists && segments.some((x) => x.exists)) {
      // The oldest segments are listed but gone: the head of the log was deleted.
      const k = segments.findIndex((x) => x.exists);
      headGone(s, segments.slice(0, k), segments[k] as Segment, ' and no signed prune statement or trusted checkpoint (--from-checkpoint) covers them');
    } else if (s && s.first_seq > 1) {
      setProblem({
        kind: 'head_truncated',
        segment: s.name,
        line: 1,
        seq: s.first_seq,
        message: `head truncated: records 1..${s.first_seq - 1} missing (${s.first_seq - 1} record(s)); the log starts at seq ${s.first_seq} and no signed prune statement or trusted checkpoint (--from-checkpoint) says it may`,
        range: { from: 1, to: s.first_seq - 1 },
      });
    } else if (s && s.prev !== GENESIS_PREV) {
      setProblem({ kind: 'modified', segment: s.name, line: 1, seq: 1, message: 'the first segment does not start from the genesis hash (64 zeros)' });
    } else if (!genesis && opts.requireGenesis === true && (signed || keys.length > 0) && s?.exists) {
      setProblem({
        kind: 'missing_genesis',
        segment: s.name,
        line: 1,
        seq: 1,
        message: 'the log is signed but its first record is not a genesis record: its head was replaced',
      });
    } else if (!genesis && s?.exists) {
      warnings.push('the log has no genesis record (an unsigned log, or one written before genesis records)');
    }
  }
  const firstSeq = E;
  let count = 0;
  let matched = 0;
  let lastGood = E - 1;
  const frontier = useMerkle ? (anchorFrontier ?? new Frontier()) : undefined;
  let witnessedSize = 0;
  let witnessedBy: string[] = [];
  for (const [size, set] of cosigned) {
    if (set.size >= quorum && size > witnessedSize) {
      witnessedSize = size;
      witnessedBy = [...set].map((k) => k.split('+')[0] as string);
    }
  }
  let spanFrom = E;
  let spanFirstTs: string | undefined;
  let lastTs: string | undefined;
  /** Unsigned spans; `restartAt`: the span ended because a restarted writer's record follows. */
  const spans: { from: number; to: number; firstTs: string; endTs: string; restartAt?: number }[] = [];
  let cpIdx = 0;
  while (cpIdx < cps.length && (cps[cpIdx] as CheckpointRef).cp.size < E) cpIdx++;
  const scratch = Buffer.allocUnsafe(64 + maxLine + 1);
  const strict = opts.strict === true;
  const segNames = segments.map((s) => s.name);
  const openIntents = new Map<number, OutcomeUnknown>();
  const noteIntent = (line: string, seq: number): void => {
    const parsed = parseAuditLine(line);
    if (!parsed.ok) return;
    const rec = parsed.record;
    if (rec.event === 'intent') {
      openIntents.set(seq, { seq, request_id: rec.request_id ?? null, tool: rec.tool ?? null, ts: rec.ts });
    } else if (rec.event === undefined && rec.intent_seq !== undefined) {
      openIntents.delete(rec.intent_seq);
    }
  };

  const position = (seq: number): { segment: string; line: number } => {
    let k = 0;
    for (let i = 0; i < segments.length; i++) if ((segments[i] as Segment).first_seq <= seq) k = i;
    const s = segments[k] as Segment;
    return { segment: s.name, line: seq - s.first_seq + 1 };
  };

  const checkCheckpoints = (): void => {
    while (cpIdx < cps.length && (cps[cpIdx] as CheckpointRef).cp.size === E - 1) {
      const { cp } = cps[cpIdx] as CheckpointRef;
      cpIdx++;
      const headOk = !cp.chainHead || cp.chainHead === P;
      const rootOk = !frontier || frontier.root().equals(cp.root);
      if (headOk && rootOk) {
        matched++;
        lastGood = cp.size;
        if (spanFirstTs !== undefined && cp.time) spans.push({ from: spanFrom, to: cp.size, firstTs: spanFirstTs, endTs: cp.time });
        spanFirstTs = undefined;
        spanFrom = cp.size + 1;
        continue;
      }
      const pos = position(lastGood + 1);
      throw new Found({
        kind: 'modified',
        ...pos,
        seq: lastGood + 1,
        message: `the log does not match the checkpoint signed at size ${cp.size} (${headOk ? 'Merkle root' : 'chain head'} differs): a record in seq ${lastGood + 1}..${cp.size} was rewritten and the chain after it recomputed`,
        checkpoint: { file: cp.file, line: cp.line, size: cp.size },
        range: { from: lastGood + 1, to: cp.size },
      });
    }
  };

  try {
    if (firstProblem) throw new Found(firstProblem);
    for (let si = startIdx; si < segments.length; si++) {
      const seg = segments[si] as Segment;
      if (!seg.exists)
        throw new Found({
          kind: 'missing_segment',
          segment: seg.name,
          line: 0,
          seq: seg.first_seq,
          message: `segment ${seg.name} (from seq ${seg.first_seq}) is missing`,
        });
      if (seg.first_seq > E) {
        throw new Found({
          kind: 'missing_segment',
          segment: seg.name,
          line: 1,
          seq: seg.first_seq,
          message: `records ${E}..${seg.first_seq - 1} are in no segment: a segment is missing from the manifest`,
        });
      }
      if (seg.first_seq !== E || seg.prev !== P) {
        throw new Found({
          kind: 'modified',
          segment: seg.name,
          line: 1,
          seq: seg.first_seq,
          message: `segment ${seg.name} does not continue the one before it (the manifest says seq ${seg.first_seq} after ${E - 1})`,
        });
      }
      let anomaly: { lineNo: number; text: Buffer } | undefined;
      let lines = 0;
      let stoppedAtTo = false;
      const { tail } = await seg.scan((buf, start, end, lineNo) => {
        if (E > to) {
          stoppedAtTo = true;
          return false;
        }
        const len = end - start;
        if (len <= HS || len > maxLine || buf[end - 1] !== 0x7d || buf[end - 2] !== 0x22 || !hashKeyAt(buf, end - HS)) {
          anomaly = { lineNo, text: Buffer.from(buf.subarray(start, end)) };
          return false;
        }
        const stored = buf.toString('latin1', end - 66, end - 2);
        const bl = len - HS;
        let digest: string;
        if (start >= 64) {
          // In place: prev over the 64 bytes before the line (earlier lines, already checked and
          // never read again) and the closing brace over the suffix's comma, which is put back.
          buf.write(P, start - 64, 'latin1');
          buf[start + bl] = 0x7d;
          digest = hashHex(new Uint8Array(buf.buffer, buf.byteOffset + start - 64, 65 + bl));
          buf[start + bl] = 0x2c;
        } else {
          scratch.write(P, 0, 'latin1');
          buf.copy(scratch, 64, start, start + bl);
          scratch[64 + bl] = 0x7d;
          digest = hashHex(scratch.subarray(0, 65 + bl));
        }
        if (digest !== stored) {
          anomaly = { lineNo, text: Buffer.from(buf.subarray(start, end)) };
          return false;
        }
        const si2 = buf.lastIndexOf(SEQ_KEY, end - HS);
        let seq = -1;
        if (si2 >= start) {
          seq = 0;
          for (let j = si2 + 7; j < end; j++) {
            const c = buf[j] as number;
            if (c < 0x30 || c > 0x39) break;
            seq = seq * 10 + (c - 0x30);
          }
        }
        if (seq !== E || (strict && !strictOk(buf.toString('utf8', start, end), E, P))) {
          anomaly = { lineNo, text: Buffer.from(buf.subarray(start, end)) };
          return false;
        }
        if (frontier) frontier.appendLatin1(leafHashLatin1(buf.subarray(start, end)));
        if (coverage) {
          const ti = buf.lastIndexOf(TS_KEY, end - HS);
          if (ti >= start) {
            const q = buf.indexOf(0x22, ti + 7);
            const ts = buf.toString('latin1', ti + 7, q);
            // A new writer's first record after its predecessor died unsigned: that writer's span
            // ends with its own last record (the time the log was down is nobody's unsigned time).
            if (
              spanFirstTs !== undefined &&
              lastTs !== undefined &&
              end - start > RECOVERY_PREFIX.length &&
              buf.compare(RECOVERY_PREFIX, 0, RECOVERY_PREFIX.length, start, start + RECOVERY_PREFIX.length) === 0 &&
              isRestart(buf.toString('utf8', start, end))
            ) {
              spans.push({ from: spanFrom, to: E - 1, firstTs: spanFirstTs, endTs: lastTs, restartAt: E });
              spanFrom = E;
              spanFirstTs = undefined;
            }
            lastTs = ts;
            spanFirstTs ??= lastTs;
          }
        }
        // Searched within the line only: indexOf from `start` would scan the rest of the 4 MiB read
        // buffer for every record that holds no mark (quadratic per read).
        if (buf.subarray(start, end).indexOf(INTENT_MARK) >= 0) noteIntent(buf.toString('utf8', start, end), E);
        P = stored;
        E++;
        count++;
        lines = lineNo;
        if (anchorCheck && E - 1 === anchorCheck.size && P !== anchorCheck.chainHead) {
          anomaly = undefined;
          throw new Found({
            kind: 'modified',
            segment: seg.name,
            line: lineNo,
            seq: E - 1,
            message: `the chain head at seq ${E - 1} is not the one the ${anchorKind === 'pruned' ? 'prune statement' : 'trusted checkpoint'} (${path.basename(anchorCheck.source)}) names: a record up to it was rewritten`,
          });
        }
        if (cpIdx < cps.length && (cps[cpIdx] as CheckpointRef).cp.size === E - 1) checkCheckpoints();
        return true;
      });
      if (anomaly) {
        const found = await classify(segments, si, anomaly.lineNo, anomaly.text.toString('utf8'), E, P);
        // The very first line of a log that should start at seq 1 holds a later record: its head was cut.
        if (E === 1 && anomaly.lineNo === 1 && found.kind === 'deleted' && found.seq !== undefined) {
          throw new Found({
            kind: 'head_truncated',
            segment: seg.name,
            line: 1,
            seq: found.seq,
            message: `head truncated: records 1..${found.seq - 1} missing (${found.seq - 1} record(s)); the log starts at seq ${found.seq}`,
            range: { from: 1, to: found.seq - 1 },
          });
        }
        throw new Found(found);
      }
      if (stoppedAtTo) break;
      if (tail && E <= to) {
        throw new Found({
          kind: 'truncated',
          segment: seg.name,
          line: lines + 1,
          seq: E,
          message: `the last record is incomplete (${tail.length} bytes without a line break): a crash mid-write or a cut`,
        });
      }
      if (seg.last_seq !== undefined && E <= to) {
        if (E - 1 < seg.last_seq) {
          throw new Found({
            kind: 'truncated',
            segment: seg.name,
            line: lines + 1,
            seq: E,
            message: `segment ${seg.name} ends at seq ${E - 1} but the manifest says it holds records up to ${seg.last_seq}`,
          });
        }
        if (seg.last_hash && seg.last_hash !== P) {
          throw new Found({
            kind: 'modified',
            segment: seg.name,
            line: lines,
            seq: E - 1,
            message: `segment ${seg.name} does not end with the hash the manifest recorded at rotation`,
          });
        }
      }
    }
    // Checkpoints beyond the end: the log lost records it had when they were signed.
    if (to === Infinity) {
      // The largest signed size names how many records are really gone (not the first one beyond the end).
      const beyond = cps.slice(cpIdx).filter((c) => c.cp.size > E - 1);
      const largest = (list: CheckpointRef[]): CheckpointRef | undefined =>
        list.reduce<CheckpointRef | undefined>((a, c) => (!a || c.cp.size > a.cp.size ? c : a), undefined);
      const local = largest(beyond.filter((c) => !c.mirror));
      const mirrored = largest(beyond.filter((c) => c.mirror));
      const last = segments[segments.length - 1];
      const where = last ? { segment: last.name, line: Math.max(E - last.first_seq + 1, 1) } : { segment: label, line: 1 };
      if (local) {
        throw new Found({
          kind: 'truncated',
          ...where,
          seq: E,
          message: `the log ends at seq ${E - 1}, but a checkpoint signed at size ${local.cp.size} covers records up to ${local.cp.size}: ${local.cp.size - (E - 1)} record(s) missing at the end`,
          checkpoint: { file: local.cp.file, line: local.cp.line, size: local.cp.size },
          range: { from: E, to: local.cp.size },
        });
      }
      if (mirrored) {
        throw new Found({
          kind: 'rollback',
          ...where,
          seq: E,
          message: `the log and its own checkpoints end at seq ${E - 1}, but the mirrored checkpoint ${mirrored.cp.file}:${mirrored.cp.line} was signed at size ${mirrored.cp.size}: the whole log was rolled back; records ${E}..${mirrored.cp.size} (${mirrored.cp.size - (E - 1)} record(s)) are gone`,
          checkpoint: { file: mirrored.cp.file, line: mirrored.cp.line, size: mirrored.cp.size },
          range: { from: E, to: mirrored.cp.size },
        });
      }
    }
    if (witnessKeys.length && !partial) {
      if (witnessedSize === 0) {
        const last = segments[segments.length - 1];
        throw new Found({
          kind: 'unwitnessed',
          segment: last?.name ?? label,
          line: 0,
          message: `no checkpoint of this log is cosigned by ${quorum} of the ${witnessKeys.length} witness key(s) given${cosigned.size ? ` (the best has ${Math.max(...[...cosigned.values()].map((s) => s.size))})` : ''}: the log cannot be shown to be the one the witnesses saw`,
        });
      }
      if (witnessedSize < E - 1)
        warnings.push(
          `records ${witnessedSize + 1}..${E - 1} are not yet cosigned by ${quorum} witness(es) (the last witnessed checkpoint is at size ${witnessedSize})`,
        );
    }
    if (coverage && !partial) {
      if (spanFirstTs !== undefined && lastTs !== undefined) spans.push({ from: spanFrom, to: E - 1, firstTs: spanFirstTs, endTs: lastTs });
      // The interval a signed genesis names is only believed once a trusted checkpoint covers it.
      // (Before that, a shorter claimed interval can only make verify stricter, so it is used.)
      const claimed = genesis?.checkpoint?.every_ms;
      const interval = opts.checkpointIntervalMs ?? (claimed === undefined ? 1000 : matched > 0 ? claimed : Math.min(claimed, 1000));
      const bound = coverageBoundMs(interval);
      for (const sp of honourRestarts(spans, lastGood)) {
        const ms = Date.parse(sp.endTs) - Date.parse(sp.firstTs);
        if (!(ms <= bound)) {
          const pos = position(sp.from);
          throw new Found({
            kind: 'unsigned_gap',
            ...pos,
            seq: sp.from,
            message: `no checkpoint signed by a trusted key covers records ${sp.from}..${sp.to} (${(ms / 1000).toFixed(1)} s; the log signs at least every ${interval} ms): its checkpoints were removed, or the records replaced`,
            range: { from: sp.from, to: sp.to },
          });
        }
      }
    }
  } catch (err) {
    if (!(err instanceof Found)) throw err;
    return report(err.problem);
  }
  return report(undefined);

  function report(problem: VerifyProblem | undefined): VerifyReport {
    const unknown = [...openIntents.values()];
    if (unknown.length) {
      warnings.push(
        `${unknown.length} intent record(s) without an outcome (outcome unknown: the process stopped mid-call): seq ${unknown
          .slice(0, 10)
          .map((u) => u.seq)
          .join(', ')}${unknown.length > 10 ? ', …' : ''}`,
      );
    }
    return {
      ok: !problem,
      path: label,
      records: count,
      first_seq: firstSeq,
      last_seq: E - 1,
      last_hash: P,
      segments: segNames,
      checkpoints: {
        total: cps.length,
        matched,
        latest_size: cps.length ? (cps[cps.length - 1] as CheckpointRef).cp.size : 0,
        signatures: keys.length ? 'verified' : 'not_checked',
        sources: allSources.map((s) => s.file),
      },
      ...(witnessKeys.length ? { witnessed: { size: witnessedSize, quorum, keys: witnessKeys.length, by: witnessedBy } } : {}),
      ...(frontier && !problem ? { merkle_root: frontier.root().toString('base64') } : {}),
      partial,
      start: {
        kind: startKind,
        size: firstSeq - 1,
        ...(anchor && (startKind === 'pruned' || startKind === 'from_checkpoint') ? { source: anchor.source } : {}),
      },
      ...(genesis ? { genesis } : {}),
      warnings,
      outcome_unknown: unknown,
      ...(problem ? { problem } : {}),
    };
  }
}

/**
 * How every recovery record's line starts (canonical JSON sorts the keys, and a recovery record has
 * none before "event"): only lines that start so are parsed for a restart, which keeps the check off
 * the per-record hot path. A line that hides a restart behind other keys is not honoured: stricter.
 */
const RECOVERY_PREFIX = Buffer.from('{"event":"audit.recovery"');

function isRestart(line: string): boolean {
  const parsed = parseAuditLine(line);
  return parsed.ok && parsed.record.event === 'audit.recovery' && parsed.record.recovery?.action === 'restarted';
}

/**
 * A restart ends an unsigned span only when a trusted checkpoint (matched, up to `signedUpTo`)
 * covers the restart record: its writer signs at once, and whoever forges records after the last
 * checkpoint cannot sign them, so a forged restart record never splits a span.
 */
function honourRestarts<S extends { from: number; to: number; firstTs: string; endTs: string; restartAt?: number }>(
  spans: readonly S[],
  signedUpTo: number,
): { from: number; to: number; firstTs: string; endTs: string }[] {
  const out: { from: number; to: number; firstTs: string; endTs: string }[] = [];
  let carry: { from: number; firstTs: string } | undefined;
  for (const sp of spans) {
    const merged = { from: carry?.from ?? sp.from, to: sp.to, firstTs: carry?.firstTs ?? sp.firstTs, endTs: sp.endTs };
    if (sp.restartAt !== undefined && sp.restartAt > signedUpTo) {
      carry = { from: merged.from, firstTs: merged.firstTs };
      continue;
    }
    carry = undefined;
    out.push(merged);
  }
  return out;
}

function strictOk(line: string, seq: number, prev: string): boolean {
  const s = unsealLine(line);
  if (!s) return false;
  try {
    const rec = parseStrict(s.body) as { seq?: unknown; prev?: unknown; v?: unknown };
    return rec.seq === seq && rec.prev === prev && typeof rec.v === 'number' && canonicalJson(rec) === s.body;
  } catch {
    return false;
  }
}

interface Parsed {
  readonly seq: number;
  readonly prev: string;
  readonly hash: string;
  readonly selfConsistent: boolean;
}

function parseLine(line: string): Parsed | undefined {
  const s = unsealLine(line);
  if (!s) return undefined;
  try {
    const rec = parseStrict(s.body) as { seq?: unknown; prev?: unknown };
    if (typeof rec.seq !== 'number' || typeof rec.prev !== 'string') return undefined;
    return { seq: rec.seq, prev: rec.prev, hash: s.hash, selfConsistent: chainHash(rec.prev, s.body) === s.hash };
  } catch {
    return undefined;
  }
}

/**
 * What kind of damage is at this line? The fast walk only knows that the line is not the record
 * that should come next; here the line and its neighbours are parsed to say why.
 */
async function classify(segments: readonly Segment[], si: number, lineNo: number, text: string, E: number, P: string): Promise<VerifyProblem> {
  const seg = segments[si] as Segment;
  const at = (line: number, seq: number | undefined, kind: DamageKind, message: string): VerifyProblem => ({ kind, segment: seg.name, line, seq, message });
  const r = parseLine(text);
  if (!r) return at(lineNo, undefined, 'malformed', 'not a sealed audit record');
  if (!r.selfConsistent) return at(lineNo, r.seq, 'modified', 'the record does not match its hash');
  if (r.seq === E) {
    if (r.prev === P) return at(lineNo, r.seq, 'modified', 'the record is not in canonical form or its fields disagree with the chain');
    // The record itself is intact but names another predecessor: the one before it was rewritten
    // (and re-hashed), or this record was forged onto a chain it does not belong to.
    if (lineNo > 1)
      return at(
        lineNo - 1,
        E - 1,
        'modified',
        `the record was rewritten and its hash recomputed: the next record (line ${lineNo}) still chains from the original`,
      );
    return at(lineNo, r.seq, 'modified', 'the first record of the segment does not chain from the end of the previous one');
  }
  if (r.seq > E) {
    const ahead = await seg.lines(lineNo + 1, 1000);
    const back = ahead.findIndex((l) => parseLine(l)?.seq === E);
    if (back >= 0) return at(lineNo, r.seq, 'reordered', `expected seq ${E}, found ${r.seq}; seq ${E} comes ${back + 1} line(s) later`);
    return at(lineNo, r.seq, 'deleted', `expected seq ${E}, found ${r.seq}: ${r.seq - E} record(s) missing before this line`);
  }
  // r.seq < E: a record with this seq was already accepted.
  let k = 0;
  for (let i = 0; i < segments.length; i++) if ((segments[i] as Segment).first_seq <= r.seq) k = i;
  const ks = segments[k] as Segment;
  const accLine = r.seq - ks.first_seq + 1;
  const acc = parseLine((await ks.lines(accLine, 1))[0] ?? '');
  if (acc && acc.hash === r.hash) return at(lineNo, r.seq, 'inserted', `a copy of the record at ${ks.name} line ${accLine} (seq ${r.seq})`);
  if (acc && acc.prev === r.prev) {
    // Two records claim the same predecessor: the one the chain continues from is genuine.
    const next = parseLine((await seg.lines(lineNo + 1, 1))[0] ?? '');
    if (next && next.prev === r.hash) {
      return {
        kind: 'inserted',
        segment: ks.name,
        line: accLine,
        seq: r.seq,
        message: `a forged record with seq ${r.seq} was inserted here; the genuine one follows at ${seg.name} line ${lineNo} and the chain continues from it`,
      };
    }
    return at(lineNo, r.seq, 'inserted', `a second record with seq ${r.seq} chaining from the same predecessor (forged)`);
  }
  return at(lineNo, r.seq, 'reordered', `expected seq ${E}, found ${r.seq}`);
}

/** The seq of a file's first record, if its first line is one. */
function firstRecordSeq(file: string): number | undefined {
  let seq: number | undefined;
  scanLines(file, (buf, start, end) => {
    seq = parseLine(buf.toString('utf8', start, end))?.seq;
    return false;
  });
  return seq;
}

function fileSegment(file: string, name: string, first: number, prev: string, last?: { seq: number; hash: string }): Segment {
  const exists = fs.existsSync(file);
  return {
    name,
    first_seq: first,
    prev,
    last_seq: last?.seq,
    last_hash: last?.hash,
    exists,
    async scan(sink) {
      const r = scanLines(file, (buf, start, end, lineNo) => sink(buf, start, end, lineNo));
      return { tail: r.stopped ? undefined : r.tail };
    },
    async lines(from, count) {
      const out: string[] = [];
      scanLines(file, (buf, start, end, lineNo) => {
        if (lineNo >= from) out.push(buf.toString('utf8', start, end));
        return out.length < count;
      });
      return out;
    },
  };
}

/** The segments of a file log in order, from its manifest (or the single file when there is none). */
export function fileSegments(target: string): { segments: Segment[]; warnings: string[]; problem?: VerifyProblem; active: string; manifest?: Manifest } {
  let active = target;
  if (target.endsWith('.manifest.json')) {
    try {
      active = path.join(path.dirname(target), String((JSON.parse(fs.readFileSync(target, 'utf8')) as { active?: unknown }).active ?? 'audit.jsonl'));
    } catch {
      active = target.replace(/\.manifest\.json$/, '.jsonl');
    }
  }
  const p = logPaths(active);
  const warnings: string[] = [];
  let manifest: Manifest | undefined;
  try {
    manifest = readManifest(p);
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    return { segments: [], warnings, active, problem: { kind: 'missing_segment', segment: path.basename(p.manifest), line: 0, message: err.message } };
  }
  const onDisk = segmentFilesOnDisk(p);
  for (const f of fs.existsSync(p.dir) ? fs.readdirSync(p.dir) : []) {
    if (f.startsWith(`${path.basename(p.active)}.torn-`)) warnings.push(`${f}: bytes of a torn record set aside by recovery`);
    if (f.startsWith(`${path.basename(p.active)}.unacked-`))
      warnings.push(`${f}: records whose callers were told they failed, set aside when the log resumed after a write failure`);
  }
  if (!manifest) {
    const segs = [fileSegment(p.active, path.basename(p.active), 1, GENESIS_PREV)];
    if (onDisk.length) {
      return {
        segments: segs,
        warnings,
        active,
        problem: {
          kind: 'missing_segment',
          segment: path.basename(p.manifest),
          line: 0,
          message: `rotated segments (${onDisk.join(', ')}) exist but the manifest ${path.basename(p.manifest)} is missing`,
        },
      };
    }
    return { segments: segs, warnings, active };
  }
  const listed = new Set(manifest.segments.map((s) => s.file));
  const segments = manifest.segments.map((s) => fileSegment(path.join(p.dir, s.file), s.file, s.first_seq, s.prev, { seq: s.last_seq, hash: s.last_hash }));
  const lastListed = manifest.segments[manifest.segments.length - 1];
  const activeFirst = fs.existsSync(p.active) ? firstRecordSeq(p.active) : undefined;
  if (lastListed && !fs.existsSync(path.join(p.dir, lastListed.file)) && activeFirst === lastListed.first_seq) {
    // The writer rotates by writing the manifest first and renaming the active segment second. A
    // crash between the two leaves the newest listed segment still under the active name: its
    // records are all there (the writer finishes the rename at its next start).
    segments[segments.length - 1] = fileSegment(p.active, path.basename(p.active), lastListed.first_seq, lastListed.prev, {
      seq: lastListed.last_seq,
      hash: lastListed.last_hash,
    });
    warnings.push(
      `rotation interrupted: ${path.basename(p.active)} still holds segment ${lastListed.file} (seq ${lastListed.first_seq}..${lastListed.last_seq}); no record is missing`,
    );
    return { segments, warnings, active, manifest };
  }
  if (!fs.existsSync(p.active) && segments.length) {
    // After the rename and before the new active segment is created: a crash there leaves no
    // active file, i.e. an empty one. (Deleting it is no stronger than truncating it; checkpoints
    // beyond the end catch both.)
    warnings.push(
      `rotation interrupted: the new active segment ${path.basename(p.active)} was not created yet (no records after seq ${manifest.active_first_seq - 1})`,
    );
    return { segments, warnings, active, manifest };
  }
  segments.push(fileSegment(p.active, path.basename(p.active), manifest.active_first_seq, manifest.active_prev));
  const unlisted = onDisk.filter((f) => !listed.has(f));
  if (unlisted.length) warnings.push(`segment file(s) not in the manifest: ${unlisted.join(', ')}`);
  return { segments, warnings, active, manifest };
}

/** Verify a file log: its segments, its checkpoints file and any mirrors. */
export async function verifyFile(target: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const { segments, warnings, problem, active } = fileSegments(target);
  const p = logPaths(active);
  if (problem && !segments.length) {
    return {
      ok: false,
      path: active,
      records: 0,
      first_seq: 1,
      last_seq: 0,
      last_hash: GENESIS_PREV,
      segments: [],
      checkpoints: { total: 0, matched: 0, latest_size: 0, signatures: 'not_checked', sources: [] },
      partial: false,
      start: { kind: 'no_genesis', size: 0 },
      warnings,
      outcome_unknown: [],
      problem,
    };
  }
  const sources = [{ file: p.checkpoints, mirror: false }, ...(opts.mirrors ?? []).map((f) => ({ file: path.resolve(f), mirror: true }))];
  const r = await verifySegments(
    active,
    segments,
    sources,
    { pruneFile: prunePath(p), cosignaturesFile: path.join(p.dir, `${p.stem}.cosignatures.jsonl`), ...opts },
    warnings,
  );
  if (problem && r.ok) return { ...r, ok: false, problem };
  if (problem && r.problem && problem.kind === 'missing_segment') return { ...r, problem };
  return r;
}
