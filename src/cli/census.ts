import type { Command } from 'commander';
import type { EtcdMembershipStatus } from '../plugins/etcd/membership.js';
import { describeTarget, type FenceStatus, type HaView } from '../ha/index.js';
import { lsnText } from '../plugins/postgresql/replication-tools.js';
import { formatBytes } from '../plugins/backup/pgbackrest.js';
import { scheduleLines } from '../plugins/backup/views.js';
import type { Census, ClusterBackupView, ClusterView, ClusterVipView, ElasticsearchClusterView, ServiceGroupMember, ServiceGroupView } from '../plugins/http/cluster-view.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import { ApiClient } from './api-client.js';
import type { SpareView } from '../node/spare.js';

/**
 * `hasup census`: every member the local daemon knows, its services with
 * health and role, and the leader of each service group; plus the text of
 * the CLUSTER column and summary that `hasup status` prints.
 */
export function registerCensusCommand(program: Command): void {
  program
    .command('census')
    .description('every member of the ring with its services, their health and role, and the leader of each service group')
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .option('--json', 'print the raw answer')
    .action(async (flags: { stateDir: string; api?: string; secrets?: string; json?: boolean }) => {
      const census = await ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets }).request<Census>('GET', '/census');
      console.log(flags.json ? JSON.stringify(census, null, 2) : censusText(census));
    });
}

export function censusText(census: Census): string {
  const rows = [['MEMBER', 'ADDRESS', 'STATE', 'CLOCK OFFSET', 'SERVICES']];
  for (const m of census.members) {
    const services = m.services.map((s) => `${s.service_group} ${s.state}/${s.health}${s.role && s.role !== 'unknown' ? ` ${s.role}` : ''}`).join(', ');
    rows.push([m.self ? `${m.id} (self)` : m.id, m.address, m.state, m.clock_offset_ms === null ? '-' : `${m.clock_offset_ms} ms`, services || '-']);
  }
  const groups = census.service_groups.map((g) => `${g.service_group}: ${groupSummary(g, census.member_id)}`);
  if (census.elasticsearch) groups.push(`Elasticsearch cluster: ${elasticsearchSummary(census.elasticsearch)}`);
  return [table(rows), '', ...groups].join('\n');
}

/** The CLUSTER cell of `hasup status` for one of this member's service groups. */
export function clusterCell(view: ClusterView, serviceGroup: string): string {
  const g = view.service_groups.find((x) => x.service_group === serviceGroup);
  if (!g) return '-';
  const mine = g.members.find((m) => m.member === view.member_id);
  const role = mine?.role && mine.role !== 'unknown' ? `${mine.role}; ` : '';
  const es = serviceGroup.startsWith('elasticsearch.') && view.elasticsearch ? `${elasticsearchSummary(view.elasticsearch)}; ` : '';
  // /cluster carries a warm spare's record (kept current by restores): the group is a standby cluster.
  const spare = serviceGroup.startsWith('postgresql.') && (view as ClusterView & { spare?: unknown }).spare ? 'standby cluster (restore mode); ' : '';
  return `${spare}${es}${role}${groupSummary(g, view.member_id)}`;
}

/** e.g. `green, 3/3 nodes`: the cluster's health as this member's node reports it; its nodes against the members that run one. */
export function elasticsearchSummary(es: ElasticsearchClusterView): string {
  if (es.status === null) return `health unknown, ?/${es.nodes_expected} nodes`;
  return `${es.status}, ${es.nodes_online ?? '?'}/${es.nodes_expected} nodes`;
}

/** The `hasup status` line on this member's etcd role; undefined where etcd is not formed by the members. */
export function etcdSummary(etcd: EtcdMembershipStatus): string | undefined {
  if (!etcd.forming || etcd.role === null) return undefined;
  const healthy = etcd.voters.filter((v) => v.healthy).length;
  const voters = `${healthy}/${etcd.voters.length} voters healthy (${etcd.voters_wanted} wanted)`;
  if (etcd.role === 'joining') return `etcd: joining${etcd.last_error ? ` (last try: ${etcd.last_error})` : ''}; ${voters}`;
  return `etcd: ${etcd.role === 'voter' ? 'voter' : 'client, runs no etcd'}${etcd.founder ? ', founded the cluster' : ''}; ${voters}`;
}

/**
 * The `hasup status` lines on the HA group as a whole, when there is
 * something to say: a standby cluster (whom it follows, its standby
 * leader's replication), a restore under way or failed.
 */
