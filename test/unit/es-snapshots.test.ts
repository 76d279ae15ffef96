/**
 * Elasticsearch snapshots (src/plugins/elasticsearch/snapshot*.ts) against
 * a fake Elasticsearch on loopback that answers the snapshot API the way
 * 8.14 does (bodies and error shapes as Elasticsearch gives them), through
 * the project's client (es-http.ts): the repository registered and
 * verified, a snapshot taken and followed, the listing, retention and its
 * order, restore request bodies and what happens to existing indices, and
 * every error path with the message an operator sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SnapshotError } from '../../src/plugins/elasticsearch/snapshot-error.js';
import { isHasupSnapshot, parseSnapshots, snapshotName, type SnapshotInfo, type SnapshotProgress } from '../../src/plugins/elasticsearch/snapshot-info.js';
import { planRestore } from '../../src/plugins/elasticsearch/snapshot-restore.js';
import { retentionPlan } from '../../src/plugins/elasticsearch/snapshot-retention.js';
import { EsSnapshots, esRequestOver, type RestoreProgress } from '../../src/plugins/elasticsearch/snapshots.js';

// ---- a fake Elasticsearch --------------------------------------------------------

interface FakeSnapshot {
  snapshot: string;
  uuid: string;
  state: string;
  indices: string[];
  metadata?: Record<string, unknown>;
  start_time_in_millis: number;
  end_time_in_millis?: number;
  /** Looks (GET) before it ends, and how it ends. */
  polls: number;
  looked: number;
  final: 'SUCCESS' | 'PARTIAL' | 'FAILED';
  reason?: string;
}

interface Seen {
  method: string;
  path: string;
  body: unknown;
}

const SHARDS_PER_INDEX = 2;

