import { readMemberTls, type MemberTlsFiles } from '../../supervisor/pki/member-files.js';
import type { TlsClientOptions } from '../http-json.js';

/**
 * etcd under TLS (docs/tls.md): every member's etcd serves its client and
 * peer ports over TLS and asks for a certificate from the cluster CA on
 * both (client-cert-auth, peer-client-cert-auth), so hasup's etcd clients
 * present the member's own. A member's TLS is on or off for all its links:
 * the URLs of every voter take this member's scheme.
 */
export function etcdScheme(tls: boolean): 'http' | 'https' {
  return tls ? 'https' : 'http';
}

/** An etcd client's TLS options from a member's files (or a service's copy of them); undefined when TLS is off. */
export function etcdClientTls(files: MemberTlsFiles | undefined): TlsClientOptions | undefined {
  return files ? readMemberTls(files) : undefined;
}
