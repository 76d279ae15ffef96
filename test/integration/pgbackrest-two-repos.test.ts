/**
 * Two pgBackRest repositories (repo_path and repo2_path) with one real
 * PostgreSQL 15 and pgBackRest 2.45, both encrypted with the cluster
 * secret: WAL reaches both, a backup taken into repository 2, verify of
 * each, repository 1 made unwritable (archiving to repository 2 goes on,
 * the failure is seen in pg_stat_archiver and named by the archive-push's
 * error file, hasup's per-repository state says it, a restore that needs
 * repository 1 alone is refused naming it), and the backup in repository 2
 * restored with the WAL only repository 2 holds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listingText } from '../../src/cli/backup-commands.js';
import { BackupCoordinator } from '../../src/plugins/backup/coordinator.js';
import { PgBackRest } from '../../src/plugins/backup/pgbackrest.js';
import type { Leadership, LeadershipState } from '../../src/supervisor/leadership.js';
import { chooseRestoreRepo, repoArchiveStates, RepoRefused } from '../../src/plugins/backup/repos.js';
import type { BackupInfo } from '../../src/plugins/backup/info.js';
import { parseRestoreTarget } from '../../src/plugins/backup/restore-target.js';
import { parseLsn } from '../../src/plugins/postgresql/replication-tools.js';
import { killServer, postgresqlHarness, postgresqlMissing, query, startPostgresql } from '../support/postgresql-server.js';
import { archivedUpTo, droppedWal, installArchiveQueueMax, walWaiting, writeAndSwitch } from '../support/wal-archive.js';
import { freePort, installConfig, render, startService, waitFor, waitHealthy, type Harness, type RunningService } from '../support/service-harness.js';

const skip = postgresqlMissing({ pgbackrest: true });

function newestIn(info: Awaited<ReturnType<PgBackRest['info']>>, repo: number): string | null {
  let max: string | null = null;
  for (const a of info.archives) if (a.repo === repo && a.max !== null && (max === null || a.max > max)) max = a.max;
  return max;
}

/** Every directory under `dir`, deepest first, and `dir` itself last. */
function dirsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...dirsUnder(join(dir, e.name)));
  out.push(dir);
  return out;
}

