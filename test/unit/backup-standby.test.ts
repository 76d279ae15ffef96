/**
 * Backups from a follower (pgBackRest's backup-standby; docs/backup.md,
 * "Backups from a follower"): the rendered [global:server] section and its
 * settings, pgBackRest's certificate (issued, kept, issued again), which
 * follower is asked, the options pgBackRest gets, and two real
 * coordinators (pgBackRest and PostgreSQL faked) talking over the real
 * routes and HTTP client on loopback: the leader asks the follower, follows
 * its job and records where the backup was taken; falls back to taking it
 * itself (and says why) when no follower can; fails the backup, without a
 * second one, when a follower's answer is lost or its leader changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { BackupCoordinator, BackupRefused, PeerRefused, type JobView, type PeerBackups, type StandbyRequest } from '../../src/plugins/backup/coordinator.js';
import { pgbackrestTemplateValues, serverProblem } from '../../src/plugins/backup/files.js';
import { HttpPeerBackups } from '../../src/plugins/backup/peer-client.js';
import type { ServerControl, ServerStatus } from '../../src/plugins/backup/server.js';
import { ensurePgBackRestTls, PGBACKREST_CLIENT_CN } from '../../src/plugins/backup/server-tls.js';
import { backupSettingsFrom, checkBackupSettings } from '../../src/plugins/backup/settings.js';
import { chooseStandbys, primaryRemoteProblem, sourceOf, standbyArgs, STANDBY_MAX_LAG_BYTES, type PrimaryRemote } from '../../src/plugins/backup/standby.js';
import { backupJson } from '../../src/plugins/backup/views.js';
import { backupRoutes } from '../../src/plugins/http/backup.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { mergeLayers, renderTemplates } from '../../src/supervisor/config-layers.js';
import type { DriverContext, ServicePaths } from '../../src/supervisor/driver.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import { createLogger } from '../../src/supervisor/log.js';
import { findPlan } from '../../src/supervisor/plan.js';
import { withClusterCa } from '../../src/supervisor/pki/provision.js';
import { generateSecrets, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';
import { Behaviour, FakeDb, FakeLeadership, FakeTool } from '../support/backup-fakes.js';
import { eventually } from '../support/eventually.js';

const plan = findPlan('postgresql', [shippedPlansDir()]);
const root = '/var/lib/hasup/svc/postgresql';
const paths: ServicePaths = { root, data: `${root}/data`, config: `${root}/config`, run: `${root}/run`, logs: `${root}/logs` };
const TLS = { ca: `${root}/tls/ca.pem`, cert: `${root}/tls/member.pem`, key: `${root}/tls/member.key` };
const LEADER = '00000000000000a1';
const FOLLOWER = '00000000000000b2';
const OTHER_FOLLOWER = '00000000000000c3';
const TOKEN = 'standby-test-token';

function cfgWith(backup: TomlTable): TomlTable {
  return mergeLayers(plan.defaults, [{ name: 'test', data: { backup } }]);
}

function renderConf(cfg: TomlTable, over: Partial<DriverContext> = {}): string {
  const ctx = { paths, cfg, tls: TLS, secrets: { tls: { ca_cert: 'x', ca_key: 'y' } }, ...over } as unknown as DriverContext;
  const svc = { data_dir: paths.data, config_dir: paths.config, run_dir: paths.run, logs_dir: paths.logs, pgbackrest: pgbackrestTemplateValues(ctx) };
  return renderTemplates(plan, { cfg, svc, sys: { ip: '10.0.0.5', member_id: 'a1b2c3d4e5f60718' } }).get('pgbackrest.conf')!;
}

/** The key=value lines of one [section] of an ini text. */
function section(text: string, name: string): Map<string, string> | undefined {
  let inside = false;
  let out: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const header = /^\[(.+)\]$/.exec(line.trim());
    if (header) {
      inside = header[1] === name;
      if (inside) out = new Map();
      continue;
    }
    const kv = /^([a-z0-9-]+)=(.*)$/.exec(line.trim());
    if (inside && kv) out!.set(kv[1]!, kv[2]!);
  }
  return out;
}

