import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Keyring, RING_KEY_BYTES } from './keyring.js';

/**
 * The ring-key file: the keyring on disk, shared by every member.
 *
 *   # comment
 *   <base64 key>      first key: seals what this member sends (primary)
 *   <base64 key>      further keys: still accepted when opening
 *
 * The file is a secret like an ssh private key: it is created with mode 0600,
 * rewritten atomically, refused when group or others can read it, and its key
 * material never appears in an error message (only line numbers and
 * fingerprints do).
 */

const FILE_MODE = 0o600;
const HEADER = [
  '# hasup ring keys: one base64 AES-256 key per line.',
  '# The first key seals outgoing gossip; every key listed opens incoming gossip.',
  '# Keep this file identical on every member, mode 0600. Manage it with `hasup ring-key`.',
];
const BASE64_KEY = /^[A-Za-z0-9+/]+={0,2}$/;

/** A short, non-secret name for a key, to compare files across members. */
export function ringKeyFingerprint(key: Buffer): string {
  return createHash('sha256').update('hasup ring key\0').update(key).digest('hex').slice(0, 16);
}

/**
 * Writes a new ring-key file holding one fresh key. Refuses to replace an
 * existing file (that would cut this member off the ring) unless forced.
 */
export function generateRingKeyFile(path: string, opts: { force?: boolean } = {}): Keyring {
  const keyring = new Keyring(Keyring.generateKey());
  if (opts.force) {
    writeAtomically(path, keyring);
    return keyring;
  }
  let fd: number;
  try {
    fd = openSync(path, 'wx', FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new Error(`ring key file ${path} already exists; refusing to overwrite it (use --force to replace it with a new key)`);
    }
    throw new Error(`cannot create ring key file ${path}: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, formatRingKeyFile(keyring));
    fsyncSync(fd);
  } catch (err) {
    // Leave no half-written key file behind (a disk full, say).
    closeSync(fd);
    unlinkSync(path);
    throw err;
  }
  closeSync(fd);
  return keyring;
}

/** Reads and checks a ring-key file. Errors name the file and line, never the key. */
export function loadKeyring(path: string): Keyring {
  let text: string;
  try {
    assertPrivate(path);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`ring key file ${path} does not exist; create one with \`hasup ring-key generate ${path}\` and copy it to every member`);
    }
    if ((err as NodeJS.ErrnoException).code === 'EACCES') {
      throw new Error(`cannot read ring key file ${path}: permission denied (run hasup as the user that owns it)`);
    }
    throw err;
  }
  return parseRingKeys(text, path);
}

/** Adds `key` as an accepted (not sending) key. Returns false when it was already there. */
export function addRingKey(path: string, key: Buffer): boolean {
  const keyring = loadKeyring(path);
  if (keyring.all().some((k) => k.equals(key))) return false;
  keyring.add(key);
  writeAtomically(path, keyring);
  return true;
}

/** Makes `key` the sending key, keeping the old one accepted. Returns false when it already was. */
export function useRingKey(path: string, key: Buffer): boolean {
  const keyring = loadKeyring(path);
  if (keyring.primary.equals(key)) return false;
  keyring.use(key);
  writeAtomically(path, keyring);
  return true;
}

/** Stops accepting `key`. Throws for the sending key; returns false when it was not there. */
export function removeRingKey(path: string, key: Buffer): boolean {
  const keyring = loadKeyring(path);
  if (!keyring.all().some((k) => k.equals(key))) return false;
  if (keyring.primary.equals(key)) {
    throw new Error(`${path}: key ${ringKeyFingerprint(key)} is the sending key and cannot be removed; make another key the sending key first (\`hasup ring-key use\`)`);
  }
  keyring.remove(key);
  writeAtomically(path, keyring);
  return true;
}

export function formatRingKeyFile(keyring: Keyring): string {
  return [...HEADER, ...keyring.all().map((k) => k.toString('base64')), ''].join('\n');
}

export function parseRingKeys(text: string, source: string): Keyring {
  const keys: Buffer[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `ring key file ${source}, line ${i + 1}`;
    if (!BASE64_KEY.test(line) || line.length % 4 !== 0) {
      throw new Error(`${where}: not a base64-encoded key (expected ${RING_KEY_BYTES} bytes in base64, from \`hasup ring-key generate\`)`);
    }
    const key = Buffer.from(line, 'base64');
    if (key.length !== RING_KEY_BYTES) {
      throw new Error(`${where}: key is ${key.length} bytes, ring keys are ${RING_KEY_BYTES} bytes`);
    }
    keys.push(key);
  }
  const [primary, ...accepted] = keys;
  if (!primary) throw new Error(`ring key file ${source} holds no key; create one with \`hasup ring-key generate\``);
  return new Keyring(primary, accepted);
}

/** Like ssh with a private key: a secret others can read is refused, not used. */
function assertPrivate(path: string): void {
  const st = statSync(path);
  if (!st.isFile()) throw new Error(`ring key file ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw new Error(`ring key file ${path} is accessible by group or others (mode ${mode}); refusing to use it. Fix with: chmod 600 ${path}`);
  }
}

/** Write a temp file next to the target, then rename: a crash leaves the old or the new file, never half of one. */
function writeAtomically(path: string, keyring: Keyring): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', FILE_MODE);
  try {
    try {
      writeSync(fd, formatRingKeyFile(keyring));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Already renamed or never created: nothing to clean up.
    }
    throw err;
  }
  syncDirectory(dirname(path));
}

function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
