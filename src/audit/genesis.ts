import fs from 'node:fs';
import path from 'node:path';
import type { AuditLogOptions } from './audit-log.js';
import { GENESIS_PREV } from './chain.js';
import type { LogPaths } from './files.js';
import { Frontier, verifyConsistency } from './merkle.js';
import { parseAuditLine, type GenesisFields, type GenesisInfo } from './record-type.js';
import { checkpointText, readCheckpointNote, signNote, trusted, type NoteSigner, type NoteVerifier, type SignedCheckpoint } from './note.js';

/**
 * A log is complete from its genesis (issue 12). Its first record (seq 1, prev = 64 zeros) is a
 * genesis record naming the stream, when it was created, the keys that will sign its checkpoints
 * and how often; verify refuses a log whose records do not start there, unless it starts exactly
 * where a signed prune statement, or a checkpoint the auditor trusts (`--from-checkpoint`), says.
 */
export const GENESIS_EVENT = 'audit.genesis';

/** The genesis record a new log starts with, when its options ask for one (both backends). */
export function genesisFor(opts: AuditLogOptions): GenesisFields | undefined {
  const cp = opts.checkpoint;
  if (opts.genesis !== true) return undefined;
  return genesisFields({
    stream: opts.stream ?? 'default',
    origin: cp?.origin ?? null,
    created_at: new Date().toISOString(),
    keys: cp ? [cp.signer.encoded] : [],
    policy_revision: opts.policyRevision ?? null,
    checkpoint: cp ? { every_records: cp.everyRecords, every_ms: cp.everyMs } : null,
  });
}

export function genesisFields(g: GenesisInfo): GenesisFields {
  return { event: GENESIS_EVENT, genesis: { ...g, keys: [...g.keys], checkpoint: g.checkpoint ? { ...g.checkpoint } : null } };
}

/** The genesis information of a stored line, or undefined when the line is not a genesis record at seq 1. */
export function parseGenesisLine(line: string): GenesisInfo | undefined {
  const parsed = parseAuditLine(line);
  if (!parsed.ok) return undefined;
  const rec = parsed.record;
  if (rec.event !== GENESIS_EVENT || rec.seq !== 1 || rec.prev !== GENESIS_PREV || !rec.genesis) return undefined;
  const g = rec.genesis;
  return {
    stream: g.stream ?? '',
    origin: g.origin ?? null,
    created_at: g.created_at ?? '',
    keys: g.keys ?? [],
    policy_revision: g.policy_revision ?? null,
    checkpoint: g.checkpoint ?? null,
  };
}

/**
 * A prune statement: a signed checkpoint note at the cut (tree size, Merkle root, chain head),
 * with the extension line `prune`, so an ordinary checkpoint can never stand in for one. It sits
 * beside the log (`<stem>.prune.json`) with the Merkle frontier at the cut, which lets a verifier
 * carry the tree on from there. Only the key holder can write one, so deleting old segments
 * without it is "head truncated".
 */
export const PRUNE_LINE = 'prune';

export function prunePath(p: LogPaths): string {
  return path.join(p.dir, `${p.stem}.prune.json`);
}

/**
 * An earlier prune of the same log: its signed statement and the RFC 6962 consistency proof from its
 * tree (at `size`) to the tree of the statement after it, built when the later prune was made (the
 * records between were still there). A pruned log keeps the whole chain of its prunes.
 */
export interface PruneLink {
  readonly note: string;
  readonly size: number;
  /** Base64 node hashes: PROOF(size, next size). */
  readonly consistency: readonly string[];
}

export interface PruneFile {
  readonly v: 1;
  readonly note: string;
  readonly size: number;
  readonly frontier: readonly string[];
  /** The prunes before this one, oldest first (absent for a log pruned once). */
  readonly previous?: readonly PruneLink[] | undefined;
}

export function makePruneStatement(
  signer: NoteSigner,
  origin: string,
  size: number,
  chainHead: string,
  frontier: Frontier,
  now = new Date(),
  previous: readonly PruneLink[] = [],
): PruneFile {
  const body = checkpointText({ origin, size, root: frontier.root(), chainHead, time: now.toISOString() });
  return {
    v: 1,
    note: signNote(`${body}${PRUNE_LINE}\n`, [signer]),
    size,
    frontier: frontier.snapshot().map((b) => b.toString('base64')),
    ...(previous.length ? { previous: [...previous] } : {}),
  };
}

