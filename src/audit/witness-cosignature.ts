import crypto from 'node:crypto';
import fs from 'node:fs';

/**
 * C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature), the Ed25519 type (cosignature/v1):
 *
 *   key ID    = SHA-256(name ‖ "\n" ‖ 0x04 ‖ 32-byte public key)[:4]
 *   message   = "cosignature/v1\n" ‖ "time " ‖ decimal(T) ‖ "\n" ‖ the checkpoint's note text
 *               (every line, extension lines included, with its final newline; no signature lines)
 *   signature = base64(key ID ‖ u64be(T) ‖ Ed25519 signature(64))
 *   line      = "— " name " " signature "\n"
 *
 * Keys are written as signed-note verifier/signer strings with algorithm byte 0x04:
 * `NAME+KEYID+BASE64(0x04 ‖ pub)` and `PRIVATE+KEY+NAME+KEYID+BASE64(0x04 ‖ seed)`.
 */
export const ALG_COSIGNATURE_V1 = 0x04;
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const SIG_PREFIX = '\u2014 ';

export class CosignatureError extends Error {}

export interface WitnessVerifier {
  readonly name: string;
  readonly id: Buffer;
  readonly publicKey: crypto.KeyObject;
  readonly encoded: string;
}

export interface WitnessSigner extends WitnessVerifier {
  readonly privateKey: crypto.KeyObject;
  readonly encodedPrivate: string;
}

function checkName(name: string): void {
  if (!name || /[\s+]/.test(name) || /[\u0000-\u001f\u007f]/.test(name)) throw new CosignatureError(`invalid witness name ${JSON.stringify(name)}`);
}

export function cosignerKeyId(name: string, pub: Buffer): Buffer {
  return crypto
    .createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a, ALG_COSIGNATURE_V1]))
    .update(pub)
    .digest()
    .subarray(0, 4);
}

function rawPublic(k: crypto.KeyObject): Buffer {
  const der = k.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function parseWitnessVerifier(encoded: string): WitnessVerifier {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(encoded.trim());
  if (!m) throw new CosignatureError('a witness key has the form NAME+KEYID+BASE64');
  const [, name, hexId, b64] = m as unknown as [string, string, string, string];
  checkName(name);
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 33 || key[0] !== ALG_COSIGNATURE_V1) throw new CosignatureError(`witness key ${name}: not an Ed25519 cosignature/v1 key (type 0x04)`);
  const pub = key.subarray(1);
  const id = cosignerKeyId(name, pub);
  if (id.toString('hex') !== hexId) throw new CosignatureError(`witness key ${name}: key id ${hexId} does not match the key`);
  return {
    name,
    id,
    publicKey: crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pub]), format: 'der', type: 'spki' }),
    encoded: encoded.trim(),
  };
}

export function parseWitnessSigner(encoded: string): WitnessSigner {
  const m = /^PRIVATE\+KEY\+([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(encoded.trim());
  if (!m) throw new CosignatureError('a witness signer key has the form PRIVATE+KEY+NAME+KEYID+BASE64');
  const [, name, hexId, b64] = m as unknown as [string, string, string, string];
  checkName(name);
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 33 || key[0] !== ALG_COSIGNATURE_V1) throw new CosignatureError(`witness signer key ${name}: not a type 0x04 key`);
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, key.subarray(1)]), format: 'der', type: 'pkcs8' });
  const publicKey = crypto.createPublicKey(privateKey);
  const pub = rawPublic(publicKey);
  const id = cosignerKeyId(name, pub);
  if (id.toString('hex') !== hexId) throw new CosignatureError(`witness signer key ${name}: key id ${hexId} does not match the key`);
  return {
    name,
    id,
    publicKey,
    privateKey,
    encoded: `${name}+${hexId}+${Buffer.concat([Buffer.from([ALG_COSIGNATURE_V1]), pub]).toString('base64')}`,
    encodedPrivate: encoded.trim(),
  };
}

export function generateWitnessKey(name: string): WitnessSigner {
  checkName(name);
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = der.subarray(der.length - 32);
  const pub = rawPublic(crypto.createPublicKey(privateKey));
  return parseWitnessSigner(
    `PRIVATE+KEY+${name}+${cosignerKeyId(name, pub).toString('hex')}+${Buffer.concat([Buffer.from([ALG_COSIGNATURE_V1]), seed]).toString('base64')}`,
  );
}

export const WITNESS_KEY_FORM = /^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/;

/** A key string, or a file holding one. */
export function loadWitnessVerifier(spec: string): WitnessVerifier {
  const s = spec.trim();
  // Witness names are URL-like ("witness.example/w1"), so a key is told from a path by its whole form.
  return WITNESS_KEY_FORM.test(s) ? parseWitnessVerifier(s) : parseWitnessVerifier(fs.readFileSync(s, 'utf8'));
}

export function loadWitnessSigner(spec: string): WitnessSigner {
  const s = spec.trim();
  return s.startsWith('PRIVATE+KEY+') ? parseWitnessSigner(s) : parseWitnessSigner(fs.readFileSync(s, 'utf8'));
}

function message(checkpointText: string, time: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${time}\n${checkpointText}`, 'utf8');
}

/** The cosignature/v1 line (with its newline) over a checkpoint's note text. */
export function cosign(checkpointText: string, signer: WitnessSigner, time = Math.floor(Date.now() / 1000)): string {
  if (!checkpointText.endsWith('\n')) throw new CosignatureError('the checkpoint text must end in a newline');
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(time));
  const sig = crypto.sign(null, message(checkpointText, time), signer.privateKey);
  return `${SIG_PREFIX}${signer.name} ${Buffer.concat([signer.id, ts, sig]).toString('base64')}\n`;
}

export interface CheckedCosignature {
  readonly name: string;
  readonly time: number;
  readonly witness: WitnessVerifier;
}

/**
 * The cosignatures among `lines` that verify under one of `witnesses` over `checkpointText`; lines
 * from unknown keys are ignored (as the spec asks), a known key whose signature fails is an error.
 */
export function checkCosignatures(checkpointText: string, lines: readonly string[], witnesses: readonly WitnessVerifier[]): CheckedCosignature[] {
  const out: CheckedCosignature[] = [];
  for (const raw of lines) {
    const line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    if (!line) continue;
    if (!line.startsWith(SIG_PREFIX)) throw new CosignatureError('a cosignature line starts with "— "');
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.lastIndexOf(' ');
    const name = rest.slice(0, sp);
    const blob = Buffer.from(rest.slice(sp + 1), 'base64');
    const w = witnesses.find((k) => k.name === name && blob.length >= 4 && k.id.equals(blob.subarray(0, 4)));
    if (!w) continue;
    if (blob.length !== 4 + 8 + 64) throw new CosignatureError(`cosignature by ${name}: wrong length`);
    const time = Number(blob.readBigUInt64BE(4));
    if (!crypto.verify(null, message(checkpointText, time), w.publicKey, blob.subarray(12)))
      throw new CosignatureError(`cosignature by ${name} does not verify`);
    out.push({ name, time, witness: w });
  }
  return out;
}

/** A witness the log submits its checkpoints to (audit.witnesses[]; both backends). */
export interface WitnessEndpoint {
  readonly name: string;
  /** The submission prefix: `<url>/add-checkpoint` is posted to. */
  readonly url: string;
  readonly key: WitnessVerifier;
}
