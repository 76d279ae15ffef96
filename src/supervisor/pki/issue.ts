import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { TlsFileError } from './inspect.js';

/**
 * Making certificates: the cluster CA and each member's certificate, with
 * @peculiar/x509 on Node's WebCrypto (no openssl child process, no
 * node-forge). The library is imported on first use only: a daemon whose
 * certificates exist never loads it.
 *
 * Keys are ECDSA P-256 with SHA-256 (docs/tls.md says why: every server in
 * the cluster takes them, PostgreSQL's OpenSSL, etcd's Go, Elasticsearch's
 * JSSE, HAProxy and Node; a key is made in milliseconds and a handshake
 * signs faster than with RSA-2048, at the same 128-bit strength).
 */

export interface KeyPairPem {
  /** PEM certificate. */
  cert: string;
  /** PEM PKCS#8 private key ("BEGIN PRIVATE KEY"), which every service reads. */
  key: string;
}

export const CA_DAYS = 3650;
export const MEMBER_DAYS = 365;
/** A member certificate starts this much before its issue, so a member whose clock is a little behind the issuer's takes it. */
const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** The DNS name a member's certificate carries besides its addresses: its 16-hex-digit id under member.hasup. */
export function memberDnsName(memberId: string): string {
  return `${memberId}.member.hasup`;
}

/** The loopback addresses every member certificate also names: the member's own tools reach its services there. */
export const LOOPBACK_SANS = ['127.0.0.1', '::1'];

function lib() {
  return import('./x509-lib.js');
}

/** A positive 128-bit serial, as RFC 5280 asks (at most 20 octets, no sign bit). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

function checkDays(days: number, what: string): void {
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new Error(`${what} must be a whole number of days from 1 to 36500, got ${days}`);
}

/** A new cluster CA, self-signed, valid `days` days from `now`; `name` goes into its subject. */
export async function createCa(o: { name: string; clusterId?: string; days?: number; now?: Date; /** Ends the CN, so a second CA of the same cluster (cert rotate --new-ca) is told apart from the first. */ label?: string }): Promise<KeyPairPem> {
  const days = o.days ?? CA_DAYS;
  checkDays(days, 'the CA validity');
  const { x509, subtle } = await lib();
  const now = o.now ?? new Date();
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [`hasup cluster CA ${o.name}${o.clusterId ? ` ${o.clusterId}` : ''}${o.label ? ` ${o.label}` : ''}`] }, { O: ['hasup'] }],
    notBefore: now,
    notAfter: new Date(now.getTime() + days * DAY_MS),
    keys,
    signingAlgorithm: EC,
    extensions: [
      // pathLen 0: it signs member certificates only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey) };
}

export interface MemberCertRequest {
  /** The CA that signs (the cluster CA from the secrets file). */
  ca: KeyPairPem;
  /** Where the CA came from, for errors (the secrets file). */
  caSource?: string;
  memberId: string;
  clusterName?: string;
  /** The member's advertised address(es): IP SANs, since every link in the cluster connects by address. */
  addresses: string[];
  /** More names for the certificate (IP addresses or DNS names), e.g. the load balancer's address clients connect to. */
  extraSans?: string[];
  days?: number;
  now?: Date;
}

/**
 * A member's key and certificate: subject CN = member id, SANs = its
 * addresses, loopback, `<id>.member.hasup` and any extra names; good for
 * both ends of a TLS connection (serverAuth and clientAuth), since members
 * are servers to each other and clients of each other. It never outlives
 * its CA.
 */
