import type { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateInfo, readCertificateFile, type CertificateInfo } from './inspect.js';
import { checkKeyMatches, readPrivateKeyFile, verifyChain } from './verify.js';

/**
 * A member's TLS files: the CAs it trusts, its certificate and its key.
 * Issued from the cluster CA they live in STATE_DIR/tls; an operator's own
 * are wherever hasup.toml's [tls] names them.
 */
export interface MemberTlsFiles {
  /** PEM bundle of the CAs this member trusts (the cluster CA; during a CA change the old one too). */
  ca: string;
  /** PEM certificate of the member, optionally followed by intermediate CAs. */
  cert: string;
  /** PEM private key of the certificate (mode 0600). */
  key: string;
}

/** What the files hold, once every check passed. */
export interface CheckedTls {
  files: MemberTlsFiles;
  cert: CertificateInfo;
  cas: CertificateInfo[];
}

export const TLS_DIR = 'tls';

export function memberTlsFiles(stateRoot: string): MemberTlsFiles {
  const dir = join(stateRoot, TLS_DIR);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'member.pem'), key: join(dir, 'member.key') };
}

/**
 * Every check a service would otherwise fail on later, and less clearly:
 * each file readable and well-formed, the certificate within its dates and
 * signed by a CA of the bundle, the key its own and not readable by all.
 * Throws a TlsFileError naming the file at fault.
 */
export function checkMemberTls(files: MemberTlsFiles, now: Date = new Date()): CheckedTls {
  const cas = readCertificateFile(files.ca, 'CA bundle');
  const [leaf, ...intermediates] = readCertificateFile(files.cert);
  const key = readPrivateKeyFile(files.key);
  checkKeyMatches(leaf!, key, files.key, files.cert);
  verifyChain(leaf!, { intermediates, trusted: cas, file: files.cert, trustedFile: files.ca, now });
  return { files, cert: certificateInfo(leaf!), cas: cas.map(certificateInfo) };
}

/** Leaf certificate of a member file, for callers that only look (status). */
export function readLeaf(files: MemberTlsFiles): X509Certificate {
  return readCertificateFile(files.cert)[0]!;
}

/**
 * Writes the three files, each to a temporary name first and then all
 * renamed, so a crash leaves either the old set or the new one (or, between
 * renames, a set the next start reports and refuses).
 */
export function writeMemberTls(files: MemberTlsFiles, content: { ca: string; cert: string; key: string }, owner?: { uid: number; gid: number }): void {
  const tmp = (f: string) => `${f}.tmp-${process.pid}`;
  const parts: Array<[keyof MemberTlsFiles, number]> = [
    ['key', 0o600],
    ['cert', 0o644],
    ['ca', 0o644],
  ];
  for (const [which, mode] of parts) {
    mkdirSync(join(files[which], '..'), { recursive: true, mode: 0o755 });
    writeFileSync(tmp(files[which]), content[which], { mode });
    // The umask may have narrowed the mode; a key must be exactly 0600 and a certificate readable.
    chmodSync(tmp(files[which]), mode);
    if (owner) chownSync(tmp(files[which]), owner.uid, owner.gid);
  }
  for (const [which] of parts) renameSync(tmp(files[which]), files[which]);
}

/** The PEM text of the three files (for a copy, or for an in-process TLS client). */
export function readMemberTls(files: MemberTlsFiles): { ca: string; cert: string; key: string } {
  return { ca: readFileSync(files.ca, 'utf8'), cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
}

/** Which of the three files exist. */
export function presentFiles(files: MemberTlsFiles): Array<keyof MemberTlsFiles> {
  return (Object.keys(files) as Array<keyof MemberTlsFiles>).filter((k) => existsSync(files[k]));
}
