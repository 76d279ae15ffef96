import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { superuserTarget, withClient } from '../../src/plugins/postgresql/connect.js';
import { conninfo } from '../../src/plugins/postgresql/standby-config.js';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';
import { readMemberTls, writeMemberTls } from '../../src/supervisor/pki/member-files.js';
import { killServer, PG_BIN_DIR as BIN_DIR, postgresqlHarness, postgresqlMissing, startPostgresql } from '../support/postgresql-server.js';
import { enableTls, freePort, render, waitFor, type Harness, type RunningService } from '../support/service-harness.js';

/**
 * PostgreSQL with the member's certificate (docs/tls.md), against a real
 * server: TLS on, hasup's own sessions verify it, libpq's verify-full (what
 * replication, pg_basebackup and pg_rewind use) verifies it, a client of
 * another CA is refused, and a session from a cluster network without TLS
 * is refused by pg_hba (hostssl), never served in clear text. A server
 * whose certificate of the cluster CA has expired is refused by both.
 */
const skip = postgresqlMissing();

describe('PostgreSQL over TLS against a real server', { skip }, () => {
  let h: Harness;
  let server: RunningService | undefined;

  before(async () => {
    h = postgresqlHarness(await freePort(), { listen_addresses: '127.0.0.1' });
    await enableTls(h);
    server = await startPostgresql(h);
  });

  /** psql with `conn` as the service user, the password from PGPASSWORD (the passfile is not written in these tests). */
  const psql = (conn: string) =>
    spawnSync(join(BIN_DIR, 'psql'), ['-X', '-A', '-t', '-d', conn, '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'], {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin', PGPASSWORD: h.ctx.secrets.postgresql.superuser_password },
      ...(h.ctx.user ? { uid: h.ctx.user.uid, gid: h.ctx.user.gid } : {}),
      timeout: 10_000,
    });
  /** The conninfo hasup writes for replication (verify-full against the service's CA bundle), without its passfile. */
  const replicationInfo = () => conninfo(h.ctx, { host: '127.0.0.1', port: Number(h.ctx.cfg.port) }, String(h.ctx.cfg.superuser), { dbname: 'postgres' }).replace(/passfile=\S+ /, '');

  after(async () => {
    await killServer(server);
    h?.cleanup();
  });

  test('the rendered config turns ssl on with the service\'s copy of the member files, and pg_hba wants TLS from the cluster networks', () => {
    const files = render(h);
    const conf = files.get('postgresql.conf')!;
    assert.match(conf, /^ssl = on$/m);
    assert.ok(conf.includes(`ssl_cert_file = '${h.ctx.tls!.cert}'`) && conf.includes(`ssl_key_file = '${h.ctx.tls!.key}'`) && conf.includes(`ssl_ca_file = '${h.ctx.tls!.ca}'`));
    const hba = files.get('pg_hba.conf')!;
    assert.match(hba, /^hostssl all\s+all\s+127\.0\.0\.0\/8\s+scram-sha-256$/m);
    assert.match(hba, /^hostssl replication\s+all\s+127\.0\.0\.0\/8\s+scram-sha-256$/m);
    assert.match(hba, /^hostssl all\s+all\s+samehost\s+scram-sha-256$/m);
  });

  test("hasup's own session is TLS and verifies the server", async () => {
    const target = superuserTarget(h.ctx);
    assert.ok(target.ca?.includes('BEGIN CERTIFICATE'));
    const ssl = await withClient(target, AbortSignal.timeout(5000), async (c) => (await c.query<{ ssl: boolean; version: string }>('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]);
    assert.equal(ssl?.ssl, true);
    assert.match(ssl?.version ?? '', /^TLSv1\.[23]$/);
  });

  test('a client trusting another CA is refused, and so is one that connects by a name the certificate lacks', async () => {
    const other = await createCa({ name: 'other' });
    await assert.rejects(withClient({ ...superuserTarget(h.ctx), ca: other.cert }, AbortSignal.timeout(5000), async () => undefined), /self.signed certificate in certificate chain|unable to verify/i);
    // 127.0.0.1 is in the certificate; "localhost" is not (members connect by address).
    await assert.rejects(withClient({ ...superuserTarget(h.ctx), host: 'localhost' }, AbortSignal.timeout(5000), async () => undefined), /Hostname\/IP does not match certificate's altnames/);
  });

  test('a session from a cluster network without TLS is refused by pg_hba (hostssl)', async () => {
    // From 127.0.0.2, which only the cluster network line (127.0.0.0/8, hostssl) covers.
    // pg connects the stream itself, with no source address: this socket adds one.
    const socket = new Socket();
    const connectFrom = socket.connect.bind(socket) as (o: { port: number; host: string; localAddress: string }) => Socket;
    socket.connect = ((port: number, host: string) => connectFrom({ port, host, localAddress: '127.0.0.2' })) as unknown as Socket['connect'];
    const client = new pg.Client({ stream: () => socket, host: '127.0.0.1', port: Number(h.ctx.cfg.port), user: String(h.ctx.cfg.superuser), password: h.ctx.secrets.postgresql.superuser_password, database: 'postgres', ssl: false });
    client.on('error', () => undefined);
    await assert.rejects(client.connect(), /no pg_hba.conf entry for host "127.0.0.2".*no encryption/);
    socket.destroy();
  });

  test("libpq's verify-full with the conninfo hasup writes for replication, and a refusal with another CA", async () => {
    const info = conninfo(h.ctx, { host: '127.0.0.1', port: Number(h.ctx.cfg.port) }, String(h.ctx.cfg.superuser), { dbname: 'postgres' });
    assert.match(info, new RegExp(`sslmode=verify-full sslrootcert=${h.ctx.tls!.ca}`));
    const ok = psql(info.replace(/passfile=\S+ /, ''));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 't');
    const otherCa = join(h.stateDir, 'other-ca.pem');
    const other = await createCa({ name: 'other' });
    spawnSync('sh', ['-c', `cat > ${otherCa} && chmod 644 ${otherCa}`], { input: other.cert });
    assert.equal(readFileSync(otherCa, 'utf8'), other.cert);
    const refused = psql(info.replace(/passfile=\S+ /, '').replace(h.ctx.tls!.ca, otherCa));
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /certificate verify failed/);
  });

  test("a server whose certificate of the cluster CA has expired: refused by libpq's verify-full (replication) and by hasup's sessions, naming the expiry", async () => {
    const own = readMemberTls(h.ctx.tls!);
    const ca = { cert: h.ctx.secrets.tls!.ca_cert, key: h.ctx.secrets.tls!.ca_key };
    // Valid for one day, forty days ago: signed by the cluster CA, naming 127.0.0.1, expired today.
    const expired = await issueMemberCert({ ca, memberId: h.ctx.memberId, addresses: ['127.0.0.1'], now: new Date(Date.now() - 40 * 86_400_000), days: 1 });
    const target = superuserTarget(h.ctx);
    const session = () => withClient(target, AbortSignal.timeout(5000), async (c) => (await c.query('SELECT 1')).rowCount === 1).catch((err: Error) => err.message);
    // Held open across the swap, to reload with whatever certificate the server presents.
    const held = new pg.Client({ host: target.host, port: target.port, user: target.user, password: target.password, database: 'postgres', ssl: { ca: own.ca } });
    await held.connect();
    try {
      // PostgreSQL rereads its certificate and key on a reload: it presents the expired one from then on.
      writeMemberTls(h.ctx.tls!, { ca: own.ca, cert: expired.cert, key: expired.key }, h.ctx.user);
      await held.query('SELECT pg_reload_conf()');
      const refused = await waitFor('PostgreSQL to present the expired certificate', 10_000, async () => {
        const r = await session();
        return r === true ? undefined : r;
      });
      assert.match(String(refused), /certificate has expired/, "hasup's own session (node-postgres)");
      const logFrom = server!.output.length;
      const libpq = psql(replicationInfo());
      assert.notEqual(libpq.status, 0, 'libpq verify-full: refused');
      // libpq 15 says only "certificate verify failed"; it sends the server OpenSSL's "certificate expired"
      // alert, and the server's log (the member whose certificate expired) names it.
      assert.match(libpq.stderr, /SSL error: certificate verify failed/);
      await waitFor("PostgreSQL's log to name the expired certificate", 5000, async () => (server!.output.slice(logFrom).some((l) => /could not accept SSL connection: .*certificate expired/.test(l)) ? true : undefined));
    } finally {
      writeMemberTls(h.ctx.tls!, own, h.ctx.user);
      await held.query('SELECT pg_reload_conf()');
      await held.end();
    }
    await waitFor('PostgreSQL to present its own certificate again', 10_000, async () => ((await session()) === true ? true : undefined));
    const ok = psql(replicationInfo());
    assert.equal(ok.status, 0, ok.stderr);
  });
});
