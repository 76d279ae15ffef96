import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { ReplicationState } from '../leadership.js';
import type { BootstrapPlan, DatabaseStatus, PeerEndpoint, ReplicatedDatabase } from './database.js';
import { desiredSyncSet, electionOutcome, eligibility, switchoverTarget } from './decisions.js';
import type { ElectedLeadership } from './elected-leadership.js';
import { NoFence, type LeaderFence } from './fence.js';
import { effectiveSettings, type HaSettings } from './settings.js';
import type { ClusterSnapshot, ClusterStore, MemberReport, SwitchoverRequest } from './store.js';

/**
 * The HA loop of one member for one replicated service group. Every
 * loop_wait (sooner when the leader key changes) it looks at the database
 * and the store and acts:
 *
 *   leader:   confirms the leader key is still its own (and publishes its
 *             report and WAL position in the same transaction), promotes
 *             a standby it just became leader with, keeps the synchronous
 *             set and the replication slots, carries out a switchover;
 *   follower: publishes its report, follows the leader, and when there is
 *             no leader takes part in the election.
 *
 * Independently of the loop, the session lease is renewed every loop_wait,
 * and a watchdog fences the leader (stops PostgreSQL) once no renewal has
 * been confirmed for loop_wait + retry_timeout, counted from when the
 * confirmed renewal was sent: the lease cannot expire before
 * ttl ≥ loop_wait + 2 × retry_timeout after that, so the old leader has
 * stopped taking writes before anyone else can take the lease.
 */
export interface HaControllerDeps {
  memberId: string;
  /** e.g. postgresql.default, for logs and views. */
  serviceGroup: string;
  store: ClusterStore;
  db: ReplicatedDatabase;
  settings: () => HaSettings;
  leadership: ElectedLeadership;
  /** Guards the primary from outside this process while this member leads (default: none). */
  fence?: LeaderFence;
  /** Why this member may not lead now (a required kernel watchdog is missing), or undefined. */
  leadBlocker?: () => string | undefined;
  log: Logger;
  /** Monotonic ms clock. */
  now?: () => number;
}

export interface SwitchoverResult {
  from: string;
  to: string;
  tookMs: number;
}

export class SwitchoverError extends Error {
  constructor(
    message: string,
    /** HTTP status the API answers with. */
    readonly status: number,
  ) {
    super(message);
  }
}

export interface HaMemberView extends MemberReport {
  sync_role: 'sync' | 'async' | null;
}

export interface RoguePrimary {
  member: string;
  /** ms since the epoch when this member first saw it. */
  since: number;
  /** What this member did about it (null: nothing yet, or it could not). */
  action: string | null;
}

export interface HaView {
  member_id: string;
  service_group: string;
  leader: string | null;
  paused: boolean;
  timeline: number | null;
  synchronous_mode: boolean;
  sync_members: string[];
  switchover: SwitchoverRequest | null;
  settings: { ttl: number; loop_wait: number; retry_timeout: number; maximum_lag_on_failover: number };
  members: HaMemberView[];
  /** Peers whose database takes writes without the leader lease, as this member sees them: critical. */
  rogue_primaries: RoguePrimary[];
  /** When the view was read from the store (ms since the epoch); null before the first read. */
  as_of: number | null;
}

const ELECTION_POLL_MS = 50;
const BUSY_LOOP_MS = 100;
const RENEW_RETRY_MS = 100;
const WATCHDOG_MS = 50;
/** Slots of members not seen for this long are dropped (their WAL would pile up forever). */
const SLOT_RETENTION_MS = 10 * 60_000;
/** A follower pointed at the right leader but not streaming for this long gets its replication checked again. */
const NOT_STREAMING_RECHECK_MS = 5000;
const SWITCHOVER_CATCHUP_MS = 15_000;
const SLOT_RECHECK_MS = 10_000;
/** How often every member asks each peer's database whether it takes writes (a rogue primary). */
const ROGUE_CHECK_MS = 2000;
/** How often a leader checks whether it also leads etcd (when etcd runs on the members). */
const YIELD_CHECK_MS = 5000;

export class HaController {
  private readonly memberId: string;
  private readonly log: Logger;
  private readonly now: () => number;
  private lease: string | null = null;
  private renewedAt = -Infinity;
  private renewalFailing = false;
  /** This member believes it holds the leader key. */
  private holding = false;
  private fencing: Promise<void> | null = null;
  private closed = false;
  private readonly stopSignal = new AbortController();
  private wakeup: (() => void) | null = null;
  private loops: Promise<void>[] = [];
  private snapshot: ClusterSnapshot | null = null;
  private snapshotAt: number | null = null;
  private db: DatabaseStatus | null = null;
  /** The synchronous standbys set in PostgreSQL by this member as leader; undefined = not known. */
  private appliedSync: string[] | null | undefined = undefined;
  private unhealthySince: number | null = null;
  private notStreamingSince: number | null = null;
  private readonly lastSeen = new Map<string, number>();
  private slotsFor = '';
  private slotsAt = -Infinity;
  private lastDecision = '';
  private yielding = false;
  private yieldedAt = -Infinity;
  /** Where each member seen lately serves its database (kept as long as lastSeen). */
  private readonly addresses = new Map<string, PeerEndpoint>();
  /** Peers found taking writes without the lease: since when, and what was done about it. */
  private readonly rogues = new Map<string, RoguePrimary>();
  private rogueCheckAt = -Infinity;
  private rogueChecking = false;

  private readonly fenceGuard: LeaderFence;

