/**
 * Backup benchmark (issue #13): a 3-node PostgreSQL cluster in network
 * namespaces behind HAProxy, formed by `hasup cluster create`/`join`, with a
 * shared pgBackRest repository (HaCluster's `backup` option), filled by
 * `pgbench -i -s SCALE`; later a warm spare of it (`standbyOf`, sharing the
 * repository).
 *
 *   npm run bench:backup -- --json [--scale 100] [--quick] [--load-s 60] [--clients 4] [--cipher]
 *
 * Phases, in this order (each printed with its duration on stderr):
 *   1. the cluster, and the leader making the repository ready (stanza ok);
 *   2. pgbench -i -s SCALE through the leader's address → db_mb (the sum of
 *      pg_database_size over every database: what a backup copies);
 *   3. `hasup backup create --type full --wait` on the leader → backup_full_s
 *      (the backup job's own took_ms: from the leader starting the job to its
 *      end, checkpoint and pgBackRest's copy included; the CLI's wall time,
 *      quantized by its 2 s polling, is backup_full_cli_s);
 *   4. the baseline: `pg_basebackup -X none -c fast` of the same leader, as
 *      the replication user, into a directory beside the repository (the same
 *      filesystem), wall time → pg_basebackup_s; both rates are db_mb over
 *      the time;
 *   5. pgbench for --incr-load-s, then `hasup backup create --type incr` →
 *      backup_incr_s (the job's took_ms);
 *   6. pgbench on the leader for --load-s while the archive is sampled each
 *      second → archive_lag_s_p99 (definition at archiveSample below);
 *   7. point in time: 1000 rows, a timestamp T, 1000 more rows, the WAL
 *      switched and archived; `hasup restore --time T --yes` on a follower →
 *      pitr_restore_s, from the command's start to the cluster whole again
 *      (one leader, both followers streaming, etcd whole); only the first
 *      1000 rows must be back;
 *   8. 1000 rows written and archived, `hasup restore --latest --yes` on a
 *      follower → restore_s (the same span); the rows must be back;
 *   9. the spare (`cluster create --standby-of` the primary's HAProxy) →
 *      spare_build_s, from its members' start to a standby leader streaming
 *      and both its followers streaming from it;
 *  10. pgbench on the primary leader for --load-s while the spare's lag is
 *      sampled each second → spare_lag_bytes_p99 (at spareLagSample below);
 *  11. every primary node killed; once the spare's standby leader reports
 *      the stream cut, `hasup cluster promote` on it, writes every 20 ms
 *      through the spare's HAProxy → dr_promote_s, from the start of the
 *      command to the first write acknowledged through the spare's HAProxy.
 *
 * p99 is the nearest-rank 99th percentile of the one-second samples (with
 * 60 samples, their maximum); the maximum is printed too. Targets, printed
 * beside the figures and not asserted: full backup at least as fast as
 * pg_basebackup, archive_lag_s_p99 <= 5, spare_lag_bytes_p99 < 1 MiB,
 * dr_promote_s <= 15.
 *
 * Passwords reach pgbench and pg_basebackup only through the environment
 * (PGPASSWORD), and the bench's own queries through the pg driver; never a
 * command line. Anything printed has every cluster secret replaced by
 * <secret>.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { JobView } from '../src/plugins/backup/coordinator.js';
import type { BackupListing } from '../src/plugins/backup/views.js';
import type { ClusterView } from '../src/plugins/http/cluster-view.js';
import { eventually, HaCluster, PG_PORT } from '../test/support/ha-cluster.js';
import { hasupCli, lastLines, runCommand, type CommandResult } from '../test/support/hasup-cli.js';
import { netnsUnavailableReason } from '../test/support/netns-cluster.js';
import { WriteChecker } from '../test/support/write-checker.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';
/** plans/postgresql/default.toml: the superuser hasup creates, and its replication role. */
const SUPERUSER = 'hasup';
const REPLICATION_USER = 'replicator';
const MIB = 1024 * 1024;
const MIN = 60_000;

