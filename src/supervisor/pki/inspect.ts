import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Reading certificates: PEM text or files into node:crypto's
 * X509Certificate, and the facts `hasup cert status` shows. Everything here
 * is synchronous and uses node:crypto alone (no certificate library is
 * loaded to read one). Errors name the file, never its content.
 */

/** A certificate or key file that cannot be used; its message names the file and what is wrong. */
export class TlsFileError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
  }
}

export interface SubjectAltNames {
  ip: string[];
  dns: string[];
  uri: string[];
}

export interface CertificateInfo {
  subject: string;
  issuer: string;
  serial: string;
  sans: SubjectAltNames;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER encoding, colon-separated hex, as openssl x509 -fingerprint -sha256 prints it. */
  fingerprint: string;
  isCa: boolean;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads a file, saying which file and why when it cannot. */
export function readTlsFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TlsFileError(file, `${what} file does not exist`);
    if (code === 'EACCES') throw new TlsFileError(file, `${what} file is not readable by this user`);
    throw new TlsFileError(file, `cannot read the ${what} file (${code ?? (err as Error).message})`);
  }
}

/** Every certificate in PEM text (a bundle holds several); `source` names where the text came from. */
export function parseCertificates(pem: string, source: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new TlsFileError(source, 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new TlsFileError(source, `certificate ${i + 1} of ${blocks.length} is corrupt (not a valid X.509 certificate)`);
    }
  });
}

/** Why PEM text is not one or more CA certificates (another cluster's CA, given as text), or undefined when it is. */
export function caBundleProblem(pem: string): string | undefined {
  let certs: X509Certificate[];
  try {
    certs = parseCertificates(pem, 'the CA text');
  } catch (err) {
    return (err as TlsFileError).reason;
  }
  const leaf = certs.findIndex((c) => !c.ca);
  return leaf < 0 ? undefined : `certificate ${leaf + 1} (${certs[leaf]!.subject.replace(/\n/g, ', ')}) is not a CA certificate`;
}

/** The certificates of a PEM file, the first being the file's own (a leaf, followed by any intermediates). */
export function readCertificateFile(file: string, what = 'certificate'): X509Certificate[] {
  return parseCertificates(readTlsFile(file, what), file);
}

/**
 * node:crypto gives the SANs as one string ("IP Address:10.0.0.1, DNS:x");
 * a value with a comma or quote in it comes JSON-quoted (Node 17.3+).
 */
export function subjectAltNames(cert: X509Certificate): SubjectAltNames {
  const out: SubjectAltNames = { ip: [], dns: [], uri: [] };
  const text = cert.subjectAltName;
  if (!text) return out;
  for (const m of text.matchAll(/(IP Address|DNS|URI):("(?:[^"\\]|\\.)*"|[^,]*)(?:,\s*|$)/g)) {
    const raw = m[2]!;
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    if (m[1] === 'IP Address') out.ip.push(value);
    else if (m[1] === 'DNS') out.dns.push(value);
    else out.uri.push(value);
  }
  return out;
}

export function certificateInfo(cert: X509Certificate): CertificateInfo {
  return {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    serial: cert.serialNumber,
    sans: subjectAltNames(cert),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint: cert.fingerprint256,
    isCa: cert.ca,
  };
}

/** node:crypto writes a distinguished name one attribute per line. */
function oneLine(dn: string): string {
  return dn.split('\n').filter((s) => s !== '').join(', ');
}

/** Whole days from `now` to the end of the certificate's validity (negative once expired). */
export function daysLeft(info: Pick<CertificateInfo, 'notAfter'>, now: Date): number {
  return Math.floor((info.notAfter.getTime() - now.getTime()) / 86_400_000);
}