test("the [global:server] section: on the member's address and server_port, its certificate, the one client CN it admits for the stanza; absent when off, without TLS or without backups", () => {
  const on = renderConf(cfgWith({ repo_path: '/srv/backup', server_port: 18432 }));
  const server = section(on, 'global:server');
  assert.ok(server, on);
  assert.deepEqual(Object.fromEntries(server), {
    'tls-server-address': '10.0.0.5',
    'tls-server-port': '18432',
    'tls-server-ca-file': TLS.ca,
    'tls-server-cert-file': `${root}/tls/pgbackrest.pem`,
    'tls-server-key-file': `${root}/tls/pgbackrest.key`,
    'tls-server-auth': `${PGBACKREST_CLIENT_CN}=hasup`,
  });
  // The stanza's own section is unchanged: the leader's remote reads pg1 from it.
  assert.equal(section(on, 'hasup')?.get('pg1-path'), paths.data);
  assert.equal(backupSettingsFrom(cfgWith({ repo_path: '/srv/backup' })).serverPort, 8432);
  assert.equal(backupSettingsFrom(cfgWith({ repo_path: '/srv/backup' })).backupStandby, 'prefer');

  assert.equal(section(renderConf(cfgWith({ repo_path: '/srv/backup', backup_standby: 'off' })), 'global:server'), undefined);
  assert.equal(section(renderConf(cfgWith({ repo_path: '/srv/backup' }), { tls: undefined }), 'global:server'), undefined);
  assert.equal(section(renderConf(cfgWith({ repo_path: '/srv/backup' }), { secrets: {} as ClusterSecrets }), 'global:server'), undefined);
  assert.equal(section(renderConf(cfgWith({})), 'global:server'), undefined);
  assert.match(serverProblem({ cfg: cfgWith({ repo_path: '/srv/backup' }), secrets: {} as ClusterSecrets }) ?? '', /TLS is off/);
  assert.match(serverProblem({ cfg: cfgWith({ repo_path: '/srv/backup', backup_standby: 'off' }), tls: TLS, secrets: {} as ClusterSecrets }) ?? '', /backup_standby = "off"/);
});

test('bad backup_standby and server_port values are refused naming the key', () => {
  const secrets = generateSecrets();
  assert.match(checkBackupSettings(backupSettingsFrom(cfgWith({ repo_path: '/r', backup_standby: 'always' })), secrets) ?? '', /backup\.backup_standby.*prefer, off/);
  assert.match(checkBackupSettings(backupSettingsFrom(cfgWith({ repo_path: '/r', server_port: 0 })), secrets) ?? '', /backup\.server_port/);
  assert.match(checkBackupSettings(backupSettingsFrom(cfgWith({ repo_path: '/r', server_port: 70000 })), secrets) ?? '', /backup\.server_port/);
  assert.equal(checkBackupSettings(backupSettingsFrom(cfgWith({ repo_path: '/r', server_port: 18432, backup_standby: 'off' })), secrets), undefined);
});

