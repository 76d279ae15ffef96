import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * SCRAM-SHA-256 password verifiers as PostgreSQL stores them in
 * pg_authid.rolpassword (RFC 5802/7677):
 *
 *   SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
 *
 * Computing the verifier here, as psql's \password does, means the
 * plaintext password never travels in an SQL statement that the server
 * could write to its log.
 */
const ITERATIONS = 4096;
const SALT_BYTES = 16;

/**
 * PostgreSQL runs SASLprep on the password and falls back to the raw bytes
 * when that fails; for ASCII (what hasup's generated secrets are) both are
 * the identity. NFKC covers the normalisation step for the rest.
 */
function prepare(password: string): Buffer {
  // eslint-disable-next-line no-control-regex
  return Buffer.from(/^[\x00-\x7f]*$/.test(password) ? password : password.normalize('NFKC'), 'utf8');
}

function keys(password: string, salt: Buffer, iterations: number): { storedKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(prepare(password), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

export function scramVerifier(password: string, salt: Buffer = randomBytes(SALT_BYTES), iterations = ITERATIONS): string {
  const { storedKey, serverKey } = keys(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

const VERIFIER = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

/** True when `verifier` (as stored by PostgreSQL) accepts `password`; false for anything else, md5 included. */
export function verifierMatches(verifier: string | null | undefined, password: string): boolean {
  const m = verifier ? VERIFIER.exec(verifier) : null;
  if (!m) return false;
  const iterations = Number(m[1]);
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000) return false;
  const { storedKey, serverKey } = keys(password, Buffer.from(m[2]!, 'base64'), iterations);
  const wantStored = Buffer.from(m[3]!, 'base64');
  const wantServer = Buffer.from(m[4]!, 'base64');
  return wantStored.length === 32 && wantServer.length === 32 && timingSafeEqual(storedKey, wantStored) && timingSafeEqual(serverKey, wantServer);
}