describe('two pgBackRest repositories with a real PostgreSQL', { skip }, () => {
  let h: Harness;
  let server: RunningService;
  let pgbr: PgBackRest;
  let base: string;
  let repo1: string;
  let repo2: string;
  let inRepo2: BackupInfo;
  let inRepo1: BackupInfo;
  let coord: BackupCoordinator | undefined;
  /** A coordinator over this server (not started: only its listing and jobs are used). */
  const coordinator = () => {
    const state: LeadershipState = { serviceGroup: 'postgresql.default', role: 'leader', holdsLease: true, leaseInDoubt: false, writable: true, replication: null, timeline: 1, leader: h.ctx.memberId, since: 0, reason: 'test' };
    const leadership: Leadership = { state: () => state, onChange: () => () => undefined, close: () => undefined };
    coord ??= new BackupCoordinator({ memberId: h.ctx.memberId, context: () => h.ctx, leadership, log: h.ctx.log, pollMs: 300, progressMs: 200 });
    return coord;
  };

  const healthy = () =>
    waitHealthy(h, 90_000);

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'hasup-two-repos-'));
    chmodSync(base, 0o755);
    repo1 = join(base, 'repo1');
    repo2 = join(base, 'repo2');
    h = postgresqlHarness(await freePort(), { backup: { repo_path: repo1, repo2_path: repo2, cipher: true, archive_push_queue_max: '256MiB' } });
    for (const r of [repo1, repo2]) {
      mkdirSync(r, { mode: 0o750 });
      if (h.ctx.user) chownSync(r, h.ctx.user.uid, h.ctx.user.gid);
    }
    server = await startPostgresql(h, 90_000);
    pgbr = PgBackRest.forService(h.ctx);
  });

  after(async () => {
    await coord?.close();
    await killServer(server);
    if (repo1 && existsSync(repo1)) for (const d of dirsUnder(repo1)) chmodSync(d, 0o750);
    if (base) rmSync(base, { recursive: true, force: true });
    h?.cleanup();
  });

  test('the rendered configuration names both repositories, each encrypted; stanza-create makes the stanza in both', { timeout: 120_000 }, async () => {
    const conf = readFileSync(pgbr.paths.conf, 'utf8');
    assert.match(conf, new RegExp(`^repo1-path=${repo1}$`, 'm'));
    assert.match(conf, new RegExp(`^repo2-path=${repo2}$`, 'm'));
    assert.match(conf, /^repo2-cipher-type=aes-256-cbc$/m);
    await pgbr.stanzaCreate();
    const info = await pgbr.info();
    assert.deepEqual(info.repos.map((r) => [r.key, r.cipher]), [[1, 'aes-256-cbc'], [2, 'aes-256-cbc']]);
    for (const r of [repo1, repo2]) {
      assert.ok(readFileSync(join(r, 'backup', 'hasup', 'backup.info')).subarray(0, 8).equals(Buffer.from('Salted__')), `${r} is encrypted`);
    }
    await pgbr.check();
  });

  test('a switched WAL segment reaches both repositories', { timeout: 120_000 }, async () => {
    await query(h, 'CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, v text)');
    await query(h, "INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, 1000) g");
    const [{ seg }] = await query<{ seg: string }>(h, 'SELECT pg_walfile_name(pg_switch_wal()) AS seg');
    await waitFor(`segment ${seg} in both repositories`, 60_000, async () => {
      const info = await pgbr.info();
      return (newestIn(info, 1) ?? '') >= seg && (newestIn(info, 2) ?? '') >= seg ? true : undefined;
    }, 250);
    const info = await pgbr.info();
    const states = repoArchiveStates({ settings: pgbr.settings, repos: info.repos, archives: info.archives, pushErrors: await pgbr.archivePushErrors() });
    assert.deepEqual(states.map((s) => [s.repo, s.state, s.behind]), [[1, 'ok', 0], [2, 'ok', 0]]);
  });

  test('a full backup into repository 2, one into repository 1; info lists each in its own; verify passes on both', { timeout: 300_000 }, async () => {
    inRepo2 = await pgbr.backup('full', { repo: 2 });
    assert.equal(inRepo2.repo, 2);
    await query(h, "INSERT INTO t (v) VALUES ('between the backups')");
    inRepo1 = await pgbr.backup('full', { repo: 1 });
    assert.equal(inRepo1.repo, 1);
    const info = await pgbr.info();
    assert.deepEqual(info.backups.map((b) => [b.label, b.repo]).sort(), [[inRepo1.label, 1], [inRepo2.label, 2]].sort());
    for (const repo of [1, 2] as const) {
      const report = await pgbr.verify({ repo });
      assert.equal(report.ok, true, `repository ${repo}: ${JSON.stringify(report)}`);
      assert.deepEqual(report.backups.map((b) => [b.label, b.status]), [[repo === 1 ? inRepo1.label : inRepo2.label, 'valid']]);
    }
    // hasup backup verify: both repositories, one after the other, each with hasup's checks.
    const job = await coordinator().waitJob(coordinator().startVerify().id, 240_000);
    assert.equal(job?.state, 'done', job?.error ?? '');
    assert.deepEqual(job!.verify_repos!.map((v) => [v.repo, v.repo_path, v.ok]), [[1, repo1, true], [2, repo2, true]], JSON.stringify(job!.verify_repos!.map((v) => v.problems)));
  });

  test('repository 1 unwritable: WAL still reaches repository 2, PostgreSQL counts failures, the push error names repository 1, a restore needing repository 1 alone is refused', { timeout: 300_000 }, async (t) => {
    const info0 = await pgbr.info();
    const before1 = newestIn(info0, 1);
    const dirs = dirsUnder(join(repo1, 'archive'));
    for (const d of dirs) chmodSync(d, 0o500);
    const switched: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        await query(h, `INSERT INTO t (v) VALUES ('while repository 1 is down ${i}')`);
        switched.push((await query<{ seg: string }>(h, 'SELECT pg_walfile_name(pg_switch_wal()) AS seg'))[0]!.seg);
      }
      const last = switched[switched.length - 1]!;
      await waitFor(`segment ${last} in repository 2`, 90_000, async () => ((newestIn(await pgbr.info(), 2) ?? '') >= last ? true : undefined), 500);
      const [arch] = await query<{ failed_count: string; last_failed_wal: string | null; last_archived_wal: string | null }>(h, 'SELECT failed_count::text, last_failed_wal, last_archived_wal FROM pg_stat_archiver');
      t.diagnostic(`pg_stat_archiver: ${JSON.stringify(arch)}`);
      assert.ok(Number(arch!.failed_count) > 0, 'PostgreSQL counts the failed pushes');
      const errors = await waitFor('an archive-push error file', 30_000, async () => {
        const e = await pgbr.archivePushErrors();
        return e.length > 0 ? e : undefined;
      }, 250);
      t.diagnostic(`push errors: ${JSON.stringify(errors)}`);
      const info = await pgbr.info();
      assert.equal(newestIn(info, 1), before1, 'repository 1 got none of them');
      const states = repoArchiveStates({ settings: pgbr.settings, repos: info.repos, archives: info.archives, pushErrors: errors });
      t.diagnostic(`states: ${JSON.stringify(states)}`);
      assert.equal(states[0]!.state, 'failing');
      assert.ok(states[0]!.behind !== null && states[0]!.behind >= switched.length, JSON.stringify(states[0]));
      assert.match(states[0]!.detail ?? '', /repo1|permission|denied/i);
      assert.equal(states[1]!.state, 'ok');
      // pg_wal keeps the segments PostgreSQL could not have archived: they wait as .ready, not dropped (the queue limit is far).
      const ready = readdirSync(join(h.ctx.paths.data, 'pg_wal', 'archive_status')).filter((f) => f.endsWith('.ready'));
      assert.ok(ready.length >= 1, 'the segments wait in pg_wal');
      // A backup only the failing repository holds is refused naming it; one in repository 2 is chosen there.
      assert.throws(
        () => chooseRestoreRepo({ need: { kind: 'set', label: inRepo1.label }, asked: undefined, repos: [1, 2], backups: info.backups, states, lsnValue: parseLsn }),
        (err: unknown) => err instanceof RepoRefused && /only repository 1 holds backup .* and it fails: repository 1 \(/.test(err.message),
      );
      assert.equal(chooseRestoreRepo({ need: { kind: 'latest' }, asked: undefined, repos: [1, 2], backups: info.backups, states, lsnValue: parseLsn }), 2);
      // What an operator sees: hasup backup list (the coordinator's listing, as GET /backups answers it).
      const text = listingText(await coordinator().list());
      t.diagnostic(text);
      assert.match(text, /^WARNING: repository 1 \(.*\/repo1\): WAL archiving to it fails \(segment [0-9A-F]{24}: .*repo1: \[FileOpenError\].*Permission denied/m);
    } finally {
      for (const d of dirs) chmodSync(d, 0o750);
    }
    // Repository 1 writable again: the waiting segments reach it and the error file goes.
    const last = switched[switched.length - 1]!;
    await query(h, 'SELECT pg_switch_wal()');
    await waitFor(`segment ${last} in repository 1 again`, 120_000, async () => ((newestIn(await pgbr.info(), 1) ?? '') >= last ? true : undefined), 500);
  });

  test('the backup in repository 2 restored (pgBackRest restore --repo=2) to a time after it, with rows written since', { timeout: 300_000 }, async () => {
    await query(h, "INSERT INTO t (v) VALUES ('the last row')");
    await new Promise((r) => setTimeout(r, 1100));
    const [{ at }] = await query<{ at: string }>(h, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at`);
    await new Promise((r) => setTimeout(r, 1100));
    await query(h, 'DROP TABLE t');
    const [{ seg }] = await query<{ seg: string }>(h, 'SELECT pg_walfile_name(pg_switch_wal()) AS seg');
    await waitFor(`segment ${seg} in repository 2`, 60_000, async () => ((newestIn(await pgbr.info(), 2) ?? '') >= seg ? true : undefined), 250);
    await server.stop('SIGINT');
    const target = parseRestoreTarget({ time: at });
    await pgbr.restore({ ...target, repo: 2 }, { delta: true });
    const log = readFileSync(join(pgbr.paths.logs, 'hasup-restore.log'), 'utf8');
    assert.match(log, new RegExp(`repo2: restore backup set ${inRepo2.label}|restore backup set ${inRepo2.label}, recovery will start`), 'pgBackRest restored the backup in repository 2');
    server = startService(h);
    await healthy();
    const rows = await waitFor('recovery to end', 90_000, async () => {
      const [r] = await query<{ recovering: boolean }>(h, 'SELECT pg_is_in_recovery() AS recovering');
      if (r?.recovering) return undefined;
      return query<{ v: string }>(h, 'SELECT v FROM t ORDER BY id');
    }, 500);
    const values = rows.map((r) => r.v);
    assert.equal(values.length, 1000 + 1 + 3 + 1);
    assert.ok(values.includes('while repository 1 is down 2'));
    assert.equal(values[values.length - 1], 'the last row');
  });

  test('repository 1 unwritable and pg_wal past archive_push_queue_max: pgBackRest drops WAL it has not pushed yet for both repositories (a hole in repository 2 too), says so in PostgreSQL\'s log, and pg_wal stops growing', { timeout: 300_000 }, async (t) => {
    installArchiveQueueMax(h, '32MiB');
    const dirs = dirsUnder(join(repo1, 'archive'));
    for (const d of dirs) chmodSync(d, 0o500);
    try {
      const switched = await writeAndSwitch(h, 5);
      const last = switched[switched.length - 1]!;
      await archivedUpTo(h, last, 120_000);
      const dropped = droppedWal(server.output);
      const info = await pgbr.info();
      const in2 = newestIn(info, 2);
      t.diagnostic(`switched ${switched.join(' ')}; dropped ${dropped.join(' ')}; repository 2 up to ${in2}, repository 1 up to ${newestIn(info, 1)}`);
      assert.ok(dropped.length > 0, 'the drop is said in PostgreSQL\'s log');
      const ready = walWaiting(h);
      assert.ok(ready.length * 16 * 1024 * 1024 <= 32 * 1024 * 1024, `pg_wal holds no backlog past the limit: ${ready.join(', ')}`);
      // Repository 2 keeps what it got on an earlier try; what the drop acknowledged without pushing is in neither repository.
      const inRepo2 = dropped.filter((seg) => {
        const dir = join(repo2, 'archive', 'hasup', '15-1', seg.slice(0, 16));
        return existsSync(dir) && readdirSync(dir).some((f) => f.startsWith(`${seg}-`));
      });
      t.diagnostic(`dropped segments in repository 2: ${inRepo2.join(' ') || 'none'}`);
      assert.ok(inRepo2.length < dropped.length, 'repository 2 misses dropped segments too');
      assert.ok(!inRepo2.includes(last), `the last one, ${last}, is in neither repository`);
    } finally {
      for (const d of dirs) chmodSync(d, 0o750);
      installConfig(h, render(h));
    }
  });
});
