import crypto from 'node:crypto';
import fs from 'node:fs';

/**
 * C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and C2SP tlog checkpoints
 * (https://c2sp.org/tlog-checkpoint) as their body.
 *
 *   note      = text "\n" signature-line+         text ends with "\n"; no other blank line
 *   signature = "— " name " " base64(keyid(4) ‖ Ed25519 signature(64)) "\n"
 *   keyid     = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[0:4]   (0x01: the Ed25519 algorithm)
 *   verifier  = name "+" hex(keyid) "+" base64(0x01 ‖ public key)
 *   signer    = "PRIVATE+KEY+" name "+" hex(keyid) "+" base64(0x01 ‖ seed)
 *
 * The signature covers the text bytes exactly (UTF-8, every line ending in "\n").
 */

const ALG_ED25519 = 0x01;
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const SIG_PREFIX = '\u2014 ';

export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoteError';
  }
}

function checkName(name: string): void {
  if (!name || /[\s+]/.test(name) || /[\u0000-\u001f\u007f]/.test(name))
    throw new NoteError(`invalid key name ${JSON.stringify(name)}: it must be non-empty, without spaces or "+"`);
}

export function keyId(name: string, publicKey: Buffer): Buffer {
  return crypto
    .createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a, ALG_ED25519]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

export interface NoteVerifier {
  readonly name: string;
  readonly id: Buffer;
  readonly publicKey: crypto.KeyObject;
  /** The verifier key string this was parsed from. */
  readonly encoded: string;
}

export interface NoteSigner extends NoteVerifier {
  readonly privateKey: crypto.KeyObject;
  /** The signer key string (secret). */
  readonly encodedPrivate: string;
}

function publicKeyObject(raw: Buffer): crypto.KeyObject {
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

function rawPublicKey(k: crypto.KeyObject): Buffer {
  const der = k.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function parseVerifierKey(encoded: string): NoteVerifier {
  // base64 may itself hold "+": split off the name and key id only.
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(encoded.trim());
  if (!m) throw new NoteError('a verifier key has the form NAME+KEYID+BASE64');
  const [, name, hexId, b64] = m as unknown as [string, string, string, string];
  checkName(name);
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 33 || key[0] !== ALG_ED25519 || !/^[0-9a-f]{8}$/.test(hexId)) throw new NoteError(`verifier key ${name}: not an Ed25519 key`);
  const pub = key.subarray(1);
  const id = keyId(name, pub);
  if (id.toString('hex') !== hexId) throw new NoteError(`verifier key ${name}: key id ${hexId} does not match the key`);
  return { name, id, publicKey: publicKeyObject(pub), encoded: encoded.trim() };
}

export function parseSignerKey(encoded: string): NoteSigner {
  const m = /^PRIVATE\+KEY\+([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(encoded.trim());
  if (!m) throw new NoteError('a signer key has the form PRIVATE+KEY+NAME+KEYID+BASE64');
  const [, name, hexId, b64] = m as unknown as [string, string, string, string];
  checkName(name);
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 33 || key[0] !== ALG_ED25519) throw new NoteError(`signer key ${name}: not an Ed25519 key`);
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, key.subarray(1)]), format: 'der', type: 'pkcs8' });
  const publicKey = crypto.createPublicKey(privateKey);
  const pub = rawPublicKey(publicKey);
  const id = keyId(name, pub);
  if (id.toString('hex') !== hexId) throw new NoteError(`signer key ${name}: key id ${hexId} does not match the key`);
  return {
    name,
    id,
    publicKey,
    privateKey,
    encoded: `${name}+${hexId}+${Buffer.concat([Buffer.from([ALG_ED25519]), pub]).toString('base64')}`,
    encodedPrivate: encoded.trim(),
  };
}

export function generateKey(name: string): NoteSigner {
  checkName(name);
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = der.subarray(der.length - 32);
  const pub = rawPublicKey(crypto.createPublicKey(privateKey));
  const hexId = keyId(name, pub).toString('hex');
  return parseSignerKey(`PRIVATE+KEY+${name}+${hexId}+${Buffer.concat([Buffer.from([ALG_ED25519]), seed]).toString('base64')}`);
}

const VERIFIER_FORM = /^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$/;

/** A key given in configuration or on the command line: the key string itself, or a file holding it. */
export function loadVerifier(spec: string): NoteVerifier {
  const s = spec.trim();
  if (VERIFIER_FORM.test(s)) return parseVerifierKey(s);
  return parseVerifierKey(fs.readFileSync(s, 'utf8'));
}