  constructor(private readonly deps: HaControllerDeps) {
    this.memberId = deps.memberId;
    this.fenceGuard = deps.fence ?? new NoFence();
    this.log = deps.log.child({ component: 'ha', service_group: deps.serviceGroup });
    this.now = deps.now ?? (() => performance.now());
  }

  start(): void {
    this.fenceGuard.onFenced((cause) => {
      // The supervisor was late (a stall): PostgreSQL is gone; catch up with what the fence did.
      if (this.holding) void this.fence(`the fence process stopped PostgreSQL (${cause})`);
    });
    this.loops.push(this.renewLoop(), this.mainLoop());
    const watchdog = setInterval(() => this.watchdog(), WATCHDOG_MS);
    watchdog.unref();
    this.stopSignal.signal.addEventListener('abort', () => clearInterval(watchdog), { once: true });
    this.deps.store.watch((keys) => {
      if (keys.some((k) => k === 'leader' || k === 'switchover' || k === 'pause' || k === 'sync')) this.wake();
    }, this.stopSignal.signal);
  }

  /**
   * Stops the loops. A leader that is `leaving` (the member shuts down)
   * first stops PostgreSQL and gives the leader key up, so a follower takes
   * over at once instead of after the lease runs out.
   */
  async close(opts: { leaving: boolean }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const wasHolding = this.holding;
    this.stopSignal.abort();
    this.wake();
    await Promise.allSettled(this.loops);
    if (this.fencing) await this.fencing.catch(() => undefined);
    if (opts.leaving && wasHolding && this.holding) {
      this.holding = false;
      this.deps.leadership.update({ fenced: true, holdsLease: false, reason: 'member shutting down' });
      await this.deps.db.demote('member shutting down', { stayDown: true }).catch((err: unknown) => this.log.warn({ err }, 'stopping PostgreSQL on shutdown failed'));
      await this.disarmFence();
      await this.deps.store.releaseLeader(this.memberId, { timeoutMs: 2000 }).catch(() => undefined);
      this.log.info({ event: 'ha_released' }, 'gave up the leader key on shutdown');
    }
    if (opts.leaving && this.lease) await this.deps.store.revokeLease(this.lease, { timeoutMs: 2000 }).catch(() => undefined);
  }

  // ---- bootstrap (called from the database's prepare) ------------------------

  /**
   * How a member with an empty data directory gets its data: the first to
   * claim the initialize key creates the database; everyone else waits for
   * a healthy leader and copies it.
   */
  async bootstrap(signal: AbortSignal): Promise<BootstrapPlan> {
    let told = '';
    const tell = (msg: string) => {
      if (msg !== told) this.log.info({ event: 'ha_bootstrap_wait' }, msg);
      told = msg;
    };
    while (!signal.aborted && !this.closed) {
      try {
        const snap = await this.deps.store.snapshot({ signal });
        const leader = snap.leader;
        if (leader && leader.member !== this.memberId) {
          const report = snap.members.get(leader.member)?.report;
          if (report && report.role === 'leader' && report.healthy) {
            this.log.info({ event: 'ha_bootstrap', plan: 'clone', from: leader.member }, `copying the database from leader ${leader.member}`);
            return { kind: 'clone', leader: { member: leader.member, host: report.host, port: report.port } };
          }
          tell(`waiting for leader ${leader.member} to be healthy before copying its database`);
        } else if (!snap.initialize) {
          if (await this.deps.store.claimInitialize(this.memberId, { signal })) {
            this.log.info({ event: 'ha_bootstrap', plan: 'init' }, 'this member creates the database');
            return { kind: 'init' };
          }
        } else if (snap.initialize.member === this.memberId && !leader) {
          // We claimed it before and never finished (crash during initdb, wiped data dir).
          this.log.info({ event: 'ha_bootstrap', plan: 'init' }, 'this member creates the database (claimed earlier)');
          return { kind: 'init' };
        } else {
          tell(`waiting for member ${snap.initialize.member} to create the database`);
        }
      } catch (err) {
        tell(`waiting for etcd: ${(err as Error).message}`);
      }
      await abortableSleep(500, signal);
    }
    throw new Error('bootstrap cancelled');
  }

  /** The member that created the database failed to: let another try. */
  async bootstrapFailed(): Promise<void> {
    await this.deps.store.releaseInitialize(this.memberId).catch(() => undefined);
  }

  // ---- operations (API) --------------------------------------------------------

  async setPaused(paused: boolean): Promise<void> {
    await this.deps.store.setPaused(paused, this.memberId);
    this.log.info({ event: paused ? 'ha_paused' : 'ha_resumed' }, paused ? 'automatic failover paused' : 'automatic failover resumed');
  }

