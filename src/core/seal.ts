import crypto from 'node:crypto';

/**
 * Authenticated encryption for values a client carries and hands back (2026-07-28 `requestState`,
 * 2025-11-25 session ids): AES-256-GCM under a sub-key derived per purpose with HKDF, so a token
 * minted for one purpose never opens as another. The client can neither read nor change what is
 * inside; expiry and binding checks are the caller's (they know what the payload means).
 *
 * Token: base64url( version(1) | iv(12) | tag(16) | ciphertext ).
 */
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Bigger tokens are refused before any decryption is tried (a client could send megabytes). */
export const MAX_SEALED_CHARS = 16 * 1024;

export type UnsealFailure = 'malformed' | 'tampered';

export class Sealer {
  private readonly keys = new Map<string, Buffer>();

  /** `secret`: at least 32 bytes of key material (a config file or environment variable; random per process by default). */
  constructor(private readonly secret: Uint8Array) {
    if (secret.byteLength < 32) throw new Error('a sealing secret needs at least 32 bytes');
  }

  static random(): Sealer {
    return new Sealer(crypto.randomBytes(32));
  }

  seal(purpose: string, payload: unknown): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.keyFor(purpose), iv);
    cipher.setAAD(Buffer.from(purpose, 'utf8'));
    const body = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** The payload, or why the token cannot be trusted. Never throws on client input. */
  unseal(purpose: string, token: unknown): { ok: true; payload: unknown } | { ok: false; why: UnsealFailure } {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_SEALED_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) {
      return { ok: false, why: 'malformed' };
    }
    const raw = Buffer.from(token, 'base64url');
    if (raw.length < 1 + IV_BYTES + TAG_BYTES + 1 || raw[0] !== VERSION) return { ok: false, why: 'malformed' };
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.keyFor(purpose), raw.subarray(1, 1 + IV_BYTES));
      decipher.setAAD(Buffer.from(purpose, 'utf8'));
      decipher.setAuthTag(raw.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
      const text = Buffer.concat([decipher.update(raw.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
      return { ok: true, payload: JSON.parse(text) as unknown };
    } catch {
      return { ok: false, why: 'tampered' };
    }
  }

  private keyFor(purpose: string): Buffer {
    let key = this.keys.get(purpose);
    if (!key) {
      key = Buffer.from(crypto.hkdfSync('sha256', this.secret, Buffer.alloc(0), `bulwark seal v1 ${purpose}`, 32));
      this.keys.set(purpose, key);
    }
    return key;
  }
}
