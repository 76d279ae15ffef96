import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { chmod, chown, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DriverContext } from '../../supervisor/driver.js';
import { issueRoleCert } from '../../supervisor/pki/issue.js';

/**
 * The certificate of a member's pgBackRest TLS server and client
 * (docs/backup.md, "Backups from a follower"). pgBackRest's server admits a
 * client by the CN of its certificate, matched exactly against
 * tls-server-auth (no wildcard), and member certificates have CN = member
 * id; so every member gets a second certificate from the cluster CA with
 * one fixed CN, hasup-pgbackrest, which each server admits for the stanza.
 * The same certificate is the server's: it names the member's address as an
 * IP SAN and as a DNS SAN of the same text, since pgBackRest 2.45's client
 * checks the host it connects to against DNS names only.
 *
 * It sits next to the service's copy of the member certificate
 * (SVC_ROOT/tls/pgbackrest.pem and .key, owned by the service user, the key
 * 0600) and is issued here, by the backup plugin, from the cluster CA in
 * the secrets: when missing, from another CA, for another address, or
 * within 30 days of its end.
 */
export const PGBACKREST_CLIENT_CN = 'hasup-pgbackrest';
/** Issued again when it has fewer days left than this. */
const RENEW_DAYS = 30;
const DAY_MS = 86_400_000;

export interface PgBackRestTlsFiles {
  /** The CAs the member trusts (the service's copy of its bundle). */
  ca: string;
  cert: string;
  key: string;
}

export type PgBackRestTls = { ok: true; files: PgBackRestTlsFiles; fingerprint: string; issued?: string } | { ok: false; reason: string };

/** Where the certificate is, or undefined while the member has no TLS. */
export function pgbackrestTlsFiles(ctx: Pick<DriverContext, 'tls'>): PgBackRestTlsFiles | undefined {
  if (!ctx.tls) return undefined;
  const dir = dirname(ctx.tls.cert);
  return { ca: ctx.tls.ca, cert: join(dir, 'pgbackrest.pem'), key: join(dir, 'pgbackrest.key') };
}

/** Why this member cannot have the certificate (so no pgBackRest server, no backup from a follower), or undefined. */
export function pgbackrestTlsProblem(ctx: Pick<DriverContext, 'tls' | 'secrets'>): string | undefined {
  if (!ctx.tls) return "TLS is off on this member, and pgBackRest's server is reached over TLS only";
  if (!ctx.secrets.tls) return "the member's certificates are the operator's own ([tls] cert_file) and the secrets hold no cluster CA to issue pgBackRest's certificate from";
  return undefined;
}

/** Issues the certificate when it is missing or does not serve; never throws for a bad file (it is replaced), only when issuing fails. */
export async function ensurePgBackRestTls(ctx: Pick<DriverContext, 'tls' | 'secrets' | 'ip' | 'user'>, now: Date = new Date()): Promise<PgBackRestTls> {
  const problem = pgbackrestTlsProblem(ctx);
  if (problem) return { ok: false, reason: problem };
  const files = pgbackrestTlsFiles(ctx)!;
  const ca = ctx.secrets.tls!;
  const why = await renewReason(files, ca.ca_cert, ctx.ip, now);
  if (why === undefined) return { ok: true, files, fingerprint: new X509Certificate(await readFile(files.cert)).fingerprint256 };
  const issued = await issueRoleCert({ ca: { cert: ca.ca_cert, key: ca.ca_key }, caSource: 'the cluster secrets (tls.ca_cert)', commonName: PGBACKREST_CLIENT_CN, addresses: [ctx.ip], now });
  await writeOwned(files.key, issued.key, 0o600, ctx.user);
  await writeOwned(files.cert, issued.cert, 0o644, ctx.user);
  return { ok: true, files, fingerprint: new X509Certificate(issued.cert).fingerprint256, issued: why };
}

/** Why the files in place do not serve, or undefined when they do. */
async function renewReason(files: PgBackRestTlsFiles, caPem: string, ip: string, now: Date): Promise<string | undefined> {
  let cert: X509Certificate;
  let keyPem: string;
  try {
    cert = new X509Certificate(await readFile(files.cert));
    keyPem = await readFile(files.key, 'utf8');
  } catch {
    return 'there was none';
  }
  try {
    if (!cert.verify(new X509Certificate(caPem).publicKey)) return 'the old one is not from the cluster CA';
    const pub = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    if (!pub.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) return 'the key does not belong to the certificate';
  } catch {
    return 'the old files could not be read as a certificate and its key';
  }
  if (!new RegExp(`(^|\\n)CN=${PGBACKREST_CLIENT_CN}(\\n|$)`).test(cert.subject)) return `the old one is not for ${PGBACKREST_CLIENT_CN}`;
  if (new Date(cert.validTo).getTime() - now.getTime() < RENEW_DAYS * DAY_MS) return `the old one ends on ${new Date(cert.validTo).toISOString()}`;
  const sans = (cert.subjectAltName ?? '').split(', ');
  if (!sans.includes(`DNS:${ip}`) || cert.checkIP(ip) === undefined) return `the old one does not name ${ip}`;
  return undefined;
}

async function writeOwned(file: string, content: string, mode: number, user: DriverContext['user']): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, content, { mode });
  await chmod(tmp, mode);
  if (user) await chown(tmp, user.uid, user.gid);
  await rename(tmp, file);
}
