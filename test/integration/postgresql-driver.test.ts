import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { PostgresqlDriver } from '../../src/plugins/postgresql/driver.js';
import { driverFor } from '../../src/node/drivers.js';
import { killServer, postgresqlHarness, postgresqlMissing, query } from '../support/postgresql-server.js';
import { createHarness, freePort, installConfig, render, startService, waitFor, waitHealthy, type Harness, type RunningService } from '../support/service-harness.js';

const skip = postgresqlMissing();

describe('PostgreSQL driver against a real server', { skip }, () => {
  let h: Harness;
  let server: RunningService | undefined;
  const started: RunningService[] = [];

  const start = () => {
    server = startService(h);
    started.push(server);
    return server;
  };

  before(async () => {
    h = postgresqlHarness(await freePort());
  });

  after(async () => {
    for (const s of started) await killServer(s);
    h?.cleanup();
  });

  test('prepare() runs initdb once, as the service user, and leaves no password file or secret behind', async () => {
    await h.driver.prepare(h.ctx);
    const { data, run } = h.ctx.paths;
    assert.ok(existsSync(join(data, 'PG_VERSION')));
    const st = statSync(data);
    assert.equal(st.mode & 0o777, 0o700);
    if (h.ctx.user) assert.equal(st.uid, h.ctx.user.uid);
    assert.deepEqual(readdirSync(run), [], 'the temporary password file is gone');
    const logText = h.logLines.join('\n');
    assert.match(logText, /"event":"initdb"/);
    assert.ok(!logText.includes(h.ctx.secrets.postgresql.superuser_password));
  });

  test('the server starts from the rendered config and health is ok with details', async () => {
    installConfig(h, render(h));
    start();
    await waitHealthy(h);
    const result = await h.driver.health(h.ctx, AbortSignal.timeout(2000));
    assert.equal(result.status, 'ok', result.message);
    assert.equal(result.details?.in_recovery, false);
    assert.match(String(result.details?.server_version), /^15\./);
    assert.equal(typeof result.details?.connections, 'number');
    assert.equal(result.details?.max_connections, 20);
    const hasupBackends = async () => (await query<{ pid: number }>(h, "SELECT pid FROM pg_stat_activity WHERE application_name = 'hasup'")).map((r) => r.pid);
    const before = await hasupBackends();
    for (let i = 0; i < 5; i++) await h.driver.health(h.ctx, AbortSignal.timeout(2000));
    // Checks reuse one kept-open connection: the same backend, no new one per check.
    assert.equal(before.length, 1);
    assert.deepEqual(await hasupBackends(), before);
  });

  test('the superuser logs in over TCP with the secret password and not with a wrong one', async () => {
    const rows = await query<{ one: number }>(h, 'SELECT 1 AS one');
    assert.equal(rows[0]?.one, 1);
    await assert.rejects(query(h, 'SELECT 1', [], { password: 'not-the-password' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, '28P01');
      return true;
    });
  });

  test('health made the replication role; it logs in with the replication secret and is a replication role', async () => {
    const rows = await query<{ one: number }>(h, 'SELECT 1 AS one', [], { user: 'replicator', password: h.ctx.secrets.postgresql.replication_password });
    assert.equal(rows[0]?.one, 1);
    const role = await query<{ rolreplication: boolean; rolpassword: string }>(h, "SELECT rolreplication, rolpassword FROM pg_authid WHERE rolname = 'replicator'");
    assert.equal(role[0]?.rolreplication, true);
    assert.match(role[0]!.rolpassword, /^SCRAM-SHA-256\$4096:/);
    const text = [...h.logLines, ...server!.output].join('\n');
    assert.ok(!text.includes(h.ctx.secrets.postgresql.replication_password), 'the replication password is in no log');
    assert.ok(!text.includes(h.ctx.secrets.postgresql.superuser_password), 'the superuser password is in no log');
  });

  test('a fresh driver (a restarted supervisor) leaves a correct replication role alone and puts back one changed by hand', async () => {
    // Same role, same secret: nothing to do, and the role is left alone.
    const before = await query<{ rolpassword: string }>(h, "SELECT rolpassword FROM pg_authid WHERE rolname = 'replicator'");
    const fresh = new PostgresqlDriver();
    assert.equal((await fresh.health(h.ctx, AbortSignal.timeout(2000))).status, 'ok');
    const same = await query<{ rolpassword: string }>(h, "SELECT rolpassword FROM pg_authid WHERE rolname = 'replicator'");
    assert.equal(same[0]?.rolpassword, before[0]?.rolpassword);
    await query(h, "ALTER ROLE replicator PASSWORD 'something-else'");
    assert.equal((await new PostgresqlDriver().health(h.ctx, AbortSignal.timeout(2000))).status, 'ok');
    const rows = await query<{ one: number }>(h, 'SELECT 1 AS one', [], { user: 'replicator', password: h.ctx.secrets.postgresql.replication_password });
    assert.equal(rows[0]?.one, 1);
  });

  test("validate() refuses work_mem = 'lots' with PostgreSQL's own message and accepts '8MB'", async (t) => {
    const bad = render(h, { ...h.ctx.cfg, work_mem: 'lots' });
    const reason = await h.driver.validate!(h.ctx, bad);
    t.diagnostic(`refused: ${reason}`);
    assert.match(reason ?? '', /invalid value for parameter "work_mem": "lots"/);
    assert.ok(!(reason ?? '').includes('.conf-check-'), 'the temp file path is not in the reason');
    assert.equal(await h.driver.validate!(h.ctx, render(h, { ...h.ctx.cfg, work_mem: '8MB' })), undefined);
    const unknown = new Map(bad);
    unknown.set('postgresql.conf', `${render(h).get('postgresql.conf')}\nno_such_setting = 1\n`);
    assert.match((await h.driver.validate!(h.ctx, unknown)) ?? '', /unrecognized configuration parameter "no_such_setting"/);
    const hba = render(h, { ...h.ctx.cfg, hba: { allowed_cidrs: ['10.0.0.0/33'] } });
    assert.match((await h.driver.validate!(h.ctx, hba)) ?? '', /pg_hba\.conf: line \d+: "\/33" is not a prefix length for IPv4/);
    assert.deepEqual(readdirSync(h.ctx.paths.run).filter((n) => n.startsWith('.conf-check-')), [], 'validation cleans up');
  });

  test('a SIGHUP reload applies work_mem = 8MB in the same postmaster; verifyReload reports a value forced past validation', async (t) => {
    const startTime = (await query<{ t: string }>(h, 'SELECT pg_postmaster_start_time()::text AS t'))[0]!.t;
    const good = render(h, { ...h.ctx.cfg, work_mem: '8MB' });
    installConfig(h, good);
    process.kill(server!.pid, 'SIGHUP');
    await waitFor('work_mem to become 8MB', 10_000, async () => ((await query<{ work_mem: string }>(h, 'SHOW work_mem'))[0]?.work_mem === '8MB' ? true : undefined));
    assert.equal(await h.driver.verifyReload!(h.ctx), undefined);
    assert.equal((await query<{ t: string }>(h, 'SELECT pg_postmaster_start_time()::text AS t'))[0]!.t, startTime, 'same postmaster');
    assert.equal(server!.child.exitCode, null);

    installConfig(h, render(h, { ...h.ctx.cfg, work_mem: 'lots' }));
    process.kill(server!.pid, 'SIGHUP');
    const reason = await h.driver.verifyReload!(h.ctx);
    t.diagnostic(`verifyReload: ${reason}`);
    assert.match(reason ?? '', /work_mem/);
    assert.match(reason ?? '', /invalid value for parameter "work_mem": "lots"/);
    // The running value is untouched; restoring the previous files clears the report.
    assert.equal((await query<{ work_mem: string }>(h, 'SHOW work_mem'))[0]?.work_mem, '8MB');
    installConfig(h, good);
    process.kill(server!.pid, 'SIGHUP');
    assert.equal(await h.driver.verifyReload!(h.ctx), undefined);
  });

  test('prepare() on an existing cluster does not initdb again: data survives a stop and restart', async () => {
    await query(h, 'CREATE TABLE survivor (v text)');
    await query(h, "INSERT INTO survivor VALUES ('still here')");
    await server!.stop('SIGINT');
    const critical = await h.driver.health(h.ctx, AbortSignal.timeout(2000));
    assert.equal(critical.status, 'critical');
    assert.match(critical.message ?? '', /PostgreSQL at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    assert.match((await h.driver.verifyReload!(h.ctx)) ?? '', /^cannot verify the reload: .*ECONNREFUSED/, 'unverifiable counts as rejected');

    await h.driver.prepare(h.ctx);
    assert.equal(h.logLines.filter((l) => l.includes('"event":"initdb"')).length, 1, 'initdb ran only the first time');
    start();
    await waitHealthy(h);
    assert.deepEqual(await query(h, 'SELECT v FROM survivor'), [{ v: 'still here' }]);
    await server!.stop('SIGINT');
    assert.notEqual(server!.child.exitCode ?? server!.child.signalCode, null);
  });

  test('health gives up when its signal aborts and leaves no connection open', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.resume(); // read and drop the startup packet, so the peer's close is seen
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as { port: number }).port;
      const ctx = { ...h.ctx, cfg: { ...h.ctx.cfg, port } };
      const t0 = Date.now();
      const result = await h.driver.health(ctx, AbortSignal.timeout(300));
      const took = Date.now() - t0;
      assert.equal(result.status, 'critical');
      assert.match(result.message ?? '', /did not answer in time/);
      assert.ok(took < 1500, `gave up after ${took} ms`);
      await waitFor('the socket to close', 2000, async () => (sockets.size === 0 ? true : undefined), 20);
    } finally {
      silent.close();
    }
  });
});

