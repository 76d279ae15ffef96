/**
 * Backups from a follower (pgBackRest 2.45's backup-standby) against real
 * servers: a PostgreSQL 15 primary and a streaming standby cloned from it,
 * each with TLS from one cluster CA and its pgBackRest TLS server kept by
 * PgBackRestServer, one encrypted repository. The leader's coordinator
 * picks the standby from its real pg_stat_replication and asks the
 * follower's coordinator (as the API would), which runs `pgbackrest backup
 * --backup-standby` with the leader as pg2 reached through the leader's
 * server; the leader's own pgBackRest never runs a backup. A client whose
 * certificate lacks the hasup-pgbackrest CN is refused by the server. The
 * backup is restored into a third data directory and holds the rows
 * written before it, and not those written after.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { driverFor } from '../../src/node/drivers.js';
import { BackupCoordinator, type JobView, type PeerBackups } from '../../src/plugins/backup/coordinator.js';
import { PgBackRest } from '../../src/plugins/backup/pgbackrest.js';
import { PgBackRestServer } from '../../src/plugins/backup/server.js';
import { backupSettingsFrom } from '../../src/plugins/backup/settings.js';
import { primaryRemoteOf } from '../../src/plugins/backup/standby.js';
import { superuserTarget, withClient } from '../../src/plugins/postgresql/connect.js';
import { cloneFromLeader } from '../../src/plugins/postgresql/replication-tools.js';
import { syncReplicationRole } from '../../src/plugins/postgresql/replication-role.js';
import { replicationUser, slotName, writeHaConf, writePassfile, writeStandbySignal } from '../../src/plugins/postgresql/standby-config.js';
import { ensureOwnedDir } from '../../src/plugins/service-dirs.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import { createLogger } from '../../src/supervisor/log.js';
import type { LogEntry } from '../../src/supervisor/log-sink.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls } from '../../src/supervisor/pki/provision.js';
import { installServiceTls } from '../../src/supervisor/pki/service-copy.js';
import { FakeLeadership } from '../support/backup-fakes.js';
import { createHarness, enableTls, freePort, installConfig, killGroup, render, startService, waitFor, type Harness, type RunningService } from '../support/service-harness.js';

const BIN_DIR = '/usr/lib/postgresql/15/bin';
const PGBACKREST = '/usr/bin/pgbackrest';
const skip = !existsSync(join(BIN_DIR, 'postgres')) ? `PostgreSQL 15 is not installed in ${BIN_DIR}` : !existsSync(PGBACKREST) ? `pgBackRest is not installed at ${PGBACKREST}` : false;
const LEADER = 'a1b2c3d4e5f60718';
const FOLLOWER = 'b1b2c3d4e5f60718';
const RESTORED = 'c1b2c3d4e5f60718';

async function sql<T extends Record<string, unknown>>(ctx: DriverContext, text: string): Promise<T[]> {
  return withClient(superuserTarget(ctx), AbortSignal.timeout(10_000), async (c) => (await c.query<T>(text)).rows);
}

async function healthy(h: Harness): Promise<void> {
  await waitFor(`PostgreSQL (${h.ctx.memberId}) to be healthy`, 60_000, async () => {
    const r = await h.driver.health(h.ctx, AbortSignal.timeout(2000));
    if (r.status !== 'ok') throw new Error(r.message);
    return true;
  }, 200);
}

/** A second member of the same cluster: the same secrets (passwords, CA, passphrase), its own certificate. */
async function joinCluster(h: Harness, of: Harness, memberId: string): Promise<void> {
  h.ctx.memberId = memberId;
  h.ctx.secrets = of.ctx.secrets;
  const tls = await ensureMemberTls({ stateRoot: h.stateDir, memberId, addresses: [h.ctx.ip], secrets: of.ctx.secrets, secretsFile: join(h.stateDir, 'secrets.json'), settings: DEFAULT_TLS_SETTINGS });
  if (!tls.on) throw new Error(tls.reason);
  h.ctx.tls = installServiceTls(tls.files, h.ctx.paths.root, h.ctx.user);
  for (const [dir, mode] of [[h.ctx.paths.data, 0o700], [h.ctx.paths.run, 0o700], [h.ctx.paths.logs, 0o750], [h.ctx.paths.config, 0o750]] as const) await ensureOwnedDir(dir, mode, h.ctx.user);
  await writePassfile(h.ctx);
}