test("pgBackRest's certificate: issued from the cluster CA with CN hasup-pgbackrest and the address as IP and DNS name, key 0600; kept while it serves; issued again for a new address or another CA", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-pgbr-tls-'));
  try {
    mkdirSync(join(dir, 'tls'));
    const secrets = await withClusterCa(generateSecrets());
    writeFileSync(join(dir, 'tls', 'ca.pem'), secrets.tls!.ca_cert);
    const ctx = { tls: { ca: join(dir, 'tls', 'ca.pem'), cert: join(dir, 'tls', 'member.pem'), key: join(dir, 'tls', 'member.key') }, secrets, ip: '10.0.0.5' };
    const first = await ensurePgBackRestTls(ctx);
    assert.ok(first.ok && first.issued === 'there was none', JSON.stringify(first));
    const cert = new X509Certificate(readFileSync(first.files.cert));
    assert.match(cert.subject, /^CN=hasup-pgbackrest$/m);
    assert.ok(cert.verify(new X509Certificate(secrets.tls!.ca_cert).publicKey));
    assert.deepEqual(cert.subjectAltName?.split(', ').sort(), ['DNS:10.0.0.5', 'IP Address:10.0.0.5']);
    assert.equal(statSync(first.files.key).mode & 0o777, 0o600);
    assert.equal(first.files.ca, ctx.tls.ca);

    const again = await ensurePgBackRestTls(ctx);
    assert.ok(again.ok && again.issued === undefined && again.fingerprint === first.fingerprint);

    const moved = await ensurePgBackRestTls({ ...ctx, ip: '10.0.0.6' });
    assert.ok(moved.ok && moved.issued === 'the old one does not name 10.0.0.6' && moved.fingerprint !== first.fingerprint);

    const otherCa = await withClusterCa(generateSecrets());
    const rekeyed = await ensurePgBackRestTls({ ...ctx, ip: '10.0.0.6', secrets: otherCa });
    assert.ok(rekeyed.ok && rekeyed.issued === 'the old one is not from the cluster CA');

    const off = await ensurePgBackRestTls({ ...ctx, tls: undefined });
    assert.ok(!off.ok && /TLS is off/.test(off.reason));
    const operators = await ensurePgBackRestTls({ ...ctx, secrets: generateSecrets() });
    assert.ok(!operators.ok && /operator's own/.test(operators.reason));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('which follower is asked: streaming and within one WAL segment, asynchronous ones first, then the least behind', () => {
  const choice = chooseStandbys([
    { member: OTHER_FOLLOWER, state: 'streaming', syncState: 'quorum', replayLagBytes: 0 },
    { member: FOLLOWER, state: 'streaming', syncState: 'async', replayLagBytes: 8192 },
    { member: '00000000000000d4', state: 'streaming', syncState: 'async', replayLagBytes: 100 },
    { member: '00000000000000e5', state: 'catchup', syncState: 'async', replayLagBytes: 0 },
    { member: '00000000000000f6', state: 'streaming', syncState: 'async', replayLagBytes: STANDBY_MAX_LAG_BYTES + 1 },
    { member: '0000000000000007', state: 'streaming', syncState: 'async', replayLagBytes: null },
    { member: 'pg_basebackup', state: 'backup', syncState: 'async', replayLagBytes: null },
  ]);
  assert.deepEqual(choice.candidates, ['00000000000000d4', FOLLOWER, OTHER_FOLLOWER]);
  assert.deepEqual(
    choice.skipped.map((s) => s.member),
    ['00000000000000e5', '00000000000000f6', '0000000000000007'],
  );
  assert.match(choice.skipped[0]!.why, /not streaming \(catchup\)/);
  assert.deepEqual(chooseStandbys([]).candidates, []);
});

const PRIMARY: PrimaryRemote = {
  member: LEADER,
  host: '127.0.0.1',
  server_port: 18432,
  pg_path: '/var/lib/hasup/svc/postgresql/data',
  pg_port: 5432,
  socket_path: '/var/lib/hasup/svc/postgresql/run',
  config: '/var/lib/hasup/svc/postgresql/config/pgbackrest.conf',
  include_path: '/var/lib/hasup/svc/postgresql/pgbackrest/conf.d',
};

test("pgBackRest's options for the leader as pg2 over TLS; a request naming anything else is refused", () => {
  const args = standbyArgs(PRIMARY, { ca: '/t/ca.pem', cert: '/t/pgbackrest.pem', key: '/t/pgbackrest.key' });
  assert.deepEqual(args, [
    '--backup-standby',
    '--pg2-host=127.0.0.1',
    '--pg2-host-type=tls',
    '--pg2-host-port=18432',
    '--pg2-host-ca-file=/t/ca.pem',
    '--pg2-host-cert-file=/t/pgbackrest.pem',
    '--pg2-host-key-file=/t/pgbackrest.key',
    `--pg2-host-config=${PRIMARY.config}`,
    `--pg2-host-config-include-path=${PRIMARY.include_path}`,
    `--pg2-path=${PRIMARY.pg_path}`,
    '--pg2-port=5432',
    `--pg2-socket-path=${PRIMARY.socket_path}`,
  ]);
  assert.equal(primaryRemoteProblem(PRIMARY), undefined);
  assert.match(primaryRemoteProblem({ ...PRIMARY, host: 'leader.example' }) ?? '', /primary\.host/);
  assert.match(primaryRemoteProblem({ ...PRIMARY, pg_path: 'data' }) ?? '', /primary\.pg_path/);
  assert.match(primaryRemoteProblem({ ...PRIMARY, config: '/a\n--repo1-path=/elsewhere' }) ?? '', /primary\.config/);
  assert.match(primaryRemoteProblem({ ...PRIMARY, server_port: 0 }) ?? '', /primary\.server_port/);
  assert.match(primaryRemoteProblem({ ...PRIMARY, member: 'x' }) ?? '', /primary\.member/);
  assert.deepEqual(sourceOf({ 'hasup-source': 'follower', 'hasup-member': FOLLOWER }), { role: 'follower', member: FOLLOWER });
  assert.equal(sourceOf({ 'hasup-source': 'elsewhere', 'hasup-member': FOLLOWER }), null);
  assert.equal(sourceOf(undefined), null);
});

class FakeServer implements ServerControl {
  st: ServerStatus = { state: 'running', reason: null, address: '127.0.0.1', port: 18432, pid: 4242, tls: { ca: '/t/ca.pem', cert: '/t/pgbackrest.pem', key: '/t/pgbackrest.key' } };
  syncs = 0;
  async sync(): Promise<void> {
    this.syncs++;
  }
  status(): ServerStatus {
    return this.st;
  }
  async close(): Promise<void> {}
}

interface Member {
  id: string;
  coordinator: BackupCoordinator;
  leadership: FakeLeadership;
  db: FakeDb;
  server: FakeServer;
  app: FastifyInstance;
  port: number;
  state: { cfg: TomlTable };
}

/** Two members sharing one (fake) repository, each with the real routes on loopback; the leader reaches the follower with the real HTTP client. */
async function pair(opts: { peers?: (real: PeerBackups) => PeerBackups } = {}) {
  const repo = new Behaviour();
  const members = new Map<string, Member>();
  const locate = (m: string) => {
    const x = members.get(m);
    return x ? { addr: '127.0.0.1', port: x.port } : undefined;
  };
  const real = new HttpPeerBackups({ locate, token: TOKEN });
  for (const id of [LEADER, FOLLOWER]) {
    const leadership = new FakeLeadership();
    const db = new FakeDb();
    const server = new FakeServer();
    const state = { cfg: { port: 5432, backup: { repo_path: '/repo' } } as TomlTable };
    const ctx = () => ({ cfg: state.cfg, tls: TLS, secrets: { api_token: TOKEN, postgresql: { superuser_password: 'pw-pw-pw-pw' }, tls: { ca_cert: 'x', ca_key: 'y' } }, memberId: id, ip: '127.0.0.1', paths: { ...paths, root: `/m/${id}`, data: `/m/${id}/data`, run: `/m/${id}/run`, config: `/m/${id}/config` } }) as unknown as DriverContext;
    const coordinator = new BackupCoordinator({
      memberId: id,
      context: ctx,
      leadership,
      log: createLogger({ level: 'silent' }),
      tool: (c) => new FakeTool(c, repo),
      database: () => db,
      retry: { initialMs: 20, maxMs: 40, factor: 2, jitter: 0 },
      pollMs: 20,
      progressMs: 10,
      reportEveryMs: 10,
      followerSilenceMs: 300,
      server,
      peers: opts.peers ? opts.peers(real) : real,
      memberAddress: () => '127.0.0.1',
    });
    const app = await createHttpServer({ log: createLogger({ level: 'silent' }), token: TOKEN, plugins: [{ plugin: backupRoutes, options: { backup: coordinator, locate } }] });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    members.set(id, { id, coordinator, leadership, db, server, app, port, state });
  }
  const leader = members.get(LEADER)!;
  const follower = members.get(FOLLOWER)!;
  leader.leadership.set({ role: 'leader', holdsLease: true, writable: true, leader: LEADER, reason: 'holds the lease' });
  follower.leadership.set({ role: 'replica', leader: LEADER, replication: { state: 'streaming', lagBytes: 0 }, reason: 'following' });
  leader.db.replicaRows = [{ member: FOLLOWER, state: 'streaming', syncState: 'async', replayLagBytes: 0 }];
  leader.coordinator.start();
  follower.coordinator.start();
  await eventually(async () => (leader.coordinator.report()?.stanza === 'ok' ? true : undefined), 5000, 'the stanza');
  const close = async () => {
    for (const m of members.values()) {
      await m.coordinator.close();
      await m.app.close();
    }
  };
  return { leader, follower, repo, close };
}

async function ended(m: Member, id: string): Promise<JobView> {
  return eventually(async () => {
    const j = m.coordinator.job(id);
    return j && j.state !== 'running' ? j : undefined;
  }, 5000, `job ${id} to end`);
}

test('a backup asked of the leader is taken on the streaming follower (backup-standby, the leader as pg2), followed to its end, and says where it was taken', async () => {
  const t = await pair();
  try {
    const job = t.leader.coordinator.startBackup('full');
    const remote = await eventually(async () => t.follower.coordinator.report()?.job ?? undefined, 5000, "the follower's job");
    assert.equal(remote.state, 'running');
    const opts = t.repo.lastBackupOpts!;
    assert.deepEqual(opts.standby?.primary, {
      member: LEADER,
      host: '127.0.0.1',
      server_port: 8432,
      pg_path: '/m/00000000000000a1/data',
      pg_port: 5432,
      socket_path: '/m/00000000000000a1/run',
      config: '/m/00000000000000a1/config/pgbackrest.conf',
      include_path: '/m/00000000000000a1/pgbackrest/conf.d',
    });
    assert.equal(opts.standby?.tls.cert, '/t/pgbackrest.pem');
    assert.deepEqual(opts.annotations, { 'hasup-source': 'follower', 'hasup-member': FOLLOWER });
    // The follower's progress shows on the leader's job.
    await eventually(async () => (t.leader.coordinator.job(job.id)?.progress.percent === 40 ? true : undefined), 5000, 'progress mirrored');
    const running = t.leader.coordinator.job(job.id)!;
    assert.deepEqual(running.source, { role: 'follower', member: FOLLOWER, job: remote.id });
    assert.match(running.progress.detail ?? '', new RegExp(`taken on follower ${FOLLOWER}`));
    // One backup at a time, on the follower too.
    assert.throws(
      () => t.follower.coordinator.startStandbyBackup({ type: 'full', primary: { ...PRIMARY, host: '127.0.0.1' } }),
      (err: unknown) => err instanceof BackupRefused && err.reason === 'busy',
    );
    t.repo.finishBackup();
    const done = await ended(t.leader, job.id);
    assert.equal(done.state, 'done', done.error ?? '');
    assert.equal(done.backup?.label, '20261207-100000F');
    assert.deepEqual(done.backup?.source, { role: 'follower', member: FOLLOWER });
    assert.equal(done.source?.role, 'follower');
    const there = t.follower.coordinator.job(remote.id)!;
    assert.deepEqual(there.source, { role: 'follower', member: FOLLOWER, leader: LEADER });
    // pgBackRest ran once, on the follower.
    assert.deepEqual(t.repo.calls.filter((c) => c.startsWith('backup')), ['backup full']);
    assert.equal(backupJson(t.repo.backups[0]!).source?.member, FOLLOWER);
  } finally {
    await t.close();
  }
});

test('the leader takes the backup itself, and says why, when no follower can: none streams, backup_standby off, its server down, the follower refuses', async () => {
  const t = await pair();
  try {
    const cases: Array<[string, () => void, RegExp]> = [
      ['no follower', () => (t.leader.db.replicaRows = []), /no follower streams from this leader/],
      ['behind', () => (t.leader.db.replicaRows = [{ member: FOLLOWER, state: 'streaming', syncState: 'async', replayLagBytes: 64 * 1024 * 1024 }]), /no follower could take it \(00000000000000b2 67108864 bytes behind/],
      [
        'off',
        () => {
          t.leader.db.replicaRows = [{ member: FOLLOWER, state: 'streaming', syncState: 'async', replayLagBytes: 0 }];
          t.leader.state.cfg = { port: 5432, backup: { repo_path: '/repo', backup_standby: 'off' } };
        },
        /backup_standby = "off"/,
      ],
      [
        'server down',
        () => {
          t.leader.state.cfg = { port: 5432, backup: { repo_path: '/repo' } };
          t.leader.server.st = { ...t.leader.server.st, state: 'failing', reason: 'address in use' };
        },
        /pgBackRest server is not running \(address in use\)/,
      ],
      [
        'follower not streaming',
        () => {
          t.leader.server.st = { ...t.leader.server.st, state: 'running', reason: null };
          t.follower.leadership.set({ replication: { state: 'in archive recovery', lagBytes: null } });
        },
        /00000000000000b2 refused: 409: this member does not stream from the leader now \(in archive recovery\)/,
      ],
      [
        'follower on an older timeline',
        () => {
          t.follower.leadership.set({ replication: { state: 'streaming', lagBytes: 0 }, timeline: 1 });
          t.leader.leadership.set({ timeline: 2 });
        },
        /00000000000000b2 refused: 409: this member is on timeline 1, the leader on 2/,
      ],
    ];
    for (const [what, arrange, why] of cases) {
      arrange();
      const job = t.leader.coordinator.startBackup('incr');
      await eventually(async () => (t.repo.release ? true : undefined), 5000, `${what}: the backup to start`);
      assert.equal(t.repo.lastBackupOpts?.standby, undefined, what);
      assert.deepEqual(t.repo.lastBackupOpts?.annotations, { 'hasup-source': 'leader', 'hasup-member': LEADER }, what);
      t.repo.finishBackup();
      const done = await ended(t.leader, job.id);
      assert.equal(done.state, 'done', `${what}: ${done.error}`);
      assert.equal(done.source?.role, 'leader', what);
      assert.match(done.source?.reason ?? '', why, what);
    }
    assert.equal(t.follower.coordinator.report()?.job, null, 'the follower ran nothing');
  } finally {
    await t.close();
  }
});

test("a follower's backup ends when its leader changes (a failover): the leader's job fails saying so, and no second backup is started", async () => {
  const t = await pair();
  try {
    const job = t.leader.coordinator.startBackup('full');
    await eventually(async () => (t.follower.coordinator.report()?.job?.state === 'running' ? true : undefined), 5000, "the follower's job");
    t.follower.leadership.set({ leader: OTHER_FOLLOWER, reason: 'following a new leader' });
    const done = await ended(t.leader, job.id);
    assert.equal(done.state, 'failed');
    assert.match(done.error ?? '', new RegExp(`the backup on follower ${FOLLOWER} failed: cancelled: the leader changed during the backup \\(it was ${LEADER}; this member's leader is now ${OTHER_FOLLOWER}\\)`));
    assert.deepEqual(t.repo.calls.filter((c) => c.startsWith('backup')), ['backup full']);
  } finally {
    await t.close();
  }
});

test("a follower whose answer is lost may have started: the job fails rather than start a second backup; a follower that refuses is passed over", async () => {
  let mode: 'lost' | 'refuse' = 'lost';
  const t = await pair({
    peers: (real) => ({
      startStandby: async (member: string, req: StandbyRequest, signal: AbortSignal) => {
        if (mode === 'refuse') throw new PeerRefused('409: a backup job runs here');
        await real.startStandby(member, req, signal);
        throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      },
      job: (member, id, signal) => real.job(member, id, signal),
    }),
  });
  try {
    const lost = t.leader.coordinator.startBackup('full');
    const failed = await ended(t.leader, lost.id);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error ?? '', /follower 00000000000000b2 was asked to take the backup and its answer was lost \(socket hang up\); not starting a second one/);
    assert.deepEqual(t.repo.calls.filter((c) => c.startsWith('backup')), ['backup full'], 'only the follower runs one');
    t.repo.finishBackup();
    await eventually(async () => (t.follower.coordinator.report()?.job?.state === 'done' ? true : undefined), 5000, "the follower's backup");

    mode = 'refuse';
    const next = t.leader.coordinator.startBackup('incr');
    await eventually(async () => (t.repo.release ? true : undefined), 5000, "the leader's backup");
    t.repo.finishBackup();
    const done = await ended(t.leader, next.id);
    assert.equal(done.source?.role, 'leader');
    assert.match(done.source?.reason ?? '', /00000000000000b2 refused: 409: a backup job runs here/);
  } finally {
    await t.close();
  }
});

test("a follower that stops answering the leader's polls is given up: the job fails saying it lost track; one that restarted (no such job) fails it at once", async () => {
  let mode: 'silent' | 'forgot' = 'silent';
  const t = await pair({
    peers: (real) => ({
      startStandby: (member: string, req: StandbyRequest, signal: AbortSignal) => real.startStandby(member, req, signal),
      job: async () => {
        if (mode === 'forgot') return undefined;
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9631'), { code: 'ECONNREFUSED' });
      },
    }),
  });
  try {
    const silent = t.leader.coordinator.startBackup('full');
    const failed = await ended(t.leader, silent.id);
    assert.match(failed.error ?? '', new RegExp(`lost track of the backup on follower ${FOLLOWER} \\(job backup-[0-9a-f]{8}\\): no answer for 0 s \\(connect ECONNREFUSED`));
    t.repo.finishBackup();
    await eventually(async () => (t.follower.coordinator.report()?.job?.state === 'done' ? true : undefined), 5000, "the follower's backup");
    mode = 'forgot';
    const forgot = t.leader.coordinator.startBackup('incr');
    const gone = await ended(t.leader, forgot.id);
    assert.match(gone.error ?? '', new RegExp(`follower ${FOLLOWER} has no job backup-[0-9a-f]{8} any more \\(it restarted\\); the backup is lost with it`));
    t.repo.finishBackup();
  } finally {
    await t.close();
  }
});

test('POST /backup/standby: the token, the body schema, and refusals with nothing started', async () => {
  const t = await pair();
  try {
    const url = `http://127.0.0.1:${t.follower.port}/backup/standby`;
    const post = (body: unknown, token = TOKEN) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    assert.equal((await post({ type: 'full', primary: PRIMARY }, 'wrong')).status, 403);
    const extra = await post({ type: 'full', primary: { ...PRIMARY, repo1_path: '/x' } });
    assert.equal(extra.status, 400);
    assert.match(((await extra.json()) as { error: string }).error, /repo1_path/);
    assert.equal((await post({ type: 'full', primary: { ...PRIMARY, pg_path: 'relative' } })).status, 400);
    assert.equal((await post({ type: 'everything', primary: PRIMARY })).status, 400);
    const notLeader = await post({ type: 'full', primary: { ...PRIMARY, member: OTHER_FOLLOWER } });
    assert.equal(notLeader.status, 409);
    assert.match(((await notLeader.json()) as { error: string }).error, new RegExp(`follows ${LEADER}, not ${OTHER_FOLLOWER}`));
    const badHost = await post({ type: 'full', primary: { ...PRIMARY, host: 'not-an-ip' } });
    assert.equal(badHost.status, 422);
    // Asked of the leader itself.
    const self = await fetch(`http://127.0.0.1:${t.leader.port}/backup/standby`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ type: 'full', primary: PRIMARY }) });
    assert.equal(self.status, 409);
    assert.match(((await self.json()) as { error: string }).error, /not a follower \(it leads\)/);
    assert.equal(t.repo.calls.filter((c) => c.startsWith('backup')).length, 0);
  } finally {
    await t.close();
  }
});

