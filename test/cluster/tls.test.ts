/**
 * Every link encrypted and authenticated (docs/tls.md), on three namespace
 * nodes formed by `cluster create` and two `cluster join`s behind HAProxy:
 *
 * - the bridge's traffic, captured with tcpdump while rows carrying a
 *   marker are written through HAProxy, replicated, and the cluster is read
 *   over the API (and etcd's lease traffic runs all along), and while the
 *   marker, logged by each node's PostgreSQL, is shipped by nodes 2 and 3
 *   into node 1's Elasticsearch (security on: HTTPS and hasup's users) and
 *   found by the console's log search, holds neither the marker, nor a
 *   PostgreSQL or Elasticsearch password, nor the API or viewer token;
 *   a control string sent in clear text across the same bridge is found,
 *   so the capture did see the traffic; Elasticsearch answers nothing in
 *   clear text;
 * - a fourth member whose certificate comes from another CA ([tls] with
 *   the operator's files) cannot reach etcd, replicate, ship into
 *   Elasticsearch, or have its API believed: the CLI refuses it, and every
 *   failure is named in its log;
 * - `hasup cert rotate` under writes through HAProxy: no failed write beyond
 *   HAProxy's reconnects, no leader change, every link serving the new
 *   certificate afterwards.
 *
 * Elasticsearch runs on node 1 only, its transport on the namespace's
 * loopback (docs/elasticsearch.md: this machine cannot pass its bootstrap
 * checks on another address); every node ships into it over the bridge.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import pg from 'pg';
import type { LogPage } from '../../src/plugins/http/console/es-queries.js';
import { esPasswords } from '../../src/plugins/elasticsearch/users.js';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';
import { memberTlsFiles, writeMemberTls } from '../../src/supervisor/pki/member-files.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster, hasupIn, API_PORT, ES_HTTP_PORT, ETCD_CLIENT_PORT, PG_PORT } from '../support/ha-cluster.js';
import { WriteChecker } from '../support/write-checker.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed') ??
  (spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0 ? null : 'Java (for Elasticsearch) is not installed') ??
  (spawnSync('tcpdump', ['--version'], { stdio: 'ignore' }).status === 0 ? null : 'tcpdump is not installed (npm run bootstrap)');

/** The certificate a TLS server at HOST:PORT presents (its SHA-256 fingerprint), or why none came. */
function servedFingerprint(host: string, port: number, starttlsPostgres = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = (socket: import('node:net').Socket) => {
      const tls = tlsConnect({ socket, rejectUnauthorized: false }, () => {
        const cert = tls.getPeerX509Certificate();
        tls.destroy();
        if (cert) resolve(cert.fingerprint256);
        else reject(new Error('no certificate'));
      });
      tls.once('error', reject);
    };
    const raw = tcpConnect({ host, port }, () => {
      if (!starttlsPostgres) return done(raw);
      // PostgreSQL's SSLRequest: length 8, code 80877103; the server answers 'S' before the handshake.
      raw.write(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]));
      raw.once('data', (b: Buffer) => (b[0] === 0x53 ? done(raw) : reject(new Error(`PostgreSQL answered ${b[0]} to the SSLRequest`))));
    });
    raw.once('error', reject);
    raw.setTimeout(5000, () => raw.destroy(new Error('no answer in 5 s')));
  });
}

