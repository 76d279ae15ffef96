/**
 * The warm spare kept current by restores, and `hasup restore
 * --to-new-cluster`, against real PostgreSQL 15 and pgBackRest 2.45:
 *
 *  - a primary (the plan's PostgreSQL with an encrypted repository) takes
 *    a full backup, rows are written and archived;
 *  - a copy of its repository (as a site without a network link would
 *    receive it, with no write permission anywhere) is what the spare reads: hasup's PostgreSQL node restores
 *    the copy's newest backup as a standby at its first start (the
 *    bootstrap plan of a spare's first member), replays the copy's archive
 *    (ha.conf's restore_command, no primary_conninfo) and refuses writes;
 *    the spare keeper, on a slot of its schedule, re-bases it on a newer
 *    backup (pgBackRest --delta --type=standby) and the rows written since
 *    are there; not one file of the copy changed, and pgBackRest's own logs
 *    show that only restore and archive-get ran on it;
 *  - restore --to-new-cluster at a time between two batches of rows: the
 *    new node's database has the first batch only, on a new timeline, with
 *    new cluster secrets and the source's PostgreSQL passwords; refused on a
 *    node of a cluster, for a time outside the window and for a repository
 *    that is not there, with nothing written.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { driverFor } from '../../src/node/drivers.js';
import { MemorySpareRecord, SpareKeeper } from '../../src/node/spare.js';
import { newestArchived, type BackupInfo } from '../../src/plugins/backup/info.js';
import { PgBackRest } from '../../src/plugins/backup/pgbackrest.js';
import { MemorySlotClaims } from '../../src/plugins/backup/slot-claims.js';
import { checkSpareSettings, SourceRepository, sourcePlaceFor } from '../../src/plugins/backup/source-repo.js';
import { PostgresqlDriver } from '../../src/plugins/postgresql/driver.js';
import { PostgresHaNode, type PgServiceHandle } from '../../src/plugins/postgresql/ha-node.js';
import { restoreToNewCluster, type NewClusterFlags } from '../../src/cli/restore-new-cluster.js';
import { readClusterState, writeClusterState } from '../../src/supervisor/cluster-state.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import { createLogger } from '../../src/supervisor/log.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { loadSecretsFile, writeSecretsFile } from '../../src/supervisor/secrets.js';
import { createHarness, freePort, installConfig, killGroup, render, startService, waitFor, type Harness, type RunningService } from '../support/service-harness.js';
import { treeHash } from '../support/tree-hash.js';

const BIN_DIR = '/usr/lib/postgresql/15/bin';
const PGBACKREST = '/usr/bin/pgbackrest';
const skip = !existsSync(join(BIN_DIR, 'postgres')) ? `PostgreSQL 15 is not installed in ${BIN_DIR}` : !existsSync(PGBACKREST) ? `pgBackRest is not installed at ${PGBACKREST}` : false;

function client(ctx: DriverContext, host = '127.0.0.1'): pg.Client {
  return new pg.Client({ host, port: Number(ctx.cfg.port), user: String(ctx.cfg.superuser), password: ctx.secrets.postgresql.superuser_password, database: 'postgres', connectionTimeoutMillis: 5000 });
}

async function query<T extends pg.QueryResultRow>(ctx: DriverContext, sql: string, host?: string): Promise<T[]> {
  const c = client(ctx, host);
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}


/**
 * The copy as a site would receive it, then made read-only (no write bit
 * anywhere, for its owner the service user too): whatever pgBackRest would
 * try to write there fails.
 */
function copyTree(from: string, to: string, user: DriverContext['user']): void {
  if (existsSync(to)) spawnSync('chmod', ['-R', 'u+w', to]);
  rmSync(to, { recursive: true, force: true });
  const r = spawnSync('cp', ['-a', from, to], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  if (user) spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, to]);
  assert.equal(spawnSync('chmod', ['-R', 'a-w', to]).status, 0);
}

