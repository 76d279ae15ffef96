/**
 * pgBackRest against one real PostgreSQL 15, through src/plugins/backup:
 * the stanza, WAL archiving from archive_command, full and incremental
 * backups, verify (a sound repository, a flipped byte, a gap in the WAL),
 * a repository on a full filesystem, and archiving that falls behind. The
 * repository is encrypted with the cluster secret, as a production one
 * would be. Run as root, the repository is a small tmpfs of its own, so it
 * can be filled; otherwise the full-filesystem test is skipped.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { BackupCoordinator, BackupRefused } from '../../src/plugins/backup/coordinator.js';
import { newestArchived, type BackupInfo, type BackupProgress } from '../../src/plugins/backup/info.js';
import { PgBackRest, PgBackRestError } from '../../src/plugins/backup/pgbackrest.js';
import type { Leadership, LeadershipState } from '../../src/supervisor/leadership.js';
import { killServer, postgresqlHarness, postgresqlMissing, query, startPostgresql } from '../support/postgresql-server.js';
import { archivedUpTo, droppedWal, installArchiveQueueMax, walWaiting, writeAndSwitch } from '../support/wal-archive.js';
import { freePort, installConfig, render, waitFor, type Harness, type RunningService } from '../support/service-harness.js';

const skip = postgresqlMissing({ pgbackrest: true });
const isRoot = process.getuid?.() === 0;
/** Big enough for a few backups of an empty cluster, small enough to fill in a moment. */
const TMPFS_MB = 64;

/** Every regular file under `dir`. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function flipByte(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(file, bytes);
}

/** Writes one file that takes all but `leaveBytes` of the filesystem holding `dir`. */
function fill(dir: string, leaveBytes: number): string {
  const fs = statfsSync(dir);
  const free = Number(fs.bavail) * Number(fs.bsize);
  const filler = join(dir, 'filler');
  writeFileSync(filler, Buffer.alloc(Math.max(0, free - leaveBytes)));
  return filler;
}