class FakeEs {
  readonly seen: Seen[] = [];
  repo?: { type: string; location: string };
  /** path.repo of the nodes. */
  pathRepo: string[] = [];
  /** Nodes that cannot reach the directory. */
  unreachable = false;
  readonly snapshots = new Map<string, FakeSnapshot>();
  /** Indices in the cluster: name -> health looks left before its primaries are active. */
  readonly indices = new Map<string, number>();
  /** Snapshot names whose DELETE fails. */
  readonly deleteFails = new Set<string>();
  /** Polls a new snapshot takes, and how it ends. */
  script: { polls: number; final: FakeSnapshot['final']; reason?: string } = { polls: 3, final: 'SUCCESS' };
  /** Looks a restored index stays red. */
  restoreLooks = 2;
  /** Indices a writer recreates between the delete and the restore. */
  recreatedByWriter: string[] = [];
  clock = Date.parse('2026-12-07T03:00:00Z');
  base = '';
  private server?: Server;

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.base;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server!.close(() => resolve()));
  }

  /** A finished snapshot already in the repository. */
  add(name: string, state: string, startIso: string, indices: string[] = ['hasup-logs-2026.12.06'], metadata?: Record<string, unknown>): void {
    const start = Date.parse(startIso);
    this.snapshots.set(name, { snapshot: name, uuid: `u-${name}`, state, indices, metadata, start_time_in_millis: start, end_time_in_millis: start + 1000, polls: 0, looked: 0, final: 'SUCCESS' });
  }

  requests(method?: string): string[] {
    return this.seen.filter((s) => !method || s.method === method).map((s) => `${s.method} ${s.path}`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const body: unknown = text ? JSON.parse(text) : undefined;
    const url = new URL(req.url!, 'http://x');
    this.seen.push({ method: req.method!, path: req.url!, body });
    const [status, answer] = this.route(req.method!, url, body as Record<string, unknown> | undefined);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  }

  private route(method: string, url: URL, body: Record<string, unknown> | undefined): [number, unknown] {
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] === '_snapshot' && parts[1] === 'hasup') return this.snapshotApi(method, parts.slice(2), url, body);
    if (method === 'GET' && parts[0] === '_cat' && parts[1] === 'indices') return [200, [...this.indices.keys()].map((index) => ({ index }))];
    if (method === 'GET' && parts[0] === '_cluster' && parts[1] === 'health') {
      assert.equal(url.searchParams.get('level'), 'indices');
      return this.health();
    }
    if (method === 'DELETE' && parts.length === 1) {
      for (const name of parts[0]!.split(',')) {
        if (!this.indices.has(name)) return error(404, 'index_not_found_exception', `no such index [${name}]`);
      }
      for (const name of parts[0]!.split(',')) this.indices.delete(name);
      for (const name of this.recreatedByWriter) this.indices.set(name, 0);
      return [200, { acknowledged: true }];
    }
    return error(400, 'illegal_argument_exception', `fake: no route ${method} ${url.pathname}`);
  }

  private snapshotApi(method: string, rest: string[], url: URL, body: Record<string, unknown> | undefined): [number, unknown] {
    if (rest.length === 0) {
      if (method === 'GET') return this.repo ? [200, { hasup: { type: this.repo.type, settings: { location: this.repo.location } } }] : error(404, 'repository_missing_exception', '[hasup] missing');
      const location = String((body?.settings as { location?: unknown } | undefined)?.location);
      if (!this.pathRepo.some((p) => location === p || location.startsWith(`${p}/`))) {
        const why = this.pathRepo.length === 0 ? ' because this setting is empty' : '';
        return [500, { error: { root_cause: [{ type: 'repository_exception', reason: `[hasup] location [${location}] doesn't match any of the locations specified by path.repo${why}` }], type: 'repository_exception', reason: '[hasup] failed to create repository', caused_by: { type: 'repository_exception', reason: `[hasup] location [${location}] doesn't match any of the locations specified by path.repo${why}` } }, status: 500 }];
      }
      if (this.unreachable) return this.verificationError(location);
      this.repo = { type: String(body?.type), location };
      return [200, { acknowledged: true }];
    }
    if (!this.repo) return error(404, 'repository_missing_exception', '[hasup] missing');
    if (rest[0] === '_verify') return this.unreachable ? this.verificationError(this.repo.location) : [200, { nodes: { n2: { name: 'm2' }, n1: { name: 'm1' } } }];
    if (rest[0] === '_all') return [200, { snapshots: [...this.snapshots.values()].map((s) => this.view(s)), total: this.snapshots.size, remaining: 0 }];
    const name = rest[0]!;
    const snap = this.snapshots.get(name);
    if (rest.length === 1 && method === 'POST') {
      if (snap) return error(400, 'invalid_snapshot_name_exception', `[hasup:${name}] Invalid snapshot name [${name}], snapshot with the same name already exists`);
      assert.equal(url.searchParams.get('wait_for_completion'), 'false');
      this.snapshots.set(name, {
        snapshot: name,
        uuid: `u-${name}`,
        state: 'IN_PROGRESS',
        indices: [...this.indices.keys()].sort(),
        metadata: body?.metadata as Record<string, unknown>,
        start_time_in_millis: this.clock,
        polls: this.script.polls,
        looked: 0,
        final: this.script.final,
        reason: this.script.reason,
      });
      return [200, { accepted: true }];
    }
    if (!snap) return error(404, 'snapshot_missing_exception', `[hasup:${name}] is missing`);
    if (rest.length === 1 && method === 'DELETE') {
      if (this.deleteFails.has(name)) return error(500, 'repository_exception', `[hasup] cannot delete snapshot ${name}: disk I/O error`);
      this.snapshots.delete(name);
      return [200, { acknowledged: true }];
    }
    if (rest.length === 1 && method === 'GET') {
      if (snap.state === 'IN_PROGRESS') {
        if (snap.looked >= snap.polls) {
          snap.state = snap.final;
          snap.end_time_in_millis = this.clock;
        } else snap.looked++;
      }
      return [200, { snapshots: [this.view(snap)], total: 1, remaining: 0 }];
    }
    if (rest[1] === '_status') {
      const total = snap.indices.length * SHARDS_PER_INDEX;
      const done = Math.floor((total * snap.looked) / (snap.polls + 1));
      return [200, { snapshots: [{ snapshot: name, repository: 'hasup', state: 'STARTED', shards_stats: { initializing: 0, started: total - done, finalizing: 0, done, failed: 0, total }, stats: { incremental: { file_count: 10, size_in_bytes: 1000 }, processed: { file_count: done, size_in_bytes: done * 100 } } }] }];
    }
    if (rest[1] === '_restore') {
      assert.equal(url.searchParams.get('wait_for_completion'), 'false');
      const sources = String(body?.indices).split(',');
      const targets = body?.rename_pattern ? sources.map((s) => String(body.rename_replacement).replace('$1', s)) : sources;
      const open = targets.find((t) => this.indices.has(t));
      if (open) {
        return error(500, 'snapshot_restore_exception', `[hasup:${name}/u-${name}] cannot restore index [${open}] because an open index with same name already exists in the cluster. Either close or delete the existing index or restore the index under a different name by providing a rename pattern and replacement name`);
      }
      for (const t of targets) this.indices.set(t, this.restoreLooks);
      return [200, { accepted: true }];
    }
    return error(400, 'illegal_argument_exception', `fake: no snapshot route ${method} ${rest.join('/')}`);
  }

  private health(): [number, unknown] {
    const indices: Record<string, unknown> = {};
    for (const [n, left] of this.indices) {
      indices[n] = { status: left > 0 ? 'red' : 'green', active_primary_shards: left > 0 ? 0 : SHARDS_PER_INDEX };
      if (left > 0) this.indices.set(n, left - 1);
    }
    return [200, { indices }];
  }

  private verificationError(location: string): [number, unknown] {
    return error(500, 'repository_verification_exception', `[hasup] [[n2, 'org.elasticsearch.repositories.RepositoryVerificationException: [hasup] store location [${location}] is not accessible on the node [{m2}]']]`);
  }

  private view(s: FakeSnapshot): Record<string, unknown> {
    const done = s.state !== 'IN_PROGRESS';
    const total = s.indices.length * SHARDS_PER_INDEX;
    const failed = s.state === 'PARTIAL' ? 1 : s.state === 'FAILED' ? total : 0;
    return {
      snapshot: s.snapshot,
      uuid: s.uuid,
      repository: 'hasup',
      indices: s.indices,
      data_streams: [],
      include_global_state: true,
      ...(s.metadata ? { metadata: s.metadata } : {}),
      state: s.state,
      ...(s.state === 'FAILED' ? { reason: s.reason ?? 'failed' } : {}),
      start_time_in_millis: s.start_time_in_millis,
      ...(done ? { end_time_in_millis: s.end_time_in_millis, duration_in_millis: 1000 } : {}),
      failures: s.state === 'PARTIAL' ? [{ index: s.indices[0], index_uuid: 'x', shard_id: 1, reason: 'IndexShardSnapshotFailedException[primary shard is not allocated]', node_id: 'n1', status: 'INTERNAL_SERVER_ERROR' }] : [],
      shards: { total, failed, successful: total - failed },
      feature_states: [],
      index_details: Object.fromEntries(s.indices.map((i) => [i, { shard_count: SHARDS_PER_INDEX, size_in_bytes: 500, max_segments_per_shard: 1 }])),
    };
  }
}

