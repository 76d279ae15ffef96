import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { driverFor } from '../../src/node/drivers.js';
import { EtcdClient } from '../../src/plugins/etcd/client.js';
import { etcdClientTls } from '../../src/plugins/etcd/tls.js';
import { textRequest } from '../../src/plugins/http-json.js';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';
import { readMemberTls, writeMemberTls } from '../../src/supervisor/pki/member-files.js';
import { createHarness, enableTls, freePort, installConfig, killGroup, render, startService, waitFor, type Harness, type RunningService } from '../support/service-harness.js';

/**
 * etcd with the member's certificate (docs/tls.md), against a real etcd
 * 3.4: client and peer TLS asking for a client certificate, no auto-TLS;
 * hasup's client presents the member's certificate and verifies etcd's; a
 * client without a certificate, with one of another CA, trusting another
 * CA, or in clear text gets nothing; nor does a client presenting an
 * expired certificate of the cluster CA, and hasup's client refuses an
 * etcd serving one.
 */
const ETCD = '/usr/bin/etcd';
const skip = existsSync(ETCD) ? false : `etcd is not installed at ${ETCD} (npm run bootstrap)`;

describe('etcd over TLS against a real server', { skip }, () => {
  let h: Harness;
  let server: RunningService | undefined;
  let base = '';

  before(async () => {
    h = createHarness('etcd', driverFor('etcd'), { client_port: await freePort(), peer_port: await freePort(), listen_address: '' });
    await enableTls(h);
    await h.driver.prepare(h.ctx);
    installConfig(h, render(h));
    server = startService(h);
    base = `https://127.0.0.1:${Number(h.ctx.cfg.client_port)}`;
    await waitFor('etcd to be healthy over TLS', 20_000, async () => {
      const result = await h.driver.health(h.ctx, AbortSignal.timeout(1500));
      if (result.status !== 'ok') throw new Error(result.message);
      return true;
    }, 100);
  });

  after(async () => {
    if (server) {
      killGroup(server.pid, 'SIGKILL');
      await server.exited;
    }
    h?.cleanup();
  });

  test('the config: https URLs, the service copy of the member files, client-cert-auth on both ports, no auto-TLS', () => {
    const yml = render(h).get('etcd.yml')!;
    assert.match(yml, /^listen-client-urls: 'https:\/\/127\.0\.0\.1:\d+'$/m);
    assert.match(yml, /^initial-advertise-peer-urls: 'https:\/\/127\.0\.0\.1:\d+'$/m);
    assert.match(yml, new RegExp(`^initial-cluster: '${h.ctx.memberId}=https://127\\.0\\.0\\.1:${h.ctx.cfg.peer_port}'$`, 'm'));
    assert.equal(yml.match(/client-cert-auth: true/g)?.length, 2);
    assert.equal(yml.match(/auto-tls: false/g)?.length, 2);
    assert.ok(yml.includes(`cert-file: '${h.ctx.tls!.cert}'`) && yml.includes(`trusted-ca-file: '${h.ctx.tls!.ca}'`));
  });

  test("hasup's client presents the member certificate and verifies etcd's: put and get, kept-alive and not", async () => {
    for (const keepAlive of [true, false]) {
      const client = new EtcdClient({ endpoints: () => [base], timeoutMs: 5000, keepAlive, tls: () => etcdClientTls(h.ctx.tls) });
      try {
        await client.put(`/tls/${keepAlive}`, 'over TLS');
        assert.equal((await client.get(`/tls/${keepAlive}`))?.value, 'over TLS');
      } finally {
        client.close();
      }
    }
  });

  test('refused: no client certificate, a certificate of another CA, a client trusting another CA, clear text', async () => {
    const own = readMemberTls(h.ctx.tls!);
    const other = await createCa({ name: 'other' });
    const foreign = await issueMemberCert({ ca: other, memberId: 'fedcba9876543210', addresses: ['127.0.0.1'] });
    const call = (url: string, tls?: { ca: string; cert?: string; key?: string }) => textRequest('POST', `${url}/v3/kv/range`, AbortSignal.timeout(5000), { key: Buffer.from('/tls/true').toString('base64') }, tls ? { tls } : {});
    await assert.rejects(call(base, { ca: own.ca }), /certificate required|bad certificate|socket hang up|ECONNRESET/i, 'no client certificate');
    await assert.rejects(call(base, { ca: own.ca, cert: foreign.cert, key: foreign.key }), /bad certificate|unknown ca|certificate|ECONNRESET|socket hang up/i, 'a certificate of another CA');
    await assert.rejects(call(base, { ca: other.cert, cert: own.cert, key: own.key }), /self.signed certificate|unable to verify/i, 'trusting another CA');
    const clear = await call(base.replace('https:', 'http:')).then((r) => r.status, (err: Error) => err.message);
    assert.notEqual(clear, 200, 'no answer in clear text');
  });

  test('an expired certificate of the cluster CA: a client presenting one is refused (a valid one of the same CA is served), and hasup refuses an etcd serving one', async () => {
    const own = readMemberTls(h.ctx.tls!);
    const ca = { cert: h.ctx.secrets.tls!.ca_cert, key: h.ctx.secrets.tls!.ca_key };
    // Valid for one day, forty days ago: signed by the cluster CA, expired today.
    const expired = await issueMemberCert({ ca, memberId: 'fedcba9876543210', addresses: ['127.0.0.1'], now: new Date(Date.now() - 40 * 86_400_000), days: 1 });
    const fresh = await issueMemberCert({ ca, memberId: 'fedcba9876543210', addresses: ['127.0.0.1'] });
    assert.ok(new X509Certificate(expired.cert).checkIssued(new X509Certificate(ca.cert)) && new Date(new X509Certificate(expired.cert).validTo) < new Date());
    const call = (tls: { ca: string; cert?: string; key?: string }) => textRequest('POST', `${base}/v3/kv/range`, AbortSignal.timeout(5000), { key: Buffer.from('/tls/true').toString('base64') }, { tls });
    assert.equal((await call({ ca: own.ca, cert: fresh.cert, key: fresh.key })).status, 200, 'a valid certificate of the cluster CA');
    await assert.rejects(call({ ca: own.ca, cert: expired.cert, key: expired.key }), /bad certificate|certificate expired|ECONNRESET|socket hang up/i, 'an expired certificate of the cluster CA');
    // etcd 3.4 answers "bad certificate" and logs nothing: hasup's client says what is wrong with the certificate it sent.
    const client = (tls: { ca: string; cert: string; key: string }) => new EtcdClient({ endpoints: () => [base], timeoutMs: 5000, keepAlive: false, tls: () => tls });
    const withExpired = client({ ca: own.ca, cert: expired.cert, key: expired.key });
    try {
      await assert.rejects(withExpired.get('/tls/true'), /the server refused this member's certificate \(ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE\); this member's certificate expired on \d{4}-\d\d-\d\dT/);
    } finally {
      withExpired.close();
    }

    // etcd reads its certificate at each handshake: serving the expired one from now on.
    writeMemberTls(h.ctx.tls!, { ca: own.ca, cert: expired.cert, key: expired.key }, h.ctx.user);
    const trusting = client(own);
    try {
      await assert.rejects(trusting.get('/tls/true'), /the server's certificate has expired \(CERT_HAS_EXPIRED\)/);
    } finally {
      trusting.close();
      writeMemberTls(h.ctx.tls!, own, h.ctx.user);
    }
    const again = client(own);
    try {
      assert.equal((await again.get('/tls/true'))?.value, 'over TLS', 'its own certificate back: served again');
    } finally {
      again.close();
    }
  });
});
