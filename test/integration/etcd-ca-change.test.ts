import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { driverFor } from '../../src/node/drivers.js';
import { textRequest } from '../../src/plugins/http-json.js';
import { applyCaChange, CaChangeRefused, planCaChange, writeCaBundle, type CaChange } from '../../src/supervisor/pki/ca-change.js';
import { createCa, issueMemberCert, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { memberTlsFiles, readMemberTls } from '../../src/supervisor/pki/member-files.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls } from '../../src/supervisor/pki/provision.js';
import { installServiceTls } from '../../src/supervisor/pki/service-copy.js';
import type { ClusterSecrets } from '../../src/supervisor/secrets.js';
import { createHarness, enableTls, freePort, installConfig, killGroup, render, startService, waitFor, type Harness, type RunningService } from '../support/service-harness.js';

/**
 * A new cluster CA against a real etcd 3.4 (docs/tls.md, "A new CA"), the
 * three steps of `hasup cert rotate --new-ca`, `cert rotate`,
 * `--drop-old-ca` as a member runs them (supervisor/pki/ca-change.ts,
 * provision.ts), etcd restarted where the member restarts it:
 *
 * - etcd reads its trusted-ca-file only at start: a bundle with the new CA
 *   written under a running etcd does not let a client of the new CA in
 *   until etcd restarts (why the member restarts it);
 * - after the trust step both CAs' clients get in, and the member's
 *   certificate of the new CA is taken up without a restart;
 * - the old CA cannot be dropped while the member's certificate is of it;
 *   once dropped (and etcd restarted), a client of the old CA is refused.
 */
const ETCD = '/usr/bin/etcd';
const skip = existsSync(ETCD) ? false : `etcd is not installed at ${ETCD} (npm run bootstrap)`;

describe('a new cluster CA under a real etcd', { skip }, () => {
  let h: Harness;
  let server: RunningService | undefined;
  let base = '';
  let oldCa: KeyPairPem;
  let newCa: KeyPairPem;
  let oldClient: KeyPairPem;
  let newClient: KeyPairPem;

  const start = async () => {
    server = startService(h);
    await waitFor('etcd to be healthy over TLS', 20_000, async () => {
      const result = await h.driver.health(h.ctx, AbortSignal.timeout(1500));
      if (result.status !== 'ok') throw new Error(result.message);
      return true;
    }, 100);
  };
  const restart = async () => {
    await server!.stop('SIGTERM');
    await start();
  };
  /** A put over TLS with a client certificate, trusting `ca`: its status, or the error's message. */
  const put = (client: KeyPairPem, ca: string) =>
    textRequest('POST', `${base}/v3/kv/put`, AbortSignal.timeout(5000), { key: Buffer.from('/ca').toString('base64'), value: Buffer.from('x').toString('base64') }, { tls: { ca, cert: client.cert, key: client.key } }).then(
      (r) => r.status,
      (err: Error) => err.message,
    );
  const files = () => memberTlsFiles(h.stateDir);
  const deps = () => ({
    writeSecrets: (tls: NonNullable<ClusterSecrets['tls']>) => {
      h.ctx.secrets = { ...h.ctx.secrets, tls };
    },
    writeBundle: (pem: string) => writeCaBundle(files().ca, pem),
    refreshServices: () => {
      h.ctx.tls = installServiceTls(files(), h.ctx.paths.root, h.ctx.user);
      return Promise.resolve();
    },
    restartNeeded: () => ['etcd'],
    restartAndWait: () => restart(),
    log: () => undefined,
  });

  before(async () => {
    h = createHarness('etcd', driverFor('etcd'), { client_port: await freePort(), peer_port: await freePort(), listen_address: '' });
    await enableTls(h);
    await h.driver.prepare(h.ctx);
    installConfig(h, render(h));
    base = `https://127.0.0.1:${Number(h.ctx.cfg.client_port)}`;
    await start();
    oldCa = { cert: h.ctx.secrets.tls!.ca_cert, key: h.ctx.secrets.tls!.ca_key };
    newCa = await createCa({ name: 'test', label: 'from today' });
    oldClient = await issueMemberCert({ ca: oldCa, memberId: '1111111111111111', addresses: ['127.0.0.1'] });
    newClient = await issueMemberCert({ ca: newCa, memberId: '2222222222222222', addresses: ['127.0.0.1'] });
  });

  after(async () => {
    if (server) {
      killGroup(server.pid, 'SIGKILL');
      await server.exited;
    }
    h?.cleanup();
  });

  test('step 1, trust: the bundle holds both CAs; etcd lets the new CA in only once restarted; the old CA still works', async () => {
    const both = `${oldCa.cert.trim()}\n${newCa.cert.trim()}\n`;
    assert.equal(await put(oldClient, oldCa.cert), 200, 'a client of the old CA before');
    assert.notEqual(await put(newClient, both), 200, 'a client of the new CA before');
    const change: CaChange = { ca_cert: newCa.cert, ca_key: newCa.key, trusted: [oldCa.cert] };
    const plan = planCaChange({ current: h.ctx.secrets.tls!, change, memberFiles: files(), now: new Date() });
    assert.ok(plan.bundleChanged && plan.secretsChanged);
    // What etcd does with a new bundle under it, before the member restarts it.
    writeCaBundle(files().ca, plan.bundle);
    h.ctx.tls = installServiceTls(files(), h.ctx.paths.root, h.ctx.user);
    assert.notEqual(await put(newClient, both), 200, 'etcd reads its trusted-ca-file at start only');
    writeCaBundle(files().ca, `${oldCa.cert.trim()}\n`);
    const result = await applyCaChange(plan, deps());
    assert.deepEqual(result.restarted, ['etcd']);
    assert.equal(await put(newClient, both), 200, 'a client of the new CA once etcd restarted');
    assert.equal(await put(oldClient, both), 200, 'a client of the old CA still');
    assert.equal(readMemberTls(h.ctx.tls!).ca, plan.bundle, "the service's copy holds both");
    // Run again: nothing to do, nothing restarted.
    const again = await applyCaChange(planCaChange({ current: h.ctx.secrets.tls!, change, memberFiles: files(), now: new Date() }), deps());
    assert.deepEqual(again, { changed: false, trusted: plan.fingerprints, restarted: [] });
  });

  test('the old CA cannot be dropped while the member certificate is of it', () => {
    assert.throws(
      () => planCaChange({ current: h.ctx.secrets.tls!, change: { ca_cert: newCa.cert, trusted: [] }, memberFiles: files(), now: new Date() }),
      (err: unknown) => err instanceof CaChangeRefused && err.statusCode === 409 && /would not be trusted by the new CA bundle/.test(err.message),
    );
  });

  test('step 2, cert rotate: a member certificate of the new CA, taken up by etcd without a restart', async () => {
    const pid = server!.pid;
    const tls = await ensureMemberTls({ stateRoot: h.stateDir, memberId: h.ctx.memberId, addresses: [h.ctx.ip], secrets: h.ctx.secrets, secretsFile: join(h.stateDir, 'secrets.json'), settings: DEFAULT_TLS_SETTINGS, renew: 'cert rotate' });
    assert.ok(tls.on);
    assert.match(tls.cert.issuer, /from today/, 'issued by the new CA');
    assert.equal(tls.cas.length, 2, 'the bundle keeps both CAs');
    h.ctx.tls = installServiceTls(tls.files, h.ctx.paths.root, h.ctx.user);
    assert.equal(await put(newClient, newCa.cert), 200, 'a client trusting only the new CA: etcd presents the new certificate');
    assert.notEqual(await put(newClient, oldCa.cert), 200, 'a client trusting only the old CA no longer verifies etcd');
    assert.equal(await put(oldClient, newCa.cert), 200, 'a client of the old CA still gets in');
    assert.equal(server!.pid, pid, 'no restart');
  });

  test('step 3, drop the old CA: etcd restarted, a client of the old CA refused, the new CA served', async () => {
    const plan = planCaChange({ current: h.ctx.secrets.tls!, change: { ca_cert: newCa.cert, trusted: [] }, memberFiles: files(), now: new Date() });
    assert.equal(plan.fingerprints.length, 1);
    const result = await applyCaChange(plan, deps());
    assert.deepEqual(result.restarted, ['etcd']);
    assert.equal(h.ctx.secrets.tls!.trusted, undefined, 'the secrets keep no old CA');
    assert.equal(h.ctx.secrets.tls!.ca_key, newCa.key);
    assert.notEqual(await put(oldClient, newCa.cert), 200, 'a client of the old CA');
    assert.equal(await put(newClient, newCa.cert), 200, 'a client of the new CA');
  });
});