export function haGroupSummary(ha: Pick<HaView, 'standby_of' | 'leader' | 'members' | 'restore'> & Partial<Pick<HaView, 'standby_of_ca' | 'standby_of_repo' | 'spare'>>, now = Date.now()): string[] {
  const out: string[] = [];
  if (ha.standby_of_repo) out.push(...spareSummary(ha, now));
  if (ha.standby_of) {
    const leader = ha.members.find((m) => m.member === ha.leader);
    const lag = leader?.lag_bytes != null ? `, ${formatBytes(leader.lag_bytes)} behind it` : '';
    const how = leader ? `standby leader ${leader.member} (${leader.replication_state ?? 'state unknown'}${leader.wal_position !== null ? `, received up to ${lsnText(leader.wal_position)}` : ''}${lag})` : 'no standby leader yet';
    out.push(`standby cluster: follows the primary cluster at ${ha.standby_of}; ${how}; takes no writes until \`hasup cluster promote\``);
    if (ha.standby_of_ca === false) out.push("  its servers' certificates are not verified: no [ha] standby_of_ca (`cluster create --primary-secrets` takes it from a primary cluster with TLS, `cluster demote --follow-ca` from a file)");
  }
  const r = ha.restore;
  if (r && r.state !== 'done') out.push(`restore ${r.id} (${describeTarget(r.target)}, on ${r.member}): ${r.state === 'failed' ? 'FAILED' : r.state}: ${r.detail}`);
  return out;
}

/**
 * A warm spare kept current from a repository copy: its role, the last
 * restored backup set and its age, the last WAL replayed and the age of
 * the last transaction in it, the next slot; a WARNING when the newest
 * restore is older than its schedule or a slot failed.
 */
export function spareSummary(ha: Partial<Pick<HaView, 'standby_of_repo' | 'leader' | 'members' | 'spare'>>, now: number): string[] {
  const s = (ha.spare ?? null) as SpareView | null;
  const leader = ha.members?.find((m) => m.member === ha.leader);
  const parts = [`standby cluster (restore mode): a warm spare of the repository copy ${ha.standby_of_repo}`];
  parts.push(leader ? `standby leader ${leader.member} (${leader.replication_state ?? 'state unknown'})` : 'no standby leader yet');
  const r = s?.last_restore;
  if (r) {
    const snap = r.snapshot ? (r.snapshot.restored ? ` + snapshot ${r.snapshot.name}` : ` (snapshot ${r.snapshot.name} NOT restored: ${r.snapshot.error ?? '?'})`) : '';
    parts.push(`last restored backup ${r.label}${snap}, taken ${ago(now - r.backup_stopped_at)}, restored ${minute(r.ended_at)} (${ago(now - r.ended_at)})`);
  } else parts.push('no restore recorded yet');
  const w = s?.replay;
  if (w) parts.push(`replayed WAL up to ${w.segment ?? w.lsn} (${w.lsn})${w.lastXactAt !== null ? `, last transaction from ${ago(now - w.lastXactAt)}` : ''}, as of ${ago(now - w.read_at)}`);
  if (s?.running) parts.push(`re-base running since ${minute(s.running.started_at)}: ${s.running.detail}`);
  if (s?.schedule) parts.push(`next restore ${s.next_slot !== null ? `${minute(s.next_slot)} (in ${duration(Math.max(0, s.next_slot - now))})` : 'never'} (${s.schedule})`);
  else parts.push('no restore schedule (it replays the copy\'s archive only)');
  if (s?.warning) parts.push(`WARNING: ${s.warning}`);
  else if (s?.last_failure) parts.push(`WARNING: the restore slot of ${minute(s.last_failure.slot_at)} failed: ${s.last_failure.error}`);
  return [`${parts.join('; ')}; takes no writes until \`hasup cluster promote\``];
}

/** The `hasup status` line on this member's fence: whether it guards a primary, its size, the watchdog, what it last did. */
export function fenceSummary(f: FenceStatus): string {
  const state = f.pid === null ? 'NOT RUNNING' : f.frozen ? 'PostgreSQL FROZEN (lease renewal overdue)' : f.armed ? 'armed, guarding the primary' : 'standing by';
  const proc = f.pid === null ? '' : ` (pid ${f.pid}${f.rss_kb !== null ? `, ${(f.rss_kb / 1024).toFixed(1)} MB RSS` : ''}${f.restarts > 0 ? `, restarted ${f.restarts}x` : ''})`;
  const watchdog = `; kernel watchdog ${f.watchdog ?? 'off'}`;
  const last = f.last_fence ? `; last stopped PostgreSQL ${new Date(f.last_fence.at_ms).toISOString()} (${f.last_fence.cause})` : '';
  return `fence: ${state}${proc}${watchdog}${last}`;
}

