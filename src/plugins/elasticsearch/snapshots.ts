import { setTimeout as sleepFor } from 'node:timers/promises';
import type { EsAccess } from './access.js';
import { firstAnswer, type EsAnswer } from './es-http.js';
import { SnapshotError } from './snapshot-error.js';
import {
  esReasons,
  parseSnapshots,
  parseSnapshotStatus,
  pgBackupLabelProblem,
  REPOSITORY,
  snapshotName,
  type HasupSnapshotMetadata,
  type SnapshotInfo,
  type SnapshotProgress,
} from './snapshot-info.js';
import { retentionPlan, type RetentionOptions } from './snapshot-retention.js';
import { planRestore, type RestorePlan, type RestoreRequest } from './snapshot-restore.js';

/**
 * Elasticsearch snapshots over its HTTP API (docs/backup.md,
 * "Elasticsearch snapshots"): the `fs` repository hasup registers, taking
 * a snapshot and following it, the listing, retention and restore. One
 * object per use; it keeps no state between calls, so any member can do
 * any of it against any node (the repository is cluster state, the
 * directory is shared). What to do and when (the schedule, pairing with
 * the PostgreSQL backup) is the caller's.
 */

/** One request to the cluster: any node, the answer as Elasticsearch gave it (errors included). */
export type EsRequest = (method: 'GET' | 'POST' | 'DELETE', path: string, opts?: { body?: unknown; timeoutMs?: number }) => Promise<EsAnswer>;

/** Requests through the project's client: the first of `urls()` that answers (es-http.ts), as hasup's admin user when security is on. */
export function esRequestOver(urls: () => string[], defaultTimeoutMs = 30_000, access?: () => EsAccess): EsRequest {
  return (method, path, opts = {}) => firstAnswer(urls(), method, path, opts.timeoutMs ?? defaultTimeoutMs, opts.body, access?.());
}

export interface EsSnapshotsOptions {
  request: EsRequest;
  /** The repository directory ([snapshot] repo_path); must be under every node's path.repo. */
  repoPath: string;
  now?: () => Date;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** How often a running snapshot or restore is looked at. */
  pollMs?: number;
}

export interface RepositoryReport {
  /** registered: it was not there; updated: it pointed elsewhere; unchanged: it was right. */
  action: 'registered' | 'updated' | 'unchanged';
  location: string;
  /** The nodes that verified they reach the directory. */
  nodes: string[];
}

export interface TakeOptions {
  /** Index patterns ([snapshot] indices); default every index. */
  indices?: string;
  /** The pgBackRest backup label this snapshot pairs with (kept in its metadata). */
  pgBackup?: string;
  /** The member asking (kept in its metadata). */
  member?: string;
  timeoutMs?: number;
  onProgress?: (p: SnapshotProgress) => void;
  signal?: AbortSignal;
}

export interface RestoreProgress {
  status: string;
  primariesActive: number;
  primariesTotal: number;
}

export interface RestoreOptions {
  timeoutMs?: number;
  onProgress?: (p: RestoreProgress) => void;
  signal?: AbortSignal;
}

const BASE = `/_snapshot/${REPOSITORY}`;
/** Elasticsearch's own limits are minutes for these: a slow shared mount must not fail them at 30 s. */
const VERIFY_TIMEOUT_MS = 60_000;
const DELETE_TIMEOUT_MS = 300_000;
const DEFAULT_WAIT_MS = 3_600_000;
const REASON_CHARS = 600;

export class EsSnapshots {
  private readonly request: EsRequest;
  private readonly now: () => Date;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly pollMs: number;

  constructor(private readonly opts: EsSnapshotsOptions) {
    if (!opts.repoPath.startsWith('/')) throw new SnapshotError('bad-request', 'Elasticsearch snapshots are off: [snapshot] repo_path is not set to an absolute path');
    this.request = opts.request;
    this.now = opts.now ?? (() => new Date());
    this.sleep = opts.sleep ?? ((ms, signal) => sleepFor(ms, undefined, { signal }));
    this.pollMs = opts.pollMs ?? 1000;
  }