export function loadSigner(spec: string): NoteSigner {
  const s = spec.trim();
  if (s.startsWith('PRIVATE+KEY+')) return parseSignerKey(s);
  return parseSignerKey(fs.readFileSync(s, 'utf8'));
}

export function signNote(text: string, signers: readonly NoteSigner[]): string {
  if (!text.endsWith('\n') || text.includes('\n\n')) throw new NoteError('note text must end in a newline and hold no blank line');
  const data = Buffer.from(text, 'utf8');
  const lines = signers.map((s) => `${SIG_PREFIX}${s.name} ${Buffer.concat([s.id, crypto.sign(null, data, s.privateKey)]).toString('base64')}\n`);
  return `${text}\n${lines.join('')}`;
}

export interface NoteSignature {
  readonly name: string;
  readonly id: string;
  /** true: valid under a known key; false: a known key, and the signature fails; undefined: unknown key. */
  readonly valid: boolean | undefined;
}

export interface OpenedNote {
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/** Split a note into its text and signatures; check each signature whose key is known. */
export function openNote(note: string, verifiers: readonly NoteVerifier[]): OpenedNote {
  const cut = note.lastIndexOf('\n\n');
  if (cut < 0 || !note.endsWith('\n')) throw new NoteError('malformed note: no signature block');
  const text = note.slice(0, cut + 1);
  const block = note.slice(cut + 2, -1).split('\n');
  const data = Buffer.from(text, 'utf8');
  const signatures: NoteSignature[] = [];
  for (const line of block) {
    if (!line.startsWith(SIG_PREFIX)) throw new NoteError('malformed note: a signature line must start with "— "');
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.lastIndexOf(' ');
    if (sp <= 0) throw new NoteError('malformed signature line');
    const name = rest.slice(0, sp);
    const raw = Buffer.from(rest.slice(sp + 1), 'base64');
    if (raw.length < 5) throw new NoteError('malformed signature line');
    const id = raw.subarray(0, 4);
    const v = verifiers.find((k) => k.name === name && k.id.equals(id));
    const valid = v ? raw.length === 68 && crypto.verify(null, data, v.publicKey, raw.subarray(4)) : undefined;
    signatures.push({ name, id: id.toString('hex'), valid });
  }
  if (!signatures.length) throw new NoteError('malformed note: no signatures');
  return { text, signatures };
}

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Buffer;
  /** Our extension lines: the hash chain's head at this size, and when it was signed. */
  readonly chainHead?: string | undefined;
  readonly time?: string | undefined;
}

/** The checkpoint body: origin, tree size, base64 root, then extension lines. */
export function checkpointText(c: Checkpoint): string {
  if (!c.origin || /[\u0000-\u001f]/.test(c.origin)) throw new NoteError('invalid checkpoint origin');
  const ext = [...(c.chainHead ? [`chain ${c.chainHead}`] : []), ...(c.time ? [`time ${c.time}`] : [])];
  return `${c.origin}\n${c.size}\n${c.root.toString('base64')}\n${ext.map((l) => `${l}\n`).join('')}`;
}

export function parseCheckpointText(text: string): Checkpoint {
  const lines = text.split('\n');
  lines.pop();
  const [origin, sizeText, rootText, ...ext] = lines;
  if (!origin || !sizeText || !rootText || !/^(0|[1-9][0-9]*)$/.test(sizeText)) throw new NoteError('malformed checkpoint body');
  const size = Number(sizeText);
  const root = Buffer.from(rootText, 'base64');
  if (!Number.isSafeInteger(size) || root.length !== 32 || root.toString('base64') !== rootText) throw new NoteError('malformed checkpoint body');
  let chainHead: string | undefined;
  let time: string | undefined;
  for (const l of ext) {
    if (!l) throw new NoteError('malformed checkpoint: empty extension line');
    const m = /^chain ([0-9a-f]{64})$/.exec(l);
    if (m) chainHead = m[1];
    const tm = /^time (\S+)$/.exec(l);
    if (tm) time = tm[1];
  }
  return { origin, size, root, chainHead, time };
}

export interface SignedCheckpoint extends Checkpoint {
  readonly note: string;
  readonly signatures: readonly NoteSignature[];
}

export function readCheckpointNote(note: string, verifiers: readonly NoteVerifier[]): SignedCheckpoint {
  const opened = openNote(note, verifiers);
  return { ...parseCheckpointText(opened.text), note, signatures: opened.signatures };
}

/** Signed by at least one known key, and no known key's signature fails. */
export function trusted(c: { signatures: readonly NoteSignature[] }): boolean {
  return c.signatures.some((s) => s.valid === true) && !c.signatures.some((s) => s.valid === false);
}