  /**
   * Asks the leader to hand over to `to` (or to the best replica) and waits
   * until a new leader runs.
   */
  async switchover(to: string | null, timeoutMs = 30_000): Promise<SwitchoverResult> {
    const started = this.now();
    const snap = await this.deps.store.snapshot();
    const leader = snap.leader?.member;
    if (!leader) throw new SwitchoverError('there is no leader to switch over from', 409);
    if (to === leader) throw new SwitchoverError(`member ${to} is already the leader`, 409);
    const target = switchoverTarget(leader, to, snap);
    if ('error' in target) throw new SwitchoverError(target.error, 412);
    const req: SwitchoverRequest = { from: leader, to, id: randomBytes(6).toString('hex'), requested: Date.now() };
    if (!(await this.deps.store.requestSwitchover(req))) throw new SwitchoverError('another switchover is pending', 409);
    this.log.info({ event: 'ha_switchover_requested', from: leader, to }, `switchover from ${leader} to ${to ?? 'the best replica'} requested`);
    const deadline = started + timeoutMs;
    while (this.now() < deadline) {
      await sleep(BUSY_LOOP_MS);
      let s: ClusterSnapshot;
      try {
        s = await this.deps.store.snapshot();
      } catch {
        continue;
      }
      const pending = s.switchover?.id === req.id ? s.switchover : null;
      if (pending?.failed) {
        await this.deps.store.clearSwitchover(req.id).catch(() => undefined);
        throw new SwitchoverError(`the leader did not switch over: ${pending.failed}`, 409);
      }
      const now = s.leader?.member;
      if (now && now !== leader && (to === null || now === to)) {
        const report = s.members.get(now)?.report;
        if (report?.role === 'leader' && report.healthy) return { from: leader, to: now, tookMs: Math.round(this.now() - started) };
      }
    }
    await this.deps.store.clearSwitchover(req.id).catch(() => undefined);
    throw new SwitchoverError(`no new leader within ${timeoutMs} ms`, 504);
  }

  view(): HaView {
    const snap = this.snapshot;
    const s = this.settings();
    const syncMembers = snap?.sync?.members ?? [];
    const members = [...(snap?.members.values() ?? [])]
      .map((m) => ({ ...m.report, sync_role: s.synchronousMode && m.report.role === 'replica' ? (syncMembers.includes(m.report.member) ? ('sync' as const) : ('async' as const)) : null }))
      .sort((a, b) => a.member.localeCompare(b.member));
    const leaderReport = members.find((m) => m.member === snap?.leader?.member);
    return {
      member_id: this.memberId,
      service_group: this.deps.serviceGroup,
      leader: snap?.leader?.member ?? null,
      paused: snap?.paused ?? false,
      timeline: leaderReport?.timeline ?? null,
      synchronous_mode: s.synchronousMode,
      sync_members: syncMembers,
      switchover: snap?.switchover ?? null,
      settings: { ttl: s.ttlS, loop_wait: s.loopWaitMs / 1000, retry_timeout: s.retryTimeoutMs / 1000, maximum_lag_on_failover: s.maximumLagOnFailover },
      members,
      rogue_primaries: [...this.rogues.values()],
      as_of: this.snapshotAt,
    };
  }

  // ---- the lease ---------------------------------------------------------------

  private async renewLoop(): Promise<void> {
    while (!this.closed) {
      const s = this.settings();
      if (!this.deps.db.present() && !this.holding) {
        // No database here: no lease, no report, no traffic to etcd.
        await this.sleepFor(s.loopWaitMs, false);
        continue;
      }
      const attemptMs = Math.max(200, Math.floor(s.retryTimeoutMs / 2));
      const sentAt = this.now();
      try {
        if (!this.lease) {
          this.lease = await this.deps.store.grantLease(s.ttlS, { timeoutMs: attemptMs, signal: this.stopSignal.signal });
          this.renewedAt = sentAt;
          this.renewalFailing = false;
        } else if (await this.deps.store.renewLease(this.lease, { timeoutMs: this.renewalTimeout(sentAt, attemptMs), signal: this.stopSignal.signal })) {
          this.renewedAt = sentAt;
          this.renewalFailing = false;
          if (this.holding) this.armFence().catch((err: unknown) => this.log.error({ event: 'fence_arm_failed', err }, `cannot arm the fence: ${(err as Error).message}`));
        } else {
          this.log.warn({ event: 'ha_lease_gone', holding: this.holding }, 'the session lease has expired');
          this.lease = null;
          if (this.holding) void this.fence('the leader lease expired');
          continue;
        }
      } catch (err) {
        if (this.closed) break;
        if (!this.renewalFailing) this.log.warn({ event: 'ha_renew_failed', reason: (err as Error).message }, 'lease renewal failed; retrying');
        this.renewalFailing = true;
      }
      this.publishLeaseFacts();
      // Renewals are due loop_wait after the last one was sent, not after it was answered: a slow
      // answer must not eat into the next renewal's time before the watchdog's limit.
      await this.sleepFor(this.renewalFailing ? RENEW_RETRY_MS : Math.max(0, s.loopWaitMs - (this.now() - sentAt)), false);
    }
  }

  /**
   * How long one renewal may take: until the watchdog would fence, at least
   * `attemptMs`. A renewal counts from when it was sent (etcd extends the
   * lease later, never earlier), so a slow answer weakens nothing: the
   * lease still cannot expire before renewedAt + ttl. Cutting a renewal
   * short would not help either: under packet loss its request is usually
   * waiting out a TCP retransmission, and a retry would start over on a
   * new connection, whose lost SYN costs a whole second.
   */
  private renewalTimeout(sentAt: number, attemptMs: number): number {
    const s = this.settings();
    const untilFence = this.renewedAt + s.loopWaitMs + s.retryTimeoutMs - sentAt;
    return Math.round(Math.max(attemptMs, Math.min(untilFence, s.loopWaitMs + s.retryTimeoutMs)));
  }

