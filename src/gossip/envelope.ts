import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Keyring } from './keyring.js';

/**
 * Envelope around every gossip payload:
 *
 *   [version:1][nonce:12][ciphertext:n][tag:16]
 *
 * AES-256-GCM under the keyring's primary key, with the version byte as
 * additional authenticated data so it cannot be altered in flight.
 */
export const ENVELOPE_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const ENVELOPE_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;

export type OpenFailure = 'truncated' | 'bad_version' | 'auth_failed';
export type OpenResult = { ok: true; plaintext: Buffer } | { ok: false; reason: OpenFailure };

export function seal(keyring: Keyring, plaintext: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const header = Buffer.from([ENVELOPE_VERSION]);
  const cipher = createCipheriv('aes-256-gcm', keyring.primary, nonce);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
}

export function open(keyring: Keyring, data: Uint8Array): OpenResult {
  if (data.length < ENVELOPE_OVERHEAD) return { ok: false, reason: 'truncated' };
  if (data[0] !== ENVELOPE_VERSION) return { ok: false, reason: 'bad_version' };
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const header = buf.subarray(0, 1);
  const nonce = buf.subarray(1, 1 + NONCE_BYTES);
  const body = buf.subarray(1 + NONCE_BYTES, buf.length - TAG_BYTES);
  const tag = buf.subarray(buf.length - TAG_BYTES);
  for (const key of keyring.all()) {
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce);
      decipher.setAAD(header);
      decipher.setAuthTag(tag);
      const plaintext = Buffer.concat([decipher.update(body), decipher.final()]);
      return { ok: true, plaintext };
    } catch {
      // Wrong key or tampered data: try the next key.
    }
  }
  return { ok: false, reason: 'auth_failed' };
}