/** The supervisor's part, for one PostgreSQL: prepare (the HA node's), render, start, stop. */
class ServiceUnderTest implements PgServiceHandle {
  running: RunningService | null = null;
  constructor(
    private readonly h: Harness,
    private readonly driver: PostgresqlDriver,
  ) {}
  status(): ServiceStatus {
    const up = this.running !== null && this.running.child.exitCode === null && this.running.child.signalCode === null;
    return { name: 'postgresql', group: 'default', state: up ? 'running' : 'stopped', ...(up ? { pid: this.running!.pid } : {}), since: 0, restarts: 0, health: up ? 'ok' : 'unknown', healthSince: 0, configVersion: 0 } as ServiceStatus;
  }
  async start(): Promise<void> {
    await this.driver.prepare(this.h.ctx);
    installConfig(this.h, render(this.h));
    this.running = startService(this.h);
    await waitFor('PostgreSQL to answer', 120_000, async () => {
      if (this.running?.child.exitCode !== null) throw new Error(`PostgreSQL exited: ${this.running?.output.slice(-5).join(' | ')}`);
      const r = await this.driver.health(this.h.ctx, AbortSignal.timeout(2000));
      if (r.status === 'critical') throw new Error(r.message);
      return true;
    }, 200);
  }
  async stop(): Promise<void> {
    await this.running?.stop('SIGINT', 30_000);
    this.running = null;
  }
  config() {
    return this.h.ctx.cfg;
  }
}