describe('PostgreSQL driver prepare() safety', { skip }, () => {
  test('a non-empty data directory without PG_VERSION is refused, not initialized over', async () => {
    const h = createHarness('postgresql', driverFor('postgresql'), {});
    try {
      mkdirSync(h.ctx.paths.data, { recursive: true, mode: 0o700 });
      writeFileSync(join(h.ctx.paths.data, 'precious.txt'), 'do not lose me');
      await assert.rejects(h.driver.prepare(h.ctx), /not empty but holds no PostgreSQL cluster/);
      assert.deepEqual(readdirSync(h.ctx.paths.data), ['precious.txt']);
    } finally {
      h.cleanup();
    }
  });

  test('validate() works before the first start (no data or run dir yet)', async () => {
    const h = createHarness('postgresql', driverFor('postgresql'), {});
    try {
      assert.equal(existsSync(h.ctx.paths.data), false);
      const files = render(h);
      assert.equal(await h.driver.validate!(h.ctx, files), undefined);
      const bad = render(h, { ...h.ctx.cfg, work_mem: 'lots' });
      assert.match((await h.driver.validate!(h.ctx, bad)) ?? '', /invalid value for parameter "work_mem": "lots"/);
    } finally {
      h.cleanup();
    }
  });

  test('a state directory the service user cannot enter is reported in plain words', async (t) => {
    const h = createHarness('postgresql', driverFor('postgresql'), {});
    if (!h.ctx.user) {
      h.cleanup();
      t.skip('needs root (runs the service as hasup)');
      return;
    }
    try {
      chmodSync(h.stateDir, 0o700);
      await assert.rejects(h.driver.prepare(h.ctx), /service user hasup cannot reach .*mode 0700/);
    } finally {
      h.cleanup();
    }
  });
});