test('the CLI says where a backup was taken: the job line and a TAKEN ON column in the listing', async () => {
  const { backupDoneText, listingText } = await import('../../src/cli/backup-commands.js');
  const { backupInfo } = await import('../support/backup-fakes.js');
  const b = backupInfo('20261207-100000F', 'full', Date.UTC(2026, 11, 7, 10));
  b.annotations = { 'hasup-source': 'follower', 'hasup-member': FOLLOWER };
  const job: JobView = {
    id: 'backup-0000beef', kind: 'backup', type: 'full', member: LEADER, state: 'done', started_at: '2026-12-07T10:00:00.000Z', ended_at: '2026-12-07T10:00:02.000Z', took_ms: 2000,
    progress: { percent: 100, bytes_total: 1000, bytes_done: 1000 }, source: { role: 'follower', member: FOLLOWER, job: 'backup-0000cafe' }, backup: backupJson(b), verify: null, error: null,
  };
  assert.match(backupDoneText(job), new RegExp(`^backup 20261207-100000F \\(full\\) done in 2\\.0 s on follower ${FOLLOWER}: database`));
  assert.match(backupDoneText({ ...job, source: { role: 'leader', member: LEADER, reason: 'no follower streams from this leader' } }), /done in 2\.0 s on the leader 00000000000000a1 \(no follower streams from this leader\): database/);
  const listing = listingText({
    member: LEADER, repo_path: '/repo', stanza: { name: 'hasup', exists: true, status: { code: 0, message: 'ok' }, system_id: '1', pg_version: '15', cipher: ['none'] },
    backup_running: false, backups: [backupJson(b)], archives: [], recoverable: [],
  });
  assert.match(listing, /LABEL +TYPE +REPO +TAKEN ON +STARTED/);
  assert.match(listing, new RegExp(`20261207-100000F +full +1 +follower ${FOLLOWER} +2026-12-07`));
});