describe('warm spare from a repository copy, and restore into a new cluster (real PostgreSQL and pgBackRest)', { skip }, () => {
  let base: string;
  let primary: Harness;
  let primaryPg: RunningService;
  let pgbr: PgBackRest;
  let repo: string;
  let copy: string;
  let first: BackupInfo;
  /** Between the first and the second batch of rows. */
  let between: string;
  let sourceSecretsFile: string;
  const cleanups: Array<() => Promise<void> | void> = [];

  async function archiveNow(): Promise<void> {
    const [{ seg }] = await query<{ seg: string }>(primary.ctx, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS seg');
    await query(primary.ctx, 'SELECT pg_switch_wal()');
    await waitFor(`segment ${seg} archived`, 60_000, async () => {
      const n = newestArchived(await pgbr.info());
      return n !== null && n >= seg ? true : undefined;
    }, 250);
  }

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'hasup-spare-'));
    chmodSync(base, 0o755);
    repo = join(base, 'repo');
    copy = join(base, 'copy');
    primary = createHarness('postgresql', driverFor('postgresql'), {
      port: await freePort(),
      listen_addresses: '127.0.0.1',
      shared_buffers: '16MB',
      max_connections: 20,
      extra: { fsync: 'off' },
      backup: { repo_path: repo, cipher: true },
    });
    mkdirSync(repo, { mode: 0o750 });
    if (primary.ctx.user) chownSync(repo, primary.ctx.user.uid, primary.ctx.user.gid);
    await primary.driver.prepare(primary.ctx);
    installConfig(primary, render(primary));
    primaryPg = startService(primary);
    await waitFor('the primary to be healthy', 60_000, async () => {
      const r = await primary.driver.health(primary.ctx, AbortSignal.timeout(2000));
      if (r.status !== 'ok') throw new Error(r.message);
      return true;
    }, 200);
    pgbr = PgBackRest.forService(primary.ctx);
    await pgbr.stanzaCreate();
    await query(primary.ctx, 'CREATE TABLE t (id int PRIMARY KEY, batch int)');
    first = await pgbr.backup('full');
    await query(primary.ctx, 'INSERT INTO t SELECT g, 1 FROM generate_series(1, 100) g');
    await new Promise((r) => setTimeout(r, 1100));
    between = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    await query(primary.ctx, 'INSERT INTO t SELECT g, 2 FROM generate_series(101, 200) g');
    await archiveNow();
    sourceSecretsFile = join(base, 'primary-secrets.json');
    writeSecretsFile(sourceSecretsFile, primary.ctx.secrets);
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c();
    if (copy && existsSync(copy)) spawnSync('chmod', ['-R', 'u+w', copy]);
    if (primaryPg) {
      killGroup(primaryPg.pid, 'SIGKILL');
      await primaryPg.exited;
    }
    primary?.cleanup();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  test('a spare restores the copy as a standby, replays its archive, takes no writes; a slot re-bases it on a newer backup; the copy is never written', { timeout: 600_000 }, async (t) => {
    copyTree(repo, copy, primary.ctx.user);
    const spare = createHarness('postgresql', driverFor('postgresql'), {
      port: await freePort(),
      listen_addresses: '127.0.0.1',
      shared_buffers: '16MB',
      max_connections: 20,
      extra: { fsync: 'off' },
      ha: { standby_of_repo: copy, restore_schedule: '0 * * * *' },
    });
    // The spare's database is a copy of the primary's: same roles, same passwords, same repository passphrase.
    spare.ctx.secrets = { ...spare.ctx.secrets, postgresql: primary.ctx.secrets.postgresql, backup: primary.ctx.secrets.backup! };
    assert.equal(checkSpareSettings(spare.ctx.cfg), undefined);
    const sources = new Map<string, SourceRepository>();
    const node = new PostgresHaNode({
      memberId: spare.ctx.memberId,
      ip: '127.0.0.1',
      service: () => svc,
      bootstrap: async () => ({ kind: 'standby-restore', repo: copy }),
      bootstrapFailed: async () => undefined,
      spare: { check: checkSpareSettings, source: (ctx, r) => sources.get(r) ?? (sources.set(r, new SourceRepository(sourcePlaceFor(ctx, r))), sources.get(r)!) },
      stopSignal: new AbortController().signal,
      log: createLogger({ level: 'silent' }),
    });
    const svc: ServiceUnderTest = new ServiceUnderTest(spare, new PostgresqlDriver(node));
    cleanups.push(async () => {
      await svc.stop().catch(() => undefined);
      spare.cleanup();
    });
    const copyBefore = treeHash(copy);
    let started = Date.now();
    await svc.start();
    t.diagnostic(`spare restored from the copy and answering in ${Date.now() - started} ms`);
    const haConf = readFileSync(join(spare.ctx.paths.config, 'ha.conf'), 'utf8');
    assert.match(haConf, /^primary_conninfo = ''$/m, 'no upstream to stream from');
    assert.match(haConf, /^restore_command = '.*--config=\S+\/pgbackrest\/source\/pgbackrest\.conf .*archive-get %f "%p"'$/m, "the copy's archive through its own configuration");
    await waitFor('the spare to replay the archived rows', 60_000, async () => {
      const [{ n }] = await query<{ n: string }>(spare.ctx, 'SELECT count(*) AS n FROM t');
      return n === '200' ? true : undefined;
    }, 500);
    const [{ rc }] = await query<{ rc: string }>(spare.ctx, "SELECT current_setting('restore_command') AS rc");
    assert.equal(rc, sources.get(copy)!.restoreCommand(), "the server in force replays with the copy's restore_command");
    assert.ok(svc.running!.output.some((l) => /restored log file "[0-9A-F]{24}" from archive/.test(l)), 'WAL came from the copy (archive-get)');
    const [{ r }] = await query<{ r: boolean }>(spare.ctx, 'SELECT pg_is_in_recovery() AS r');
    assert.equal(r, true, 'a standby');
    await assert.rejects(query(spare.ctx, 'INSERT INTO t VALUES (999, 9)'), /read-only transaction/);
    assert.equal((await node.spareBase())?.label, first.label, 'what it was restored from is recorded');
    const replay = await node.replayInfo(AbortSignal.timeout(5000));
    assert.ok(replay && replay.segment && replay.lastXactAt !== null, `replay info: ${JSON.stringify(replay)}`);

    // The primary writes more and takes a new backup; the next shipment replaces the copy.
    await query(primary.ctx, 'INSERT INTO t SELECT g, 3 FROM generate_series(201, 300) g');
    const second = await pgbr.backup('full');
    await archiveNow();
    assert.deepEqual(treeHash(copy), copyBefore, 'the spare wrote nothing into the copy');
    copyTree(repo, copy, primary.ctx.user);
    const copyShipped = treeHash(copy);

    // The keeper on the standby leader, on a virtual wall clock: the 10:00 slot re-bases it.
    let wall = Date.UTC(2026, 11, 7, 9, 59, 0);
    const claims = new MemorySlotClaims();
    const keeper = new SpareKeeper({
      memberId: spare.ctx.memberId,
      settings: () => ({ repo: copy, schedule: '0 * * * *' }),
      leading: () => true,
      source: () => node.currentSpareSource(),
      db: node,
      search: () => undefined,
      claims,
      record: new MemorySpareRecord(),
      clock: { now: () => wall, wallNow: () => wall, setTimeout: () => ({ cancel() {} }) },
      log: createLogger({ level: 'silent' }),
    });
    await keeper.tick();
    wall = Date.UTC(2026, 11, 7, 10, 0, 5);
    started = Date.now();
    await keeper.tick();
    await keeper.settled();
    const v = keeper.view()!;
    assert.equal(v.last_failure, null, JSON.stringify(v.last_failure));
    assert.equal(v.last_restore?.label, second.label, 're-based on the newest backup');
    t.diagnostic(`re-base on ${second.label}: ${Date.now() - started} ms`);
    await waitFor('the rows of the new backup on the spare', 60_000, async () => {
      const [{ n }] = await query<{ n: string }>(spare.ctx, 'SELECT count(*) AS n FROM t');
      return n === '300' ? true : undefined;
    }, 500);
    assert.equal((await query<{ r: boolean }>(spare.ctx, 'SELECT pg_is_in_recovery() AS r'))[0]!.r, true, 'still a standby');
    assert.equal((await claims.recent())[0]?.state, 'done');
    assert.deepEqual(treeHash(copy), copyShipped, 'the re-base wrote nothing into the copy');
    // pgBackRest's own logs on the spare: only the read-only commands ran with the copy.
    const logs = readdirSync(spare.ctx.paths.logs).filter((f) => f.startsWith('hasup-'));
    t.diagnostic(`pgBackRest logs on the spare: ${logs.join(', ')}`);
    assert.ok(logs.includes('hasup-restore.log'), logs.join(', '));
    for (const f of logs) assert.doesNotMatch(f, /archive-push|backup|expire|stanza|check/, `pgbackrest ${f} ran on the spare`);

    // Another cluster's repository shipped in place of the copy: the re-base is refused, the spare runs on as it was.
    const other = createHarness('postgresql', driverFor('postgresql'), { port: await freePort(), listen_addresses: '127.0.0.1', shared_buffers: '16MB', max_connections: 20, extra: { fsync: 'off' }, backup: { repo_path: join(base, 'other-repo'), cipher: true } });
    other.ctx.secrets = { ...other.ctx.secrets, backup: primary.ctx.secrets.backup! };
    mkdirSync(join(base, 'other-repo'), { mode: 0o750 });
    if (other.ctx.user) chownSync(join(base, 'other-repo'), other.ctx.user.uid, other.ctx.user.gid);
    await other.driver.prepare(other.ctx);
    installConfig(other, render(other));
    const otherPg = startService(other);
    cleanups.push(async () => {
      await otherPg.stop('SIGINT');
      other.cleanup();
    });
    await waitFor('the other cluster to be healthy', 60_000, async () => ((await other.driver.health(other.ctx, AbortSignal.timeout(2000))).status === 'ok' ? true : undefined), 200);
    const otherPgbr = PgBackRest.forService(other.ctx);
    await otherPgbr.stanzaCreate();
    const foreign = await otherPgbr.backup('full');
    copyTree(join(base, 'other-repo'), copy, primary.ctx.user);
    await assert.rejects(node.rebaseStandby(foreign.label, AbortSignal.timeout(60_000), () => undefined), /the repository copy holds another database \(system identifier \d+; this spare's is \d+\): not restored/);
    assert.equal((await query<{ n: string }>(spare.ctx, 'SELECT count(*) AS n FROM t'))[0]!.n, '300', 'the spare runs on untouched');
  });

  test('restore --to-new-cluster to a time: the first batch only, a new timeline, new cluster secrets; refusals write nothing', { timeout: 600_000 }, async (t) => {
    const flags = (stateDir: string, over: Partial<NewClusterFlags> = {}): NewClusterFlags => ({
      advertise: '127.0.0.1',
      stateDir,
      config: join(stateDir, 'hasup.toml'),
      service: [],
      clusterCidr: [],
      repo,
      sourceSecrets: sourceSecretsFile,
      time: between,
      name: 'restored',
      etcdVoters: '3',
      caDays: '3650',
      pgBinDir: BIN_DIR,
      pgbackrestBin: PGBACKREST,
      serviceUser: 'hasup',
      recoveryTimeout: '300',
      ...over,
    });
    const repoBefore = treeHash(repo);
    const lines: string[] = [];
    // Refused: the repository is not there; a time before the window; a node that belongs to a cluster.
    const empty = join(base, 'node-refused');
    await assert.rejects(restoreToNewCluster(flags(empty, { repo: join(base, 'no-such-repo') }), (l) => lines.push(l)), /the repository \S+no-such-repo does not exist/);
    await assert.rejects(restoreToNewCluster(flags(empty, { time: '2000-01-01T00:00:00Z' }), (l) => lines.push(l)), /before the recoverability window: the repository can restore from/);
    assert.ok(!readClusterState(empty), 'nothing written');
    assert.equal(existsSync(join(empty, 'secrets.json')), false);
    const member = join(base, 'node-member');
    mkdirSync(member);
    writeClusterState(member, { cluster_id: 'ab12ab12ab12ab12', cluster_name: 'prod', founder: false, created_at: Date.now() });
    await assert.rejects(restoreToNewCluster(flags(member), (l) => lines.push(l)), /this node already belongs to cluster prod/);

    const node = join(base, 'node-new');
    const started = Date.now();
    await restoreToNewCluster(flags(node), (l) => lines.push(l));
    t.diagnostic(`restored into a new cluster in ${Date.now() - started} ms:\n${lines.join('\n')}`);
    assert.ok(readClusterState(node)?.founder, 'the node is the new cluster\'s founder');
    const secrets = loadSecretsFile(join(node, 'secrets.json'));
    assert.notEqual(secrets.api_token, primary.ctx.secrets.api_token, 'a new identity');
    assert.notEqual(secrets.cluster_id, primary.ctx.secrets.cluster_id);
    assert.deepEqual(secrets.postgresql, primary.ctx.secrets.postgresql, "the source's roles' passwords");
    const toml = readFileSync(join(node, 'hasup.toml'), 'utf8');
    assert.doesNotMatch(toml, /repo_path/, 'archiving off');
    assert.deepEqual(treeHash(repo), repoBefore, 'the source repository was not written');

    // The restored data, started on its own: the first batch, not the second, on a new timeline, writable.
    const data = join(node, 'svc', 'postgresql', 'data');
    const sock = mkdtempSync(join(tmpdir(), 'hasup-restored-'));
    chmodSync(sock, 0o777);
    const conf = join(sock, 'postgresql.conf');
    writeFileSync(conf, `listen_addresses = ''\nunix_socket_directories = '${sock}'\nhba_file = '${sock}/pg_hba.conf'\nident_file = '${sock}/pg_ident.conf'\narchive_mode = off\n`);
    writeFileSync(join(sock, 'pg_hba.conf'), 'local all all trust\n');
    writeFileSync(join(sock, 'pg_ident.conf'), '');
    const user = primary.ctx.user;
    const child = spawn(join(BIN_DIR, 'postgres'), ['-D', data, '-c', `config_file=${conf}`], { stdio: ['ignore', 'ignore', 'pipe'], detached: true, ...(user ? { uid: user.uid, gid: user.gid } : {}) });
    const pgLog: string[] = [];
    child.stderr!.setEncoding('utf8').on('data', (d: string) => pgLog.push(d));
    cleanups.push(() => {
      killGroup(child.pid!, 'SIGKILL');
      rmSync(sock, { recursive: true, force: true });
    });
    const c = () => new pg.Client({ host: sock, user: String(primary.ctx.cfg.superuser), database: 'postgres' });
    const rows = await waitFor('the restored database to answer', 60_000, async () => {
      const cl = c();
      try {
        await cl.connect();
        return (await cl.query<{ batch: number; n: string }>('SELECT batch, count(*) AS n FROM t GROUP BY batch ORDER BY batch')).rows;
      } catch {
        return undefined;
      } finally {
        await cl.end().catch(() => undefined);
      }
    }, 500).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${pgLog.join('').slice(-1500)}`);
    });
    assert.deepEqual(rows.map((r) => [r.batch, r.n]), [[1, '100']], 'the rows written before the target, none after');
    const cl = c();
    await cl.connect();
    try {
      const [{ r, tli }] = (await cl.query<{ r: boolean; tli: number }>('SELECT pg_is_in_recovery() AS r, timeline_id AS tli FROM pg_control_checkpoint()')).rows;
      assert.equal(r, false, 'promoted');
      assert.ok(tli >= 2, `a new timeline (${tli})`);
      await cl.query('INSERT INTO t VALUES (1000, 9)');
      const auto = readFileSync(join(data, 'postgresql.auto.conf'), 'utf8');
      assert.doesNotMatch(auto, /restore_command|recovery_target/, "pgBackRest's recovery settings are gone");
    } finally {
      await cl.end();
    }
  });
});
