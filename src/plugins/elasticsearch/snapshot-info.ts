import { randomBytes } from 'node:crypto';
import type { EsAnswer } from './es-http.js';

/**
 * What hasup knows of an Elasticsearch snapshot, read from Elasticsearch's
 * snapshot API (GET _snapshot/<repo>/<names>), and the names hasup gives
 * its snapshots. Pure: the HTTP calls are in snapshots.ts.
 */

/** The repository hasup registers and takes its snapshots in. */
export const REPOSITORY = 'hasup';
/** Every snapshot hasup takes is named hasup-YYYYMMDD-HHMMSS-xxxx; retention touches no other. */
export const SNAPSHOT_PREFIX = 'hasup-';
const NAME_PATTERN = /^hasup-\d{8}-\d{6}-[0-9a-f]{4}$/;

/** Elasticsearch's SnapshotState; a state this version does not know is kept as given. */
export type SnapshotState = 'IN_PROGRESS' | 'SUCCESS' | 'PARTIAL' | 'FAILED' | 'INCOMPATIBLE' | (string & {});

export interface SnapshotInfo {
  name: string;
  uuid: string;
  state: SnapshotState;
  startedAt: Date | null;
  /** Null while it runs. */
  endedAt: Date | null;
  /** Index names it holds, sorted. */
  indices: string[];
  /** Shards counted once it ended; null while it runs. */
  shards: { total: number; successful: number; failed: number } | null;
  /**
   * The size of the indices it holds (index_details), files it shares with
   * other snapshots counted in each: not what it added to the repository.
   * Null when Elasticsearch gave no details.
   */
  sizeBytes: number | null;
  /** Primary shards per index (index_details), for restore progress. */
  shardCounts: Record<string, number>;
  /** The metadata it was taken with (hasup's keys below). */
  metadata: Record<string, unknown>;
  /** The pgBackRest backup label it was taken with (metadata.pg_backup), or null. */
  pgBackup: string | null;
  /** Why it failed, for FAILED (Elasticsearch's reason). */
  reason: string | null;
  /** Per failed shard: "index[shard]: reason". */
  failures: string[];
}

/** hasup's keys in a snapshot's metadata (Elasticsearch keeps the object as given, up to 1 KB). */
export interface HasupSnapshotMetadata {
  taken_by: 'hasup';
  /** The member whose request took it. */
  member?: string;
  /** The pgBackRest backup it pairs with in a backup set. */
  pg_backup?: string;
}

/** A sortable name: the UTC time it was asked for, and a random suffix so two members never collide. */
export function snapshotName(now: Date, suffix: string = randomBytes(2).toString('hex')): string {
  const iso = now.toISOString(); // 2026-12-07T03:11:49.123Z
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
  const name = `${SNAPSHOT_PREFIX}${stamp}-${suffix}`;
  if (!NAME_PATTERN.test(name)) throw new Error(`snapshot name ${JSON.stringify(name)} does not fit ${NAME_PATTERN}`);
  return name;
}