  /**
   * The `fs` repository `hasup` at repo_path, registered (or pointed there
   * again) when it is not, and verified on every node each time: a node
   * that lost the mount is found before a snapshot needs it.
   */
  async ensureRepository(): Promise<RepositoryReport> {
    const location = this.opts.repoPath;
    const current = await this.call('GET', BASE, 'reading the snapshot repository');
    let action: RepositoryReport['action'] = 'unchanged';
    if (current.status === 404) action = 'registered';
    else if (current.status !== 200) this.fail('reading the snapshot repository', current);
    else {
      const repo = (current.json as Record<string, { type?: unknown; settings?: { location?: unknown } }> | undefined)?.[REPOSITORY];
      if (repo?.type !== 'fs' || repo.settings?.location !== location) action = 'updated';
    }
    if (action !== 'unchanged') {
      // verify=true (Elasticsearch's default, said here): every node writes and reads a file there before it is accepted.
      const put = await this.call('POST', `${BASE}?verify=true`, 'registering the snapshot repository', { body: { type: 'fs', settings: { location } }, timeoutMs: VERIFY_TIMEOUT_MS });
      if (put.status !== 200) this.fail('registering the snapshot repository', put);
    }
    const verify = await this.call('POST', `${BASE}/_verify`, 'verifying the snapshot repository', { timeoutMs: VERIFY_TIMEOUT_MS });
    if (verify.status !== 200) this.fail('verifying the snapshot repository', verify);
    const nodes = Object.values((verify.json as { nodes?: Record<string, { name?: unknown }> } | undefined)?.nodes ?? {})
      .map((n) => String(n.name))
      .sort();
    return { action, location, nodes };
  }

  /** Asks for a snapshot and returns its name at once; Elasticsearch takes it in the background. */
  async start(opts: Pick<TakeOptions, 'indices' | 'pgBackup' | 'member'> = {}): Promise<string> {
    const metadata: HasupSnapshotMetadata = { taken_by: 'hasup' };
    if (opts.member !== undefined) metadata.member = opts.member;
    if (opts.pgBackup !== undefined) {
      const problem = pgBackupLabelProblem(opts.pgBackup);
      if (problem) throw new SnapshotError('bad-request', problem);
      metadata.pg_backup = opts.pgBackup;
    }
    const name = snapshotName(this.now());
    const body = {
      indices: opts.indices ?? '*',
      // A pattern that matches no index yet (a new cluster) is not an error.
      ignore_unavailable: true,
      // Templates, ILM policies and feature states come along: a lost cluster needs them back.
      include_global_state: true,
      metadata,
    };
    const answer = await this.call('POST', `${BASE}/${name}?wait_for_completion=false`, `starting snapshot ${name}`, { body });
    if (answer.status === 200) return name;
    // The client asks the next node when one did not answer in time: a name taken means the first request landed.
    if (answer.status === 400 && esReasons(answer).some((r) => r.startsWith('invalid_snapshot_name_exception') && r.includes('already exists'))) return name;
    this.fail(`starting snapshot ${name}`, answer);
  }

  /**
   * Follows a snapshot until it has ended, reporting shards done of total
   * (and bytes, when Elasticsearch gives them) on each look. Returns it as
   * it ended, whatever the state; take() judges it.
   */
  async wait(name: string, opts: Pick<TakeOptions, 'timeoutMs' | 'onProgress' | 'signal'> = {}): Promise<SnapshotInfo> {
    const deadline = this.now().getTime() + (opts.timeoutMs ?? DEFAULT_WAIT_MS);
    while (true) {
      opts.signal?.throwIfAborted();
      const info = await this.get(name);
      if (info.state !== 'IN_PROGRESS') {
        if (info.shards) opts.onProgress?.({ name, state: info.state, shardsDone: info.shards.successful + info.shards.failed, shardsTotal: info.shards.total, shardsFailed: info.shards.failed, bytesDone: null, bytesTotal: null });
        return info;
      }
      const status = await this.call('GET', `${BASE}/${name}/_status`, `reading the progress of snapshot ${name}`);
      const progress = status.status === 200 ? parseSnapshotStatus(status.json, name) : undefined;
      if (progress) opts.onProgress?.(progress);
      if (this.now().getTime() >= deadline) {
        const at = progress ? ` at ${progress.shardsDone} of ${progress.shardsTotal} shards` : '';
        throw new SnapshotError('timeout', `snapshot ${name} has not ended after ${Math.round((opts.timeoutMs ?? DEFAULT_WAIT_MS) / 1000)} s${at}; Elasticsearch goes on taking it`);
      }
      await this.sleep(this.pollMs, opts.signal);
    }
  }

  /** The repository checked, a snapshot taken and followed to its end; throws unless it ended SUCCESS. */
  async take(opts: TakeOptions = {}): Promise<SnapshotInfo> {
    await this.ensureRepository();
    const name = await this.start(opts);
    const info = await this.wait(name, opts);
    assertSucceeded(info);
    return info;
  }

  /** Every snapshot in the repository (hasup's and any other), oldest first; none when the repository is not registered yet. */
  async list(): Promise<SnapshotInfo[]> {
    const answer = await this.call('GET', `${BASE}/_all?index_details=true`, 'listing snapshots');
    if (answer.status === 404 && esReasons(answer).some((r) => r.startsWith('repository_missing_exception'))) return [];
    if (answer.status !== 200) this.fail('listing snapshots', answer);
    return parseSnapshots(answer.json);
  }

