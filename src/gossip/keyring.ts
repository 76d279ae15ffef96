import { randomBytes } from 'node:crypto';

export const RING_KEY_BYTES = 32;

/**
 * The ring's AES-256-GCM keys. Every key in the ring is accepted when opening
 * a packet; only the primary seals outgoing ones. Rotation without downtime:
 * install the new key everywhere as secondary, make it primary everywhere,
 * then remove the old one.
 */
export class Keyring {
  private keys: Buffer[];

  constructor(primary: Buffer, secondaries: Buffer[] = []) {
    for (const key of [primary, ...secondaries]) assertKey(key);
    this.keys = dedupe([primary, ...secondaries]);
  }

  static generateKey(): Buffer {
    return randomBytes(RING_KEY_BYTES);
  }

  get primary(): Buffer {
    return this.keys[0]!;
  }

  /** Keys to try when opening, primary first (the common case). */
  all(): readonly Buffer[] {
    return this.keys;
  }

  add(key: Buffer): void {
    assertKey(key);
    if (!this.keys.some((k) => k.equals(key))) this.keys.push(key);
  }

  use(key: Buffer): void {
    assertKey(key);
    this.keys = dedupe([key, ...this.keys]);
  }

  remove(key: Buffer): void {
    if (this.keys[0]!.equals(key)) throw new Error('cannot remove the primary ring key; make another key primary first');
    this.keys = this.keys.filter((k) => !k.equals(key));
  }
}

function assertKey(key: Buffer): void {
  if (key.length !== RING_KEY_BYTES) {
    throw new Error(`ring key must be ${RING_KEY_BYTES} bytes, got ${key.length}`);
  }
}

function dedupe(keys: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const key of keys) if (!out.some((k) => k.equals(key))) out.push(key);
  return out;
}
