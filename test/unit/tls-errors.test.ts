import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainErrorCode, explainTlsError } from '../../src/plugins/tls-errors.js';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';

test('a TLS certificate error says which side refused which certificate, and keeps its code; other codes pass as they are', () => {
  assert.equal(explainErrorCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), "the server's certificate is not from a CA this member trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE)");
  assert.match(explainErrorCode('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), /^the server does not trust this member's certificate/);
  assert.match(explainErrorCode('CERT_HAS_EXPIRED'), /expired \(CERT_HAS_EXPIRED\)$/);
  assert.equal(explainErrorCode('ECONNREFUSED'), 'ECONNREFUSED');
});

test("when the other end refused this member's certificate, the error says whether it is out of its dates at the time given", async () => {
  const issued = new Date('2026-01-10T12:00:00Z');
  const ca = await createCa({ name: 'test', now: new Date('2026-01-01T00:00:00Z') });
  const own = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.1'], now: issued, days: 10 });
  const end = new Date(issued.getTime() + 10 * 86_400_000);
  const badCert = 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE';
  assert.equal(
    explainTlsError(badCert, own.cert, new Date(end.getTime() + 1000)),
    `the server refused this member's certificate (${badCert}); this member's certificate expired on ${end.toISOString()}`,
  );
  assert.match(explainTlsError('ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', own.cert, new Date('2027-01-01T00:00:00Z')), /as expired \(ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED\); this member's certificate expired on 2026-01-20T12:00:00\.000Z$/);
  assert.match(explainTlsError(badCert, own.cert, new Date('2026-01-09T00:00:00Z')), /; this member's certificate is not valid until 2026-01-10T11:55:00\.000Z \(check the clocks\)$/);
  // Within its dates, with no certificate, one that does not parse, or another code: the words alone.
  assert.equal(explainTlsError(badCert, own.cert, new Date('2026-01-15T00:00:00Z')), explainErrorCode(badCert));
  assert.equal(explainTlsError(badCert, undefined, new Date('2027-01-01T00:00:00Z')), explainErrorCode(badCert));
  assert.equal(explainTlsError(badCert, 'not a certificate', new Date('2027-01-01T00:00:00Z')), explainErrorCode(badCert));
  assert.equal(explainTlsError('ECONNRESET', own.cert, new Date('2027-01-01T00:00:00Z')), 'ECONNRESET');
});