  /**
   * Arms the fence from the last confirmed renewal: it stops PostgreSQL
   * loop_wait + 1.5 × retry_timeout after that renewal was sent (half a
   * retry_timeout after this process would have fenced itself, half a
   * retry_timeout before the lease can expire), and feeds the kernel
   * watchdog only while a reboot would still come a quarter retry_timeout
   * before the lease's earliest expiry.
   */
  private armFence() {
    const s = this.settings();
    const deadline = this.renewedAt + s.loopWaitMs + 1.5 * s.retryTimeoutMs;
    const expiry = this.renewedAt + s.ttlS * 1000 - s.retryTimeoutMs / 4;
    return this.fenceGuard.arm(deadline, expiry);
  }

  private async disarmFence(): Promise<void> {
    if (!this.fenceGuard.armed()) return;
    await this.fenceGuard.disarm().catch((err: unknown) => this.log.warn({ event: 'fence_disarm_failed', err }, `cannot disarm the fence: ${(err as Error).message}`));
  }

  /** Holding the key but unable to lead safely: hand the key back before PostgreSQL ever takes a write. */
  private async giveUpKey(reason: string): Promise<void> {
    this.holding = false;
    this.log.error({ event: 'ha_cannot_lead', reason }, `giving the leader key back: ${reason}`);
    await this.deps.store.releaseLeader(this.memberId).catch(() => undefined);
    await this.disarmFence();
    this.decide(`cannot lead: ${reason}`, 'warn');
  }

  private watchdog(): void {
    if (this.closed) return;
    this.publishLeaseFacts();
    if (!this.holding) return;
    const s = this.settings();
    const since = this.now() - this.renewedAt;
    if (since > s.loopWaitMs + s.retryTimeoutMs) void this.fence(`no lease renewal confirmed for ${Math.round(since)} ms`);
  }

  private publishLeaseFacts(): void {
    const f = this.deps.leadership.current;
    if (f.renewedAt !== this.renewedAt || f.renewalFailing !== this.renewalFailing) this.deps.leadership.update({ renewedAt: this.renewedAt, renewalFailing: this.renewalFailing });
    else this.deps.leadership.recheck();
  }

  /**
   * Stops taking writes now: the checks answer 503 at once, PostgreSQL is
   * stopped (fast shutdown: sessions are cut, no new commit starts) and
   * comes back as a read-only standby to wait for the next leader.
   */
  private fence(reason: string): Promise<void> {
    if (this.fencing) return this.fencing;
    this.holding = false;
    this.appliedSync = undefined;
    this.deps.leadership.update({ fenced: true, holdsLease: false, primaryWritable: false, reason: `fenced: ${reason}` });
    this.log.warn({ event: 'ha_fenced', reason }, `leader fencing itself: ${reason}`);
    const started = this.now();
    this.fencing = this.deps.db
      .demote(reason)
      .then(
        async () => {
          this.log.info({ event: 'ha_demoted', took_ms: Math.round(this.now() - started) }, 'PostgreSQL demoted to a read-only standby');
          // Stays armed if the demotion failed: then the fence stops PostgreSQL at its deadline.
          if (!this.holding) await this.disarmFence();
        },
        (err: unknown) => this.log.error({ event: 'ha_demote_failed', err }, 'demoting PostgreSQL failed'),
      )
      .finally(() => {
        this.fencing = null;
        this.deps.leadership.update({ fenced: false });
        this.wake();
      });
    return this.fencing;
  }

  // ---- the loop ----------------------------------------------------------------

  private async mainLoop(): Promise<void> {
    while (!this.closed) {
      let next = this.settings().loopWaitMs;
      try {
        if (this.fencing) await this.fencing;
        if (!this.closed) next = await this.turn();
      } catch (err) {
        this.decide(`loop error: ${(err as Error).message}`, 'warn');
      }
      await this.sleepFor(next, true);
    }
  }

  /** One turn; returns how long to wait before the next one. */
  private async turn(): Promise<number> {
    const s = this.settings();
    if (!this.deps.db.present() && !this.holding) {
      this.deps.leadership.update({ present: false, role: 'unknown', holdsLease: false, primaryWritable: false, replication: null, reason: 'this member runs no PostgreSQL' });
      return s.loopWaitMs;
    }
    const signal = AbortSignal.any([this.stopSignal.signal, AbortSignal.timeout(Math.max(1000, s.retryTimeoutMs))]);
    const db = await this.deps.db.status(signal);
    this.db = db;
    if (!this.lease) {
      this.updateLeadership(db);
      return BUSY_LOOP_MS;
    }
    if (this.holding) await this.leaderTurn(db, s);
    else await this.followerTurn(db, s);
    this.updateLeadership(this.db);
    this.watchForRogues();
    const snap = this.snapshot;
    const hurry = snap && ((!snap.leader && !snap.paused) || snap.switchover);
    return hurry ? BUSY_LOOP_MS : s.loopWaitMs;
  }

