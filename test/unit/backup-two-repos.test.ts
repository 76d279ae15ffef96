/**
 * The coordinator with two repositories, pgBackRest faked behind its
 * BackupTool interface: a backup into the repository asked for (and a
 * refused one), verify of both or one, the listing's per-repository
 * archive state, and the failing repository named in the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackupCoordinator, BackupRefused } from '../../src/plugins/backup/coordinator.js';
import { parseInfo } from '../../src/plugins/backup/info.js';
import { listingText } from '../../src/cli/backup-commands.js';
import { parsePushError, type PushError } from '../../src/plugins/backup/repos.js';
import { parseVerify, withDependents, type VerifyReport } from '../../src/plugins/backup/verify.js';
import type { CallOptions } from '../../src/plugins/backup/pgbackrest.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import * as out from '../fixtures/pgbackrest-2.45.js';
import { Behaviour, FakeDb, FakeLeadership, FakeTool, PASSWORD, SELF } from '../support/backup-fakes.js';
import { eventually } from '../support/eventually.js';
import { capturingLogger } from '../support/service-harness.js';

class TwoRepoTool extends FakeTool {
  verified: number[] = [];
  pushErrors: PushError[] = [];
  constructor(
    ctx: DriverContext,
    b: Behaviour,
    private readonly reports: Record<number, VerifyReport>,
  ) {
    super(ctx, b);
  }
  override async verify(opts: CallOptions & { repo?: 1 | 2 } = {}): Promise<VerifyReport> {
    this.verified.push(opts.repo ?? 1);
    return this.reports[opts.repo ?? 1]!;
  }
  async archivePushErrors(): Promise<PushError[]> {
    return this.pushErrors;
  }
}

/** The repository of the last backup asked of the fake pgBackRest (read through a function: the test sets the field itself). */
const lastRepo = (b: Behaviour) => b.lastBackupOpts?.repo;

function setup(cfgBackup: Record<string, unknown> = { repo_path: '/r1', repo2_path: '/r2' }) {
  const leadership = new FakeLeadership();
  const db = new FakeDb();
  const fake = new Behaviour();
  const info = parseInfo(out.INFO_TWO_REPOS, 'hasup');
  const good = withDependents(parseVerify(out.VERIFY_OK_STDOUT, ''), info.backups.filter((b) => b.repo === 2));
  const bad = withDependents(parseVerify(out.VERIFY_BAD_STDOUT, out.VERIFY_BAD_STDERR), info.backups.filter((b) => b.repo === 1));
  const { log, lines } = capturingLogger();
  const state = { cfg: { port: 5432, backup: cfgBackup } as Record<string, unknown> };
  const secrets = { api_token: 'token-token-token', postgresql: { superuser_password: PASSWORD, replication_password: 'replication-pw-xyz' } };
  let tool: TwoRepoTool | undefined;
  const coordinator = new BackupCoordinator({
    memberId: SELF,
    context: () => ({ cfg: state.cfg, secrets }) as unknown as DriverContext,
    leadership,
    log,
    tool: (ctx) => (tool = new TwoRepoTool(ctx, fake, { 1: bad, 2: good })),
    database: () => db,
    retry: { initialMs: 20, maxMs: 40, factor: 2, jitter: 0 },
    pollMs: 20,
    progressMs: 10,
    reportEveryMs: 10,
  });
  return { coordinator, leadership, db, fake, info, lines, tool: () => tool! };
}

