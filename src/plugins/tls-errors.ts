import { X509Certificate } from 'node:crypto';

/**
 * Node's TLS error codes in words an operator can act on: which side of a
 * connection refused the other's certificate. The code stays beside the
 * words (it is what a search for the error finds).
 */
const WORDS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is not from a CA this member trusts",
  UNABLE_TO_GET_ISSUER_CERT: "the server's certificate is not from a CA this member trusts",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is not from a CA this member trusts",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate is not from a CA this member trusts",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed, not from a CA this member trusts",
  CERT_HAS_EXPIRED: "the server's certificate has expired",
  CERT_NOT_YET_VALID: "the server's certificate is not valid yet (check the clocks)",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate does not name the address connected to",
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: "the server does not trust this member's certificate (another CA)",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: "the server refused this member's certificate",
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: "the server refused this member's certificate as expired",
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server asks for a client certificate and this member sent none',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the other end does not speak TLS here (clear text?)',
};

/** `code` with what it means when it is a TLS certificate problem, else `code` alone. */
export function explainErrorCode(code: string): string {
  const words = WORDS[code];
  return words ? `${words} (${code})` : code;
}

/** Alerts by which the other end refused the certificate this member presented. */
const OWN_CERT_REFUSED = new Set(['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED']);

/**
 * explainErrorCode, and when the other end refused the certificate this
 * member presented (`ownCert`, PEM), what this member can see wrong with
 * it at `now`: its dates. A server need not say why it refused: etcd 3.4
 * (Go 1.19) answers an expired client certificate with "bad certificate"
 * and logs nothing, so the member's own error is the only place to read it.
 */
export function explainTlsError(code: string, ownCert: string | undefined, now: Date): string {
  const words = explainErrorCode(code);
  if (!ownCert || !OWN_CERT_REFUSED.has(code)) return words;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ownCert);
  } catch {
    return words;
  }
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now.getTime() > to.getTime()) return `${words}; this member's certificate expired on ${to.toISOString()}`;
  if (now.getTime() < from.getTime()) return `${words}; this member's certificate is not valid until ${from.toISOString()} (check the clocks)`;
  return words;
}
