import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApiClient } from '../../src/cli/api-client.js';
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

test('without a recorded CA: STATE_DIR/tls/ca.pem, else the system CAs (which do not know the cluster CA)', async () => {
  writeApiEndpoint(dir, { url, secrets: join(dir, 'secrets.json') });
  await assert.rejects(ApiClient.fromStateDir(dir).request('GET', '/ha'), /does not trust/);
  mkdirSync(join(dir, 'tls'), { recursive: true });
  writeFileSync(join(dir, 'tls', 'ca.pem'), ca.cert);
  assert.deepEqual(await ApiClient.fromStateDir(dir).request('GET', '/ha'), { ok: true });
});