  async get(name: string): Promise<SnapshotInfo> {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new SnapshotError('bad-request', `${JSON.stringify(name.slice(0, 80))} is not a snapshot name`);
    const answer = await this.call('GET', `${BASE}/${name}?index_details=true`, `reading snapshot ${name}`);
    if (answer.status === 404 && esReasons(answer).some((r) => r.startsWith('repository_missing_exception'))) {
      throw new SnapshotError('missing', `there is no snapshot ${name}: the snapshot repository ${REPOSITORY} is not registered in this Elasticsearch cluster (no snapshot was taken here yet)`);
    }
    if (answer.status === 404) throw new SnapshotError('missing', `there is no snapshot ${name} in repository ${REPOSITORY} (${this.opts.repoPath})`);
    if (answer.status !== 200) this.fail(`reading snapshot ${name}`, answer);
    const info = parseSnapshots(answer.json).find((s) => s.name === name);
    if (!info) throw new SnapshotError('missing', `there is no snapshot ${name} in repository ${REPOSITORY} (${this.opts.repoPath})`);
    return info;
  }

  /**
   * Deletes hasup's snapshots beyond `retention`, and with `liveBackups`
   * those whose pgBackRest backup has expired (snapshot-retention.ts), one
   * at a time, oldest first; stops at the first failure, so what is left
   * is always the newer ones. One already gone counts as deleted.
   */
  async applyRetention(retention: number, opts: RetentionOptions & { onDelete?: (s: SnapshotInfo) => void } = {}): Promise<{ deleted: string[]; kept: string[] }> {
    const plan = retentionPlan(await this.list(), retention, opts);
    const deleted: string[] = [];
    for (const s of plan.delete) {
      const answer = await this.call('DELETE', `${BASE}/${s.name}`, `deleting snapshot ${s.name}`, { timeoutMs: DELETE_TIMEOUT_MS });
      if (answer.status !== 200 && answer.status !== 404) this.fail(`deleting snapshot ${s.name} (retention ${retention}; ${deleted.length} older deleted before it)`, answer);
      deleted.push(s.name);
      opts.onDelete?.(s);
    }
    return { deleted, kept: plan.keep.map((s) => s.name) };
  }

  /**
   * Restores indices of a snapshot as `req` says (snapshot-restore.ts:
   * refused when a target exists, unless replace or rename), then waits
   * until every restored primary shard is active (the indices yellow or
   * green), reporting primaries active of total.
   */
  async restore(name: string, req: RestoreRequest, opts: RestoreOptions = {}): Promise<RestorePlan> {
    const { snapshot, plan } = await this.plan(name, req);
    for (const batch of urlBatches(plan.deleteFirst)) {
      const del = await this.call('DELETE', `/${batch.map(encodeURIComponent).join(',')}`, `deleting the indices the restore replaces`, { timeoutMs: DELETE_TIMEOUT_MS });
      if (del.status !== 200) this.fail(`deleting ${batch.join(', ')} before restoring them (nothing restored yet)`, del);
    }
    const answer = await this.call('POST', `${BASE}/${name}/_restore?wait_for_completion=false`, `restoring snapshot ${name}`, { body: plan.body });
    if (answer.status !== 200) {
      const text = reasonText(answer);
      if (/open index with same name already exists/.test(text)) {
        // Between the check (or the delete) and the restore something created it again: the shipper writing today's index.
        throw new SnapshotError('index-exists', `restoring ${name}: an index to restore exists again (${text}); an index that is written continuously (hasup's own logs and metrics) is recreated by its writer: restore it with rename, or stop the writer`);
      }
      this.fail(`restoring snapshot ${name}`, answer);
    }
    await this.waitForPrimaries(name, plan, snapshot, opts);
    return plan;
  }

  /**
   * What restore(name, req) would do now, or the SnapshotError it would
   * refuse with (a missing snapshot or index, an index in the way): only
   * reads, so a caller can answer bad input before anything changes.
   */
  async planRestore(name: string, req: RestoreRequest): Promise<RestorePlan> {
    return (await this.plan(name, req)).plan;
  }

  private async plan(name: string, req: RestoreRequest): Promise<{ snapshot: SnapshotInfo; plan: RestorePlan }> {
    const snapshot = await this.get(name);
    return { snapshot, plan: planRestore(snapshot, req, await this.existingIndices()) };
  }