describe('TLS on every link: a capture of the bridge, a member of another CA, cert rotate under writes', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  let leader = 0;

  before(async () => {
    // Elasticsearch with its security on node 1; every node ships into it (node 4 tries, with a certificate of another CA).
    ha = await HaCluster.create({ nodes: 4, elasticsearch: { security: true } });
    for (const i of [1, 2, 3, 4]) appendFileSync(ha.configFile(i), '\n[shipping]\nenabled = true\nflush_interval_ms = 500\njournal = false\n');
    // Node 4 presents a certificate of another CA, as an operator's own files would: prepared by cluster join like the others, then given those.
    const foreignDir = join(ha.cluster.baseDir, 'foreign-ca');
    mkdirSync(foreignDir, { recursive: true });
    const foreign = await createCa({ name: 'foreign' });
    const memberId = readFileSync(join(ha.cluster.node(4).stateDir, 'member-id'), 'utf8').trim();
    const cert = await issueMemberCert({ ca: foreign, memberId, addresses: [ha.address(4)] });
    const files = memberTlsFiles(foreignDir);
    writeMemberTls(files, { ca: foreign.cert, cert: cert.cert, key: cert.key });
    appendFileSync(ha.configFile(4), `\n[tls]\nca_file = ${JSON.stringify(files.ca)}\ncert_file = ${JSON.stringify(files.cert)}\nkey_file = ${JSON.stringify(files.key)}\n`);
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.startHaproxy();
    // ha.whole() would start node 4 too: wait for nodes 1-3 alone (one leader, two streaming followers, three etcd voters).
    const { value } = await eventually(
      async () => {
        const p = (await ha.primaries()).filter((i) => i !== 4);
        if (p.length !== 1) return undefined;
        const rows = await ha.sql<{ n: number }>(p[0]!, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
        const voters = await Promise.all([1, 2, 3].map((i) => ha.etcdStatus(i).catch(() => undefined)));
        return rows[0]!.n === 2 && voters.every((v) => v && v.leaderId !== '' && v.leaderId !== '0') ? p[0] : undefined;
      },
      180_000,
      'one leader on nodes 1-3, two followers streaming, three etcd voters',
      500,
    );
    leader = value;
  });

  // A failed test keeps every member's log (the cluster's own directory goes with it).
  destroyAfterSuite('tls', () => [[ha, 'tls']]);

  /** The one writable leader; if there is none within 10 s, an error with what each of nodes 1-3 answers (/primary, its /ha view). */
  async function soleLeaderOrWhy(): Promise<number> {
    return ha.soleLeader(10_000).catch(async (err: unknown) => {
      const seen = await Promise.all(
        [1, 2, 3].map(async (i) => {
          const v = await ha.view(i).catch((e: Error) => e.message);
          const summary = typeof v === 'string' ? v : { leader: v.leader, members: v.members.map((m) => ({ member: m.member, role: m.role, state: m.replication_state })) };
          return `node ${i}: /primary ${await ha.check(i, '/primary')}, /ha ${JSON.stringify(summary)}`;
        }),
      );
      throw new Error(`${(err as Error).message}\n${seen.join('\n')}`);
    });
  }

  test('the bridge carries no marker, password or token in clear text; a clear-text control string is seen', async () => {
    const marker = `hasup-marker-${randomBytes(8).toString('hex')}`;
    const control = `hasup-control-${randomBytes(8).toString('hex')}`;
    const pcap = join(ha.cluster.baseDir, 'bridge.pcap');
    rmSync(pcap, { force: true });
    const dump: ChildProcess = spawn('tcpdump', ['-i', ha.cluster.bridgeName, '-U', '-s', '0', '-w', pcap, 'ip'], { stdio: ['ignore', 'ignore', 'pipe'] });
    ha.cluster.adoptHostProcess(dump);
    let dumpErr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${dumpErr}`)), 10_000);
      dump.stderr!.on('data', (d: Buffer) => {
        dumpErr += d.toString();
        if (dumpErr.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });

    // Rows with the marker through HAProxy (TLS to the leader end to end), replicated to the followers.
    const ca = ha.secrets.tls!.ca_cert;
    const client = new pg.Client({ ...ha.haproxyTarget, user: 'hasup', password: ha.secrets.postgresql.superuser_password, database: 'postgres', ssl: { ca, checkServerIdentity: () => undefined } });
    await client.connect();
    try {
      await client.query('CREATE TABLE IF NOT EXISTS tls_capture (note text)');
      for (let k = 0; k < 20; k++) await client.query('INSERT INTO tls_capture VALUES ($1)', [`${marker} ${k}`]);
      const ssl = (await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0];
      assert.equal(ssl?.ssl, true, 'the session through HAProxy is TLS end to end');
    } finally {
      await client.end();
    }
    for (const i of [1, 2, 3].filter((n) => n !== leader)) {
      await eventually(async () => ((await ha.sql<{ n: number }>(i, 'SELECT count(*)::int AS n FROM tls_capture WHERE note LIKE $1', [`${marker}%`]))[0]!.n === 20) || undefined, 30_000, `the marker rows on node ${i}`);
    }
    // The marker in each node's PostgreSQL log: shipped by every node into node 1's Elasticsearch (nodes 2 and 3 across
    // the bridge, HTTPS as hasup_shipper), then found by the console's log search on node 1 (as hasup_reader).
    for (const i of [1, 2, 3]) await ha.sql(i, `DO $$ BEGIN RAISE WARNING '${marker} logged'; END $$`);
    const ids = new Map<string, number>();
    for (const i of [1, 2, 3]) ids.set(await ha.memberId(i), i);
    const shippedFrom = await eventually(
      async () => {
        const page = await ha.member(1).api<LogPage>(`/ui/logs?range=1h&size=500&text=${encodeURIComponent(marker)}`).catch(() => undefined);
        const from = new Set((page?.lines ?? []).filter((l) => l.message.includes(marker)).map((l) => ids.get(l.member)));
        return from.has(2) && from.has(3) ? [...from].sort() : undefined;
      },
      240_000,
      'the marker shipped from nodes 2 and 3 and found in Elasticsearch by the console',
      1000,
    );
    console.log(`# the marker's log lines found in Elasticsearch from nodes ${shippedFrom.value.join(', ')}`);
    // Elasticsearch answers nothing in clear text, not even an error page.
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest(`http://${ha.address(1)}:${ES_HTTP_PORT}/_cluster/health`, { timeout: 10_000 }, (res) => resolve(`answered ${res.statusCode}`));
      req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
    assert.match(plain, /^error /, `Elasticsearch in clear text: ${plain}`);
    // Reads over the API (with the token) and the CLI, from the host across the bridge.
    for (const i of [1, 2, 3]) await ha.member(i).api('/cluster');
    await ha.check(1, '/primary');
    const status = await hasupIn(ha.cluster.node(1), ['status', '--state-dir', ha.cluster.node(1).stateDir]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^tls: on \(cluster CA\)/m);
    assert.doesNotMatch(status.stdout, /clear text: .*(Elasticsearch|shipping)/, 'Elasticsearch is no longer listed as clear text');
    // The control: clear text across the bridge to node 1's API port (refused by its TLS, but on the wire).
    await new Promise<void>((resolve) => {
      const s = tcpConnect({ host: ha.address(1), port: API_PORT }, () => s.end(`${control}\r\n`));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 3000)); // etcd lease renewals and gossip go on meanwhile
    dump.kill('SIGINT');
    await new Promise((r) => dump.once('exit', r));

    const captured = readFileSync(pcap);
    assert.ok(captured.length > 10_000, `the capture holds traffic (${captured.length} bytes)`);
    assert.ok(captured.includes(control), 'the clear-text control string is in the capture: it saw the bridge');
    const secrets = {
      marker,
      'superuser password': ha.secrets.postgresql.superuser_password,
      'replication password': ha.secrets.postgresql.replication_password,
      'API token': ha.secrets.api_token,
      'viewer token': ha.secrets.viewer_token ?? '',
      ...Object.fromEntries(Object.entries(esPasswords(ha.secrets)).map(([user, p]) => [`Elasticsearch ${user} password`, p])),
    };
    for (const [what, value] of Object.entries(secrets)) {
      if (value) assert.ok(!captured.includes(value), `the ${what} crossed the bridge in clear text`);
    }
  });

  test('a member whose certificate another CA signed reaches no etcd, no replication, and its API is not believed', async () => {
    const member = ha.startNode(4);
    // It starts (its own files are consistent) and says where every link fails.
    await member.waitForEvent((e) => e.event === 'tls' && e.source === 'operator', 30_000, 'node 4 starting with the operator\'s certificate');
    await eventually(
      async () => {
        const etcd = await member.api<{ role: string | null; last_error?: string | null }>('/etcd').catch(() => undefined);
        return etcd && etcd.role !== 'voter' && etcd.role !== 'client' && /certificate|x509|TLS|tls|unknown authority|SELF_SIGNED|self.signed/i.test(JSON.stringify(etcd)) ? etcd : undefined;
      },
      60_000,
      "node 4's etcd formation failing on the certificate",
      1000,
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}; /etcd says ${JSON.stringify(await member.api('/etcd').catch((e: unknown) => String(e)))}`);
    });
    // Its shipper never gets a request into node 1's Elasticsearch: that certificate does not verify against node 4's CA.
    const refusedShip = await member.waitForEvent(
      (e) => (e.event === 'ship_retry' || e.event === 'ship_templates_retry') && /certificate|self.signed|unable to verify/i.test(String((e as { reason?: unknown }).reason)),
      120_000,
      "node 4's shipper refusing Elasticsearch's certificate",
    ).catch((err: unknown) => {
      const shipping = member.events.filter((e) => /ship|elasticsearch|es_/.test(String(e.event))).slice(-15);
      throw new Error(`${(err as Error).message}; node 4's shipping events: ${JSON.stringify(shipping)}`);
    });
    console.log(`# node 4 shipping: ${String((refusedShip as { reason?: unknown }).reason)}`);
    // Its PostgreSQL never streams from the leader: the leader's certificate does not verify against node 4's CA.
    await new Promise((r) => setTimeout(r, 5000));
    const streaming = await ha.sql<{ application_name: string }>(leader, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'");
    const id4 = readFileSync(join(ha.cluster.node(4).stateDir, 'member-id'), 'utf8').trim();
    assert.ok(!streaming.some((r) => r.application_name === id4), 'node 4 does not replicate');
    // The CLI of a cluster member refuses node 4's API: its certificate is not the cluster CA's.
    const refused = await hasupIn(ha.cluster.node(1), ['status', '--state-dir', ha.cluster.node(1).stateDir, '--api', `https://${ha.address(4)}:${API_PORT}`]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /presented a certificate this client does not trust/);
    // etcd on the voters refuses node 4's client certificate outright, and answers a member's.
    const own = memberTlsFiles(ha.cluster.node(1).stateDir);
    const etcdVersion = (files: { cert: string; key: string }) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(
          { host: ha.address(1), port: ETCD_CLIENT_PORT, path: '/version', ca: readFileSync(own.ca), cert: readFileSync(files.cert), key: readFileSync(files.key), timeout: 5000 },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.on('timeout', () => req.destroy(new Error('no answer in 5 s')));
        req.end();
      });
    assert.equal(await etcdVersion(own), 200, "etcd answers a member's certificate");
    await assert.rejects(etcdVersion(memberTlsFiles(join(ha.cluster.baseDir, 'foreign-ca'))), /alert|bad certificate|unknown ca|certificate required|socket hang up|ECONNRESET/i, "etcd refuses node 4's certificate");
    await ha.killNode(4);
    // Down in the ring before cert rotate runs (it renews every alive member).
    await eventually(async () => ((await ha.member(1).butterfly()).members.find((m) => m.id === id4)?.state ?? 'dead') !== 'alive' || undefined, 30_000, 'node 4 seen down by node 1');
  });

  test('cert rotate under writes through HAProxy: no failed write beyond reconnects, no leader change, every link serves the new certificate', async () => {
    const before = await Promise.all([1, 2, 3].map((i) => servedFingerprint(ha.address(i), API_PORT)));
    const started = Date.now();
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    w.start([ha.haproxyTarget]);
    await new Promise((r) => setTimeout(r, 2000));
    const rotated = await hasupIn(ha.cluster.node(1), ['cert', 'rotate', '--state-dir', ha.cluster.node(1).stateDir]);
    await new Promise((r) => setTimeout(r, 3000));
    await w.stop();
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /3 members renewed/);
    assert.equal(await soleLeaderOrWhy(), leader, 'no leader change');
    const gap = w.longestGap('haproxy', started);
    console.log(`# cert rotate under writes: longest pause of writes through HAProxy ${gap} ms`);
    assert.ok(gap < 1500, `no write stall longer than 1.5 s (was ${gap} ms)`);
    assert.deepEqual(w.overlaps(), [], 'no two nodes took writes at once');
    assert.deepEqual(await w.missing(ha.haproxyTarget), [], 'no acknowledged write lost');
    for (const i of [1, 2, 3]) {
      const expected = new X509Certificate(readFileSync(memberTlsFiles(ha.cluster.node(i).stateDir).cert)).fingerprint256;
      assert.notEqual(expected, before[i - 1], `node ${i} has a new certificate`);
      assert.equal(await servedFingerprint(ha.address(i), API_PORT), expected, `node ${i}'s API serves it`);
      assert.equal(await servedFingerprint(ha.address(i), PG_PORT, true), expected, `node ${i}'s PostgreSQL serves it`);
      assert.equal(await servedFingerprint(ha.address(i), ETCD_CLIENT_PORT), expected, `node ${i}'s etcd serves it`);
    }
    // Replication still verifies with the new certificates: a row written now reaches every follower.
    const mark = `after-rotate-${randomBytes(4).toString('hex')}`;
    await ha.sql(leader, 'CREATE TABLE IF NOT EXISTS tls_rotate (note text)');
    await ha.sql(leader, 'INSERT INTO tls_rotate VALUES ($1)', [mark]);
    for (const i of [1, 2, 3].filter((n) => n !== leader)) {
      await eventually(async () => ((await ha.sql<{ n: number }>(i, 'SELECT count(*)::int AS n FROM tls_rotate WHERE note = $1', [mark]))[0]!.n === 1) || undefined, 30_000, `the row on node ${i}`);
    }
  });

  test('a new CA under writes (cert rotate --new-ca, cert rotate, --drop-old-ca): no leader change, every link serves a certificate of the new CA', async () => {
    const oldCa = ha.secrets.tls!.ca_cert;
    const hasup = (...args: string[]) => hasupIn(ha.cluster.node(1), ['cert', 'rotate', ...args, '--state-dir', ha.cluster.node(1).stateDir]);
    const newCaPem = () => readFileSync(memberTlsFiles(ha.cluster.node(1).stateDir).ca, 'utf8');
    // Writes to the leader's PostgreSQL while etcd restarts on one member after another: trusting the old CA
    // during --new-ca, then both through cert rotate and --drop-old-ca.
    const writer = () => new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    const target = (ca: string) => ({ name: 'leader', host: ha.address(leader), port: PG_PORT, ca, verifyHost: false });
    const w1 = writer();
    await w1.setup(target(oldCa));
    let started = Date.now();
    w1.start([target(oldCa)]);
    const trust = await hasup('--new-ca', '--allow-down');
    await w1.stop();
    assert.equal(trust.code, 0, trust.stderr);
    assert.match(trust.stdout, /3 members trust both CAs/);
    const gaps = [w1.longestGap('leader', started)];
    assert.deepEqual(await w1.missing(target(oldCa)), [], 'no acknowledged write lost (--new-ca)');
    const bundle = newCaPem();
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2, "node 1's bundle holds both CAs");
    // The harness's own clients (SQL, API, etcd checks) trust both from now on.
    ha.secrets.tls!.ca_cert = bundle;
    // What the operator does between the steps: HAProxy reloads its check ca-file (node 1's bundle, now both CAs).
    const old = ha.haproxy;
    if (old && old.exitCode === null && old.signalCode === null) {
      const gone = new Promise((r) => old.once('exit', r));
      old.kill('SIGKILL');
      await gone;
    }
    ha.haproxy = spawn('haproxy', ['-db', '-f', join(ha.cluster.baseDir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'ignore'] });
    ha.cluster.adoptHostProcess(ha.haproxy);
    const w2 = writer();
    await w2.setup(target(bundle));
    started = Date.now();
    w2.start([target(bundle)]);
    const moved = await hasup();
    assert.equal(moved.code, 0, moved.stderr);
    const dropped = await hasup('--drop-old-ca', '--allow-down');
    assert.equal(dropped.code, 0, dropped.stderr);
    assert.match(dropped.stdout, /3 members trust the new CA only/);
    await new Promise((r) => setTimeout(r, 2000));
    await w2.stop();
    gaps.push(w2.longestGap('leader', started));
    assert.equal(await soleLeaderOrWhy(), leader, 'no leader change');
    console.log(`# new CA under writes: longest pause of writes to the leader ${gaps.join(' ms (--new-ca), ')} ms (cert rotate, --drop-old-ca)`);
    assert.ok(Math.max(...gaps) < 1500, `no write stall longer than 1.5 s (was ${gaps.join(', ')} ms)`);
    assert.deepEqual(await w2.missing(target(bundle)), [], 'no acknowledged write lost');
    ha.secrets.tls!.ca_cert = newCaPem();
    const newCa = new X509Certificate(newCaPem());
    assert.notEqual(newCa.fingerprint256, new X509Certificate(oldCa).fingerprint256);
    for (const i of [1, 2, 3]) {
      const files = memberTlsFiles(ha.cluster.node(i).stateDir);
      assert.equal(readFileSync(files.ca, 'utf8').match(/BEGIN CERTIFICATE/g)?.length, 1, `node ${i} trusts one CA`);
      const cert = new X509Certificate(readFileSync(files.cert));
      assert.ok(cert.checkIssued(newCa) && cert.verify(newCa.publicKey), `node ${i}'s certificate is of the new CA`);
      assert.equal(await servedFingerprint(ha.address(i), API_PORT), cert.fingerprint256, `node ${i}'s API serves it`);
      assert.equal(await servedFingerprint(ha.address(i), PG_PORT, true), cert.fingerprint256, `node ${i}'s PostgreSQL serves it`);
      assert.equal(await servedFingerprint(ha.address(i), ETCD_CLIENT_PORT), cert.fingerprint256, `node ${i}'s etcd serves it`);
    }
    // Replication verifies the new certificates, and HAProxy's checks too: a row through HAProxy reaches every follower.
    const mark = `after-new-ca-${randomBytes(4).toString('hex')}`;
    await eventually(async () => {
      const client = new pg.Client({ ...ha.haproxyTarget, user: 'hasup', password: ha.secrets.postgresql.superuser_password, database: 'postgres', ssl: { ca: newCaPem(), checkServerIdentity: () => undefined } });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('INSERT INTO tls_rotate VALUES ($1)', [mark]);
        return true;
      } catch {
        return undefined;
      } finally {
        await client.end().catch(() => undefined);
      }
    }, 30_000, 'a row written through HAProxy, its checks verifying the new certificates');
    for (const i of [1, 2, 3].filter((n) => n !== leader)) {
      await eventually(async () => ((await ha.sql<{ n: number }>(i, 'SELECT count(*)::int AS n FROM tls_rotate WHERE note = $1', [mark]))[0]!.n === 1) || undefined, 30_000, `the row on node ${i}`);
    }
  });
});