test('a backup into repository 2 passes --repo to pgBackRest; repository 3, or 2 without repo2_path, is refused and nothing runs', async () => {
  const t = setup();
  t.coordinator.start();
  try {
    t.leadership.lead();
    await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready');
    assert.throws(() => t.coordinator.startBackup('full', { repo: 3 as 2 }), (err: unknown) => err instanceof BackupRefused && err.reason === 'invalid' && /repository must be 1 or 2/.test(err.message));
    const job = t.coordinator.startBackup('full', { repo: 2 });
    await eventually(async () => (t.fake.lastBackupOpts ? true : undefined), 2000, 'the backup asked of pgBackRest');
    assert.equal(t.fake.lastBackupOpts?.repo, 2);
    t.fake.finishBackup();
    assert.equal((await t.coordinator.waitJob(job.id, 2000))?.state, 'done');
    // The default: no --repo, pgBackRest's first repository.
    t.fake.lastBackupOpts = undefined;
    const plain = t.coordinator.startBackup('incr');
    await eventually(async () => (t.fake.lastBackupOpts ? true : undefined), 2000, 'the second backup');
    assert.equal(lastRepo(t.fake), undefined);
    t.fake.finishBackup();
    await t.coordinator.waitJob(plain.id, 2000);
    assert.deepEqual(t.fake.calls.filter((c) => c.startsWith('backup')), ['backup full', 'backup incr']);
  } finally {
    await t.coordinator.close();
  }
  const one = setup({ repo_path: '/r1' });
  one.coordinator.start();
  try {
    one.leadership.lead();
    await eventually(async () => (one.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready');
    assert.throws(() => one.coordinator.startBackup('full', { repo: 2 }), (err: unknown) => err instanceof BackupRefused && err.reason === 'invalid' && /repository 2 is not configured/.test(err.message));
    assert.deepEqual(one.fake.calls.filter((c) => c.startsWith('backup')), []);
  } finally {
    await one.coordinator.close();
  }
});

test('verify checks both repositories, one after the other: each verdict with its own path and backups; the failing one is the verdict; --repo checks one', async () => {
  const t = setup();
  t.coordinator.start();
  try {
    t.fake.infoOverride = t.info;
    const done = await t.coordinator.waitJob(t.coordinator.startVerify().id, 2000);
    assert.equal(done?.state, 'done', done?.error ?? '');
    assert.deepEqual(t.tool().verified, [1, 2]);
    assert.deepEqual(done!.verify_repos!.map((v) => [v.repo, v.repo_path, v.ok]), [[1, '/r1', false], [2, '/r2', true]]);
    assert.equal(done!.verify!.repo, 1, 'the verdict is the failing repository');
    assert.ok(done!.verify_repos![0]!.problems.some((p) => p.startsWith('invalid checksum: /r1/backup/hasup/')), done!.verify_repos![0]!.problems.join('\n'));
    const only2 = await t.coordinator.waitJob(t.coordinator.startVerify({ repo: 2 }).id, 2000);
    assert.deepEqual(t.tool().verified, [1, 2, 2]);
    assert.equal(only2?.verify?.repo, 2);
    assert.equal(only2?.verify?.ok, true, JSON.stringify(only2?.verify?.problems));
    assert.equal(only2?.verify_repos, undefined);
  } finally {
    await t.coordinator.close();
  }
});

test("the listing says each repository's archive, the failing one named with pgBackRest's reason; the log names it when archiving starts failing", async () => {
  const t = setup();
  t.coordinator.start();
  try {
    t.leadership.lead();
    await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready');
    const behind = { ...t.info, archives: [{ ...t.info.archives[0]!, max: '000000010000000000000028' }, t.info.archives[1]!] };
    t.fake.infoOverride = behind;
    t.tool().pushErrors = [parsePushError('00000001000000000000002C', `103\nraised from local-1 protocol: archive-push command encountered error(s): repo1: [FileOpenError] unable to open file '/r1/archive/x' for write: [13] Permission denied password=${PASSWORD}`, 1)];
    const listing = await t.coordinator.list();
    assert.equal(listing.repo_path_2, '/r2');
    assert.deepEqual(listing.repo_archive?.map((s) => [s.repo, s.state, s.behind]), [[1, 'failing', 3], [2, 'ok', 0]]);
    assert.ok(!JSON.stringify(listing).includes(PASSWORD), 'no secret in the listing');
    const text = listingText(listing);
    assert.match(text, /^repository 2: \/r2$/m);
    assert.match(text, /^WARNING: repository 1 \(\/r1\): WAL archiving to it fails \(segment 00000001000000000000002C: .*repo1: \[FileOpenError\].*\); archived up to 000000010000000000000028$/m);
    t.db.archiverStats = { ...t.db.archiverStats, failedCount: 1, lastFailedWal: '00000001000000000000002C', lastFailedAt: Date.UTC(2026, 11, 7, 9, 5) };
    await eventually(async () => (t.coordinator.report()?.archive?.failing ? true : undefined), 2000, 'failing seen');
    const line = t.lines.find((l) => l.includes('"archive_failing"'));
    assert.ok(line, t.lines.join('\n'));
    assert.match(line!, /WAL archiving fails: segment 00000001000000000000002C could not be archived: .*repo1: \[FileOpenError\]/);
    assert.ok(!line!.includes(PASSWORD));
  } finally {
    await t.coordinator.close();
  }
});
