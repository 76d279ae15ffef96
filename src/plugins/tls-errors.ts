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