export function isHasupSnapshot(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/** A pgBackRest label as metadata: short and printable, or refused (it is echoed in listings). */
export function pgBackupLabelProblem(label: string): string | undefined {
  return /^[A-Za-z0-9_.:-]{1,64}$/.test(label) ? undefined : `a backup label must be 1-64 letters, digits, "_.:-" (got ${JSON.stringify(label.slice(0, 80))})`;
}

interface RawSnapshot {
  snapshot?: unknown;
  uuid?: unknown;
  state?: unknown;
  reason?: unknown;
  indices?: unknown;
  metadata?: unknown;
  start_time_in_millis?: unknown;
  end_time_in_millis?: unknown;
  shards?: { total?: unknown; successful?: unknown; failed?: unknown };
  failures?: Array<{ index?: unknown; shard_id?: unknown; reason?: unknown }>;
  index_details?: Record<string, { shard_count?: unknown; size_in_bytes?: unknown }>;
}

/** The snapshots of a GET _snapshot answer, oldest first (by start, then name); malformed entries are left out. */
export function parseSnapshots(json: unknown): SnapshotInfo[] {
  const list = (json as { snapshots?: unknown } | undefined)?.snapshots;
  if (!Array.isArray(list)) return [];
  const out: SnapshotInfo[] = [];
  for (const raw of list as RawSnapshot[]) {
    const info = parseSnapshot(raw);
    if (info) out.push(info);
  }
  return out.sort(byStart);
}

export function byStart(a: SnapshotInfo, b: SnapshotInfo): number {
  return (a.startedAt?.getTime() ?? 0) - (b.startedAt?.getTime() ?? 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function parseSnapshot(raw: RawSnapshot): SnapshotInfo | undefined {
  if (typeof raw !== 'object' || raw === null || typeof raw.snapshot !== 'string' || typeof raw.state !== 'string') return undefined;
  const metadata = typeof raw.metadata === 'object' && raw.metadata !== null && !Array.isArray(raw.metadata) ? (raw.metadata as Record<string, unknown>) : {};
  const details = typeof raw.index_details === 'object' && raw.index_details !== null ? raw.index_details : undefined;
  const shardCounts: Record<string, number> = {};
  let sizeBytes: number | null = null;
  if (details) {
    sizeBytes = 0;
    for (const [index, d] of Object.entries(details)) {
      if (typeof d?.shard_count === 'number') shardCounts[index] = d.shard_count;
      if (typeof d?.size_in_bytes === 'number') sizeBytes += d.size_in_bytes;
    }
  }
  const shards = raw.shards && raw.state !== 'IN_PROGRESS' ? { total: num(raw.shards.total), successful: num(raw.shards.successful), failed: num(raw.shards.failed) } : null;
  return {
    name: raw.snapshot,
    uuid: typeof raw.uuid === 'string' ? raw.uuid : '',
    state: raw.state,
    startedAt: time(raw.start_time_in_millis),
    endedAt: raw.state === 'IN_PROGRESS' ? null : time(raw.end_time_in_millis),
    indices: Array.isArray(raw.indices) ? raw.indices.filter((i): i is string => typeof i === 'string').sort() : [],
    shards,
    sizeBytes,
    shardCounts,
    metadata,
    pgBackup: typeof metadata.pg_backup === 'string' ? metadata.pg_backup : null,
    reason: typeof raw.reason === 'string' && raw.reason !== '' ? raw.reason : null,
    failures: Array.isArray(raw.failures) ? raw.failures.map((f) => `${String(f.index)}[${String(f.shard_id)}]: ${String(f.reason)}`) : [],
  };
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function time(v: unknown): Date | null {
  return typeof v === 'number' && v > 0 ? new Date(v) : null;
}

/** Progress of a running snapshot from GET _snapshot/<repo>/<name>/_status. */
export interface SnapshotProgress {
  name: string;
  /** _status's state: STARTED, SUCCESS, FAILED, ABORTED... */
  state: string;
  shardsDone: number;
  shardsTotal: number;
  shardsFailed: number;
  /** Bytes copied so far and to copy (this snapshot's own files), when reported. */
  bytesDone: number | null;
  bytesTotal: number | null;
}

export function parseSnapshotStatus(json: unknown, name: string): SnapshotProgress | undefined {
  const list = (json as { snapshots?: unknown } | undefined)?.snapshots;
  if (!Array.isArray(list)) return undefined;
  const raw = (list as Array<Record<string, unknown>>).find((s) => s?.snapshot === name);
  if (!raw) return undefined;
  const shards = (raw.shards_stats ?? {}) as Record<string, unknown>;
  const stats = (raw.stats ?? {}) as { incremental?: { size_in_bytes?: unknown }; processed?: { size_in_bytes?: unknown } };
  const bytes = (v: unknown) => (typeof v === 'number' ? v : null);
  return {
    name,
    state: typeof raw.state === 'string' ? raw.state : 'UNKNOWN',
    shardsDone: num(shards.done),
    shardsTotal: num(shards.total),
    shardsFailed: num(shards.failed),
    bytesDone: bytes(stats.processed?.size_in_bytes),
    bytesTotal: bytes(stats.incremental?.size_in_bytes),
  };
}

/** Elasticsearch error types and reasons in an answer: the error, its caused_by chain and root causes. */
export function esReasons(answer: EsAnswer): string[] {
  const out: string[] = [];
  const walk = (err: unknown, depth: number): void => {
    if (depth > 5 || typeof err !== 'object' || err === null) return;
    const e = err as { type?: unknown; reason?: unknown; caused_by?: unknown; root_cause?: unknown };
    const text = [e.type, e.reason].filter((x) => typeof x === 'string' && x !== '').join(': ');
    if (text && !out.includes(text)) out.push(text);
    if (Array.isArray(e.root_cause)) for (const c of e.root_cause) walk(c, depth + 1);
    walk(e.caused_by, depth + 1);
  };
  const err = (answer.json as { error?: unknown } | undefined)?.error;
  if (typeof err === 'string') out.push(err);
  else walk(err, 0);
  return out;
}