/**
 * The `hasup status` line on backups, from the leader's report: the
 * repository, whether the stanza is ready, the last full backup, how far
 * WAL is archived, a running job; a WARNING when archiving or the
 * repository fails.
 */
export function backupSummary(b: ClusterBackupView, now: number): string {
  if (!b.enabled) return 'backups: off (set [service.postgresql.backup] repo_path)';
  const parts = [`repository ${b.repo_path}`];
  if (!b.active) {
    parts.push('no PostgreSQL leader looks after it now');
    return `backups: ${parts.join(', ')}`;
  }
  if (b.stanza === 'ok') parts.push('stanza ok');
  else if (b.stanza === 'creating') parts.push('stanza being made ready');
  else if (b.stanza === 'failed') {
    const retry = b.retry_at !== null ? `; retrying ${b.retry_at > now ? `in ${duration(b.retry_at - now)}` : 'now'}` : '';
    parts.push(`WARNING: repository not ready${b.last_error ? ` since ${minute(b.last_error.at)} (${b.last_error.message})` : ''}${retry}`);
  }
  parts.push(b.last_full ? `last full ${minute(b.last_full.stopped_at)} (${ago(now - b.last_full.stopped_at)})${takenOn(b.last_full)}` : 'no full backup yet');
  if (b.last_backup && b.last_backup.label !== b.last_full?.label) parts.push(`last ${b.last_backup.type} ${minute(b.last_backup.stopped_at)} (${ago(now - b.last_backup.stopped_at)})${takenOn(b.last_backup)}`);
  // Backups from a follower reach the leader through its pgBackRest server: without it the leader takes them itself.
  if (b.server?.state === 'failing') parts.push(`WARNING: the leader's pgBackRest server is not running (${b.server.reason ?? 'no reason given'}): backups are taken on the leader`);
  if (b.last_set) parts.push(setPart(b.last_set));
  const a = b.archive;
  if (a?.failing) {
    parts.push(
      `WARNING: WAL archiving fails (segment ${a.last_failed_wal ?? '?'}${a.last_failed_at !== null ? ` at ${minute(a.last_failed_at)}` : ''}; last archived ${a.last_archived_wal ?? 'none'}${a.last_archived_at !== null ? ` at ${minute(a.last_archived_at)}` : ''})${a.failing_reason ? `: ${a.failing_reason}` : ''}`,
    );
  } else if (a) parts.push(a.last_archived_wal ? `archive up to ${a.last_archived_wal}${a.last_archived_at !== null ? ` (${ago(now - a.last_archived_at)})` : ''}` : 'nothing archived yet');
  if (a?.oldest_waiting_at != null && now - a.oldest_waiting_at > ARCHIVE_BEHIND_MS) {
    parts.push(`WARNING: WAL archiving falls behind: ${a.waiting ?? '?'} segment${a.waiting === 1 ? '' : 's'} waiting, the oldest for ${duration(now - a.oldest_waiting_at)}`);
  }
  if (b.window_from != null) parts.push(`recoverable from ${minute(b.window_from)}${a?.last_archived_at != null ? ` to ${minute(a.last_archived_at)}` : ''}`);
  const job = b.job;
  if (job?.state === 'running') parts.push(`backup ${job.id}${job.type ? ` (${job.type})` : ''} running${job.percent !== null ? `, ${job.percent.toFixed(0)}%` : ''}`);
  else if (job?.state === 'failed' && job.ended_at !== null) parts.push(`WARNING: the last backup job failed ${ago(now - job.ended_at)}${job.error ? ` (${job.error})` : ''}`);
  if (b.schedule) parts.push(...scheduleParts(b.schedule, now));
  if (!b.from_leader) parts.push(`as reported by ${b.member}, not known as the leader here`);
  return `backups: ${parts.join(', ')}`;
}

/** ` on follower ID` / ` on the leader ID`, for a backup hasup annotated. */
function takenOn(b: NonNullable<ClusterBackupView['last_full']>): string {
  if (!b.taken_on) return '';
  return b.taken_on.role === 'follower' ? ` on follower ${b.taken_on.member}` : ` on the leader ${b.taken_on.member}`;
}