  private async leaderTurn(db: DatabaseStatus, s: HaSettings): Promise<void> {
    const lease = this.lease!;
    const report = this.report(db, s, this.memberId, null);
    const optime = { member: this.memberId, wal_position: db.walPosition ?? 0, timeline: db.timeline, updated: Date.now() };
    let result;
    try {
      result = await this.deps.store.leaderTurn(this.memberId, lease, report, optime, { timeoutMs: s.retryTimeoutMs });
    } catch (err) {
      // The watchdog fences once renewals stop; a failed turn alone changes nothing.
      this.decide(`leader turn failed: ${(err as Error).message}`, 'warn');
      return;
    }
    this.setSnapshot(result.snapshot);
    const snap = result.snapshot;
    if (!result.stillLeader) {
      await this.fence(snap.leader ? `the leader key now names ${snap.leader.member}` : 'the leader key is gone');
      return;
    }
    if (!db.running || !db.healthy) {
      this.unhealthySince ??= this.now();
      const down = this.now() - this.unhealthySince;
      this.decide(`leader, but PostgreSQL is not healthy (${db.reason ?? 'unknown'}) for ${Math.round(down)} ms`, 'warn');
      if (!snap.paused && down > s.ttlS * 1000) {
        this.log.warn({ event: 'ha_release', reason: db.reason }, 'giving up leadership: PostgreSQL stayed unhealthy for a whole ttl');
        this.holding = false;
        await this.deps.store.releaseLeader(this.memberId).catch(() => undefined);
        await this.fence('PostgreSQL unhealthy on the leader');
      }
      return;
    }
    this.unhealthySince = null;
    if (!this.fenceGuard.armed() && db.inRecovery === false) {
      // A primary this member leads (reclaimed after a restart, or a fence that came back): guard it now.
      try {
        await this.armFence();
      } catch (err) {
        await this.fence(`the fence cannot be armed (${(err as Error).message})`);
        return;
      }
    }
    await this.keepSlots(db, false);
    if (db.inRecovery) {
      await this.promote(snap, s);
      return;
    }
    await this.keepSynchronous(db, snap, s);
    this.yieldStoreLeadership();
    if (snap.switchover && snap.switchover.from === this.memberId && !snap.switchover.failed) await this.carryOutSwitchover(snap.switchover, snap);
    else if (snap.switchover && snap.switchover.from !== this.memberId && Date.now() - snap.switchover.requested > 60_000) await this.deps.store.clearSwitchover(snap.switchover.id).catch(() => undefined);
    else this.decide('leader');
  }

  private async followerTurn(db: DatabaseStatus, s: HaSettings): Promise<void> {
    let snap: ClusterSnapshot;
    try {
      snap = await this.deps.store.snapshot({ timeoutMs: s.retryTimeoutMs });
    } catch (err) {
      this.decide(`cannot read the cluster state: ${(err as Error).message}`, 'warn');
      return;
    }
    this.setSnapshot(snap);
    const leader = snap.leader;
    await this.publish(db, s, snap, leader?.member ?? null);

    if (leader?.member === this.memberId) {
      // Restarted while the key still names us, or handed the key by a switchover.
      if (leader.lease === this.lease || (await this.deps.store.reclaimLeader(this.memberId, this.lease!))) {
        this.holding = true;
        this.log.info({ event: 'ha_leader', how: leader.lease === this.lease ? 'handed over' : 'reclaimed' }, 'this member holds the leader key');
        await this.leaderTurn(db, s);
      }
      return;
    }
    if (db.inRecovery === false) {
      await this.fence(leader ? `running as a primary while ${leader.member} leads` : 'running as a primary without the leader key');
      return;
    }
    // Not leading and no primary here: nothing to guard (an arm that raced a demotion ends here).
    if (!this.fencing) await this.disarmFence();
    if (leader) {
      await this.followLeader(leader.member, snap, db);
      return;
    }
    this.notStreamingSince = null;
    if (snap.paused) {
      this.decide('no leader, and automatic failover is paused');
      return;
    }
    await this.elect(db, s, snap);
  }

  private async followLeader(leader: string, snap: ClusterSnapshot, db: DatabaseStatus): Promise<void> {
    const report = snap.members.get(leader)?.report;
    if (!report) {
      this.decide(`following ${leader}, which publishes no report yet`);
      return;
    }
    const endpoint: PeerEndpoint = { member: leader, host: report.host, port: report.port };
    let needed: string | undefined;
    if (!db.running) needed = `PostgreSQL is not running (${db.reason ?? 'no reason known'})`;
    else if (db.upstream !== leader) needed = `it follows ${db.upstream ?? 'nobody'}`;
    else if (!db.streaming) {
      this.notStreamingSince ??= this.now();
      if (this.now() - this.notStreamingSince > NOT_STREAMING_RECHECK_MS && report.role === 'leader') needed = 'it does not stream from the leader';
    } else this.notStreamingSince = null;
    if (!needed) {
      await this.keepSlots(db, true);
      this.decide(`following ${leader}`);
      return;
    }
    this.log.info({ event: 'ha_follow', leader, reason: needed }, `following ${leader} (${needed})`);
    this.notStreamingSince = null;
    try {
      await this.deps.db.follow(endpoint, { leaderIsPrimary: report.role === 'leader' }, this.stopSignal.signal);
      this.decide(`following ${leader}`);
    } catch (err) {
      this.decide(`cannot follow ${leader} yet: ${(err as Error).message}`, 'warn');
    }
  }