export async function issueMemberCert(req: MemberCertRequest): Promise<KeyPairPem> {
  const days = req.days ?? MEMBER_DAYS;
  checkDays(days, 'the member certificate validity');
  if (!/^[0-9a-f]{16}$/.test(req.memberId)) throw new Error(`member id must be 16 hex digits, got "${req.memberId}"`);
  if (req.addresses.length === 0) throw new Error('a member certificate needs at least one address');
  for (const a of req.addresses) if (!isIP(a)) throw new Error(`"${a}" is not an IP address (a member certificate names the addresses it is reached at)`);
  const names = [...req.addresses, ...LOOPBACK_SANS, memberDnsName(req.memberId), ...(req.extraSans ?? [])];
  for (const n of req.extraSans ?? []) {
    if (!isIP(n) && !/^(?=.{1,253}$)([A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(n)) {
      throw new Error(`"${n}" is neither an IP address nor a DNS name`);
    }
  }
  const unique = [...new Set(names)];
  return signLeaf(req, days, [{ CN: [req.memberId] }, { O: ['hasup'] }, ...(req.clusterName ? [{ OU: [req.clusterName] }] : [])], unique.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })));
}

/**
 * A certificate signed by the cluster CA for serverAuth and clientAuth,
 * with a fresh P-256 key: `subject`, the SANs given, valid for `days` from
 * five minutes before now but never past the CA's own end.
 */
async function signLeaf(
  req: { ca: { cert: string; key: string }; caSource?: string; now?: Date },
  days: number,
  subject: Array<Record<string, string[]>>,
  sans: Array<{ type: 'ip' | 'dns'; value: string }>,
): Promise<KeyPairPem> {
  const { x509, subtle } = await lib();
  let caCert: InstanceType<typeof x509.X509Certificate>;
  try {
    caCert = new x509.X509Certificate(req.ca.cert);
  } catch {
    throw new TlsFileError(req.caSource ?? 'the cluster CA', 'the cluster CA certificate is corrupt');
  }
  const caKey = await importCaKey(req.ca.key, req.caSource ?? 'the cluster CA');
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = req.now ?? new Date();
  const notAfter = new Date(Math.min(now.getTime() + days * DAY_MS, caCert.notAfter.getTime()));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(sans),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey) };
}

async function exportKey(key: CryptoKey): Promise<string> {
  const { x509, subtle } = await lib();
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** The cluster CA's key from the secrets file (PKCS#8, P-256). */
async function importCaKey(pem: string, source: string): Promise<CryptoKey> {
  const { x509, subtle } = await lib();
  let der: ArrayBuffer;
  try {
    der = x509.PemConverter.decodeFirst(pem);
  } catch {
    throw new TlsFileError(source, 'the cluster CA key is not PEM');
  }
  try {
    return await subtle.importKey('pkcs8', der, EC, false, ['sign']);
  } catch {
    throw new TlsFileError(source, 'the cluster CA key is not an ECDSA P-256 private key in PKCS#8');
  }
}

export interface RoleCertRequest {
  ca: KeyPairPem;
  caSource?: string;
  /** The subject CN, the same on every member (a server that authorizes clients by CN names it once). */
  commonName: string;
  /**
   * The member's addresses, each as an IP SAN and also as a DNS SAN of the
   * same text: pgBackRest 2.45's TLS client compares the host it was given
   * with the DNS names (and the CN) of the server's certificate only, never
   * its IP SANs, so a server reached by address must carry it as a name too.
   */
  addresses: string[];
  days?: number;
  now?: Date;
}

/**
 * A certificate for one role a member plays beside its member certificate
 * (the pgBackRest TLS server and its clients: src/plugins/backup/server-tls.ts):
 * subject CN = `commonName`, O=hasup; the addresses as IP and DNS SANs;
 * serverAuth and clientAuth. It never outlives its CA.
 */
export async function issueRoleCert(req: RoleCertRequest): Promise<KeyPairPem> {
  const days = req.days ?? MEMBER_DAYS;
  checkDays(days, 'the certificate validity');
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/.test(req.commonName)) throw new Error(`"${req.commonName}" is not a plain name for a certificate's CN`);
  if (req.addresses.length === 0) throw new Error('a role certificate needs at least one address');
  for (const a of req.addresses) if (!isIP(a)) throw new Error(`"${a}" is not an IP address`);
  const addresses = [...new Set(req.addresses)];
  return signLeaf(req, days, [{ CN: [req.commonName] }, { O: ['hasup'] }], [...addresses.map((a) => ({ type: 'ip' as const, value: a })), ...addresses.map((a) => ({ type: 'dns' as const, value: a }))]);
}