  private async waitForPrimaries(name: string, plan: RestorePlan, snapshot: SnapshotInfo, opts: RestoreOptions): Promise<void> {
    const total = plan.sources.reduce((n, s) => n + (snapshot.shardCounts[s] ?? 0), 0);
    const deadline = this.now().getTime() + (opts.timeoutMs ?? DEFAULT_WAIT_MS);
    while (true) {
      opts.signal?.throwIfAborted();
      // Every index's health in one answer, not a URL naming each target (Elasticsearch caps a request line at 4 KB).
      const answer = await this.call('GET', '/_cluster/health?level=indices&filter_path=indices.*.status,indices.*.active_primary_shards', `following the restore of ${name}`);
      if (answer.status !== 200) this.fail(`following the restore of ${name}`, answer);
      const indices = (answer.json as { indices?: Record<string, { status?: unknown; active_primary_shards?: unknown }> } | undefined)?.indices ?? {};
      let active = 0;
      let waiting = 0;
      for (const target of plan.targets) {
        const health = indices[target];
        // Not there yet: the restore was accepted before the index is in the routing table.
        if (!health || health.status === 'red' || typeof health.status !== 'string') waiting++;
        if (typeof health?.active_primary_shards === 'number') active += health.active_primary_shards;
      }
      opts.onProgress?.({ status: waiting > 0 ? 'red' : 'yellow-or-green', primariesActive: active, primariesTotal: Math.max(total, active) });
      if (waiting === 0) return;
      if (this.now().getTime() >= deadline) {
        throw new SnapshotError(
          'timeout',
          `the restore of ${name} has not brought every primary shard back after ${Math.round((opts.timeoutMs ?? DEFAULT_WAIT_MS) / 1000)} s (${waiting} of ${plan.targets.length} ${plan.targets.length === 1 ? 'index' : 'indices'} still red); Elasticsearch goes on (GET _cat/recovery shows it)`,
        );
      }
      await this.sleep(this.pollMs, opts.signal);
    }
  }

  /** Names of every index in the cluster, hidden and closed ones too. */
  private async existingIndices(): Promise<Set<string>> {
    const answer = await this.call('GET', '/_cat/indices?format=json&h=index&expand_wildcards=all', 'listing the indices');
    if (answer.status !== 200 || !Array.isArray(answer.json)) this.fail('listing the indices', answer);
    return new Set((answer.json as Array<{ index?: unknown }>).map((r) => r.index).filter((i): i is string => typeof i === 'string'));
  }

  private async call(method: 'GET' | 'POST' | 'DELETE', path: string, what: string, opts?: { body?: unknown; timeoutMs?: number }): Promise<EsAnswer> {
    try {
      return await this.request(method, path, opts);
    } catch (err) {
      throw new SnapshotError('elasticsearch', `${what}: ${(err as Error).message}`);
    }
  }

  /** An answer that is not what was asked for, as the error that says why. */
  private fail(what: string, answer: EsAnswer): never {
    const text = reasonText(answer);
    const location = this.opts.repoPath;
    if (/path\.repo/.test(text)) {
      throw new SnapshotError(
        'path-repo',
        `${what}: Elasticsearch refuses ${location} as a snapshot repository because it is not under path.repo on every node. hasup writes path.repo from the Elasticsearch config's [snapshot] repo_path; set it to ${location} on every member, and a node started before that needs a restart. (Elasticsearch: ${text})`,
      );
    }
    if (/repository_verification_exception/.test(text)) {
      throw new SnapshotError('repository-unreachable', `${what}: not every Elasticsearch node can write and read ${location}; it must be one directory every member reaches (a shared mount), writable by the service user. (Elasticsearch: ${text})`);
    }
    throw new SnapshotError('elasticsearch', `${what}: ${text}`);
  }
}

/** Throws unless the snapshot ended SUCCESS, naming what went wrong. */
export function assertSucceeded(info: SnapshotInfo): void {
  if (info.state === 'SUCCESS') return;
  if (info.state === 'PARTIAL') {
    const failed = info.shards ? `${info.shards.failed} of ${info.shards.total} shards` : 'some shards';
    const first = info.failures.slice(0, 3).join('; ');
    throw new SnapshotError('partial', `snapshot ${info.name} is partial: ${failed} are not in it${first ? ` (${first}${info.failures.length > 3 ? '; ...' : ''})` : ''}`);
  }
  const why = info.reason ?? info.failures.slice(0, 3).join('; ');
  throw new SnapshotError('failed', `snapshot ${info.name} ended ${info.state}${why ? `: ${why}` : ''}`);
}

function reasonText(answer: EsAnswer): string {
  const text = esReasons(answer).join('; ') || `HTTP ${answer.status}`;
  return text.length > REASON_CHARS ? `${text.slice(0, REASON_CHARS)}...` : text;
}

/** Names split so that each request line stays well under Elasticsearch's 4 KB. */
function urlBatches(names: string[], maxChars = 3000): string[][] {
  const out: string[][] = [];
  let batch: string[] = [];
  let size = 0;
  for (const n of names) {
    const len = encodeURIComponent(n).length + 1;
    if (batch.length > 0 && size + len > maxChars) {
      out.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(n);
    size += len;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}
