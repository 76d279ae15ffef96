import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainErrorCode } from '../../src/plugins/tls-errors.js';

test('a TLS certificate error says which side refused which certificate, and keeps its code; other codes pass as they are', () => {
  assert.equal(explainErrorCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), "the server's certificate is not from a CA this member trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE)");
  assert.match(explainErrorCode('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), /^the server does not trust this member's certificate/);
  assert.match(explainErrorCode('CERT_HAS_EXPIRED'), /expired \(CERT_HAS_EXPIRED\)$/);
  assert.equal(explainErrorCode('ECONNREFUSED'), 'ECONNREFUSED');
});