/**
 * A completed segment waits this long for archiving before status warns:
 * asynchronous archiving pushes one in a second or two (bench:backup's
 * archive lag p99 under load: 1.1 s), so a minute means a stuck or slow
 * repository, and pg_wal growing.
 */
const ARCHIVE_BEHIND_MS = 60_000;

/** The newest backup set (with Elasticsearch snapshots on): complete, or a WARNING saying what its snapshot lacks. */
function setPart(s: NonNullable<ClusterBackupView['last_set']>): string {
  if (s.complete) return `last set ${s.label} + ${s.snapshot} complete`;
  return `WARNING: last set ${s.label} incomplete (${s.snapshot ? `snapshot ${s.snapshot} ${s.state ?? 'unknown'}` : 'no snapshot'})`;
}

/** The schedules' part of the backups line: the next slot per type, a WARNING for a type whose backups fall behind, the last slot that went wrong. */
function scheduleParts(s: NonNullable<ClusterBackupView['schedule']>, now: number): string[] {
  const parts: string[] = [];
  for (const line of scheduleLines(s, now)) {
    parts.push(line.next_at === null ? `${line.type} schedule fires no more` : `next ${line.type} ${minute(line.next_at)} (in ${duration(line.next_at - now)})`);
    if (line.stale) {
      parts.push(`WARNING: the newest ${line.type} backup (or larger) ended ${minute(line.stale.last_ok_at)} (${ago(now - line.stale.last_ok_at)}), more than two ${line.type} periods (${duration(line.stale.period_ms)} each)`);
    }
  }
  if (s.last_problem) parts.push(`WARNING: ${s.last_problem.message} (${minute(s.last_problem.at)})`);
  return parts;
}

/** 2026-12-06T10:00Z */
function minute(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16)}Z`;
}

function ago(ms: number): string {
  return ms < 0 ? 'in the future' : `${duration(ms)} ago`;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86_400) return `${Math.round(s / 360) / 10} h`;
  return `${Math.round(s / 8640) / 10} d`;
}

/** The `hasup status` line on the leader VIP: who holds it, and a WARNING for anything that keeps it from moving with the leader. */
export function vipSummary(v: ClusterVipView, self: string): string {
  const name = (m: string) => (m === self ? `${m} (self)` : m);
  const held = v.holders.length === 0 ? 'held by no member' : `on ${v.holders.map(name).join(', ')}`;
  return [`vip: ${v.address} ${held}`, ...v.warnings.map((w) => `WARNING: ${w}`)].join('; ');
}

/** Lines under the `hasup status` table: gossip states and clock drift. */
export function clusterSummary(view: ClusterView): string[] {
  const g = view.gossip;
  const lines = [`gossip: ${g.alive} alive, ${g.suspect} suspect, ${g.dead} dead, ${g.left} left${g.departed ? `, ${g.departed} departed` : ''}`];
  for (const m of view.members) {
    if (m.clock_drift) lines.push(`clock drift: member ${m.id} is ${m.clock_offset_ms} ms off (over ${view.clock_drift_warn_ms} ms)`);
  }
  return lines;
}

function groupSummary(g: ServiceGroupView, self: string): string {
  const parts = [`${g.healthy}/${g.total} healthy`];
  if (g.leaders.length > 1) parts.push(`${g.leaders.length} members claim leader: ${g.leaders.join(', ')}`);
  else if (g.leader) {
    const timeline = g.members.find((m) => m.member === g.leader)?.timeline;
    parts.push(`leader ${g.leader === self ? 'self' : g.leader}${timeline ? ` (timeline ${timeline})` : ''}`);
  }
  const replicas = g.members.filter((m) => m.role === 'replica');
  for (const r of replicas) parts.push(replicaSummary(r, self));
  for (const c of g.critical ?? []) parts.push(`CRITICAL: ${c}`);
  for (const w of g.warnings ?? []) parts.push(`WARNING: ${w}`);
  return parts.join(', ');
}

/** e.g. `replica m2 streaming sync lag 0 B 0 s`: the follower's state, sync role and lag in bytes and seconds. */
function replicaSummary(r: ServiceGroupMember, self: string): string {
  const words = [`replica ${r.member === self ? 'self' : r.member}`];
  if (r.replication_state) words.push(r.replication_state);
  if (r.sync_role) words.push(r.sync_role);
  words.push(`lag ${r.lag_bytes === null ? '?' : `${r.lag_bytes} B`}${r.lag_seconds != null ? ` ${r.lag_seconds} s` : ''}`);
  return words.join(' ');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