/** A signed note with the prune line, by a trusted key, naming a chain head. */
function checkedPruneNote(note: string, keys: readonly NoteVerifier[], what: string): SignedCheckpoint & { readonly chainHead: string } {
  let cp: SignedCheckpoint;
  try {
    cp = readCheckpointNote(note, keys);
  } catch (err) {
    throw new AnchorError(`${what}: not a prune statement: ${(err as Error).message}`);
  }
  if (!note.split('\n\n')[0]?.split('\n').includes(PRUNE_LINE))
    throw new AnchorError(`${what}: the note has no "prune" line (an ordinary checkpoint is not a prune statement)`);
  if (!keys.length)
    throw new AnchorError(
      `${what}: a prune statement can only be trusted with a trusted public key (--public-key, audit.checkpoint.public_keys or --trust-genesis)`,
    );
  if (!trusted(cp)) throw new AnchorError(`${what}: the prune statement is not signed by a trusted key`);
  const chainHead = cp.chainHead;
  if (!chainHead) throw new AnchorError(`${what}: the prune statement names no chain head`);
  return { ...cp, chainHead };
}

/**
 * The earlier prunes a statement names: each signed by a trusted key, sizes growing, and each tree
 * provably a prefix of the next (its consistency proof), up to the statement itself.
 */
function checkPruneChain(previous: readonly PruneLink[], last: SignedCheckpoint, keys: readonly NoteVerifier[], file: string): void {
  const checked = previous.map((l, i) => {
    if (!l || typeof l.note !== 'string' || !Array.isArray(l.consistency))
      throw new AnchorError(`${path.basename(file)}: earlier prune ${i + 1} is not {note, size, consistency}`);
    return { link: l, cp: checkedPruneNote(l.note, keys, `${path.basename(file)}: earlier prune ${i + 1}`) };
  });
  for (let i = 0; i < checked.length; i++) {
    const { link, cp } = checked[i] as { link: PruneLink; cp: SignedCheckpoint };
    const next = i + 1 < checked.length ? (checked[i + 1] as { cp: SignedCheckpoint }).cp : last;
    if (!(cp.size < next.size))
      throw new AnchorError(`${path.basename(file)}: earlier prune ${i + 1} (size ${cp.size}) does not come before the next (size ${next.size})`);
    const proof = link.consistency.map((h) => Buffer.from(String(h), 'base64'));
    if (!verifyConsistency(cp.size, next.size, proof, cp.root, next.root))
      throw new AnchorError(
        `${path.basename(file)}: the tree of earlier prune ${i + 1} (size ${cp.size}) is not a prefix of the tree at size ${next.size}: the prunes do not describe one log`,
      );
  }
}

export interface Anchor {
  /** Records 1..size are not needed: the log continues from here. */
  readonly size: number;
  readonly chainHead: string;
  readonly root: Buffer;
  readonly source: string;
  /** The frontier at `size`, when known: the Merkle root can be carried on. */
  readonly frontier?: Frontier | undefined;
  /** A prune statement: how many prunes it records (this one and those it names). */
  readonly prunes?: number | undefined;
}

export class AnchorError extends Error {}

/** A prune statement, checked: signed by a trusted key, a `prune` line, a chain head, a frontier that folds to the root. */
export function readPruneStatement(file: string, keys: readonly NoteVerifier[]): Anchor | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let raw: PruneFile;
  try {
    raw = JSON.parse(text) as PruneFile;
  } catch (err) {
    throw new AnchorError(`${path.basename(file)}: not a prune statement: ${(err as Error).message}`);
  }
  const cp = checkedPruneNote(String(raw.note), keys, path.basename(file));
  if (raw.previous !== undefined) {
    if (!Array.isArray(raw.previous)) throw new AnchorError(`${path.basename(file)}: "previous" is not a list of earlier prunes`);
    checkPruneChain(raw.previous, cp, keys, file);
  }
  let frontier: Frontier | undefined;
  try {
    const f = Frontier.fromState(
      cp.size,
      (raw.frontier ?? []).map((b) => Buffer.from(b, 'base64')),
    );
    if (f.root().equals(cp.root)) frontier = f;
  } catch {
    frontier = undefined;
  }
  return { size: cp.size, chainHead: cp.chainHead, root: cp.root, source: file, frontier, prunes: (raw.previous?.length ?? 0) + 1 };
}

/** A checkpoint the auditor gives (`--from-checkpoint`): a note file or a checkpoints-file line, signed by a trusted key. */
export function readTrustedCheckpoint(file: string, keys: readonly NoteVerifier[]): Anchor {
  const text = fs.readFileSync(file, 'utf8');
  let note = text;
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) note = String((JSON.parse(trimmed.split('\n')[0] as string) as { note?: unknown }).note ?? '');
  let cp: SignedCheckpoint;
  try {
    cp = readCheckpointNote(note, keys);
  } catch (err) {
    throw new AnchorError(`${file}: not a checkpoint note: ${(err as Error).message}`);
  }
  if (!keys.length) throw new AnchorError(`--from-checkpoint needs a trusted public key to check ${file} against`);
  if (!trusted(cp)) throw new AnchorError(`${file}: the checkpoint is not signed by a trusted key`);
  if (!cp.chainHead) throw new AnchorError(`${file}: the checkpoint names no chain head`);
  return { size: cp.size, chainHead: cp.chainHead, root: cp.root, source: file };
}