describe('backups from a streaming follower with real PostgreSQL and pgBackRest', { skip }, () => {
  let repoDir: string;
  let primary: Harness;
  let standby: Harness;
  let restored: Harness | undefined;
  const running: RunningService[] = [];
  const servers: PgBackRestServer[] = [];
  const coordinators: BackupCoordinator[] = [];
  const serviceLines: string[] = [];
  let leader: BackupCoordinator;
  let follower: BackupCoordinator;
  let label = '';

  before(async () => {
    repoDir = mkdtempSync(join(tmpdir(), 'hasup-standby-repo-'));
    chmodSync(repoDir, 0o755);
    const repo = join(repoDir, 'repo');
    mkdirSync(repo, { mode: 0o750 });
    const backup = (serverPort: number) => ({ repo_path: repo, cipher: true, process_max: 2, server_port: serverPort });
    const common = { listen_addresses: '127.0.0.1', shared_buffers: '16MB', max_connections: 20, extra: { fsync: 'off' } };

    primary = createHarness('postgresql', driverFor('postgresql'), { port: await freePort(), ...common, backup: backup(await freePort()) });
    if (primary.ctx.user) chownSync(repo, primary.ctx.user.uid, primary.ctx.user.gid);
    await enableTls(primary);
    await primary.driver.prepare(primary.ctx);
    installConfig(primary, render(primary));
    running.push(startService(primary));
    await healthy(primary);
    // What the HA loop does on a leader: the replication role and the follower's slot.
    await withClient(superuserTarget(primary.ctx), AbortSignal.timeout(10_000), async (c) => {
      await syncReplicationRole(c, replicationUser(primary.ctx), primary.ctx.secrets.postgresql.replication_password);
      await c.query('SELECT pg_create_physical_replication_slot($1)', [slotName(FOLLOWER)]);
    });
    await sql(primary.ctx, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'before ' || g FROM generate_series(1, 5000) g");

    standby = createHarness('postgresql', driverFor('postgresql'), { port: await freePort(), ...common, backup: backup(await freePort()) });
    await joinCluster(standby, primary, FOLLOWER);
    const upstream = { member: LEADER, host: '127.0.0.1', port: Number(primary.ctx.cfg.port) };
    await cloneFromLeader(standby.ctx, upstream, AbortSignal.timeout(120_000));
    await writeHaConf(standby.ctx, { upstream, syncStandbys: null });
    await writeStandbySignal(standby.ctx);
    await standby.driver.prepare(standby.ctx);
    installConfig(standby, render(standby));
    running.push(startService(standby));
    await healthy(standby);

    const sink = { write: (e: LogEntry) => void serviceLines.push(e.line) };
    const log = createLogger({ level: 'silent' });
    const leadership = new FakeLeadership();
    leadership.set({ role: 'leader', holdsLease: true, writable: true, leader: LEADER, reason: 'holds the lease' });
    const following = new FakeLeadership();
    following.set({ role: 'replica', leader: LEADER, replication: { state: 'streaming', lagBytes: 0 }, reason: 'following' });
    const peers: PeerBackups = {
      // What the API does between them (routes and client are unit-tested): the follower's coordinator is asked.
      startStandby: async (member, req) => {
        assert.equal(member, FOLLOWER);
        return follower.startStandbyBackup(req);
      },
      job: async (_member, id) => follower.job(id),
    };
    for (const [h, lead] of [[primary, leadership], [standby, following]] as const) {
      const server = new PgBackRestServer({ log, logSink: sink });
      servers.push(server);
      const c = new BackupCoordinator({ memberId: h.ctx.memberId, context: () => h.ctx, leadership: lead, log, server, peers, memberAddress: () => '127.0.0.1', progressMs: 500, pollMs: 1000 });
      coordinators.push(c);
      c.start();
    }
    [leader, follower] = coordinators as [BackupCoordinator, BackupCoordinator];
    await waitFor("both pgBackRest servers", 30_000, async () => (servers.every((s) => s.status().state === 'running') ? true : undefined), 200);
    await waitFor('the stanza', 120_000, async () => (leader.report()?.stanza === 'ok' ? true : undefined), 250);
    await waitFor('the follower to stream and replay', 30_000, async () => {
      const rows = await sql<{ state: string; lag: string }>(primary.ctx, "SELECT state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS lag FROM pg_stat_replication WHERE application_name = 'b1b2c3d4e5f60718'");
      return rows[0]?.state === 'streaming' ? true : undefined;
    }, 200);
  });

  after(async () => {
    for (const c of coordinators) await c.close();
    for (const s of servers) await s.close();
    for (const r of running) {
      killGroup(r.pid, 'SIGKILL');
      await r.exited;
    }
    primary?.cleanup();
    standby?.cleanup();
    restored?.cleanup();
    if (repoDir) rmSync(repoDir, { recursive: true, force: true });
  });

  test("the leader's pgBackRest server listens on the member's address and admits only a hasup-pgbackrest certificate", { timeout: 120_000 }, async (t) => {
    const st = servers[0]!.status();
    assert.equal(st.state, 'running');
    assert.equal(st.address, '127.0.0.1');
    assert.equal(st.port, backupSettingsFrom(primary.ctx.cfg).serverPort);
    // The member certificate (CN = member id) is from the right CA, but not the CN the server admits.
    const tool = PgBackRest.forService(standby.ctx);
    const primaryRemote = primaryRemoteOf(primary.ctx, backupSettingsFrom(primary.ctx.cfg));
    await assert.rejects(
      tool.backup('full', { standby: { primary: primaryRemote, tls: { ca: standby.ctx.tls!.ca, cert: standby.ctx.tls!.cert, key: standby.ctx.tls!.key } }, timeoutMs: 60_000 }),
      (err: Error) => {
        t.diagnostic(err.message);
        return /pgbackrest backup --type=full --backup-standby \(stanza hasup\) failed/.test(err.message) && /unable to check pg2: \[AccessError\].*access denied/.test(err.message);
      },
    );
    assert.equal((await tool.info()).backups.length, 0, 'nothing was backed up');
  });

  test('a backup asked of the leader is taken on the follower, with the leader as pg2: annotated, in the follower\'s pgBackRest log, not the leader\'s', { timeout: 300_000 }, async (t) => {
    const started = Date.now();
    const job = leader.startBackup('full');
    const done = await waitFor<JobView>('the backup job', 240_000, async () => {
      const j = leader.job(job.id);
      return j && j.state !== 'running' ? j : undefined;
    }, 250);
    t.diagnostic(`backup ${done.backup?.label ?? '?'} in ${Date.now() - started} ms: ${JSON.stringify(done.source)} ${done.error ?? ''}`);
    assert.equal(done.state, 'done', done.error ?? '');
    assert.equal(done.source?.role, 'follower');
    assert.equal(done.source?.member, FOLLOWER);
    assert.deepEqual(done.backup?.source, { role: 'follower', member: FOLLOWER });
    label = done.backup!.label;
    const info = await PgBackRest.forService(primary.ctx).info();
    assert.deepEqual(info.backups.find((b) => b.label === label)?.annotations, { 'hasup-source': 'follower', 'hasup-member': FOLLOWER });

    const followerLog = readFileSync(join(standby.ctx.paths.logs, 'hasup-backup.log'), 'utf8');
    assert.match(followerLog, /backup command begin 2\.45: --backup-standby /);
    assert.match(followerLog, /wait for replay on the standby to reach/);
    assert.match(followerLog, new RegExp(`new backup label = ${label}`));
    // The leader ran no backup: pgBackRest keeps a log per command, and the leader has none for backup.
    assert.ok(!readdirSync(primary.ctx.paths.logs).includes('hasup-backup.log'), `the leader's pgBackRest logs: ${readdirSync(primary.ctx.paths.logs).join(', ')}`);
    assert.ok(!serviceLines.some((l) => /ERROR/.test(l)), serviceLines.join('\n'));
  });

  test('the backup restores: the rows written before it are there, those written after are not', { timeout: 300_000 }, async () => {
    assert.ok(label, 'the previous test made a backup');
    await sql(primary.ctx, "INSERT INTO t SELECT g, 'after ' || g FROM generate_series(5001, 6000) g");
    restored = createHarness('postgresql', driverFor('postgresql'), { port: await freePort(), listen_addresses: '127.0.0.1', shared_buffers: '16MB', max_connections: 20, extra: { fsync: 'off' }, backup: { repo_path: join(repoDir, 'repo'), cipher: true } });
    await joinCluster(restored, primary, RESTORED);
    const pgbackrestConf = render(restored).get('pgbackrest.conf')!;
    installConfig(restored, new Map([['pgbackrest.conf', pgbackrestConf]]));
    await PgBackRest.forService(restored.ctx).restore({ kind: 'set', label }, { delta: false, timeoutMs: 240_000 });
    // PostgreSQL's files rendered with backups off: the copy must not archive its new timeline into the
    // cluster's repository; pgBackRest wrote the restore_command it needs into postgresql.auto.conf.
    const cfg = restored.ctx.cfg;
    const files = render(restored, { ...cfg, backup: { ...(cfg.backup as Record<string, unknown>), repo_path: '' } });
    files.set('pgbackrest.conf', pgbackrestConf);
    installConfig(restored, files);
    running.push(startService(restored));
    await waitFor('the restored server to take writes', 120_000, async () => {
      const [row] = await sql<{ rec: boolean }>(restored!.ctx, 'SELECT pg_is_in_recovery() AS rec');
      return row && !row.rec ? true : undefined;
    }, 500);
    const [row] = await sql<{ n: string; after: string }>(restored.ctx, "SELECT count(*)::text AS n, count(*) FILTER (WHERE v LIKE 'after%')::text AS after FROM t");
    assert.equal(row?.n, '5000');
    assert.equal(row?.after, '0');
  });

  test("pgBackRest's server is started again when it exits, and stopped when backups from a follower are turned off", { timeout: 120_000 }, async () => {
    // The leader's coordinator (and its server) closed, so nothing but this server keeps the port.
    await leader.close();
    const server = new PgBackRestServer({ log: createLogger({ level: 'silent' }), logSink: { write: () => undefined } });
    try {
      await server.sync(primary.ctx);
      const first = await waitFor('the server running', 30_000, async () => server.status().pid ?? undefined, 100);
      assert.equal(server.status().state, 'running');
      process.kill(first, 'SIGKILL');
      const second = await waitFor('the server started again', 60_000, async () => {
        const st = server.status();
        return st.state === 'running' && st.pid !== null && st.pid !== first ? st.pid : undefined;
      }, 100);
      const cfg = primary.ctx.cfg;
      await server.sync({ ...primary.ctx, cfg: { ...cfg, backup: { ...(cfg.backup as Record<string, unknown>), backup_standby: 'off' } } });
      assert.equal(server.status().state, 'off');
      assert.match(server.status().reason ?? '', /backup_standby = "off"/);
      assert.throws(() => process.kill(second, 0), /ESRCH/, 'the server process is gone');
    } finally {
      await server.close();
    }
  });
});