  /** No leader: if this member may be promoted, find out whether it is the best, and if so take the key and promote. */
  private async elect(db: DatabaseStatus, s: HaSettings, first: ClusterSnapshot): Promise<void> {
    const mine = eligibility(this.memberId, db, s, first, this.deps.leadBlocker?.());
    if (!mine.eligible) {
      this.decide(`no leader; this member may not be promoted: ${mine.why}`);
      return;
    }
    const started = this.now();
    const deadline = started + (s.synchronousMode ? s.ttlS * 1000 + s.retryTimeoutMs : s.retryTimeoutMs);
    let snap = first;
    for (;;) {
      const outcome = electionOutcome(this.memberId, snap, this.now() > deadline);
      if (outcome.kind === 'lost') {
        this.decide(`no leader; ${outcome.to} is further ahead or first in order`);
        return;
      }
      if (outcome.kind === 'nobody') {
        this.decide('no leader and no candidate');
        return;
      }
      if (outcome.kind === 'won') break;
      this.decide(`no leader; waiting for the positions of ${outcome.pending.join(', ')}`);
      await sleep(ELECTION_POLL_MS);
      if (this.closed) return;
      snap = await this.deps.store.snapshot({ timeoutMs: s.retryTimeoutMs });
      this.setSnapshot(snap);
      if (snap.leader) return;
    }
    if (!this.lease || !(await this.deps.store.acquireLeader(this.memberId, this.lease, { timeoutMs: s.retryTimeoutMs }))) {
      this.decide('another member took the leader key first');
      return;
    }
    this.holding = true;
    this.log.info({ event: 'ha_leader', how: 'elected', position: db.walPosition, election_ms: Math.round(this.now() - started) }, 'won the election: this member holds the leader key');
    // Every member keeps slots for the others, so the followers' slots are already here; the leader turn checks again.
    await this.promote(snap, s);
  }

  private async promote(snap: ClusterSnapshot, s: HaSettings): Promise<void> {
    const started = this.now();
    // The new primary's first commit already waits for the synchronous set the old leader kept.
    const carried = s.synchronousMode ? (snap.sync?.members ?? []).filter((m) => m !== this.memberId) : [];
    const initialSync = !s.synchronousMode ? null : carried.length > 0 ? carried : s.synchronousModeStrict ? [] : null;
    // The fence guards the primary before it can take its first write.
    try {
      const armed = await this.armFence();
      if (s.watchdog === 'required' && armed.watchdog !== 'active') return this.giveUpKey(`the kernel watchdog ${s.watchdogDevice} is required but could not be opened`);
    } catch (err) {
      return this.giveUpKey(`the fence cannot be armed (${(err as Error).message})`);
    }
    await this.deps.db.prepareSynchronous(initialSync);
    this.appliedSync = initialSync;
    await this.deps.db.promote(AbortSignal.any([this.stopSignal.signal, AbortSignal.timeout(60_000)]));
    if (!this.holding) return; // fenced while promoting: the fencing stops it again
    this.db = await this.deps.db.status(AbortSignal.timeout(Math.max(1000, s.retryTimeoutMs)));
    this.updateLeadership(this.db);
    this.log.info({ event: 'ha_promoted', took_ms: Math.round(this.now() - started), timeline: this.db.timeline }, `promoted to primary (timeline ${this.db.timeline})`);
    this.decide('leader');
  }

  /** Now and then, in the background: see ClusterStore.yieldConsensusLeadership. */
  private yieldStoreLeadership(): void {
    const store = this.deps.store;
    if (!store.yieldConsensusLeadership || this.yielding || this.now() - this.yieldedAt < YIELD_CHECK_MS) return;
    this.yielding = true;
    this.yieldedAt = this.now();
    store
      .yieldConsensusLeadership(this.deps.db.endpoint().host, { timeoutMs: 2000 })
      .then((to) => {
        if (to) this.log.info({ event: 'ha_etcd_leader_moved', to }, `moved etcd's leadership to ${to}, off the PostgreSQL leader's node`);
      })
      .catch(() => undefined)
      .finally(() => (this.yielding = false));
  }

  /**
   * Keeps PostgreSQL's synchronous standbys (S) and the recorded sync set
   * (E) such that S ⊆ E at every moment: E grows before S does and shrinks
   * after it; so whatever was acknowledged is on a member that may be
   * promoted.
   */
  private async keepSynchronous(db: DatabaseStatus, snap: ClusterSnapshot, s: HaSettings): Promise<void> {
    const desired = desiredSyncSet(this.memberId, db, snap, s);
    const recorded = snap.sync?.members ?? [];
    const desiredList = desired ?? [];
    const inForce = this.appliedSync !== undefined && sameNullableSet(this.appliedSync, desired);
    const isRecorded = snap.sync ? snap.sync.leader === this.memberId && sameSet(recorded, desiredList) : !s.synchronousMode;
    if (inForce && isRecorded) return;
    const union = [...new Set([...recorded, ...desiredList])].sort();
    if (!sameSet(union, recorded) || snap.sync?.leader !== this.memberId) {
      if (!(await this.deps.store.setSync(this.memberId, union))) return;
    }
    await this.deps.db.setSynchronous(desired, AbortSignal.timeout(Math.max(2000, s.retryTimeoutMs)));
    this.appliedSync = desired;
    if (!sameSet(union, desiredList)) await this.deps.store.setSync(this.memberId, desiredList);
    if (desired === null && s.synchronousMode) {
      this.log.warn({ event: 'ha_sync_degraded', standbys: null }, 'synchronous mode, but no healthy streaming follower: committing asynchronously until one is back');
    } else {
      this.log.info({ event: 'ha_sync', standbys: desired }, desired === null ? 'replicating asynchronously' : desired.length === 0 ? 'no synchronous standby available: commits wait (strict)' : `synchronous standbys: ANY 1 (${desired.join(', ')})`);
    }
  }

  /**
   * Slots for every other member seen lately, on leader and followers alike.
   * The leader checks on every turn (a rewound or copied data directory has
   * none, and a follower without its slot cannot stream); a follower when
   * the member set changes, or every SLOT_RECHECK_MS.
   */
  private async keepSlots(db: DatabaseStatus, lazily: boolean): Promise<void> {
    if (!db.running) return;
    const wanted = [...this.lastSeen.keys()].filter((m) => m !== this.memberId).sort();
    const key = wanted.join(',');
    if (lazily && key === this.slotsFor && this.now() - this.slotsAt < SLOT_RECHECK_MS) return;
    try {
      await this.deps.db.syncSlots(wanted, AbortSignal.timeout(5000));
      this.slotsFor = key;
      this.slotsAt = this.now();
    } catch (err) {
      this.decide(`replication slots: ${(err as Error).message}`, 'warn');
    }
  }

