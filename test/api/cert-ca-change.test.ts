/**
 * A new cluster CA on one real `hasup run` with PostgreSQL under it
 * (docs/tls.md, "A new CA"): `hasup cert rotate --new-ca`, `cert rotate`,
 * `cert rotate --drop-old-ca` through the daemon's POST /tls/ca and
 * /tls/renew. The member's bundle, secrets file and served certificates
 * after each step; the drop refused before the member has a certificate of
 * the new CA; a bad request refused with nothing changed; PostgreSQL never
 * restarted.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import pg from 'pg';
import { ApiNode, eventually } from './api-node.js';
import { tlsRequest } from '../support/tls-request.js';

const node = new ApiNode({ index: 37, postgresql: true, tls: true });
const caFile = () => join(node.stateDir, 'tls', 'ca.pem');
const bundle = () => readFileSync(caFile(), 'utf8');
const cas = () => bundle().match(/BEGIN CERTIFICATE/g)?.length ?? 0;
const secrets = () => JSON.parse(readFileSync(node.secretsFile, 'utf8')) as { tls: { ca_cert: string; ca_key: string; trusted?: string[] } };
const get = (path: string, ca: string) => tlsRequest(`${node.url}${path}`, { token: node.token, tls: { ca } });
/** The fingerprint of the certificate the API serves, unverified. */
const served = () =>
  new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: node.addr, port: node.httpPort, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.end();
    });
    s.once('error', reject);
  });
const pgSession = async (ca: string) => {
  const c = new pg.Client({ host: node.addr, port: node.pgPort, user: 'hasup', password: JSON.parse(readFileSync(node.secretsFile, 'utf8')).postgresql.superuser_password as string, database: 'postgres', ssl: { ca } });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<{ t: string }>('SELECT pg_postmaster_start_time()::text AS t')).rows[0]!.t;
  } finally {
    await c.end();
  }
};

let oldCa = '';
let pgStarted = '';

before(async () => {
  await node.start();
  await eventually(async () => ((await node.status('/primary')) === 200 ? true : undefined), 120_000, '/primary 200');
  oldCa = secrets().tls.ca_cert;
  pgStarted = await pgSession(oldCa);
});

after(() => node.stop());

test('--new-ca: the member trusts both CAs, keeps its certificate, its secrets file holds the new CA and the old one as trusted', async () => {
  const before = await served();
  const r = node.cli('cert', 'rotate', '--new-ca');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /new cluster CA: .*hasup cluster CA .* from \d{4}-\d\d-\d\d/);
  assert.match(r.stdout, /1 member trusts both CAs/);
  assert.ok(!r.stdout.includes('PRIVATE KEY') && !r.stderr.includes('PRIVATE KEY'));
  assert.equal(cas(), 2);
  const s = secrets();
  assert.notEqual(s.tls.ca_cert, oldCa);
  assert.deepEqual(s.tls.trusted?.map((c) => c.trim()), [oldCa.trim()]);
  assert.equal(statSync(node.secretsFile).mode & 0o777, 0o600);
  assert.equal(await served(), before, 'the same certificate served');
  const tls = (await get('/tls', bundle())).json<{ certificates: Array<{ what: string }> }>();
  assert.equal(tls.certificates.filter((c) => c.what === 'CA').length, 2);
  // Run again: the same CA, nothing changed.
  const again = node.cli('cert', 'rotate', '--new-ca');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /a CA change is under way .*continuing it/);
  assert.match(again.stdout, /already trusted 2 CAs/);
  assert.equal(secrets().tls.ca_cert, s.tls.ca_cert);
});

test('refused with nothing changed: the drop before the member has a certificate of the new CA, a bad request', async () => {
  const before = readFileSync(node.secretsFile, 'utf8');
  const drop = node.cli('cert', 'rotate', '--drop-old-ca');
  assert.notEqual(drop.status, 0);
  assert.match(drop.stderr, /would not take the change: .*give it a certificate of the new CA first.*nothing changed on any member/);
  const bad = await tlsRequest(`${node.url}/tls/ca`, { method: 'POST', token: node.token, tls: { ca: bundle() }, body: { ca_cert: secrets().tls.ca_cert, ca_key: 'not a key', trusted: [] } });
  assert.equal(bad.status, 400);
  assert.match(bad.text, /ca_key is not the key of this member's cluster CA/);
  assert.equal(readFileSync(node.secretsFile, 'utf8'), before);
  assert.equal(cas(), 2);
});

test('cert rotate issues from the new CA, --drop-old-ca leaves it alone; PostgreSQL serves it, never restarted', async () => {
  const newCa = secrets().tls.ca_cert;
  const r = node.cli('cert', 'rotate');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /1 member renewed/);
  assert.equal((await get('/tls', newCa)).status, 200, 'the API verifies against the new CA alone');
  assert.equal(await pgSession(newCa), pgStarted, 'PostgreSQL verifies against the new CA alone, same postmaster');
  const d = node.cli('cert', 'rotate', '--drop-old-ca');
  assert.equal(d.status, 0, d.stderr);
  assert.match(d.stdout, /1 member trusts the new CA only/);
  assert.equal(cas(), 1);
  assert.equal(secrets().tls.trusted, undefined);
  assert.equal(secrets().tls.ca_cert, newCa);
  await assert.rejects(get('/tls', oldCa), /certificate|verify/i, 'a client of the old CA alone no longer verifies the API');
  assert.equal(await pgSession(newCa), pgStarted);
});