test("hasup status: where the last backups were taken, and a WARNING while the leader's pgBackRest server is down; the report keeps both through the rumor", async () => {
  const { backupSummary } = await import('../../src/cli/census.js');
  const { decodeBackupReport, encodeBackupReport, MAX_BACKUP_RUMOR_BYTES } = await import('../../src/supervisor/rumors/backup.js');
  const now = Date.UTC(2026, 11, 7, 10, 10);
  const report = {
    enabled: true,
    repo_path: '/srv/backup',
    active: true,
    stanza: 'ok' as const,
    stanza_ok_at: now - 600_000,
    last_error: null,
    retry_at: null,
    archive: null,
    last_full: { label: '20261207-100000F', type: 'full' as const, stopped_at: now - 600_000, taken_on: { role: 'follower' as const, member: FOLLOWER } },
    last_backup: { label: '20261207-100000F_20261207-100500I', type: 'incr' as const, stopped_at: now - 300_000, taken_on: { role: 'leader' as const, member: LEADER } },
    job: null,
    server: { state: 'failing' as const, reason: `cannot start /usr/bin/pgbackrest: ${'x'.repeat(400)}` },
    at: now,
  };
  const line = backupSummary({ ...report, member: LEADER, from_leader: true }, now);
  assert.match(line, new RegExp(`last full 2026-12-07T10:00Z \\(10 min ago\\) on follower ${FOLLOWER}, last incr 2026-12-07T10:05Z \\(5 min ago\\) on the leader ${LEADER}`));
  assert.match(line, /WARNING: the leader's pgBackRest server is not running \(cannot start \/usr\/bin\/pgbackrest: x+\): backups are taken on the leader/);
  assert.doesNotMatch(backupSummary({ ...report, server: { state: 'running', reason: null }, member: LEADER, from_leader: true }, now), /WARNING/);
  const bytes = encodeBackupReport(report);
  assert.ok(bytes.length <= MAX_BACKUP_RUMOR_BYTES, `${bytes.length} bytes`);
  const back = decodeBackupReport(bytes)!;
  assert.deepEqual(back.last_full?.taken_on, { role: 'follower', member: FOLLOWER });
  assert.equal(back.server?.state, 'failing');
  assert.ok((back.server?.reason ?? '').length <= 120);
});

test('the peer client over HTTPS: the follower verified against the cluster CA; a certificate of another CA, a refused connection or an unknown member mean nothing started (PeerRefused)', async () => {
  const { createCa, issueMemberCert } = await import('../../src/supervisor/pki/issue.js');
  const dir = mkdtempSync(join(tmpdir(), 'hasup-peer-tls-'));
  const ca = await createCa({ name: 'test' });
  const member = await issueMemberCert({ ca, memberId: FOLLOWER, addresses: ['127.0.0.1'] });
  writeFileSync(join(dir, 'member.pem'), member.cert);
  writeFileSync(join(dir, 'member.key'), member.key, { mode: 0o600 });
  const asked: StandbyRequest[] = [];
  const job = { id: 'backup-0000beef', kind: 'backup', type: 'full', member: FOLLOWER, state: 'running', started_at: '2026-12-07T10:00:00.000Z', ended_at: null, took_ms: null, progress: { percent: null, bytes_total: null, bytes_done: null }, backup: null, verify: null, error: null } as JobView;
  const ops = {
    report: () => undefined,
    startBackup: () => job,
    startStandbyBackup: (req: StandbyRequest) => (asked.push(req), job),
    startVerify: () => job,
    job: () => job,
    waitJob: async () => job,
    list: async () => {
      throw new Error('not here');
    },
  };
  const app = await createHttpServer({ log: createLogger({ level: 'silent' }), token: TOKEN, tls: { cert: join(dir, 'member.pem'), key: join(dir, 'member.key') }, plugins: [{ plugin: backupRoutes, options: { backup: ops, locate: () => undefined } }] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  try {
    const client = (caPem: string, at = port) => new HttpPeerBackups({ locate: (m) => (m === FOLLOWER ? { addr: '127.0.0.1', port: at } : undefined), token: TOKEN, tls: { ca: caPem } });
    const got = await client(ca.cert).startStandby(FOLLOWER, { type: 'full', primary: PRIMARY, timeline: 3 }, AbortSignal.timeout(5000));
    assert.equal(got.id, job.id);
    assert.deepEqual(asked, [{ type: 'full', primary: PRIMARY, timeline: 3 }]);
    assert.equal((await client(ca.cert).job(FOLLOWER, job.id, AbortSignal.timeout(5000)))?.id, job.id);
    const other = await createCa({ name: 'other' });
    await assert.rejects(client(other.cert).startStandby(FOLLOWER, { type: 'full', primary: PRIMARY }, AbortSignal.timeout(5000)), (err: unknown) => err instanceof PeerRefused && /cannot be reached/.test((err as Error).message));
    await assert.rejects(client(ca.cert).startStandby(OTHER_FOLLOWER, { type: 'full', primary: PRIMARY }, AbortSignal.timeout(5000)), (err: unknown) => err instanceof PeerRefused && /API address is not known/.test((err as Error).message));
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    await assert.rejects(client(ca.cert, closed).startStandby(FOLLOWER, { type: 'full', primary: PRIMARY }, AbortSignal.timeout(5000)), (err: unknown) => err instanceof PeerRefused && /ECONNREFUSED/.test((err as Error).message));
    assert.equal(asked.length, 1, 'nothing more reached the follower');
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
