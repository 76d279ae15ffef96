import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApiClient, unreachable } from '../../src/cli/api-client.js';
import { writeApiEndpoint } from '../../src/node/api-endpoint.js';
import { createCa, issueMemberCert, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { generateSecrets, writeSecretsFile } from '../../src/supervisor/secrets.js';

/** The CLI reaches the daemon over HTTPS and verifies it against the CA the daemon recorded in api.json (docs/tls.md). */
const dir = mkdtempSync(join(tmpdir(), 'hasup-apiclient-'));
const secrets = generateSecrets();
let ca: KeyPairPem;
let server: Server;
let url = '';
const seen: string[] = [];

before(async () => {
  ca = await createCa({ name: 'test' });
  // A certificate for 127.0.0.2 names loopback 127.0.0.1 too, but not 127.0.0.3.
  const member = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.2'] });
  server = createServer({ cert: member.cert, key: member.key }, (req, res) => {
    seen.push(`${req.url} ${req.headers.authorization === `Bearer ${secrets.api_token}` ? 'token' : 'no token'}`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  url = `https://127.0.0.2:${(server.address() as AddressInfo).port}`;
  writeSecretsFile(join(dir, 'secrets.json'), secrets);
  writeFileSync(join(dir, 'ca.pem'), ca.cert);
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('verified against the recorded CA, with the token', async () => {
  writeApiEndpoint(dir, { url, secrets: join(dir, 'secrets.json'), ca: join(dir, 'ca.pem') });
  assert.deepEqual(await ApiClient.fromStateDir(dir).request('GET', '/ha'), { ok: true });
  assert.deepEqual(seen.at(-1), '/ha token');
});

test('a server whose certificate another CA signed, or that does not name the address, is refused with the reason', async () => {
  const other = await createCa({ name: 'other' });
  writeFileSync(join(dir, 'other.pem'), other.cert);
  writeApiEndpoint(dir, { url, secrets: join(dir, 'secrets.json'), ca: join(dir, 'other.pem') });
  const before = seen.length;
  await assert.rejects(ApiClient.fromStateDir(dir).request('GET', '/ha'), /presented a certificate this client does not trust \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/);
  writeApiEndpoint(dir, { url: url.replace('127.0.0.2', '127.0.0.3'), secrets: join(dir, 'secrets.json'), ca: join(dir, 'ca.pem') });
  await assert.rejects(ApiClient.fromStateDir(dir).request('GET', '/ha'), /does not trust \(ERR_TLS_CERT_ALTNAME_INVALID/);
  assert.equal(seen.length, before, 'no request reached the server, and so no token left the client');
});

test('a server whose certificate of the recorded CA has expired is refused before the token is sent, and the error says it expired', async () => {
  // Valid for one day, forty days ago: signed by the cluster CA, naming the address, expired today.
  const expired = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.2'], now: new Date(Date.now() - 40 * 86_400_000), days: 1 });
  const stale = createServer({ cert: expired.cert, key: expired.key }, (req, res) => {
    seen.push(`${req.url} ${req.headers.authorization === `Bearer ${secrets.api_token}` ? 'token' : 'no token'}`);
    res.end('{}');
  });
  await new Promise<void>((r) => stale.listen(0, '127.0.0.2', r));
  try {
    const staleUrl = `https://127.0.0.2:${(stale.address() as AddressInfo).port}`;
    writeApiEndpoint(dir, { url: staleUrl, secrets: join(dir, 'secrets.json'), ca: join(dir, 'ca.pem') });
    const before = seen.length;
    await assert.rejects(
      ApiClient.fromStateDir(dir).request('GET', '/ha'),
      new RegExp(`the hasup daemon at ${staleUrl.replace(/\./g, '\\.')} presented a certificate that has expired \\(CERT_HAS_EXPIRED: certificate has expired\\); restarting that member's hasup issues it a new one`),
    );
    assert.equal(seen.length, before, 'no request reached the server, and so no token left the client');
  } finally {
    stale.close();
  }
  const early = Object.assign(new Error('certificate is not yet valid'), { code: 'CERT_NOT_YET_VALID' });
  assert.match(unreachable('https://10.0.0.7:9631', early), /presented a certificate that is not valid yet \(check the clocks\) \(CERT_NOT_YET_VALID: certificate is not yet valid\)/);
});

test('without a recorded CA: STATE_DIR/tls/ca.pem, else the system CAs (which do not know the cluster CA)', async () => {
  writeApiEndpoint(dir, { url, secrets: join(dir, 'secrets.json') });
  await assert.rejects(ApiClient.fromStateDir(dir).request('GET', '/ha'), /does not trust/);
  mkdirSync(join(dir, 'tls'), { recursive: true });
  writeFileSync(join(dir, 'tls', 'ca.pem'), ca.cert);
  assert.deepEqual(await ApiClient.fromStateDir(dir).request('GET', '/ha'), { ok: true });
});
