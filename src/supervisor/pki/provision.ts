import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { ClusterSecrets } from '../secrets.js';
import { certificateInfo, daysLeft, parseCertificates, readCertificateFile, TlsFileError } from './inspect.js';
import { CA_DAYS, createCa, issueMemberCert, MEMBER_DAYS } from './issue.js';
import { keyMatches } from './verify.js';
import { clusterBundle } from './ca-change.js';
import { checkMemberTls, memberTlsFiles, presentFiles, writeMemberTls, type CheckedTls, type MemberTlsFiles } from './member-files.js';

/**
 * Where a member's TLS comes from, decided once at `cluster create|join`
 * and again at every `hasup run` start:
 *
 * - [tls] enabled = false: nothing is encrypted (hasup status says so);
 * - [tls] ca_file, cert_file, key_file: the operator's own, checked, used as they are;
 * - else the cluster CA in the secrets file: STATE_DIR/tls, issued when
 *   missing (a new member, or a state directory from before TLS) and
 *   issued again when it expires within RENEW_DAYS or no longer names the
 *   member's address;
 * - a secrets file without a CA (a cluster from before TLS): clear text,
 *   said in hasup status, until `hasup cert init-ca`.
 *
 * Files that exist but are corrupt, mismatched or from another CA are never
 * replaced or worked around: the member refuses to start, naming the file.
 */
export interface TlsSettings {
  enabled: boolean;
  /** The operator's own files ([tls] ca_file, cert_file, key_file: all three or none). */
  operator?: MemberTlsFiles;
  /** Validity of a member certificate issued here, days. */
  memberDays: number;
  /** More names (IP addresses, DNS names) for the member certificate, e.g. the load balancer's address clients use. */
  extraSans: string[];
}

export const DEFAULT_TLS_SETTINGS: TlsSettings = { enabled: true, memberDays: MEMBER_DAYS, extraSans: [] };

/** A member certificate with fewer days left than this is issued anew at start. */
export const RENEW_DAYS = 30;

export type TlsSource = 'cluster-ca' | 'operator';

export type MemberTls =
  | (CheckedTls & { on: true; source: TlsSource; /** What this start did to the files, if anything. */ issued?: string })
  | { on: false; reason: string };

export interface EnsureTlsOptions {
  stateRoot: string;
  memberId: string;
  /** The advertised address: the certificate must name it. */
  addresses: string[];
  secrets: ClusterSecrets;
  secretsFile: string;
  settings: TlsSettings;
  now?: Date;
  /** Issue anew even when the certificate in place serves (cert rotate); says why, for the log. */
  renew?: string;
}

export async function ensureMemberTls(o: EnsureTlsOptions): Promise<MemberTls> {
  const now = o.now ?? new Date();
  if (!o.settings.enabled) return { on: false, reason: '[tls] enabled = false in hasup.toml' };
  if (o.settings.operator) return { on: true, source: 'operator', ...checkMemberTls(o.settings.operator, now) };
  if (!o.secrets.tls) {
    return { on: false, reason: `the cluster secrets (${o.secretsFile}) hold no CA (written before TLS, or by hasup run for a member of its own); add one with \`hasup cert init-ca --secrets ${o.secretsFile}\`` };
  }
  const ca = clusterCa(o.secrets, o.secretsFile, now);
  const files = memberTlsFiles(o.stateRoot);
  const present = presentFiles(files);
  if (present.length === 0) {
    await issueInto(files, ca, o, now);
    return { on: true, source: 'cluster-ca', ...checkMemberTls(files, now), issued: 'issued a member certificate from the cluster CA' };
  }
  if (present.length < 3) {
    const missing = (Object.keys(files) as Array<keyof MemberTlsFiles>).find((k) => !present.includes(k))!;
    throw new TlsFileError(files[missing], `missing beside ${present.map((k) => files[k]).join(' and ')}; remove all three to have a new certificate issued from the cluster CA`);
  }
  const bundle = readCertificateFile(files.ca, 'CA bundle');
  if (!bundle.some((c) => c.fingerprint256 === ca.fingerprint256)) {
    throw new TlsFileError(files.ca, `does not hold the cluster CA of ${o.secretsFile} (these files belong to another cluster); remove ${files.ca}, ${files.cert} and ${files.key} to have new ones issued`);
  }
  const renew = o.renew ?? renewReason(files, [...o.addresses, ...o.settings.extraSans], now);
  if (renew) {
    await issueInto(files, ca, o, now);
    return { on: true, source: 'cluster-ca', ...checkMemberTls(files, now), issued: `issued a new member certificate: ${renew}` };
  }
  return { on: true, source: 'cluster-ca', ...checkMemberTls(files, now) };
}