  private async carryOutSwitchover(req: SwitchoverRequest, snap: ClusterSnapshot): Promise<void> {
    const target = switchoverTarget(this.memberId, req.to, snap);
    if ('error' in target) {
      this.log.warn({ event: 'ha_switchover_refused', reason: target.error }, `switchover refused: ${target.error}`);
      await this.deps.store.failSwitchover(req, target.error).catch(() => undefined);
      return;
    }
    const started = this.now();
    this.log.info({ event: 'ha_switchover', to: target.target }, `switching over to ${target.target}`);
    this.deps.leadership.update({ fenced: true, reason: `switching over to ${target.target}` });
    const { stoppedAt } = await this.deps.db.demote(`switchover to ${target.target}`, { stayDown: true, handingOver: true });
    const fail = async (reason: string) => {
      this.log.warn({ event: 'ha_switchover_failed', reason }, `switchover failed: ${reason}; staying leader`);
      await this.deps.store.failSwitchover(req, reason).catch(() => undefined);
      await this.deps.db.startStandby(this.stopSignal.signal).catch((err: unknown) => this.log.error({ err }, 'restarting PostgreSQL failed'));
      this.deps.leadership.update({ fenced: false });
      // Still the key holder: the next turn promotes the standby again.
    };
    if (stoppedAt === null) return fail('could not read the position PostgreSQL stopped at');
    const deadline = this.now() + SWITCHOVER_CATCHUP_MS;
    let caughtUp = false;
    while (this.now() < deadline && !this.closed) {
      const s = await this.deps.store.snapshot().catch(() => null);
      const pos = s?.members.get(target.target)?.report.wal_position ?? null;
      if (pos !== null && pos > stoppedAt) {
        caughtUp = true;
        break;
      }
      await sleep(ELECTION_POLL_MS);
    }
    if (!caughtUp) return fail(`${target.target} did not receive everything up to ${stoppedAt} in time`);
    if (!(await this.deps.store.handOver(this.memberId, this.lease!, target.target, target.lease).catch(() => false))) return fail('the leader key could not be handed over');
    this.holding = false;
    this.appliedSync = undefined;
    await this.disarmFence();
    this.deps.leadership.update({ fenced: false, holdsLease: false, role: 'replica', primaryWritable: false, reason: `handed over to ${target.target}` });
    this.log.info({ event: 'ha_switched_over', to: target.target, took_ms: Math.round(this.now() - started) }, `handed leadership to ${target.target}`);
  }

  // ---- reports and views -----------------------------------------------------

  private async publish(db: DatabaseStatus, s: HaSettings, snap: ClusterSnapshot, leaderSeen: string | null): Promise<void> {
    if (!this.lease) return;
    const report = this.report(db, s, leaderSeen, snap);
    try {
      await this.deps.store.publishReport(report, this.lease, { timeoutMs: s.retryTimeoutMs });
      // Our own entry in the snapshot is what we just wrote (the election compares it).
      snap.members.set(this.memberId, { report, modRevision: snap.revision + 1, lease: this.lease });
    } catch (err) {
      this.decide(`cannot publish this member's report: ${(err as Error).message}`, 'warn');
    }
  }

  private report(db: DatabaseStatus, s: HaSettings, leaderSeen: string | null, snap: ClusterSnapshot | null = this.snapshot): MemberReport {
    const endpoint = this.deps.db.endpoint();
    const optime = snap?.optime;
    const isReplica = db.running && db.inRecovery === true;
    const lag = isReplica && optime && db.replayPosition !== null ? Math.max(0, optime.wal_position - db.replayPosition) : null;
    return {
      member: this.memberId,
      host: endpoint.host,
      port: endpoint.port,
      role: !db.running ? 'stopped' : db.inRecovery ? 'replica' : this.holding ? 'leader' : 'unknown',
      healthy: db.healthy,
      timeline: db.timeline,
      wal_position: db.walPosition,
      replay_position: db.replayPosition,
      lag_bytes: lag,
      replication_state: replicationState(db),
      upstream: isReplica ? db.upstream : null,
      eligible: eligibility(this.memberId, db, s, snap, this.deps.leadBlocker?.()).eligible,
      nofailover: s.noFailover,
      leader_seen: leaderSeen,
      lease: this.lease ?? '0',
      updated: Date.now(),
    };
  }

  private setSnapshot(snap: ClusterSnapshot): void {
    this.snapshot = snap;
    this.snapshotAt = Date.now();
    const now = Date.now();
    for (const [m, stored] of snap.members) {
      this.lastSeen.set(m, now);
      this.addresses.set(m, { member: m, host: stored.report.host, port: stored.report.port });
    }
    for (const [m, at] of this.lastSeen) {
      if (now - at > SLOT_RETENTION_MS) {
        this.lastSeen.delete(m);
        this.addresses.delete(m);
      }
    }
  }

