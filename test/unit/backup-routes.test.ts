/**
 * The backup routes (src/plugins/http/backup.ts) through fastify's inject,
 * with a fake coordinator behind BackupOperations: the token, the schemas,
 * a job started and read, one backup at a time (409 naming the job), a
 * follower naming the leader's API (421), backups off, no leader, the
 * listing and a repository that cannot be read, verify answered at once or
 * as a job to poll.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackupRefused, type BackupOperations, type JobView } from '../../src/plugins/backup/coordinator.js';
import type { BackupType } from '../../src/plugins/backup/info.js';
import type { BackupListing, VerifyOutcome } from '../../src/plugins/backup/views.js';
import { backupRoutes } from '../../src/plugins/http/backup.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { createLogger } from '../../src/supervisor/log.js';

const TOKEN = 'route-test-token';
const LEADER = '00000000000000aa';

function job(over: Partial<JobView> = {}): JobView {
  return {
    id: 'backup-0000beef',
    kind: 'backup',
    type: 'full',
    member: '0000000000000001',
    state: 'running',
    started_at: '2026-12-07T10:00:00.000Z',
    ended_at: null,
    took_ms: null,
    progress: { percent: null, bytes_total: null, bytes_done: null },
    backup: null,
    verify: null,
    error: null,
    ...over,
  };
}

const OUTCOME: VerifyOutcome = {
  ok: false,
  member: '0000000000000001',
  repo: 1,
  repo_path: '/repo',
  checked_at: '2026-12-07T10:00:03.000Z',
  took_ms: 3000,
  report: { ok: false, pgbackrestOk: false, archives: [], backups: [], problems: [{ fault: 'invalid checksum', file: '20261207-100000F/pg_data/base/5/16388.zst' }], walRanges: [], walGaps: [], unusable: ['20261207-100000F'], messages: [] },
  checks: [{ name: 'files', status: 'failed', detail: '1 fault(s)' }],
  problems: ['invalid checksum: /repo/backup/hasup/20261207-100000F/pg_data/base/5/16388.zst'],
  warnings: [],
};

/** A coordinator in one of the states the routes must word. */
class FakeBackups implements BackupOperations {
  mode: 'leader' | 'follower' | 'follower-unknown' | 'off' | 'no-leader' = 'leader';
  running: JobView | undefined;
  started: BackupType[] = [];
  verifyTakesMs = 0;
  listError: Error | undefined;
  private readonly jobs = new Map<string, JobView>();

  report() {
    return undefined;
  }

  private refuse(): void {
    if (this.mode === 'off') throw new BackupRefused('off', 'backups are off on this member: set [service.postgresql.backup] repo_path on every member');
    if (this.mode === 'follower') throw new BackupRefused('not-leader', `backups are taken on the PostgreSQL leader, member ${LEADER}`, LEADER);
    if (this.mode === 'follower-unknown') throw new BackupRefused('not-leader', 'backups are taken on the PostgreSQL leader, member 00000000000000ff', '00000000000000ff');
    if (this.mode === 'no-leader') throw new BackupRefused('no-leader', 'there is no PostgreSQL leader to take the backup now (electing)');
  }

  repos: Array<number | undefined> = [];
  startBackup(type: BackupType, opts: { repo?: 1 | 2 } = {}): JobView {
    this.repos.push(opts.repo);
    this.refuse();
    if (this.running) throw new BackupRefused('busy', `backup job ${this.running.id} (${this.running.type}) is running since ${this.running.started_at}`, null, this.running);
    this.started.push(type);
    this.running = job({ type });
    this.jobs.set(this.running.id, this.running);
    return this.running;
  }

  startVerify(): JobView {
    if (this.mode === 'off') this.refuse();
    const v = job({ id: 'verify-0000cafe', kind: 'verify', type: null });
    this.jobs.set(v.id, v);
    setTimeout(() => this.jobs.set(v.id, { ...v, state: 'done', ended_at: '2026-12-07T10:00:03.000Z', took_ms: 3000, verify: OUTCOME }), this.verifyTakesMs);
    return v;
  }

