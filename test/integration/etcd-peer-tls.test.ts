import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient } from '../../src/plugins/etcd/client.js';
import { movePeerUrlsToTls } from '../../src/plugins/etcd/membership.js';
import type { TlsClientOptions } from '../../src/plugins/http-json.js';
import { createCa, issueMemberCert, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { freePort } from '../support/service-harness.js';
import { eventually } from '../support/eventually.js';

/**
 * etcd formed in clear text moving to TLS peer URLs (docs/tls.md, "etcd of
 * a cluster formed in clear text"), against three real etcd 3.4 members on
 * loopback: after `hasup cert init-ca` each member restarts with TLS on its
 * ports (as the plan renders it), one at a time, and moves its own peer
 * URLs to https through its own etcd (movePeerUrlsToTls, what a voter does
 * at start). After each restart the cluster takes writes through every
 * member; at the end every peer URL is https, and a restart of every member
 * in turn still forms a quorum over TLS.
 */
const ETCD = '/usr/bin/etcd';
const skip = existsSync(ETCD) ? false : `etcd is not installed at ${ETCD} (npm run bootstrap)`;

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  tls: boolean;
  proc?: ChildProcess;
  exited?: Promise<void>;
  output: string[];
}

describe('etcd formed in clear text, its peer URLs moved to TLS member by member', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-etcd-peer-tls-'));
  const members: Member[] = [];
  let ca: KeyPairPem;
  const certs = new Map<string, KeyPairPem>();
  const files = (name: string) => ({ ca: join(dir, 'ca.pem'), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) });
  const url = (m: Member, port: number, tls = m.tls) => `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const clientTls = (): TlsClientOptions => ({ ca: ca.cert, cert: certs.get('a')!.cert, key: certs.get('a')!.key });
  const client = (m: Member) => new EtcdClient({ endpoints: () => [url(m, m.clientPort)], timeoutMs: 5000, keepAlive: false, tls: () => (m.tls ? clientTls() : undefined) });

  const start = (m: Member, state: 'new' | 'existing') => {
    const peer = url(m, m.peerPort);
    const f = files(m.name);
    const args = [
      '--name', m.name,
      '--data-dir', join(dir, m.name),
      '--listen-client-urls', url(m, m.clientPort),
      '--advertise-client-urls', url(m, m.clientPort),
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', members.map((o) => `${o.name}=${url(o, o.peerPort, false)}`).join(','),
      '--initial-cluster-state', state,
      '--initial-cluster-token', 'peer-tls-test',
      '--heartbeat-interval', '100',
      '--election-timeout', '1000',
      '--logger', 'zap',
      '--log-level', 'warn',
      ...(m.tls
        ? ['--cert-file', f.cert, '--key-file', f.key, '--trusted-ca-file', f.ca, '--client-cert-auth', '--peer-cert-file', f.cert, '--peer-key-file', f.key, '--peer-trusted-ca-file', f.ca, '--peer-client-cert-auth']
        : []),
    ];
    const proc = spawn(ETCD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => m.output.push(...d.toString('utf8').split('\n').filter(Boolean));
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    m.proc = proc;
    m.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  };
  const stop = async (m: Member) => {
    if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) {
      process.kill(m.proc.pid!, 'SIGTERM');
      await m.exited;
    }
  };
  /** A write through every member, each read back through the next: the cluster has a quorum and every member reaches it. */
  const writesEverywhere = (what: string) =>
    eventually(
      async () => {
        for (const [i, m] of members.entries()) {
          const c = client(m);
          const n = client(members[(i + 1) % members.length]!);
          try {
            await c.put(`/peer-tls/${m.name}`, what);
            if ((await n.get(`/peer-tls/${m.name}`))?.value !== what) return undefined;
          } catch {
            return undefined;
          } finally {
            c.close();
            n.close();
          }
        }
        return true;
      },
      30_000,
      `writes through every member (${what})`,
      250,
    );
  const peerUrls = async () => {
    const c = client(members.find((m) => m.tls) ?? members[0]!);
    try {
      return Object.fromEntries((await c.memberList()).map((m) => [m.name, m.peerUrls.join(',')]));
    } finally {
      c.close();
    }
  };

  before(async () => {
    ca = await createCa({ name: 'peer-tls' });
    writeFileSync(join(dir, 'ca.pem'), ca.cert);
    for (const name of ['a', 'b', 'c']) {
      const cert = await issueMemberCert({ ca, memberId: `${name.repeat(16)}`.slice(0, 16).replace(/[^0-9a-f]/g, 'a'), addresses: ['127.0.0.1'] });
      certs.set(name, cert);
      writeFileSync(files(name).cert, cert.cert);
      writeFileSync(files(name).key, cert.key, { mode: 0o600 });
      members.push({ name, clientPort: await freePort(), peerPort: await freePort(), tls: false, output: [] });
    }
    for (const m of members) start(m, 'new');
    await writesEverywhere('clear text');
  });

  after(async () => {
    for (const m of members) await stop(m).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('each member restarted with TLS moves its own peer URL; the cluster takes writes through every member after each', async () => {
    assert.deepEqual(Object.values(await peerUrls()).filter((u) => u.startsWith('https')), [], 'formed with clear-text peer URLs');
    for (const m of members) {
      await stop(m);
      m.tls = true;
      start(m, 'existing');
      // etcd keeps the peer URL of its data, whatever the flags of the restart say.
      const before = await eventually(async () => (await peerUrls().catch(() => undefined))?.[m.name], 20_000, `${m.name} answering over TLS`);
      assert.equal(before, url(m, m.peerPort, false), `${m.name}'s peer URL in etcd is still clear text after its restart with TLS`);
      const c = client(m);
      try {
        const moved = await eventually(async () => movePeerUrlsToTls(c, m.name, url(m, m.peerPort, true)).catch(() => undefined), 20_000, `${m.name} moving its peer URL`);
        assert.deepEqual(moved?.to, [url(m, m.peerPort, true)]);
        assert.equal(await movePeerUrlsToTls(c, m.name, url(m, m.peerPort, true)), undefined, 'nothing to move a second time');
      } finally {
        c.close();
      }
      assert.equal((await peerUrls())[m.name], url(m, m.peerPort, true));
      await writesEverywhere(`after ${m.name}`);
    }
  });

  test('every peer URL https; each member restarted in turn rejoins over TLS', async () => {
    const urls = await peerUrls();
    assert.deepEqual(Object.keys(urls).sort(), ['a', 'b', 'c']);
    assert.ok(Object.values(urls).every((u) => u.startsWith('https://')), JSON.stringify(urls));
    for (const m of members) {
      await stop(m);
      start(m, 'existing');
      await writesEverywhere(`${m.name} restarted over TLS`);
    }
  });
});
