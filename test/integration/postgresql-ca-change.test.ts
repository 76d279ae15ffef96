import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { superuserTarget, withClient } from '../../src/plugins/postgresql/connect.js';
import { conninfo } from '../../src/plugins/postgresql/standby-config.js';
import { applyCaChange, planCaChange, writeCaBundle, type CaChange } from '../../src/supervisor/pki/ca-change.js';
import { createCa, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { memberTlsFiles } from '../../src/supervisor/pki/member-files.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls } from '../../src/supervisor/pki/provision.js';
import { installServiceTls } from '../../src/supervisor/pki/service-copy.js';
import type { ClusterSecrets } from '../../src/supervisor/secrets.js';
import { killServer, PG_BIN_DIR, postgresqlHarness, postgresqlMissing, startPostgresql } from '../support/postgresql-server.js';
import { enableTls, freePort, type Harness, type RunningService } from '../support/service-harness.js';

/**
 * A new cluster CA under a real PostgreSQL 15 (docs/tls.md, "A new CA"):
 * the three steps as a member runs them, PostgreSQL only reloaded (never
 * restarted), a session opened before the change still serving after it;
 * libpq's verify-full against the service's bundle (as replication uses
 * it) verifies the server throughout; a client trusting the new CA only is
 * served once the server's certificate is of it, one trusting the old CA
 * only no longer.
 */
const skip = postgresqlMissing();

describe('a new cluster CA under a real PostgreSQL', { skip }, () => {
  let h: Harness;
  let server: RunningService | undefined;
  let oldCa: KeyPairPem;
  let newCa: KeyPairPem;
  let held: pg.Client | undefined;
  let startedAt = '';

  const files = () => memberTlsFiles(h.stateDir);
  const reload = async () => {
    h.ctx.tls = installServiceTls(files(), h.ctx.paths.root, h.ctx.user);
    await h.driver.reloadTls!(h.ctx, AbortSignal.timeout(10_000));
  };
  const deps = () => ({
    writeSecrets: (tls: NonNullable<ClusterSecrets['tls']>) => {
      h.ctx.secrets = { ...h.ctx.secrets, tls };
    },
    writeBundle: (pem: string) => writeCaBundle(files().ca, pem),
    refreshServices: reload,
    restartNeeded: () => [],
    restartAndWait: () => Promise.reject(new Error('PostgreSQL is never restarted for a CA change')),
    log: () => undefined,
  });
  /** A session trusting `ca` only: true when it verified the server and ran. */
  const trusts = (ca: string) =>
    withClient({ ...superuserTarget(h.ctx), ca }, AbortSignal.timeout(5000), async (c) => (await c.query('SELECT 1')).rowCount === 1).catch((err: Error) => err.message);
  const verifyFull = () => {
    const info = conninfo(h.ctx, { host: '127.0.0.1', port: Number(h.ctx.cfg.port) }, String(h.ctx.cfg.superuser), { dbname: 'postgres' }).replace(/passfile=\S+ /, '');
    return spawnSync(join(PG_BIN_DIR, 'psql'), ['-X', '-A', '-t', '-d', info, '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'], {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin', PGPASSWORD: h.ctx.secrets.postgresql.superuser_password },
      ...(h.ctx.user ? { uid: h.ctx.user.uid, gid: h.ctx.user.gid } : {}),
      timeout: 10_000,
    });
  };
  const postmasterStart = async () => (await held!.query<{ t: string }>('SELECT pg_postmaster_start_time()::text AS t')).rows[0]!.t;

  before(async () => {
    h = postgresqlHarness(await freePort(), { listen_addresses: '127.0.0.1' });
    await enableTls(h);
    server = await startPostgresql(h);
    oldCa = { cert: h.ctx.secrets.tls!.ca_cert, key: h.ctx.secrets.tls!.ca_key };
    newCa = await createCa({ name: 'test', label: 'from today' });
    const t = superuserTarget(h.ctx);
    held = new pg.Client({ host: t.host, port: t.port, user: t.user, password: t.password, database: 'postgres', ssl: { ca: oldCa.cert } });
    await held.connect();
    startedAt = await postmasterStart();
  });

  after(async () => {
    await held?.end().catch(() => undefined);
    await killServer(server);
    h?.cleanup();
  });

  test('step 1, trust both: reloaded, the server still presents its certificate of the old CA', async () => {
    const change: CaChange = { ca_cert: newCa.cert, ca_key: newCa.key, trusted: [oldCa.cert] };
    const result = await applyCaChange(planCaChange({ current: h.ctx.secrets.tls!, change, memberFiles: files(), now: new Date() }), deps());
    assert.deepEqual(result.restarted, []);
    assert.equal(await trusts(oldCa.cert), true);
    assert.match(String(await trusts(newCa.cert)), /self.signed certificate|unable to verify/i, 'a client of the new CA only: not yet');
    const psql = verifyFull();
    assert.equal(psql.status, 0, psql.stderr);
  });

  test('step 2, cert rotate: the server presents a certificate of the new CA after a reload; verify-full with the bundle still passes', async () => {
    const tls = await ensureMemberTls({ stateRoot: h.stateDir, memberId: h.ctx.memberId, addresses: [h.ctx.ip], secrets: h.ctx.secrets, secretsFile: join(h.stateDir, 'secrets.json'), settings: DEFAULT_TLS_SETTINGS, renew: 'cert rotate' });
    assert.ok(tls.on && /from today/.test(tls.cert.issuer));
    await reload();
    assert.equal(await trusts(newCa.cert), true, 'a client of the new CA only');
    assert.match(String(await trusts(oldCa.cert)), /unable to verify|self.signed certificate|signature/i, 'a client of the old CA only');
    const psql = verifyFull();
    assert.equal(psql.status, 0, psql.stderr);
  });

  test('step 3, drop the old CA: reloaded; no restart through the whole change, the session from before still serves', async () => {
    const result = await applyCaChange(planCaChange({ current: h.ctx.secrets.tls!, change: { ca_cert: newCa.cert, trusted: [] }, memberFiles: files(), now: new Date() }), deps());
    assert.deepEqual(result.trusted.length, 1);
    const psql = verifyFull();
    assert.equal(psql.status, 0, psql.stderr);
    assert.equal((await held!.query('SELECT 1')).rowCount, 1, 'the session opened before the change');
    assert.equal(await postmasterStart(), startedAt, 'PostgreSQL was not restarted');
  });
});