function error(status: number, type: string, reason: string): [number, unknown] {
  return [status, { error: { root_cause: [{ type, reason }], type, reason }, status }];
}

async function withEs(fn: (es: FakeEs, snaps: (repoPath?: string) => EsSnapshots) => Promise<void>): Promise<void> {
  const es = new FakeEs();
  const url = await es.start();
  const snaps = (repoPath = '/srv/es-snapshots') =>
    new EsSnapshots({
      request: esRequestOver(() => [url], 2000),
      repoPath,
      now: () => new Date(es.clock),
      // Virtual time: each wait moves the fake's clock on.
      sleep: async (ms) => {
        es.clock += ms;
      },
      pollMs: 1000,
    });
  try {
    await fn(es, snaps);
  } finally {
    await es.close();
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<SnapshotError> {
  let caught: unknown;
  await p.catch((err: unknown) => {
    caught = err;
  });
  assert.ok(caught instanceof SnapshotError, `expected a SnapshotError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, message);
  return caught;
}

// ---- names -----------------------------------------------------------------------

test('snapshot names are hasup-YYYYMMDD-HHMMSS-xxxx in UTC, sort by time, and only those are hasup snapshots', () => {
  assert.equal(snapshotName(new Date('2026-12-07T03:11:49.123Z'), 'a1b2'), 'hasup-20261207-031149-a1b2');
  const a = snapshotName(new Date('2026-12-07T03:11:49Z'));
  const b = snapshotName(new Date('2026-12-07T13:00:00Z'));
  assert.ok(a < b, 'lexical order is time order');
  assert.ok(isHasupSnapshot(a) && isHasupSnapshot(b));
  for (const other of ['nightly-1', 'hasup-2026-12-07', 'hasup-20261207-031149-A1B2', 'xhasup-20261207-031149-a1b2']) assert.equal(isHasupSnapshot(other), false, other);
  assert.throws(() => snapshotName(new Date('2026-12-07T03:11:49Z'), 'Z!'), /does not fit/);
});

// ---- the repository --------------------------------------------------------------

test('the repository: registered as fs at repo_path and verified; unchanged the second time; pointed back when it moved', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv/es-snapshots'];
    const first = await snaps().ensureRepository();
    assert.deepEqual(first, { action: 'registered', location: '/srv/es-snapshots', nodes: ['m1', 'm2'] });
    assert.deepEqual(es.requests(), ['GET /_snapshot/hasup', 'POST /_snapshot/hasup?verify=true', 'POST /_snapshot/hasup/_verify']);
    assert.deepEqual(es.seen[1]!.body, { type: 'fs', settings: { location: '/srv/es-snapshots' } });

    es.seen.length = 0;
    assert.equal((await snaps().ensureRepository()).action, 'unchanged');
    assert.deepEqual(es.requests(), ['GET /_snapshot/hasup', 'POST /_snapshot/hasup/_verify'], 'idempotent: not registered again, verified again');

    es.repo = { type: 'fs', location: '/srv/old' };
    assert.equal((await snaps().ensureRepository()).action, 'updated');
    assert.equal(es.repo.location, '/srv/es-snapshots');
  });
});

test('the repository outside path.repo is refused naming the path, path.repo and the setting that renders it', async () => {
  await withEs(async (es, snaps) => {
    const err = await rejectsWith(snaps().ensureRepository(), 'path-repo', /\/srv\/es-snapshots.*not under path\.repo on every node.*\[snapshot\] repo_path.*restart/);
    assert.match(err.message, /this setting is empty/, "Elasticsearch's own reason is kept");
    es.pathRepo = ['/srv/other'];
    await rejectsWith(snaps().ensureRepository(), 'path-repo', /not under path\.repo/);
  });
});

test('a node that cannot reach the directory: repository-unreachable, naming the directory', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv/es-snapshots'];
    es.unreachable = true;
    await rejectsWith(snaps().ensureRepository(), 'repository-unreachable', /not every Elasticsearch node can write and read \/srv\/es-snapshots.*shared mount.*not accessible on the node \[\{m2\}\]/);
    // Registered before the mount went away: found by the verify on the next look.
    es.unreachable = false;
    await snaps().ensureRepository();
    es.unreachable = true;
    await rejectsWith(snaps().ensureRepository(), 'repository-unreachable', /verifying the snapshot repository/);
  });
});

test('snapshots need an absolute repo_path', () => {
  assert.throws(
    () => new EsSnapshots({ request: async () => ({ status: 200, json: {} }), repoPath: '' }),
    (err: unknown) => err instanceof SnapshotError && err.code === 'bad-request' && /repo_path/.test(err.message),
  );
});

// ---- taking a snapshot -----------------------------------------------------------

test('take: the repository checked, a snapshot asked with its metadata, followed with shards done of total to SUCCESS', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    es.indices.set('hasup-logs-2026.12.06', 0).set('hasup-metrics-2026.12.06', 0);
    const seen: SnapshotProgress[] = [];
    const info = await snaps().take({ pgBackup: '20261207-030000F', member: 'aaaa', indices: 'hasup-*', onProgress: (p) => seen.push(p) });
    assert.match(info.name, /^hasup-20261207-030000-[0-9a-f]{4}$/);
    assert.equal(info.state, 'SUCCESS');
    assert.equal(info.pgBackup, '20261207-030000F');
    assert.deepEqual(info.indices, ['hasup-logs-2026.12.06', 'hasup-metrics-2026.12.06']);
    assert.equal(info.sizeBytes, 1000);
    assert.deepEqual(info.shards, { total: 4, successful: 4, failed: 0 });
    assert.ok(info.endedAt && info.startedAt && info.endedAt >= info.startedAt);

    const create = es.seen.find((s) => s.method === 'POST' && s.path.startsWith(`/_snapshot/hasup/${info.name}`))!;
    assert.equal(create.path, `/_snapshot/hasup/${info.name}?wait_for_completion=false`);
    assert.deepEqual(create.body, { indices: 'hasup-*', ignore_unavailable: true, include_global_state: true, metadata: { taken_by: 'hasup', member: 'aaaa', pg_backup: '20261207-030000F' } });

    assert.deepEqual(
      seen.map((p) => `${p.shardsDone}/${p.shardsTotal}`),
      ['1/4', '2/4', '3/4', '4/4'],
      'progress on each look while it runs, then the end',
    );
    assert.equal(seen[1]!.bytesTotal, 1000);
    assert.equal(seen.at(-1)!.state, 'SUCCESS');
  });
});

test('take: a partial snapshot and a failed one are errors naming the shards and the reason', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    es.indices.set('hasup-logs-2026.12.06', 0);
    es.script = { polls: 1, final: 'PARTIAL' };
    await rejectsWith(snaps().take(), 'partial', /^snapshot hasup-\S+ is partial: 1 of 2 shards are not in it \(hasup-logs-2026\.12\.06\[1\]: IndexShardSnapshotFailedException\[primary shard is not allocated\]\)$/);
    es.script = { polls: 0, final: 'FAILED', reason: 'Indices don\'t have primary shards [hasup-logs-2026.12.06]' };
    es.clock += 1000; // another second, another name
    await rejectsWith(snaps().take(), 'failed', /^snapshot hasup-\S+ ended FAILED: Indices don't have primary shards \[hasup-logs-2026\.12\.06\]$/);
  });
});

test('wait: a snapshot that does not end in time is a timeout that says it goes on; an abort stops the wait', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    es.indices.set('a', 0);
    es.script = { polls: 100, final: 'SUCCESS' };
    const s = snaps();
    await s.ensureRepository();
    const name = await s.start();
    await rejectsWith(s.wait(name, { timeoutMs: 5000 }), 'timeout', new RegExp(`^snapshot ${name} has not ended after 5 s at \\d of 2 shards; Elasticsearch goes on taking it$`));
    const ac = new AbortController();
    ac.abort(new Error('member stopping'));
    await assert.rejects(s.wait(name, { signal: ac.signal }), /member stopping/);
  });
});

test('start: a name taken by its own first request (answer lost, asked again elsewhere) is accepted; a bad label is refused before any request', async () => {
  await withEs(async (es) => {
    es.pathRepo = ['/srv'];
    const base = es.base;
    const direct = esRequestOver(() => [base], 2000);
    // The create goes out twice, as when the first node took it but its answer never came.
    const twice = new EsSnapshots({
      request: async (method, path, opts) => {
        if (method === 'POST' && /^\/_snapshot\/hasup\/hasup-/.test(path)) await direct(method, path, opts);
        return direct(method, path, opts);
      },
      repoPath: '/srv/es-snapshots',
      now: () => new Date(es.clock),
    });
    await twice.ensureRepository();
    const name = await twice.start();
    assert.equal(es.requests('POST').filter((r) => r.includes(name)).length, 2);
    assert.ok(es.snapshots.has(name));

    const before = es.seen.length;
    await rejectsWith(twice.start({ pgBackup: 'x y' }), 'bad-request', /backup label/);
    assert.equal(es.seen.length, before, 'nothing sent');
  });
});

// ---- listing ---------------------------------------------------------------------

test('list: every snapshot oldest first with state, times, indices, size and metadata; none before the repository exists', async () => {
  await withEs(async (es, snaps) => {
    assert.deepEqual(await snaps().list(), []);
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    es.add('hasup-20261207-020000-bbbb', 'SUCCESS', '2026-12-07T02:00:00Z', ['hasup-logs-2026.12.06', 'hasup-logs-2026.12.07'], { taken_by: 'hasup', pg_backup: '20261207-015900F' });
    es.add('nightly-manual', 'PARTIAL', '2026-12-06T23:00:00Z');
    es.add('hasup-20261207-010000-aaaa', 'FAILED', '2026-12-07T01:00:00Z', []);
    const list = await snaps().list();
    assert.deepEqual(
      list.map((s) => [s.name, s.state]),
      [
        ['nightly-manual', 'PARTIAL'],
        ['hasup-20261207-010000-aaaa', 'FAILED'],
        ['hasup-20261207-020000-bbbb', 'SUCCESS'],
      ],
    );
    const last = list[2]!;
    assert.equal(last.startedAt?.toISOString(), '2026-12-07T02:00:00.000Z');
    assert.equal(last.endedAt?.toISOString(), '2026-12-07T02:00:01.000Z');
    assert.equal(last.sizeBytes, 1000);
    assert.deepEqual(last.shardCounts, { 'hasup-logs-2026.12.06': 2, 'hasup-logs-2026.12.07': 2 });
    assert.equal(last.pgBackup, '20261207-015900F');
    assert.equal(list[1]!.reason, 'failed');
    assert.equal(list[0]!.failures.length, 1);
  });
});

test('parseSnapshots: a running snapshot has no end or shard counts; malformed entries are left out', () => {
  const list = parseSnapshots({
    snapshots: [
      { snapshot: 'hasup-20261207-030000-aaaa', state: 'IN_PROGRESS', start_time_in_millis: 1, end_time_in_millis: 0, indices: ['b', 'a'], shards: { total: 0, failed: 0, successful: 0 } },
      { state: 'SUCCESS' },
      'garbage',
    ],
  });
  assert.equal(list.length, 1);
  assert.equal(list[0]!.endedAt, null);
  assert.equal(list[0]!.shards, null);
  assert.equal(list[0]!.sizeBytes, null, 'no index_details: size unknown, not 0');
  assert.deepEqual(list[0]!.indices, ['a', 'b']);
  assert.deepEqual(parseSnapshots(undefined), []);
});

test('get: a snapshot that is not there is named as missing, with the repository', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    await rejectsWith(snaps().get('hasup-20200101-000000-0000'), 'missing', /^there is no snapshot hasup-20200101-000000-0000 in repository hasup \(\/srv\/es-snapshots\)$/);
    await rejectsWith(snaps().get('../_all'), 'bad-request', /not a snapshot name/);
  });
});

// ---- retention -------------------------------------------------------------------

function snap(name: string, state: string, startIso: string): SnapshotInfo {
  return { name, uuid: name, state, startedAt: new Date(startIso), endedAt: null, indices: [], shards: null, sizeBytes: null, shardCounts: {}, metadata: {}, pgBackup: null, reason: null, failures: [] };
}

test('retention: keeps the N newest successful snapshots and what came after the oldest of them; deletes older ones oldest first', () => {
  const all = [
    snap('hasup-20261201-000000-0001', 'SUCCESS', '2026-12-01T00:00:00Z'),
    snap('hasup-20261202-000000-0002', 'FAILED', '2026-12-02T00:00:00Z'),
    snap('nightly-by-hand', 'SUCCESS', '2026-12-02T12:00:00Z'),
    snap('hasup-20261203-000000-0003', 'PARTIAL', '2026-12-03T00:00:00Z'),
    snap('hasup-20261204-000000-0004', 'SUCCESS', '2026-12-04T00:00:00Z'),
    snap('hasup-20261205-000000-0005', 'FAILED', '2026-12-05T00:00:00Z'),
    snap('hasup-20261206-000000-0006', 'SUCCESS', '2026-12-06T00:00:00Z'),
    snap('hasup-20261207-000000-0007', 'IN_PROGRESS', '2026-12-07T00:00:00Z'),
  ];
  const shuffled = [all[4]!, all[0]!, all[7]!, all[2]!, all[6]!, all[1]!, all[5]!, all[3]!];
  const plan = retentionPlan(shuffled, 2);
  assert.deepEqual(
    plan.delete.map((s) => s.name),
    ['hasup-20261201-000000-0001', 'hasup-20261202-000000-0002', 'hasup-20261203-000000-0003'],
    'oldest first; failed and partial ones older than the kept ones go too',
  );
  assert.deepEqual(
    plan.keep.map((s) => s.name),
    ['hasup-20261204-000000-0004', 'hasup-20261205-000000-0005', 'hasup-20261206-000000-0006', 'hasup-20261207-000000-0007'],
    'a failed one between kept ones ages out with them; the running one is kept; an operator snapshot is not hasup\'s to delete',
  );
  assert.deepEqual(retentionPlan(shuffled, 3).delete, [], 'as many successful snapshots of hasup\'s as retention (the operator\'s one does not count): nothing deleted');
  assert.deepEqual(retentionPlan(shuffled, 4).delete, [], 'fewer successful snapshots than retention: nothing deleted');

  // Only failures since the last good snapshot: the newest successful one stays whatever retention says.
  const failing = [snap('hasup-20261201-000000-0001', 'SUCCESS', '2026-12-01T00:00:00Z'), ...['02', '03', '04'].map((d) => snap(`hasup-202612${d}-000000-00${d}`, 'FAILED', `2026-12-${d}T00:00:00Z`))];
  assert.deepEqual(retentionPlan(failing, 1).delete, []);
  // A running snapshot older than the cut is never deleted (deleting it would abort it).
  const running = [snap('hasup-20261201-000000-0001', 'IN_PROGRESS', '2026-12-01T00:00:00Z'), snap('hasup-20261202-000000-0002', 'SUCCESS', '2026-12-02T00:00:00Z'), snap('hasup-20261203-000000-0003', 'SUCCESS', '2026-12-03T00:00:00Z')];
  assert.deepEqual(retentionPlan(running, 1).delete.map((s) => s.name), ['hasup-20261202-000000-0002']);
  assert.deepEqual(retentionPlan(running, 1).keep.map((s) => s.name), ['hasup-20261201-000000-0001', 'hasup-20261203-000000-0003']);
  assert.throws(() => retentionPlan(running, 0), /at least 1/);
});

test('applyRetention: deletes one at a time oldest first, and stops at the first failure leaving the newer ones', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    for (let d = 1; d <= 6; d++) es.add(`hasup-2026120${d}-000000-000${d}`, 'SUCCESS', `2026-12-0${d}T00:00:00Z`);
    es.seen.length = 0;
    const deletedSeen: string[] = [];
    const result = await snaps().applyRetention(3, { onDelete: (s) => deletedSeen.push(s.name) });
    assert.deepEqual(es.requests('DELETE'), ['DELETE /_snapshot/hasup/hasup-20261201-000000-0001', 'DELETE /_snapshot/hasup/hasup-20261202-000000-0002', 'DELETE /_snapshot/hasup/hasup-20261203-000000-0003']);
    assert.deepEqual(result.deleted, deletedSeen);
    assert.deepEqual(result.kept, ['hasup-20261204-000000-0004', 'hasup-20261205-000000-0005', 'hasup-20261206-000000-0006']);

    for (let d = 7; d <= 9; d++) es.add(`hasup-2026120${d}-000000-000${d}`, 'SUCCESS', `2026-12-0${d}T00:00:00Z`);
    es.deleteFails.add('hasup-20261205-000000-0005');
    es.seen.length = 0;
    await rejectsWith(snaps().applyRetention(3), 'elasticsearch', /^deleting snapshot hasup-20261205-000000-0005 \(retention 3; 1 older deleted before it\): repository_exception: \[hasup\] cannot delete snapshot .*disk I\/O error$/);
    assert.deepEqual(es.requests('DELETE'), ['DELETE /_snapshot/hasup/hasup-20261204-000000-0004', 'DELETE /_snapshot/hasup/hasup-20261205-000000-0005']);
    assert.ok(es.snapshots.has('hasup-20261206-000000-0006'), 'not tried after the failure');
  });
});

// ---- restore ---------------------------------------------------------------------

const INDICES = ['.kibana_1', 'hasup-logs-2026.12.06', 'hasup-logs-2026.12.07', 'hasup-metrics-2026.12.07', 'orders'];

function done(state = 'SUCCESS'): SnapshotInfo {
  return { ...snap('hasup-20261207-030000-abcd', state, '2026-12-07T03:00:00Z'), indices: INDICES };
}

test('restore plan: all is every index but the dot ones; names and patterns; request bodies per mode', () => {
  const none = new Set<string>();
  const all = planRestore(done(), { indices: 'all' }, none);
  assert.deepEqual(all.sources, ['hasup-logs-2026.12.06', 'hasup-logs-2026.12.07', 'hasup-metrics-2026.12.07', 'orders']);
  assert.deepEqual(all.body, { indices: 'hasup-logs-2026.12.06,hasup-logs-2026.12.07,hasup-metrics-2026.12.07,orders', ignore_unavailable: false, include_global_state: false, include_aliases: true });
  assert.deepEqual(all.deleteFirst, []);

  assert.deepEqual(planRestore(done(), { indices: ['hasup-logs-*', 'orders'] }, none).sources, ['hasup-logs-2026.12.06', 'hasup-logs-2026.12.07', 'orders']);
  assert.deepEqual(planRestore(done(), { indices: ['*'] }, none).sources.includes('.kibana_1'), false, 'a pattern skips dot indices');
  assert.deepEqual(planRestore(done(), { indices: ['.kibana*'] }, none).sources, ['.kibana_1'], 'unless it asks for them');
  assert.deepEqual(planRestore(done('PARTIAL'), { indices: ['orders'] }, none).sources, ['orders'], 'a partial snapshot: Elasticsearch decides per index');

  const renamed = planRestore(done(), { indices: ['orders'], mode: 'rename' }, new Set(['orders']));
  assert.deepEqual(renamed.targets, ['restored-orders']);
  assert.deepEqual(renamed.body, { indices: 'orders', ignore_unavailable: false, include_global_state: false, include_aliases: false, rename_pattern: '(.+)', rename_replacement: 'restored-$1' });
  assert.deepEqual(planRestore(done(), { indices: ['orders'], mode: 'rename', renamePrefix: 'dec7-' }, none).targets, ['dec7-orders']);

  const replace = planRestore(done(), { indices: 'all', mode: 'replace' }, new Set(['orders', 'hasup-logs-2026.12.07', 'unrelated']));
  assert.deepEqual(replace.deleteFirst, ['hasup-logs-2026.12.07', 'orders']);
  assert.deepEqual(replace.body.indices, 'hasup-logs-2026.12.06,hasup-logs-2026.12.07,hasup-metrics-2026.12.07,orders');
});

test('restore plan: refused with the reason, before anything is sent', () => {
  const none = new Set<string>();
  const refused = (fn: () => unknown, code: string, message: RegExp) =>
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof SnapshotError);
      assert.equal(err.code, code, err.message);
      assert.match(err.message, message);
      return true;
    });
  refused(() => planRestore(done(), { indices: ['orders', 'missing', 'nope-*'] }, none), 'not-in-snapshot', /^"missing", "nope-\*" are not in snapshot hasup-20261207-030000-abcd, which holds \.kibana_1, hasup-logs-2026\.12\.06, .*orders\. Nothing was changed$/);
  refused(() => planRestore(done(), { indices: ['orders'] }, new Set(['orders'])), 'index-exists', /would overwrite an existing index: orders\. Nothing was changed\. Restore with replace \(those indices are deleted first: what they hold now is lost\) or with rename \(restored beside them as restored-<name>\)/);
  refused(() => planRestore(done(), { indices: 'all' }, new Set(INDICES)), 'index-exists', /would overwrite 4 existing indices/);
  refused(() => planRestore(done(), { indices: ['orders'], mode: 'rename' }, new Set(['restored-orders'])), 'index-exists', /restored-orders, which already exist/);
  refused(() => planRestore(done(), { indices: ['orders'], mode: 'rename', renamePrefix: 'Bad ' }, none), 'bad-request', /rename prefix/);
  refused(() => planRestore(done(), { indices: [] }, none), 'bad-request', /at least one index/);
  refused(() => planRestore(done(), { indices: ['a,b'] }, none), 'bad-request', /not an index name/);
  refused(() => planRestore(done('FAILED'), { indices: 'all' }, none), 'bad-request', /is FAILED: only a SUCCESS or PARTIAL snapshot can be restored/);
  refused(() => planRestore(done('IN_PROGRESS'), { indices: 'all' }, none), 'bad-request', /IN_PROGRESS/);
  refused(() => planRestore({ ...done(), indices: ['.kibana_1'] }, { indices: 'all' }, none), 'not-in-snapshot', /holds no index to restore/);
  const many = { ...done(), indices: Array.from({ length: 14 }, (_, i) => `i${String(i).padStart(2, '0')}`) };
  refused(() => planRestore(many, { indices: ['x'] }, none), 'not-in-snapshot', /i09 and 4 more\. Nothing/);
});

test('restore over HTTP: refused with existing indices (nothing sent but reads), replace deletes then restores, rename restores beside; primaries followed', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    es.add('hasup-20261207-030000-abcd', 'SUCCESS', '2026-12-07T03:00:00Z', ['hasup-logs-2026.12.06', 'orders']);
    es.indices.set('orders', 0).set('hasup-logs-2026.12.07', 0);

    es.seen.length = 0;
    await rejectsWith(snaps().restore('hasup-20261207-030000-abcd', { indices: 'all' }), 'index-exists', /existing index: orders/);
    assert.deepEqual(es.requests('DELETE'), []);
    assert.deepEqual(es.requests('POST'), []);

    es.seen.length = 0;
    const progress: RestoreProgress[] = [];
    const plan = await snaps().restore('hasup-20261207-030000-abcd', { indices: 'all', mode: 'replace' }, { onProgress: (p) => progress.push(p) });
    assert.deepEqual(plan.targets, ['hasup-logs-2026.12.06', 'orders']);
    assert.deepEqual(es.requests().filter((r) => !r.startsWith('GET')), ['DELETE /orders', 'POST /_snapshot/hasup/hasup-20261207-030000-abcd/_restore?wait_for_completion=false']);
    assert.deepEqual(es.seen.find((s) => s.path.includes('_restore'))!.body, { indices: 'hasup-logs-2026.12.06,orders', ignore_unavailable: false, include_global_state: false, include_aliases: true });
    assert.deepEqual(
      progress.map((p) => `${p.status} ${p.primariesActive}/${p.primariesTotal}`),
      ['red 0/4', 'red 0/4', 'yellow-or-green 4/4'],
    );

    es.seen.length = 0;
    const renamed = await snaps().restore('hasup-20261207-030000-abcd', { indices: ['orders'], mode: 'rename' });
    assert.deepEqual(renamed.targets, ['restored-orders']);
    assert.ok(es.indices.has('restored-orders') && es.indices.has('orders'));
    assert.deepEqual(es.requests('DELETE'), [], 'rename deletes nothing');

    await rejectsWith(snaps().restore('hasup-20261207-030000-abcd', { indices: ['nothere'] }), 'not-in-snapshot', /"nothere" is not in snapshot/);
    await rejectsWith(snaps().restore('hasup-20200101-000000-0000', { indices: 'all' }), 'missing', /no snapshot hasup-20200101-000000-0000/);
  });
});

test('restore over HTTP: an index its writer recreates between the delete and the restore is named, with what to do', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    es.add('hasup-20261207-030000-abcd', 'SUCCESS', '2026-12-07T03:00:00Z', ['hasup-logs-2026.12.07']);
    es.indices.set('hasup-logs-2026.12.07', 0);
    es.recreatedByWriter = ['hasup-logs-2026.12.07'];
    await rejectsWith(
      snaps().restore('hasup-20261207-030000-abcd', { indices: 'all', mode: 'replace' }),
      'index-exists',
      /an index to restore exists again \(snapshot_restore_exception: .*cannot restore index \[hasup-logs-2026\.12\.07\] because an open index.*restore it with rename, or stop the writer/,
    );
  });
});

test('restore: primaries not back in time is a timeout that says Elasticsearch goes on', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    es.add('hasup-20261207-030000-abcd', 'SUCCESS', '2026-12-07T03:00:00Z', ['orders']);
    es.restoreLooks = 1000;
    await rejectsWith(snaps().restore('hasup-20261207-030000-abcd', { indices: 'all' }, { timeoutMs: 3000 }), 'timeout', /^the restore of hasup-20261207-030000-abcd has not brought every primary shard back after 3 s \(1 of 1 index still red\); Elasticsearch goes on/);
  });
});

// ---- no Elasticsearch -------------------------------------------------------------

test('no node answers: an elasticsearch error naming what was being done and each node', async () => {
  const refused = await new Promise<string>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
      s.close(() => resolve(url));
    });
  });
  const s = new EsSnapshots({ request: esRequestOver(() => [refused], 1000), repoPath: '/srv/es' });
  await rejectsWith(s.list(), 'elasticsearch', /^listing snapshots: no Elasticsearch node answered \(http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  const none = new EsSnapshots({ request: esRequestOver(() => [], 1000), repoPath: '/srv/es' });
  await rejectsWith(none.ensureRepository(), 'elasticsearch', /no Elasticsearch node to ask/);
});

test('restore replacing many indices deletes them in requests whose line stays under 4 KB; a snapshot asked of an unregistered repository says so', async () => {
  await withEs(async (es, snaps) => {
    await rejectsWith(snaps().get('hasup-20261207-030000-abcd'), 'missing', /repository hasup is not registered/);
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    const names = Array.from({ length: 150 }, (_, i) => `hasup-logs-2026.${String(i).padStart(3, '0')}-with-a-long-name`);
    es.add('hasup-20261207-030000-abcd', 'SUCCESS', '2026-12-07T03:00:00Z', names);
    for (const n of names) es.indices.set(n, 0);
    es.restoreLooks = 0;
    es.seen.length = 0;
    await snaps().restore('hasup-20261207-030000-abcd', { indices: 'all', mode: 'replace' });
    const deletes = es.requests('DELETE');
    assert.ok(deletes.length >= 2, `${deletes.length} requests`);
    for (const d of deletes) assert.ok(d.length < 3100, `${d.length} characters`);
    assert.equal(deletes.join(',').split(',').length, names.length, 'every one deleted once');
  });
});

test('retention paired with pgBackRest: a snapshot whose backup expired is deleted whatever the count; never a running one or the newest good one', async () => {
  const paired = (name: string, state: string, day: string, pgBackup: string | null): SnapshotInfo => ({ ...snap(name, state, `2026-12-${day}T00:00:00Z`), pgBackup });
  const all = [
    paired('hasup-20261201-000000-0001', 'SUCCESS', '01', '20261201-000000F'),
    paired('hasup-20261202-000000-0002', 'SUCCESS', '02', null),
    paired('hasup-20261203-000000-0003', 'PARTIAL', '03', '20261203-000000F'),
    paired('hasup-20261204-000000-0004', 'SUCCESS', '04', '20261204-000000F'),
    paired('hasup-20261205-000000-0005', 'IN_PROGRESS', '05', '20261205-000000F'),
    paired('hasup-20261206-000000-0006', 'SUCCESS', '06', '20261206-000000F'),
  ];
  assert.deepEqual(retentionPlan(all, 7).delete, [], 'the count alone keeps all of them');
  const live = new Set(['20261204-000000F']);
  assert.deepEqual(
    retentionPlan(all, 7, { liveBackups: live }).delete.map((s) => s.name),
    ['hasup-20261201-000000-0001', 'hasup-20261203-000000-0003'],
    'the expired backups\' snapshots go, oldest first; one naming no backup is left to the count; a running one and the newest good one stay',
  );
  assert.deepEqual(
    retentionPlan(all, 1, { liveBackups: live }).delete.map((s) => s.name),
    ['hasup-20261201-000000-0001', 'hasup-20261202-000000-0002', 'hasup-20261203-000000-0003', 'hasup-20261204-000000-0004'],
    'both rules together, in one oldest-first order',
  );

  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    es.add('hasup-20261201-000000-0001', 'SUCCESS', '2026-12-01T00:00:00Z', ['orders'], { taken_by: 'hasup', pg_backup: '20261201-000000F' });
    es.add('hasup-20261202-000000-0002', 'SUCCESS', '2026-12-02T00:00:00Z', ['orders'], { taken_by: 'hasup', pg_backup: '20261202-000000F' });
    es.seen.length = 0;
    const result = await snaps().applyRetention(7, { liveBackups: new Set(['20261202-000000F']) });
    assert.deepEqual(result.deleted, ['hasup-20261201-000000-0001']);
    assert.deepEqual(es.requests('DELETE'), ['DELETE /_snapshot/hasup/hasup-20261201-000000-0001']);
  });
});

test('planRestore: what a restore would do, or its refusal, with reads only', async () => {
  await withEs(async (es, snaps) => {
    es.pathRepo = ['/srv'];
    await snaps().ensureRepository();
    es.add('hasup-20261207-030000-abcd', 'SUCCESS', '2026-12-07T03:00:00Z', ['orders', 'hasup-logs-2026.12.07']);
    es.indices.set('orders', 0);
    es.seen.length = 0;
    const plan = await snaps().planRestore('hasup-20261207-030000-abcd', { indices: ['orders'], mode: 'replace' });
    assert.deepEqual({ sources: plan.sources, deleteFirst: plan.deleteFirst }, { sources: ['orders'], deleteFirst: ['orders'] });
    await rejectsWith(snaps().planRestore('hasup-20261207-030000-abcd', { indices: ['orders'], mode: 'refuse' }), 'index-exists', /would overwrite an existing index: orders\. Nothing was changed/);
    await rejectsWith(snaps().planRestore('hasup-20261207-030000-abcd', { indices: ['invoices'], mode: 'replace' }), 'not-in-snapshot', /"invoices" is not in snapshot/);
    assert.deepEqual(es.requests().filter((r) => !r.startsWith('GET')), [], 'nothing but reads');
    assert.ok(es.indices.has('orders'));
  });
});