  /**
   * Every ROGUE_CHECK_MS, in the background: asks each peer seen lately
   * whether its database takes writes. One that does while the leader key
   * (read afresh from the store, so a just-elected leader is never taken
   * for one) names someone else is a rogue primary: its supervisor and
   * fence are gone or stalled. It is reported on every view and fenced
   * over SQL. With no leader at all and failover paused (maintenance) it is
   * only reported.
   */
  private watchForRogues(): void {
    if (this.rogueChecking || this.now() - this.rogueCheckAt < ROGUE_CHECK_MS || this.closed) return;
    this.rogueChecking = true;
    this.rogueCheckAt = this.now();
    void this.checkRogues().finally(() => (this.rogueChecking = false));
  }

  private async checkRogues(): Promise<void> {
    const s = this.settings();
    const found = new Set<string>();
    for (const peer of [...this.addresses.values()].filter((p) => p.member !== this.memberId)) {
      if ((await this.deps.db.peerRole(peer, AbortSignal.timeout(1000))) !== 'primary') continue;
      let fresh: ClusterSnapshot;
      try {
        fresh = await this.deps.store.snapshot({ timeoutMs: s.retryTimeoutMs });
      } catch {
        continue; // cannot tell who leads: never fence on a guess
      }
      if (fresh.leader?.member === peer.member) continue;
      found.add(peer.member);
      let rogue = this.rogues.get(peer.member);
      if (!rogue) {
        rogue = { member: peer.member, since: Date.now(), action: null };
        this.rogues.set(peer.member, rogue);
        this.log.error(
          { event: 'ha_rogue_primary', member: peer.member, leader: fresh.leader?.member ?? null },
          `CRITICAL: member ${peer.member}'s PostgreSQL takes writes without the leader lease (${fresh.leader ? `${fresh.leader.member} leads` : 'nobody leads'})`,
        );
      }
      if (!fresh.leader && fresh.paused) continue;
      try {
        const did = await this.deps.db.fencePeer(peer, AbortSignal.timeout(3000));
        rogue.action = `fenced over SQL by ${this.memberId}: ${did}`;
        this.log.error({ event: 'ha_rogue_fenced', member: peer.member, action: did }, `fenced member ${peer.member}'s rogue primary over SQL: ${did}`);
      } catch (err) {
        this.log.warn({ event: 'ha_rogue_fence_failed', member: peer.member, reason: (err as Error).message }, `could not fence member ${peer.member} over SQL: ${(err as Error).message}`);
      }
    }
    for (const m of [...this.rogues.keys()]) {
      if (found.has(m)) continue;
      this.rogues.delete(m);
      this.log.info({ event: 'ha_rogue_gone', member: m }, `member ${m}'s PostgreSQL no longer takes writes`);
    }
    const list = [...this.rogues.values()];
    const shown = this.deps.leadership.current.rogues;
    if (JSON.stringify(shown) !== JSON.stringify(list)) this.deps.leadership.update({ rogues: list });
  }

  /**
   * The settings in force. synchronous_mode = "auto" counts the members seen
   * reporting in the last SLOT_RETENTION_MS, not only the live ones: a
   * member that just died still counts, so a failover does not change the
   * mode under the election that follows it.
   */
  private settings(): HaSettings {
    const known = new Set([this.memberId, ...this.lastSeen.keys()]);
    return effectiveSettings(this.deps.settings(), known.size);
  }

  private updateLeadership(db: DatabaseStatus | null): void {
    const snap = this.snapshot;
    const s = this.settings();
    const isReplica = !!db?.running && db.inRecovery === true;
    const isPrimary = !!db?.running && db.inRecovery === false;
    const lag = isReplica && snap?.optime && db!.replayPosition !== null ? Math.max(0, snap.optime.wal_position - db!.replayPosition) : null;
    this.deps.leadership.update({
      present: true,
      role: isPrimary && this.holding ? 'leader' : isReplica ? 'replica' : 'unknown',
      holdsLease: this.holding,
      primaryWritable: isPrimary && !!db?.healthy,
      replication: isReplica ? { state: replicationState(db!) as ReplicationState, lagBytes: lag } : null,
      timeline: db?.timeline ?? null,
      leader: snap?.leader?.member ?? null,
      syncRole: s.synchronousMode && isReplica ? (snap?.sync?.members.includes(this.memberId) ? 'sync' : 'async') : null,
      syncDegraded: s.synchronousMode && isPrimary && this.holding && this.appliedSync === null,
      reason: this.lastDecision || 'starting',
    });
  }

  /** Records what the loop decided; logs it when it changes. */
  private decide(what: string, level: 'info' | 'warn' = 'info'): void {
    if (what === this.lastDecision) return;
    this.lastDecision = what;
    this.log[level]({ event: 'ha_state', state: what }, what);
  }

  private wake(): void {
    const w = this.wakeup;
    this.wakeup = null;
    w?.();
  }

  private sleepFor(ms: number, wakeable: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const stop = this.stopSignal.signal;
      const timer = setTimeout(done, ms);
      const previous = wakeable ? this.wakeup : null;
      function done() {
        clearTimeout(timer);
        stop.removeEventListener('abort', done);
        resolve();
      }
      if (wakeable) {
        this.wakeup = () => {
          previous?.();
          done();
        };
      }
      stop.addEventListener('abort', done, { once: true });
    });
  }
}

function replicationState(db: DatabaseStatus): string | null {
  if (!db.running) return 'stopped';
  if (db.inRecovery !== true) return null;
  return db.streaming ? 'streaming' : 'in archive recovery';
}

function sameNullableSet(a: string[] | null, b: string[] | null): boolean {
  return (a === null) === (b === null) && sameSet(a ?? [], b ?? []);
}

function sameSet(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((x) => set.has(x));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
