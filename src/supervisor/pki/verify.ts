import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { readTlsFile, TlsFileError } from './inspect.js';

/**
 * Checking certificates before a service is given them: the chain up to a
 * trusted CA, the dates, and that a key belongs to its certificate. Each
 * check throws a TlsFileError naming the file at fault.
 */

/** Intermediates between a leaf and a trusted root, at most. */
const MAX_CHAIN = 5;

/** Throws unless `cert` is valid at `now`. */
export function checkDates(cert: X509Certificate, file: string, now: Date, what = 'certificate'): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from) throw new TlsFileError(file, `${what} is not valid before ${from.toISOString()} (this host's clock says ${now.toISOString()})`);
  if (now > to) throw new TlsFileError(file, `${what} expired on ${to.toISOString()}`);
}

/**
 * Throws unless `leaf` chains to one of `trusted` (through `intermediates`,
 * as they follow the leaf in its file), with every certificate on the way
 * valid at `now` and every issuer a CA. `file` is the leaf's file,
 * `trustedFile` the bundle's.
 */
export function verifyChain(leaf: X509Certificate, o: { intermediates?: X509Certificate[]; trusted: X509Certificate[]; file: string; trustedFile: string; now: Date }): void {
  checkDates(leaf, o.file, o.now);
  let current = leaf;
  const pool = o.intermediates ?? [];
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    const root = o.trusted.find((ca) => signedBy(current, ca));
    if (root) {
      checkDates(root, o.trustedFile, o.now, `CA certificate "${root.subject.replace(/\n/g, ', ')}"`);
      return;
    }
    const next = pool.find((ca) => ca !== current && signedBy(current, ca));
    if (!next) break;
    checkDates(next, o.file, o.now, `intermediate CA certificate "${next.subject.replace(/\n/g, ', ')}"`);
    current = next;
  }
  throw new TlsFileError(o.file, `certificate (issuer "${leaf.issuer.replace(/\n/g, ', ')}") is not signed by any CA in ${o.trustedFile}`);
}

/** `cert` names `ca` as its issuer, `ca` may sign certificates, and the signature checks out. */
function signedBy(cert: X509Certificate, ca: X509Certificate): boolean {
  return ca.ca && cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/** Parses a PEM private key; `file` names where it came from. */
export function parsePrivateKey(pem: string, file: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new TlsFileError(file, 'holds no PEM private key (-----BEGIN PRIVATE KEY-----)');
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(pem)) throw new TlsFileError(file, 'private key is encrypted with a passphrase; the services need it unencrypted (mode 0600)');
  try {
    return createPrivateKey(pem);
  } catch {
    throw new TlsFileError(file, 'private key is corrupt (cannot be parsed)');
  }
}

/**
 * Reads a key file: refused when others may read it (a key the whole host
 * can read is no secret), when it is not a key, or when it is encrypted.
 */
export function readPrivateKeyFile(file: string): KeyObject {
  const pem = readTlsFile(file, 'private key');
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o007) throw new TlsFileError(file, `private key is readable by every user (mode ${mode.toString(8)}); run: chmod 600 ${file}`);
  return parsePrivateKey(pem, file);
}

/** Throws unless `key` is the private half of `cert`'s public key. */
export function checkKeyMatches(cert: X509Certificate, key: KeyObject, keyFile: string, certFile: string): void {
  if (!keyMatches(cert, key)) throw new TlsFileError(keyFile, `private key does not belong to the certificate in ${certFile}`);
}

/** node:crypto throws rather than answer false for a key of another type (an RSA key for an EC certificate). */
export function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}