/** The CA certificate of the secrets file, checked against its key. */
function clusterCa(secrets: ClusterSecrets, file: string, now: Date): X509Certificate {
  const [cert] = parseCertificates(secrets.tls!.ca_cert, `${file} (tls.ca_cert)`);
  let key;
  try {
    key = createPrivateKey(secrets.tls!.ca_key);
  } catch {
    throw new TlsFileError(file, 'tls.ca_key is corrupt (cannot be parsed)');
  }
  if (!keyMatches(cert!, key)) throw new TlsFileError(file, 'tls.ca_key does not belong to tls.ca_cert');
  if (!cert!.ca) throw new TlsFileError(file, 'tls.ca_cert is not a CA certificate');
  if (now > new Date(cert!.validTo)) throw new TlsFileError(file, `the cluster CA expired on ${new Date(cert!.validTo).toISOString()}`);
  return cert!;
}

/** Why the member's existing certificate should be issued anew, or undefined when it serves. `names`: addresses and DNS names it must carry. */
function renewReason(files: MemberTlsFiles, names: string[], now: Date): string | undefined {
  const [leaf] = readCertificateFile(files.cert);
  const info = certificateInfo(leaf!);
  const left = daysLeft(info, now);
  if (left < 0) return `the old one expired on ${info.notAfter.toISOString()}`;
  if (left < RENEW_DAYS) return `the old one expires in ${left} days`;
  const missing = names.filter((n) => (isIP(n) ? leaf!.checkIP(n) : leaf!.checkHost(n, { wildcards: false })) === undefined);
  if (missing.length > 0) return `the old one does not name ${missing.join(', ')}`;
  return undefined;
}

async function issueInto(files: MemberTlsFiles, ca: X509Certificate, o: EnsureTlsOptions, now: Date): Promise<void> {
  const issued = await issueMemberCert({
    ca: { cert: o.secrets.tls!.ca_cert, key: o.secrets.tls!.ca_key },
    caSource: o.secretsFile,
    memberId: o.memberId,
    clusterName: o.secrets.cluster_name,
    addresses: o.addresses,
    extraSans: o.settings.extraSans,
    days: o.settings.memberDays,
    now,
  });
  // The bundle: the cluster CA and, while the cluster moves to it, the CAs still trusted beside it.
  writeMemberTls(files, { ca: o.secrets.tls!.trusted?.length ? clusterBundle(o.secrets.tls!) : ca.toString(), cert: issued.cert, key: issued.key });
}

/** Secrets with a new cluster CA added (`cluster create`, `cert init-ca`); refuses to replace one. */
export async function withClusterCa(secrets: ClusterSecrets, o: { days?: number; now?: Date } = {}): Promise<ClusterSecrets> {
  if (secrets.tls) throw new Error('the cluster secrets already hold a CA');
  const ca = await createCa({ name: secrets.cluster_name ?? 'hasup', clusterId: secrets.cluster_id, days: o.days ?? CA_DAYS, now: o.now });
  return { ...secrets, tls: { ca_cert: ca.cert, ca_key: ca.key } };
}