  job(id: string): JobView | undefined {
    return this.jobs.get(id);
  }

  async waitJob(id: string, ms: number): Promise<JobView | undefined> {
    const until = Date.now() + ms;
    while (this.jobs.get(id)?.state === 'running' && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    return this.jobs.get(id);
  }

  async list(): Promise<BackupListing> {
    this.refuse();
    if (this.listError) throw this.listError;
    return {
      member: '0000000000000001',
      repo_path: '/repo',
      stanza: { name: 'hasup', exists: true, status: { code: 0, message: 'ok' }, system_id: '7716339342733519476', pg_version: '15', cipher: ['none'] },
      backup_running: false,
      backups: [],
      archives: [{ repo: 1, id: '15-1', min: '000000010000000000000003', max: '000000010000000000000005' }],
      recoverable: [],
    };
  }
}

async function server(fake: BackupOperations | undefined) {
  const app = await createHttpServer({
    log: createLogger({ level: 'silent' }),
    token: TOKEN,
    plugins: [{ plugin: backupRoutes, options: { backup: fake, locate: (member: string) => (member === LEADER ? { addr: '10.0.0.11', port: 9631 } : undefined) } }],
  });
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown, token: string | null = TOKEN) =>
    app.inject({ method, url, ...(payload !== undefined ? { payload: payload as object } : {}), headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { app, call };
}

test('POST /backup needs the token, and its body is checked field by field', async () => {
  const fake = new FakeBackups();
  const { app, call } = await server(fake);
  assert.equal((await call('POST', '/backup', { type: 'full' }, null)).statusCode, 401);
  assert.equal((await call('POST', '/backup', { type: 'full' }, 'wrong')).statusCode, 403);
  const badType = await call('POST', '/backup', { type: 'weekly' });
  assert.equal(badType.statusCode, 400);
  assert.match(badType.json().error, /body\/type must be one of "full", "diff", "incr"/);
  const unknown = await call('POST', '/backup', { type: 'full', label: 'x' });
  assert.equal(unknown.statusCode, 400);
  assert.match(unknown.json().error, /unknown field "label"/);
  const badRepo = await call('POST', '/backup', { type: 'full', repo: 3 });
  assert.equal(badRepo.statusCode, 400);
  assert.match(badRepo.json().error, /body\/repo must be one of 1, 2|body\/repo must be equal to one of/);
  assert.deepEqual(fake.started, [], 'nothing started on a refused request');
  assert.equal((await call('POST', '/backup', { type: 'diff', repo: 2 })).statusCode, 202);
  assert.deepEqual(fake.started, ['diff'], 'the repository went with it');
  assert.deepEqual(fake.repos, [2]);
  await app.close();
});

test('POST /backup starts a job (202, full by default); a second one while it runs is 409 naming the running job', async () => {
  const fake = new FakeBackups();
  const { app, call } = await server(fake);
  const first = await call('POST', '/backup');
  assert.equal(first.statusCode, 202, first.body);
  assert.equal(first.json().job.id, 'backup-0000beef');
  assert.equal(first.json().href, '/backup/jobs/backup-0000beef');
  assert.deepEqual(fake.started, ['full']);
  const second = await call('POST', '/backup', { type: 'incr' });
  assert.equal(second.statusCode, 409);
  assert.match(second.json().error, /backup job backup-0000beef \(full\) is running since/);
  assert.equal(second.json().job.id, 'backup-0000beef');
  assert.deepEqual(fake.started, ['full'], 'the second was not started');
  await app.close();
});

test('GET /backup/jobs/:id: the job, 404 for an unknown one, 400 for a malformed id', async () => {
  const fake = new FakeBackups();
  const { app, call } = await server(fake);
  await call('POST', '/backup', { type: 'diff' });
  const got = await call('GET', '/backup/jobs/backup-0000beef');
  assert.equal(got.statusCode, 200);
  assert.equal(got.json().job.type, 'diff');
  assert.equal(got.json().job.state, 'running');
  const missing = await call('GET', '/backup/jobs/backup-00000000');
  assert.equal(missing.statusCode, 404);
  assert.match(missing.json().error, /no job backup-00000000 on this member/);
  assert.equal((await call('GET', '/backup/jobs/..%2Fetc')).statusCode, 400);
  await app.close();
});

test("a follower answers 421 with the leader's member id and API address, or null when it does not know the address", async () => {
  const fake = new FakeBackups();
  fake.mode = 'follower';
  const { app, call } = await server(fake);
  const res = await call('POST', '/backup', { type: 'full' });
  assert.equal(res.statusCode, 421);
  assert.deepEqual(res.json().leader, { member: LEADER, api: 'http://10.0.0.11:9631' });
  assert.match(res.json().error, /taken on the PostgreSQL leader, member 00000000000000aa/);
  fake.mode = 'follower-unknown';
  assert.deepEqual((await call('POST', '/backup')).json().leader, { member: '00000000000000ff', api: null });
  await app.close();
});

test('backups off is 409 saying what to set; no leader is 503; no coordinator is 501', async () => {
  const fake = new FakeBackups();
  fake.mode = 'off';
  const { app, call } = await server(fake);
  for (const [method, url] of [['POST', '/backup'], ['GET', '/backups'], ['POST', '/backup/verify']] as const) {
    const res = await call(method, url);
    assert.equal(res.statusCode, 409, `${method} ${url}`);
    assert.match(res.json().error, /backups are off on this member: set \[service\.postgresql\.backup\] repo_path/);
  }
  fake.mode = 'no-leader';
  const none = await call('POST', '/backup');
  assert.equal(none.statusCode, 503);
  assert.match(none.json().error, /no PostgreSQL leader/);
  await app.close();
  const bare = await server(undefined);
  assert.equal((await bare.call('POST', '/backup')).statusCode, 501);
  await bare.app.close();
});

test('GET /backups: the listing; a repository that cannot be read is 503 with the reason', async () => {
  const fake = new FakeBackups();
  const { app, call } = await server(fake);
  const ok = await call('GET', '/backups');
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().archives[0].max, '000000010000000000000005');
  fake.listError = new Error('pgbackrest info (stanza hasup) failed with exit code 41: ERROR: [041]: unable to open /repo/backup/hasup/backup.info');
  const bad = await call('GET', '/backups');
  assert.equal(bad.statusCode, 503);
  assert.match(bad.json().error, /^cannot read the backup repository: pgbackrest info .* unable to open/);
  const stray = await call('GET', '/backups?verbose=1');
  assert.equal(stray.statusCode, 400);
  assert.match(stray.json().error, /querystring: unknown field "verbose"/);
  await app.close();
});

test('POST /backup/verify: the verdict when it comes within wait_s, else 202 with the job to poll; wait_s is bounded', async () => {
  const fake = new FakeBackups();
  const { app, call } = await server(fake);
  const quick = await call('POST', '/backup/verify', { wait_s: 5 });
  assert.equal(quick.statusCode, 200, quick.body);
  assert.equal(quick.json().job.state, 'done');
  assert.deepEqual(quick.json().job.verify.problems, ['invalid checksum: /repo/backup/hasup/20261207-100000F/pg_data/base/5/16388.zst']);
  fake.verifyTakesMs = 300;
  const slow = await call('POST', '/backup/verify', { wait_s: 0 });
  assert.equal(slow.statusCode, 202);
  assert.equal(slow.json().job.state, 'running');
  assert.equal(slow.json().href, '/backup/jobs/verify-0000cafe');
  assert.equal((await call('POST', '/backup/verify', { wait_s: 600 })).statusCode, 400);
  assert.equal((await call('POST', '/backup/verify', { timeout_s: 1 })).statusCode, 400);
  await new Promise((r) => setTimeout(r, 350));
  assert.equal((await call('GET', '/backup/jobs/verify-0000cafe')).json().job.state, 'done');
  await app.close();
});