const { values } = parseArgs({
  options: {
    scale: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'load-s': { type: 'string' },
    'incr-load-s': { type: 'string' },
    clients: { type: 'string', default: '4' },
    cipher: { type: 'boolean', default: false },
    /** A [service.postgresql.backup] key of both clusters, e.g. --setting process_max=2 (repeatable). */
    setting: { type: 'string', multiple: true, default: [] },
    json: { type: 'boolean', default: false },
  },
});

const progress = (msg: string) => process.stderr.write(`[backup] ${new Date().toISOString().slice(11, 19)} ${redact(msg)}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load1 = () => Math.round(loadavg()[0]! * 100) / 100;
const secs = (ms: number) => Math.round(ms / 10) / 100;
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Every secret the run holds, to be kept out of anything it prints. */
const secrets: string[] = [];
function redact(text: string): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('<secret>');
  return out;
}
function rememberSecrets(ha: HaCluster): void {
  const s = ha.secrets;
  secrets.push(s.api_token, s.postgresql.superuser_password, s.postgresql.replication_password, ...(s.backup ? [s.backup.repo_cipher_pass] : []));
}

/** Nearest-rank percentile (p in 0..100) of samples; null without any. */
function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Runs one phase, printing its start and its duration; a failure names the phase. */
async function phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
  progress(`${name} ...`);
  const started = Date.now();
  try {
    const value = await fn();
    progress(`${name}: done in ${secs(Date.now() - started)} s`);
    return value;
  } catch (err) {
    throw new Error(`${name} failed after ${secs(Date.now() - started)} s: ${(err as Error).message}`);
  }
}

/** The libpq environment for a tool connecting to node i as `user`: the password only here. */
function pgEnv(ha: HaCluster, i: number, user: string, password: string): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: ha.address(i), PGPORT: String(PG_PORT), PGUSER: user, PGPASSWORD: password, PGDATABASE: 'postgres', PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'bench-backup' };
}

/** A command that must succeed: its output lines shown (indented) while it runs, a failure with its last lines. */
async function mustRun(what: string, run: (onLine: (line: string) => void) => Promise<CommandResult>): Promise<CommandResult> {
  const r = await run((line) => progress(`  ${line}`));
  if (r.code !== 0) throw new Error(`${what} ${r.timedOut ? 'timed out' : `exited with ${r.code}`}: ${redact(lastLines(r.stderr) || lastLines(r.stdout))}`);
  return r;
}

function pgbench(ha: HaCluster, leader: number, args: string[], timeoutMs: number): Promise<CommandResult> {
  return mustRun(`pgbench ${args.join(' ')}`, (onLine) => runCommand(join(PG_BIN, 'pgbench'), args, { env: pgEnv(ha, leader, SUPERUSER, ha.secrets.postgresql.superuser_password), timeoutMs, onLine }));
}

/** pgbench writing on the leader for `seconds` (TPC-B-like, no vacuum first); its tps. */
async function pgbenchLoad(ha: HaCluster, leader: number, seconds: number, clients: number): Promise<number | null> {
  const r = await pgbench(ha, leader, ['-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-P', '10'], seconds * 1000 + 10 * MIN);
  const tps = /^tps = ([\d.]+)/m.exec(r.stdout);
  return tps ? round(Number(tps[1]), 1) : null;
}

function hasup(ha: HaCluster, i: number, args: string[], timeoutMs: number): Promise<CommandResult> {
  return mustRun(`hasup ${args.join(' ')} (node ${i})`, (onLine) => hasupCli(ha, i, args, { timeoutMs, onLine }));
}

/** A pg connection kept open for one-second sampling; reopened after an error. */
class Sampler {
  private client: pg.Client | null = null;
  constructor(
    private readonly host: string,
    private readonly password: string,
    /** The cluster CA: remote sessions are TLS only (docs/tls.md). */
    private readonly ca: string | undefined,
  ) {}

  async query<T extends pg.QueryResultRow>(text: string): Promise<T> {
    try {
      if (!this.client) {
        const c = new pg.Client({ host: this.host, port: PG_PORT, user: SUPERUSER, password: this.password, database: 'postgres', connectionTimeoutMillis: 3000, query_timeout: 3000, application_name: 'bench-backup-sampler', ssl: this.ca ? { ca: this.ca } : false });
        c.on('error', () => undefined);
        this.client = c;
        await c.connect();
      }
      return (await this.client.query<T>(text)).rows[0]!;
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }
}

/** Calls `sample` about every second while `work` runs; `work`'s result (or failure) once it ends. Failed samples are counted, not fatal. */
async function sampleWhile<T>(work: Promise<T>, sample: () => Promise<void>): Promise<{ value: T; failedSamples: number }> {
  let done = false;
  let failure: { err: unknown } | undefined;
  let value: T | undefined;
  void work.then(
    (v) => {
      value = v;
      done = true;
    },
    (err: unknown) => {
      failure = { err };
      done = true;
    },
  );
  let failedSamples = 0;
  while (!done) {
    const started = Date.now();
    await sample().catch(() => failedSamples++);
    await sleep(Math.max(0, 1000 - (Date.now() - started)));
  }
  if (failure) throw failure.err;
  return { value: value as T, failedSamples };
}

/**
 * Archive lag, one sample on the leader. A WAL segment is complete when
 * PostgreSQL switches to the next one; at that moment it creates
 * pg_wal/archive_status/<segment>.ready, and renames it to .done only once
 * archive_command succeeded (pgBackRest's async archive-push answers success
 * only for a segment acknowledged as stored in the repository). So the age
 * of the oldest .ready file is how long the oldest completed segment not yet
 * archived has waited: the lag of the archive behind the WAL, on the
 * server's own clock, 0 when every completed segment is archived. The
 * segment being written is not counted (archive_timeout is not set, so no
 * archiver would take it). `ready` is how many segments wait.
 */
const ARCHIVE_SAMPLE_SQL = `SELECT coalesce(extract(epoch FROM clock_timestamp() - min(modification)), 0)::float8 AS lag_s, count(*)::int AS ready,
  (SELECT failed_count FROM pg_stat_archiver)::int AS failed
  FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'`;

/** "X/Y" (pg_lsn as text) in bytes. */
function lsnBytes(lsn: string): bigint {
  const m = /^([0-9A-F]+)\/([0-9A-F]+)$/i.exec(lsn);
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

/** Sum of the size of every file under a directory. */
function duBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += duBytes(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}

/** Every member's log, for a run that failed: one file per hasup process. */
function keepLogs(clusters: Array<[string, HaCluster | undefined]>): string {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-backup-bench-logs-'));
  for (const [name, ha] of clusters) ha?.saveMemberLogs(dir, `${name}-`);
  return dir;
}

/** `backup create --type TYPE --wait` on node i; the job as the member that ran it reports it. */
async function backupJob(ha: HaCluster, i: number, type: 'full' | 'incr'): Promise<{ job: JobView; cliMs: number }> {
  const r = await hasup(ha, i, ['backup', 'create', '--type', type, '--wait'], 6 * 60 * MIN);
  const started = /^backup job (\S+) \(\w+\) started on member/m.exec(r.stdout);
  if (!started) throw new Error(`no job id in the output of backup create: ${lastLines(r.stdout)}`);
  const { job } = await ha.member(i).api<{ job: JobView }>(`/backup/jobs/${encodeURIComponent(started[1]!)}`);
  if (job.state !== 'done' || job.took_ms === null) throw new Error(`backup job ${job.id} is ${job.state}: ${job.error ?? ''}`);
  return { job, cliMs: r.ms };
}

async function listing(ha: HaCluster, i: number): Promise<BackupListing> {
  const r = await hasupCli(ha, i, ['backup', 'list', '--json'], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`backup list: ${redact(lastLines(r.stderr))}`);
  return JSON.parse(r.stdout) as BackupListing;
}

/** Switches the leader's WAL and waits for that segment in the repository. */
async function archiveNow(ha: HaCluster, leader: number): Promise<void> {
  const [seg] = await ha.sql<{ wal: string }>(leader, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal');
  await eventually(async () => (await listing(ha, leader)).archives.some((a) => (a.max ?? '') >= seg!.wal) || undefined, 3 * MIN, `segment ${seg!.wal} in the archive`, 1000);
}

async function countRows(ha: HaCluster, i: number, table: string): Promise<number> {
  const [r] = await ha.sql<{ n: string }>(i, `SELECT count(*)::text AS n FROM ${table}`);
  return Number(r!.n);
}

/** `restore ARGS --yes` on a follower of the current leader; ms from the command's start to the cluster whole again. */
async function timedRestore(ha: HaCluster, target: string[]): Promise<{ wholeMs: number; cliMs: number; restorer: number; leader: number }> {
  const before = await ha.whole(10 * MIN);
  const restorer = [1, 2, 3].find((i) => i !== before)!;
  progress(`  node ${restorer} restores (leader was node ${before})`);
  const started = Date.now();
  const r = await hasup(ha, restorer, ['restore', ...target, '--yes'], 60 * MIN);
  const leader = await ha.whole(60 * MIN);
  return { wholeMs: Date.now() - started, cliMs: r.ms, restorer, leader };
}

interface Result {
  scale: number;
  db_mb: number;
  pgbench_init_s: number;
  backup_full_s: number;
  backup_full_source: { role: string; reason?: string } | null;
  backup_full_cli_s: number;
  backup_mb_per_s: number;
  backup_full_repo_mb: number | null;
  pg_basebackup_s: number;
  pg_basebackup_mb_per_s: number;
  pg_basebackup_dir_mb: number;
  backup_incr_s: number;
  backup_incr_repo_mb: number | null;
  incr_load_tps: number | null;
  archive_lag_s_p99: number | null;
  archive_lag_s_max: number | null;
  archive_ready_max: number;
  archive_failures: number;
  archive_samples: number;
  archive_load_tps: number | null;
  pitr_restore_s: number;
  pitr_restore_cli_s: number;
  restore_s: number;
  restore_cli_s: number;
  spare_build_s: number;
  spare_lag_bytes_p99: number | null;
  spare_lag_bytes_max: number | null;
  spare_samples: number;
  spare_load_tps: number | null;
  dr_promote_s: number;
  dr_promote_cli_s: number;
  pgbench_load_s: number;
  pgbench_clients: number;
  cipher: boolean;
  /** The --setting keys the run was given. */
  settings: string[];
  targets: Record<string, string>;
  targets_met: Record<string, boolean | null>;
  load1_at_start: number;
  load1: number;
}

/** --setting KEY=VALUE as a TOML line: a number or boolean as it is, anything else a string. */
function tomlSetting(arg: string): string {
  const m = /^([a-z_0-9]+)=(.*)$/.exec(arg);
  if (!m) throw new Error(`--setting must be KEY=VALUE, e.g. process_max=2 (got ${JSON.stringify(arg)})`);
  const [, key, value] = m as unknown as [string, string, string];
  return `${key} = ${/^(-?\d+|true|false)$/.test(value) ? value : JSON.stringify(value)}`;
}

async function main(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) throw new Error(`the backup benchmark needs network namespaces: ${why}`);
  const scale = Number(values.scale ?? (values.quick ? 10 : 100));
  const loadS = Number(values['load-s'] ?? (values.quick ? 20 : 60));
  const incrLoadS = Number(values['incr-load-s'] ?? (values.quick ? 10 : 30));
  const clients = Number(values.clients);
  if (!Number.isInteger(scale) || scale < 1) throw new Error('--scale must be a positive integer');
  if (!Number.isInteger(loadS) || loadS < 5) throw new Error('--load-s must be a whole number of seconds, at least 5');
  if (!Number.isInteger(incrLoadS) || incrLoadS < 1) throw new Error('--incr-load-s must be a positive whole number of seconds');
  if (!Number.isInteger(clients) || clients < 1) throw new Error('--clients must be a positive integer');
  for (const bin of ['pgbench', 'pg_basebackup']) if (!existsSync(join(PG_BIN, bin))) throw new Error(`${join(PG_BIN, bin)} is not installed (Debian's postgresql-15)`);
  if (!existsSync('/usr/bin/pgbackrest')) throw new Error('pgBackRest is not installed (/usr/bin/pgbackrest)');
  const backupSettings = [...(values.cipher ? ['cipher = true'] : []), ...values.setting.map(tomlSetting)];
  const loadAtStart = load1();
  progress(`scale ${scale} (about ${Math.round(scale * 15)} MB), load ${loadS} s with ${clients} clients, repository ${values.cipher ? 'encrypted' : 'not encrypted'}; load ${loadAtStart}`);

  let primary: HaCluster | undefined;
  let spare: HaCluster | undefined;
  let ok = false;
  let result: Result;
  try {
    const ha = await phase('primary cluster up, the repository ready', async () => {
      primary = await HaCluster.create({ nodes: 3, backup: { settings: backupSettings } });
      rememberSecrets(primary);
      for (const i of [1, 2, 3]) primary.startNode(i);
      await primary.startHaproxy();
      const leader = await primary.whole(10 * MIN);
      const p = primary;
      await eventually(async () => ((await p.member(leader).api<ClusterView>('/cluster')).backup?.stanza === 'ok' ? true : undefined), 5 * MIN, 'the stanza ready on the leader', 500);
      return primary;
    });
    let leader = await ha.whole();

    const init = await phase(`pgbench -i -s ${scale} on node ${leader}`, () => pgbench(ha, leader, ['-i', '-s', String(scale), '-q'], 3 * 60 * MIN));
    const [size] = await ha.sql<{ bytes: string }>(leader, 'SELECT sum(pg_database_size(datname))::text AS bytes FROM pg_database');
    const dbMb = Number(size!.bytes) / MIB;
    progress(`database ${round(dbMb, 1)} MB`);

    leader = await ha.whole();
    const full = await phase(`full backup on node ${leader}`, () => backupJob(ha, leader, 'full'));
    const fullS = full.job.took_ms! / 1000;
    progress(`  full backup ${full.job.backup?.label ?? '?'}: ${round(fullS)} s (${round(dbMb / fullS, 1)} MB/s), ${round((full.job.backup?.repo_bytes ?? 0) / MIB, 1)} MB in the repository`);

    const baseDir = join(ha.cluster.baseDir, 'pg_basebackup-baseline');
    mkdirSync(baseDir, { mode: 0o700 });
    const sameFs = statSync(baseDir).dev === statSync(ha.backupRepo!).dev;
    if (!sameFs) progress(`  WARNING: ${baseDir} and the repository ${ha.backupRepo} are not on the same filesystem`);
    const base = await phase(`pg_basebackup -X none -c fast of node ${leader} (the baseline)`, () =>
      mustRun('pg_basebackup', (onLine) =>
        runCommand(join(PG_BIN, 'pg_basebackup'), ['-D', baseDir, '-X', 'none', '-c', 'fast'], { env: pgEnv(ha, leader, REPLICATION_USER, ha.secrets.postgresql.replication_password), timeoutMs: 3 * 60 * MIN, onLine }),
      ),
    );
    const baseDirMb = duBytes(baseDir) / MIB;
    rmSync(baseDir, { recursive: true, force: true });
    progress(`  pg_basebackup: ${secs(base.ms)} s (${round(dbMb / (base.ms / 1000), 1)} MB/s), ${round(baseDirMb, 1)} MB written`);

    leader = await ha.whole();
    const incrTps = await phase(`pgbench writes for ${incrLoadS} s on node ${leader}`, () => pgbenchLoad(ha, leader, incrLoadS, clients));
    const incr = await phase(`incremental backup on node ${leader}`, () => backupJob(ha, leader, 'incr'));
    const incrS = incr.job.took_ms! / 1000;

    // 6. Archive lag under load.
    leader = await ha.whole();
    const archiveLag: number[] = [];
    let readyMax = 0;
    let failedAtStart: number | null = null;
    let failedAtEnd = 0;
    const archiver = new Sampler(ha.address(leader), ha.secrets.postgresql.superuser_password, ha.secrets.tls?.ca_cert);
    let archiveTps: number | null;
    try {
      // Start from a caught-up archive when it catches up within 30 s (a backlog left by the backup would count against the load).
      await eventually(async () => ((await archiver.query<{ ready: number }>(ARCHIVE_SAMPLE_SQL)).ready === 0 ? true : undefined), 30_000, 'no segment waiting to be archived', 500).catch(() =>
        progress('  segments still wait to be archived before the load; measuring anyway'),
      );
      const sampled = await phase(`archive lag while pgbench writes for ${loadS} s on node ${leader}`, () =>
        sampleWhile(pgbenchLoad(ha, leader, loadS, clients), async () => {
          const s = await archiver.query<{ lag_s: number; ready: number; failed: number }>(ARCHIVE_SAMPLE_SQL);
          archiveLag.push(s.lag_s);
          readyMax = Math.max(readyMax, s.ready);
          failedAtStart ??= s.failed;
          failedAtEnd = s.failed;
        }),
      );
      archiveTps = sampled.value;
      if (sampled.failedSamples > 0) progress(`  ${sampled.failedSamples} archive samples failed`);
    } finally {
      await archiver.close();
    }
    const archiveFailures = failedAtEnd - (failedAtStart ?? failedAtEnd);
    progress(`  archive lag p99 ${round(percentile(archiveLag, 99) ?? NaN)} s, max ${round(Math.max(...archiveLag))} s over ${archiveLag.length} samples; at most ${readyMax} segments waiting; ${archiveFailures} archive_command failures; ${archiveTps ?? '?'} tps`);

    // 7. Point in time.
    leader = await ha.whole();
    await ha.sql(leader, 'CREATE TABLE bench_pitr (id int PRIMARY KEY)');
    await ha.sql(leader, 'INSERT INTO bench_pitr SELECT generate_series(1, 1000)');
    const [mark] = await ha.sql<{ t: string }>(leader, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS t`);
    await sleep(1000);
    await ha.sql(leader, 'INSERT INTO bench_pitr SELECT generate_series(1001, 2000)');
    await phase('the WAL after the target archived', () => archiveNow(ha, leader));
    const pitr = await phase(`restore --time ${mark!.t}`, () => timedRestore(ha, ['--time', mark!.t]));
    const pitrRows = await countRows(ha, pitr.leader, 'bench_pitr');
    if (pitrRows !== 1000) throw new Error(`restore --time ${mark!.t} brought back ${pitrRows} rows of bench_pitr, not the 1000 written before it`);
    progress(`  restored on node ${pitr.restorer}, node ${pitr.leader} leads; whole ${secs(pitr.wholeMs)} s after the command (the command took ${secs(pitr.cliMs)} s)`);

    // 8. Latest.
    leader = await ha.whole();
    await ha.sql(leader, 'CREATE TABLE bench_latest (id int PRIMARY KEY)');
    await ha.sql(leader, 'INSERT INTO bench_latest SELECT generate_series(1, 1000)');
    await phase('the new rows archived', () => archiveNow(ha, leader));
    const latest = await phase('restore --latest', () => timedRestore(ha, ['--latest']));
    const latestRows = await countRows(ha, latest.leader, 'bench_latest');
    if (latestRows !== 1000) throw new Error(`restore --latest brought back ${latestRows} rows of bench_latest, not the 1000 archived before it`);
    progress(`  restored on node ${latest.restorer}, node ${latest.leader} leads; whole ${secs(latest.wholeMs)} s after the command (the command took ${secs(latest.cliMs)} s)`);

    // 9. The warm spare.
    const primaryLeader = await ha.whole();
    const { sp, standbyLeader, spareBuildMs } = await phase('the spare cluster (standby of the primary) formed', async () => {
      spare = await HaCluster.create({
        nodes: 3,
        backup: { repo: ha.backupRepo!, settings: backupSettings },
        standbyOf: { endpoint: `${ha.cluster.hostAddress}:${ha.haproxyPort}`, primarySecrets: ha.secretsFile },
      });
      rememberSecrets(spare);
      const started = Date.now();
      for (const i of [1, 2, 3]) spare.startNode(i);
      await spare.startHaproxy();
      const sl = await spare.standbyWhole(60 * MIN);
      return { sp: spare, standbyLeader: sl, spareBuildMs: Date.now() - started };
    });
    progress(`  node ${standbyLeader} is the spare's standby leader, ${secs(spareBuildMs)} s after its members started`);

    // 10. The spare's lag under load on the primary.
    const spareLag: number[] = [];
    const onPrimary = new Sampler(ha.address(primaryLeader), ha.secrets.postgresql.superuser_password, ha.secrets.tls?.ca_cert);
    const onSpare = new Sampler(sp.address(standbyLeader), sp.secrets.postgresql.superuser_password, sp.secrets.tls?.ca_cert);
    let spareTps: number | null;
    try {
      /**
       * Spare lag, one sample: the primary leader's pg_current_wal_lsn() (WAL
       * written) minus the spare's standby leader's pg_last_wal_replay_lsn()
       * (WAL replayed, visible to readers there), both read at the same
       * moment over connections kept open, in bytes (0 when the spare has
       * replayed everything written).
       */
      const sampled = await phase(`spare lag while pgbench writes for ${loadS} s on primary node ${primaryLeader}`, () =>
        sampleWhile(pgbenchLoad(ha, primaryLeader, loadS, clients), async () => {
          const [p, s] = await Promise.all([onPrimary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'), onSpare.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn')]);
          if (s.lsn === null) throw new Error('the spare leader is not in recovery');
          const lag = lsnBytes(p.lsn) - lsnBytes(s.lsn);
          spareLag.push(lag > 0n ? Number(lag) : 0);
        }),
      );
      spareTps = sampled.value;
      if (sampled.failedSamples > 0) progress(`  ${sampled.failedSamples} spare lag samples failed`);
    } finally {
      await onPrimary.close();
      await onSpare.close();
    }
    progress(`  spare lag p99 ${percentile(spareLag, 99) ?? '?'} bytes, max ${Math.max(...spareLag)} bytes over ${spareLag.length} samples; ${spareTps ?? '?'} tps`);

    // 11. Disaster: the primary lost, the spare promoted.
    const checker = new WriteChecker({ user: SUPERUSER, password: sp.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await checker.setup(ha.haproxyTarget);
    await eventually(async () => ((await sp.sql<{ t: string | null }>(standbyLeader, "SELECT to_regclass('hasup_write_check')::text AS t"))[0]?.t ? true : undefined), 60_000, 'the write-check table on the spare');
    await phase('every primary node killed', async () => {
      for (const i of [1, 2, 3]) await ha.killNode(i);
    });
    await eventually(
      async () => {
        const v = await sp.view(standbyLeader);
        return v.members.find((m) => m.member === v.leader)?.replication_state !== 'streaming' || undefined;
      },
      60_000,
      'the spare sees the primary cluster gone',
    );
    checker.start([sp.haproxyTarget]);
    let drMs: number;
    let promoteMs: number;
    try {
      const started = Date.now();
      ({ drMs, promoteMs } = await phase(`hasup cluster promote on spare node ${standbyLeader}, until a write goes through the spare's HAProxy`, async () => {
        const promoted = await hasup(sp, standbyLeader, ['cluster', 'promote'], 5 * MIN);
        const first = await eventually(async () => checker.firstAckAfter(started, 'haproxy'), 5 * MIN, "a write acknowledged through the spare's HAProxy", 20);
        return { drMs: first.value.ackedAt - started, promoteMs: promoted.ms };
      }));
    } finally {
      await checker.stop();
    }
    const spareLeader = await sp.soleLeader(60_000);
    const [branches] = await sp.sql<{ n: string }>(spareLeader, 'SELECT count(*)::text AS n FROM pgbench_branches');
    if (Number(branches!.n) !== scale) throw new Error(`the promoted spare has ${branches!.n} pgbench branches, not ${scale}`);
    progress(`  DR: first write through the spare's HAProxy ${secs(drMs)} s after \`hasup cluster promote\` started (the command took ${secs(promoteMs)} s); node ${spareLeader} leads the spare`);

    const archiveP99 = percentile(archiveLag, 99);
    const spareP99 = percentile(spareLag, 99);
    const baseMbPerS = dbMb / (base.ms / 1000);
    result = {
      scale,
      db_mb: round(dbMb, 1),
      pgbench_init_s: secs(init.ms),
      backup_full_s: round(fullS),
      // Where pgBackRest ran: a streaming follower (backup-standby, the default) or the leader, and why.
      backup_full_source: full.job.source ? { role: full.job.source.role, ...(full.job.source.reason ? { reason: full.job.source.reason } : {}) } : null,
      backup_full_cli_s: secs(full.cliMs),
      backup_mb_per_s: round(dbMb / fullS, 1),
      backup_full_repo_mb: full.job.backup ? round(full.job.backup.repo_bytes / MIB, 1) : null,
      pg_basebackup_s: secs(base.ms),
      pg_basebackup_mb_per_s: round(baseMbPerS, 1),
      pg_basebackup_dir_mb: round(baseDirMb, 1),
      backup_incr_s: round(incrS),
      backup_incr_repo_mb: incr.job.backup ? round(incr.job.backup.repo_bytes / MIB, 1) : null,
      incr_load_tps: incrTps,
      archive_lag_s_p99: archiveP99 === null ? null : round(archiveP99),
      archive_lag_s_max: archiveLag.length ? round(Math.max(...archiveLag)) : null,
      archive_ready_max: readyMax,
      archive_failures: archiveFailures,
      archive_samples: archiveLag.length,
      archive_load_tps: archiveTps,
      pitr_restore_s: secs(pitr.wholeMs),
      pitr_restore_cli_s: secs(pitr.cliMs),
      restore_s: secs(latest.wholeMs),
      restore_cli_s: secs(latest.cliMs),
      spare_build_s: secs(spareBuildMs),
      spare_lag_bytes_p99: spareP99,
      spare_lag_bytes_max: spareLag.length ? Math.max(...spareLag) : null,
      spare_samples: spareLag.length,
      spare_load_tps: spareTps,
      dr_promote_s: secs(drMs),
      dr_promote_cli_s: secs(promoteMs),
      pgbench_load_s: loadS,
      pgbench_clients: clients,
      cipher: values.cipher!,
      settings: values.setting,
      targets: {
        backup_mb_per_s: '>= pg_basebackup_mb_per_s',
        archive_lag_s_p99: '<= 5',
        spare_lag_bytes_p99: `< ${MIB} (1 MiB)`,
        dr_promote_s: '<= 15',
      },
      targets_met: {
        backup_mb_per_s: dbMb / fullS >= baseMbPerS,
        archive_lag_s_p99: archiveP99 === null ? null : archiveP99 <= 5,
        spare_lag_bytes_p99: spareP99 === null ? null : spareP99 < MIB,
        dr_promote_s: drMs / 1000 <= 15,
      },
      load1_at_start: loadAtStart,
      load1: load1(),
    };
    ok = true;
  } finally {
    if (!ok || process.env.HASUP_BENCH_LOGS) progress(`member logs in ${keepLogs([['primary', primary], ['spare', spare]])}`);
    await spare?.destroy().catch((err: unknown) => progress(`destroying the spare: ${(err as Error).message}`));
    await primary?.destroy().catch((err: unknown) => progress(`destroying the primary: ${(err as Error).message}`));
  }

  const r = result;
  const line = (name: string, value: string, target: string, met: boolean | null) => progress(`${name.padEnd(24)} ${value.padStart(14)}   target ${target.padEnd(28)} ${met === null ? '?' : met ? 'met' : 'NOT met'}`);
  line('backup_mb_per_s', `${r.backup_mb_per_s}`, `>= pg_basebackup (${r.pg_basebackup_mb_per_s})`, r.targets_met.backup_mb_per_s ?? null);
  line('archive_lag_s_p99', `${r.archive_lag_s_p99}`, '<= 5 s', r.targets_met.archive_lag_s_p99 ?? null);
  line('spare_lag_bytes_p99', `${r.spare_lag_bytes_p99}`, '< 1 MiB', r.targets_met.spare_lag_bytes_p99 ?? null);
  line('dr_promote_s', `${r.dr_promote_s}`, '<= 15 s', r.targets_met.dr_promote_s ?? null);
  console.log(values.json ? JSON.stringify(r) : r);
}

main().catch((err: unknown) => {
  console.error(`backup benchmark: ${redact((err as Error).message)}`);
  process.exit(1);
});