describe('pgBackRest with a real PostgreSQL', { skip }, () => {
  let h: Harness;
  let server: RunningService;
  let pgbr: PgBackRest;
  let repoMount: string;
  let repo: string;
  let tmpfs = false;
  let full: BackupInfo;
  let incr: BackupInfo;
  const suiteStarted = Date.now();
  /** Error messages the tests saw, checked for secrets at the end. */
  const errorsSeen: string[] = [];

  before(async () => {
    // The repository, outside the member's state dir, as a shared mount would be.
    repoMount = mkdtempSync(join(tmpdir(), 'hasup-backup-repo-'));
    chmodSync(repoMount, 0o755);
    h = postgresqlHarness(await freePort(), { backup: { repo_path: join(repoMount, 'repo'), cipher: true, process_max: 2 } });
    const user = h.ctx.user;
    if (isRoot) {
      const owner = user ? `,uid=${user.uid},gid=${user.gid}` : '';
      const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MB}m,mode=0750${owner}`, 'tmpfs', repoMount], { encoding: 'utf8' });
      tmpfs = mount.status === 0;
    }
    repo = join(repoMount, 'repo');
    mkdirSync(repo, { mode: 0o750 });
    if (user) chownSync(repo, user.uid, user.gid);
    server = await startPostgresql(h, 60_000);
    pgbr = PgBackRest.forService(h.ctx);
  });

  after(async () => {
    await killServer(server);
    if (tmpfs) spawnSync('umount', [repoMount]);
    if (repoMount) rmSync(repoMount, { recursive: true, force: true });
    h?.cleanup();
  });

  test('stanza-create makes an encrypted stanza; running it again changes nothing; check sees WAL arrive', { timeout: 120_000 }, async () => {
    const before = await pgbr.info();
    assert.equal(before.exists, false);
    await pgbr.stanzaCreate();
    const info = await pgbr.info();
    assert.equal(info.exists, true);
    assert.equal(info.status.message, 'no valid backups');
    assert.deepEqual(info.repos.map((r) => r.cipher), ['aes-256-cbc']);
    const [{ system_identifier }] = await query<{ system_identifier: string }>(h, 'SELECT system_identifier::text FROM pg_control_system()');
    assert.equal(info.systemId, system_identifier);
    await pgbr.stanzaCreate();
    assert.deepEqual((await pgbr.info()).systemId, system_identifier);
    // check forces a segment switch and waits until archive_command has put it in the repository.
    await pgbr.check();
    assert.ok(readFileSync(join(repo, 'backup', 'hasup', 'backup.info')).subarray(0, 8).equals(Buffer.from('Salted__')), 'the repository is encrypted');
  });

  test('a switched WAL segment reaches the repository through archive_command', { timeout: 120_000 }, async () => {
    await query(h, 'CREATE TABLE IF NOT EXISTS t (id serial PRIMARY KEY, v text)');
    await query(h, "INSERT INTO t (v) SELECT 'row ' || g FROM generate_series(1, 1000) g");
    const [{ seg }] = await query<{ seg: string }>(h, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS seg');
    const archivedBefore = newestArchived(await pgbr.info());
    assert.ok(archivedBefore === null || archivedBefore < seg);
    await query(h, 'SELECT pg_switch_wal()');
    const max = await waitFor(`segment ${seg} in the repository`, 60_000, async () => {
      const newest = newestArchived(await pgbr.info());
      return newest !== null && newest >= seg ? newest : undefined;
    }, 250);
    assert.ok(max >= seg);
    // The async archive-push passes its acknowledgements through this member's own spool.
    assert.ok(statSync(join(pgbr.paths.spool, 'archive', 'hasup', 'out')).isDirectory());
  });

  test('a full and an incremental backup appear in info with their type, sizes, WAL and dependency', { timeout: 300_000 }, async (t) => {
    const progress: BackupProgress[] = [];
    const startedAt = Date.now();
    full = await pgbr.backup('full', { onProgress: (p) => progress.push(p), progressIntervalMs: 200 });
    const tookMs = Date.now() - startedAt;
    t.diagnostic(`full backup ${full.label}: ${tookMs} ms, ${full.databaseSize} bytes, ${full.repoBackupSize} in the repository; progress ${JSON.stringify(progress)}`);
    assert.equal(full.type, 'full');
    assert.match(full.label, /F$/);
    assert.equal(full.repo, 1);
    const [{ size }] = await query<{ size: string }>(h, 'SELECT sum(pg_database_size(datname))::text AS size FROM pg_database');
    assert.ok(full.databaseSize >= Number(size), `the backup (${full.databaseSize}) covers every database (${size})`);
    assert.equal(full.backupSize, full.databaseSize);
    assert.ok(full.repoBackupSize > 0 && full.repoBackupSize < full.databaseSize, 'compressed in the repository');
    assert.ok(full.walStart !== null && full.walStop !== null && full.walStart <= full.walStop);
    assert.ok(full.startedAt.getTime() >= Math.floor(startedAt / 1000) * 1000 && full.stoppedAt.getTime() <= Date.now());
    if (tookMs > 1000) assert.ok(progress.some((p) => p.running), 'progress saw the backup running');

    await query(h, "INSERT INTO t (v) SELECT 'more ' || g FROM generate_series(1, 1000) g");
    incr = await pgbr.backup('incr');
    assert.equal(incr.type, 'incr');
    assert.equal(incr.prior, full.label);
    assert.ok(incr.backupSize < incr.databaseSize, 'an incremental backup copies only what changed');
    const info = await pgbr.info();
    assert.deepEqual(info.backups.map((b) => b.label), [full.label, incr.label]);
    assert.equal(info.status.code, 0);
    assert.equal(info.backupRunning, false);
  });

  test('verify passes on the sound repository', { timeout: 300_000 }, async () => {
    const report = await pgbr.verify();
    assert.equal(report.ok, true, JSON.stringify(report));
    assert.deepEqual(report.backups.map((b) => [b.label, b.status]), [[full.label, 'valid'], [incr.label, 'valid']]);
    for (const b of report.backups) assert.ok(b.checked > 0 && b.valid === b.checked);
    assert.ok(report.archives[0]!.checked > 0);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.unusable, []);
  });

  test('a byte flipped in a backup file: verify fails and names the file; the incremental that needs it is unusable', { timeout: 300_000 }, async () => {
    const dataDir = join(repo, 'backup', 'hasup', full.label, 'pg_data');
    const victim = filesUnder(dataDir).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const at = Math.floor(statSync(victim).size / 2);
    flipByte(victim, at);
    try {
      const report = await pgbr.verify();
      assert.equal(report.ok, false);
      const name = relative(join(repo, 'backup', 'hasup'), victim);
      assert.deepEqual(report.problems.map((p) => p.file), [name], `the fault is in ${name}: ${JSON.stringify(report.problems)}`);
      assert.equal(report.backups.find((b) => b.label === full.label)?.status, 'invalid');
      assert.deepEqual(report.unusable, [full.label, incr.label].sort());
    } finally {
      flipByte(victim, at);
    }
    assert.equal((await pgbr.verify()).ok, true, 'with the byte put back the repository is sound again');
  });

  test('a repository on a full filesystem: the backup fails saying so, PostgreSQL keeps taking writes, and a later backup works', { timeout: 300_000 }, async (t) => {
    if (!tmpfs) {
      t.skip(isRoot ? 'could not mount a tmpfs for the repository' : 'filling a filesystem needs a small tmpfs, and mounting one needs root');
      return;
    }
    // Room for the backup's directory and manifest, not for its files.
    const filler = fill(repoMount, 1024 * 1024);
    let failure: PgBackRestError | undefined;
    try {
      await pgbr.backup('full').then(
        () => assert.fail('a backup into a full repository succeeded'),
        (err: unknown) => {
          failure = err as PgBackRestError;
        },
      );
      assert.ok(failure instanceof PgBackRestError, String(failure));
      errorsSeen.push(failure.message);
      t.diagnostic(failure.message);
      // pgBackRest's error (which names the errno only when its main process failed the write), then hasup's word on the repository.
      assert.match(failure.message, /^pgbackrest backup --type=full \(stanza hasup\) failed with exit code \d+: ERROR: \[\d+\]: .*unable to (write|create)/);
      assert.notEqual(failure.exitCode, 0);
      const note = /\[repository 1 \(([^)]+)\) is full: ([\d.]+) (B|KiB|MiB) free of ([\d.]+) MiB\]$/.exec(failure.message);
      assert.ok(note, failure.message);
      assert.equal(note[1], repo);
      assert.ok(Number(note[2]) * { B: 1, KiB: 1024, MiB: 1024 * 1024 }[note[3] as 'B'] <= 1024 * 1024, 'what it says is free is what the filler left, or less');
      assert.equal(Math.round(Number(note[4])), TMPFS_MB);
      // The database is untouched: it takes writes and answers while the repository is full.
      const [{ n }] = await query<{ n: number }>(h, "WITH w AS (INSERT INTO t (v) SELECT 'while full ' || g FROM generate_series(1, 500) g RETURNING 1) SELECT count(*)::int AS n FROM w");
      assert.equal(n, 500);
      assert.equal((await h.driver.health(h.ctx, AbortSignal.timeout(2000))).status, 'ok');
      assert.deepEqual((await pgbr.info()).backups.map((b) => b.label), [full.label, incr.label], 'no half backup is listed');
    } finally {
      rmSync(filler, { force: true });
    }
    const again = await pgbr.backup('full');
    assert.equal(again.type, 'full');
    assert.equal((await pgbr.verify()).ok, true);
    full = again;
  });

  test('archiving that falls behind drops WAL past archive_push_queue_max instead of filling pg_wal, and verify then reports the gap', { timeout: 300_000 }, async (t) => {
    // The repository refuses new WAL: the service user may not write into the archive.
    const archiveDir = join(repo, 'archive', 'hasup');
    const idDir = join(archiveDir, readdirSync(archiveDir).find((n) => /^\d+-\d+$/.test(n))!);
    const timelineDir = join(idDir, readdirSync(idDir).find((n) => /^[0-9A-F]{16}$/.test(n))!);
    const queueMax = 32 * 1024 * 1024;
    installArchiveQueueMax(h, '32MiB');
    chmodSync(timelineDir, 0o500);
    chmodSync(idDir, 0o500);
    const before = newestArchived(await pgbr.info());
    try {
      const switched = await writeAndSwitch(h, 5);
      const last = switched[switched.length - 1]!;
      // PostgreSQL is told each segment is archived, so pg_wal does not keep them.
      await archivedUpTo(h, last, 120_000);
      const ready = walWaiting(h);
      assert.ok(ready.length * 16 * 1024 * 1024 <= queueMax, `no backlog beyond the queue limit in pg_wal: ${ready.join(', ')}`);
      const dropped = droppedWal(server.output);
      t.diagnostic(`switched ${switched.join(' ')}; dropped ${dropped.join(' ')}`);
      assert.ok(dropped.includes(last), 'the drop is said in PostgreSQL\'s log, segment by segment');
      assert.equal(newestArchived(await pgbr.info()), before, 'none of them reached the repository');
    } finally {
      chmodSync(idDir, 0o750);
      chmodSync(timelineDir, 0o750);
      installConfig(h, render(h));
    }
    // Archiving goes on once the repository takes WAL again, and verify shows what is missing.
    await query(h, "INSERT INTO t (v) VALUES ('after')");
    const [{ seg }] = await query<{ seg: string }>(h, 'SELECT pg_walfile_name(pg_switch_wal()) AS seg');
    await waitFor(`segment ${seg} in the repository`, 60_000, async () => ((newestArchived(await pgbr.info()) ?? '') >= seg ? true : undefined), 250);
    const report = await pgbr.verify();
    assert.equal(report.pgbackrestOk, true, 'pgBackRest 2.45 itself does not count a gap');
    assert.equal(report.ok, false);
    assert.deepEqual(report.walGaps, [{ archiveId: report.archives[0]!.id, after: before, before: seg }]);
  });

  test("the backup coordinator with this server as the leader: the repository made ready, the archiver read, a backup job with progress, the listing, verify with hasup's checks on pgBackRest's real log", { timeout: 300_000 }, async (t) => {
    const state: LeadershipState = { serviceGroup: 'postgresql.default', role: 'leader', holdsLease: true, leaseInDoubt: false, writable: true, replication: null, timeline: 1, leader: h.ctx.memberId, since: 0, reason: 'test' };
    const leadership: Leadership = { state: () => state, onChange: () => () => undefined, close: () => undefined };
    const coordinator = new BackupCoordinator({ memberId: h.ctx.memberId, context: () => h.ctx, leadership, log: h.ctx.log, pollMs: 300, progressMs: 200 });
    coordinator.start();
    try {
      await waitFor('the stanza ready (stanza-create and check)', 120_000, async () => (coordinator.report()?.stanza === 'ok' ? true : undefined), 200);
      const archive = await waitFor('pg_stat_archiver read', 30_000, async () => coordinator.report()?.archive ?? undefined, 200);
      assert.match(archive.last_archived_wal ?? '', /^[0-9A-F]{24}$/);
      assert.equal(archive.failing, false);
      assert.ok(archive.last_archived_at !== null && archive.last_archived_at <= Date.now());
      // The server reads its archive_status directory: a number of segments waiting (the oldest's time with it).
      assert.equal(typeof archive.waiting, 'number');
      assert.equal(archive.waiting === 0, archive.oldest_waiting_at === null);

      const job = coordinator.startBackup('incr');
      assert.throws(() => coordinator.startBackup('full'), (err: unknown) => err instanceof BackupRefused && err.reason === 'busy' && err.job?.id === job.id);
      const done = await coordinator.waitJob(job.id, 240_000);
      t.diagnostic(`backup job: ${JSON.stringify({ ...done, backup: done?.backup?.label })}`);
      assert.equal(done?.state, 'done', done?.error ?? '');
      assert.equal(done?.backup?.type, 'incr');
      assert.ok(done!.progress.bytes_total! > 0, 'the database size was read');
      assert.equal(coordinator.report()?.last_backup?.label, done?.backup?.label);
      const from = coordinator.report()?.window_from;
      assert.ok(typeof from === 'number' && from <= Date.now(), `the recoverability window starts when the oldest backup ended (${from})`);

      const listing = await coordinator.list();
      assert.equal(listing.backups[listing.backups.length - 1]?.label, done?.backup?.label);
      assert.equal(listing.stanza.cipher[0], 'aes-256-cbc');
      const [{ seg }] = await query<{ seg: string }>(h, 'SELECT last_archived_wal AS seg FROM pg_stat_archiver');
      assert.ok(listing.recoverable[0] && listing.recoverable[0].to_wal >= seg, JSON.stringify(listing.recoverable));

      const v = await coordinator.waitJob(coordinator.startVerify().id, 240_000);
      assert.equal(v?.state, 'done', v?.error ?? '');
      const outcome = v!.verify!;
      t.diagnostic(JSON.stringify(outcome.checks));
      const byName = Object.fromEntries(outcome.checks.map((c) => [c.name, c.status]));
      // The hole the previous test made is still there; everything else holds, backup-wal checked from pgBackRest's real ranges.
      assert.deepEqual(byName, { files: 'ok', 'wal-continuity': 'failed', 'backups-usable': 'ok', 'backup-wal': 'ok', 'system-id': 'ok', 'archive-current': 'ok', 'usable-full': 'ok' });
      assert.equal(outcome.ok, false);
      assert.match(outcome.problems.join('\n'), /^WAL missing from the archive between [0-9A-F]{24} and [0-9A-F]{24}/);
      errorsSeen.push(...outcome.problems, ...(coordinator.report()?.last_error ? [coordinator.report()!.last_error!.message] : []));
    } finally {
      await coordinator.close();
    }
  });

  test('no secret in logs, rendered files or pgBackRest\'s own logs; pgBackRest logged and locked in the member\'s own directories', async () => {
    const secrets = [h.ctx.secrets.backup!.repo_cipher_pass, h.ctx.secrets.postgresql.superuser_password];
    const texts = [
      h.logLines.join('\n'),
      server.output.join('\n'),
      ...filesUnder(h.ctx.paths.config).map((f) => readFileSync(f, 'utf8')),
      ...filesUnder(h.ctx.paths.logs).map((f) => readFileSync(f, 'utf8')),
      ...errorsSeen,
    ];
    for (const s of secrets) assert.ok(!texts.some((text) => text.includes(s)), 'a secret leaked');
    const logs = readdirSync(h.ctx.paths.logs);
    for (const command of ['stanza-create', 'backup', 'verify', 'archive-push-async']) assert.ok(logs.includes(`hasup-${command}.log`), `${command} logged in the member's logs dir (${logs.join(', ')})`);
    // Lock files come and go with each command: the lock directory changed since the suite began.
    assert.ok(statSync(pgbr.paths.lock).mtimeMs > suiteStarted, 'pgBackRest took its locks in the member\'s lock dir');
  });
});
