/**
 * In-memory stand-ins for the HA core's ports, for unit tests in virtual
 * time: a cluster store with leases that expire on the clock (etcd's
 * semantics as src/plugins/etcd/ha-store.ts uses them), a replicated
 * database whose followers copy the primary's WAL position while they
 * stream, a fence that kills its database at the armed deadline on a clock
 * the member's own stall does not stop, and a clock a member can be paused
 * on (SIGSTOP). The proof that the real thing works stays with the
 * namespace cluster tests; these make the controller's logic testable in
 * milliseconds.
 */
import { pino } from 'pino';
import { VirtualClock } from '../../src/gossip/sim/virtual-clock.js';
import { sleep, type Clock, type Timer } from '../../src/ha/clock.js';
import { HaController } from '../../src/ha/controller.js';
import type { DatabaseStatus, PeerEndpoint, ReplicatedDatabase } from '../../src/ha/database.js';
import { ElectedLeadership } from '../../src/ha/elected-leadership.js';
import type { FenceArmResult, FenceDeadlines, LeaderFence } from '../../src/ha/fence.js';
import { DEFAULT_HA_SETTINGS, type HaSettings } from '../../src/ha/settings.js';
import type { ClusterSnapshot, ClusterStore, MemberReport, OpTime, RestoreRequest, RestoreTarget, StoreCall, StoredReport, SwitchoverRequest, SyncState } from '../../src/ha/store.js';

/** The shared virtual clock, draining promise chains after every event so async code runs in time order. */
export function virtualClock(): { base: VirtualClock; clock: Clock } {
  const base = new VirtualClock();
  const clock: Clock = {
    now: () => base.now(),
    wallNow: () => base.wallNow(),
    setTimeout: (fn, ms) =>
      base.setTimeout(() => {
        fn();
        base.requestFlush();
      }, ms),
  };
  return { base, clock };
}

/** A member's view of the clock: while paused (SIGSTOP) none of its timers fire; they all run on resume. */
export class PausableClock implements Clock {
  private paused = false;
  private held: (() => void)[] = [];
  constructor(private readonly base: Clock) {}
  now(): number {
    return this.base.now();
  }
  wallNow(): number {
    return this.base.wallNow();
  }
  setTimeout(fn: () => void, ms: number): Timer {
    let cancelled = false;
    const t = this.base.setTimeout(() => {
      if (cancelled) return;
      if (this.paused) this.held.push(() => !cancelled && fn());
      else fn();
    }, ms);
    return {
      cancel: () => {
        cancelled = true;
        t.cancel();
      },
    };
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    for (const fn of this.held.splice(0)) fn();
  }
  get isPaused(): boolean {
    return this.paused;
  }
}

// ---- the store ---------------------------------------------------------------

interface Kv {
  value: string;
  lease: string;
  modRevision: number;
}

/** etcd as the HA store uses it: keys, leases with TTLs on the clock, compare-and-set transactions, watches. */
export class MemoryStore {
  revision = 1;
  private readonly kv = new Map<string, Kv>();
  private readonly leases = new Map<string, { expiresAt: number; ttlMs: number }>();
  private readonly watchers = new Set<(keys: string[]) => void>();
  private nextLease = 1;
  /** Every member's calls fail (an etcd outage). */
  down = false;
  /**
   * etcd without a raft leader (electing one, say under packet loss): every
   * call fails and no lease expires; the new leader gives every lease a
   * whole ttl again (etcd's lessor Promote), see electLeader.
   */
  leaderless = false;
  /** Members whose calls fail (cut off from etcd). */
  readonly cut = new Set<string>();
  /** How long each call takes. */
  latencyMs = 2;

  constructor(private readonly clock: Clock) {
    // etcd looks for expired leases twice a second.
    const sweep = () => {
      this.expire();
      this.clock.setTimeout(sweep, 500);
    };
    this.clock.setTimeout(sweep, 500);
  }

  /** The ClusterStore one member sees (its calls fail while it is cut off). */
  client(member: string, memberClock: Clock = this.clock): ClusterStore {
    const call = async <T>(fn: () => T): Promise<T> => {
      await new Promise<void>((resolve) => memberClock.setTimeout(resolve, this.latencyMs));
      if (this.down || this.leaderless || this.cut.has(member)) {
        // A call to an unreachable etcd hangs until its deadline.
        await new Promise<void>((resolve) => memberClock.setTimeout(resolve, 200));
        throw new Error('etcd unavailable');
      }
      return fn();
    };
    const leaderIs = (m: string, lease?: string) => {
      const l = this.kv.get('leader');
      return !!l && l.value === m && (lease === undefined || l.lease === lease);
    };
    return {
      snapshot: (_o?: StoreCall) => call(() => this.snapshot()),
      grantLease: (ttlS: number) =>
        call(() => {
          const id = String(this.nextLease++);
          this.leases.set(id, { expiresAt: this.clock.now() + ttlS * 1000, ttlMs: ttlS * 1000 });
          return id;
        }),
      renewLease: (lease: string) =>
        call(() => {
          const l = this.leases.get(lease);
          if (!l) return false;
          l.expiresAt = this.clock.now() + l.ttlMs;
          return true;
        }),
      revokeLease: (lease: string) => call(() => this.dropLease(lease)),
      publishReport: (report: MemberReport, lease: string) => call(() => this.put(`members/${report.member}`, JSON.stringify(report), lease)),
      acquireLeader: (member: string, lease: string) => call(() => !this.kv.has('leader') && this.leases.has(lease) && (this.put('leader', member, lease), true)),
      leaderTurn: (member: string, lease: string, report: MemberReport, optime: OpTime) =>
        call(() => {
          const still = leaderIs(member, lease);
          if (still) {
            this.put(`members/${member}`, JSON.stringify(report), lease);
            this.put('optime', JSON.stringify(optime), '0');
          }
          return { stillLeader: still, snapshot: this.snapshot() };
        }),
      reclaimLeader: (member: string, lease: string) => call(() => leaderIs(member) && (this.put('leader', member, lease), true)),
      releaseLeader: (member: string) => call(() => leaderIs(member) && (this.del('leader'), true)),
      handOver: (from: string, fromLease: string, to: string, toLease: string) =>
        call(() => {
          if (!leaderIs(from, fromLease)) return false;
          this.put('leader', to, toLease);
          this.del('switchover');
          return true;
        }),
      claimInitialize: (member: string) => call(() => !this.kv.has('initialize') && (this.put('initialize', member, '0'), true)),
      releaseInitialize: (member: string) => call(() => void (this.kv.get('initialize')?.value === member && this.del('initialize'))),
      setSync: (leader: string, members: string[]) => call(() => leaderIs(leader) && (this.put('sync', JSON.stringify({ leader, members } satisfies SyncState), '0'), true)),
      setPaused: (paused: boolean) => call(() => void (paused ? this.put('pause', '{}', '0') : this.del('pause'))),
      requestSwitchover: (req: SwitchoverRequest) => call(() => !this.kv.has('switchover') && (this.put('switchover', JSON.stringify(req), '0'), true)),
      failSwitchover: (req: SwitchoverRequest, reason: string) => call(() => void (this.switchoverId() === req.id && this.put('switchover', JSON.stringify({ ...req, failed: reason }), '0'))),
      clearSwitchover: (id: string | null) => call(() => void ((id === null || this.switchoverId() === id) && this.del('switchover'))),
      requestRestore: (req: RestoreRequest) =>
        call(() => {
          const prior = this.kv.get('restore');
          const state = prior ? (JSON.parse(prior.value) as RestoreRequest).state : null;
          if (state && state !== 'done' && state !== 'failed') return false;
          this.put('restore', JSON.stringify(req), '0');
          return true;
        }),
      updateRestore: (req: RestoreRequest) =>
        call(() => {
          const prior = this.kv.get('restore');
          if (prior && (JSON.parse(prior.value) as RestoreRequest).id === req.id) this.put('restore', JSON.stringify(req), '0');
        }),
      watch: (onChange: (keys: string[]) => void, signal: AbortSignal) => {
        this.watchers.add(onChange);
        signal.addEventListener('abort', () => this.watchers.delete(onChange), { once: true });
      },
    };
  }

  /** The leader key's holder right now, as the store sees it. */
  leader(): string | null {
    this.expire();
    return this.kv.get('leader')?.value ?? null;
  }

  snapshot(): ClusterSnapshot {
    this.expire();
    const snap: ClusterSnapshot = { revision: this.revision, leader: null, members: new Map<string, StoredReport>(), optime: null, initialize: null, sync: null, paused: false, switchover: null, restore: null };
    for (const [key, kv] of this.kv) {
      if (key === 'leader') snap.leader = { member: kv.value, lease: kv.lease, modRevision: kv.modRevision };
      else if (key.startsWith('members/')) {
        const report = JSON.parse(kv.value) as MemberReport;
        snap.members.set(report.member, { report, modRevision: kv.modRevision, lease: kv.lease });
      } else if (key === 'optime') snap.optime = JSON.parse(kv.value) as OpTime;
      else if (key === 'initialize') snap.initialize = { member: kv.value };
      else if (key === 'sync') snap.sync = JSON.parse(kv.value) as SyncState;
      else if (key === 'pause') snap.paused = true;
      else if (key === 'switchover') snap.switchover = JSON.parse(kv.value) as SwitchoverRequest;
      else if (key === 'restore') snap.restore = JSON.parse(kv.value) as RestoreRequest;
    }
    return snap;
  }

  private switchoverId(): string | undefined {
    const v = this.kv.get('switchover');
    return v ? (JSON.parse(v.value) as SwitchoverRequest).id : undefined;
  }

  private put(key: string, value: string, lease: string): void {
    this.kv.set(key, { value, lease, modRevision: ++this.revision });
    this.notify([key]);
  }

  private del(key: string): void {
    if (this.kv.delete(key)) {
      this.revision++;
      this.notify([key]);
    }
  }

  private dropLease(lease: string): void {
    this.leases.delete(lease);
    const gone = [...this.kv].filter(([, kv]) => kv.lease === lease).map(([k]) => k);
    for (const k of gone) this.kv.delete(k);
    if (gone.length > 0) {
      this.revision++;
      this.notify(gone);
    }
  }

  /** etcd loses its leader for `ms` and then elects one, which extends every lease by a ttl and an election timeout. */
  electLeader(ms: number, electionTimeoutMs = 500): void {
    this.leaderless = true;
    this.clock.setTimeout(() => {
      this.leaderless = false;
      const now = this.clock.now();
      for (const l of this.leases.values()) l.expiresAt = now + electionTimeoutMs + l.ttlMs;
    }, ms);
  }

  private expire(): void {
    if (this.leaderless) return;
    const now = this.clock.now();
    for (const [id, l] of this.leases) if (l.expiresAt <= now) this.dropLease(id);
  }

  private notify(keys: string[]): void {
    for (const w of this.watchers) w(keys);
  }
}

// ---- the database ------------------------------------------------------------

export type DbCall = 'promote' | 'demote' | 'startStandby' | 'follow' | 'setSynchronous' | 'prepareSynchronous' | 'fencePeer' | 'stopForRestore' | 'restore' | 'replayArchive';

/** Every member's database, so followers can copy the primary's WAL and peers can be asked about each other. */
export class FakeWorld {
  readonly dbs = new Map<string, FakeDb>();
  /** Writes on whichever databases take them (a rogue too). */
  write(bytes = 1000): void {
    for (const db of this.dbs.values()) if (db.writable()) db.wal += bytes;
    for (const db of this.dbs.values()) db.catchUp();
  }
  /** Members whose database takes writes right now. */
  primaries(): string[] {
    return [...this.dbs.values()].filter((d) => d.writable()).map((d) => d.member);
  }
}

export class FakeDb implements ReplicatedDatabase {
  running = true;
  inRecovery = true;
  wal = 0;
  timeline = 1;
  upstream: string | null = null;
  /** Replication from the upstream is cut (a follower falling behind). */
  blocked = false;
  /** Killed by the fence: down until the HA loop starts it again. */
  killed = false;
  /** Stopped by the fence (SIGSTOP): answers nothing, commits nothing, until thawed or killed. */
  frozen = false;
  sqlFenced = false;
  sync: string[] | null = null;
  /** A warm spare's re-base runs (the database is stopped on purpose): status says so. */
  busy: string | undefined = undefined;
  readonly calls: { call: DbCall; at: number; arg?: unknown }[] = [];

  constructor(
    readonly member: string,
    private readonly world: FakeWorld,
    private readonly clock: Clock,
  ) {
    world.dbs.set(member, this);
  }

  writable(): boolean {
    return this.running && !this.killed && !this.frozen && !this.inRecovery && !this.sqlFenced;
  }

  private record(call: DbCall, arg?: unknown): void {
    this.calls.push({ call, at: this.clock.now(), arg });
  }

  private streaming(): boolean {
    const up = this.upstream ? this.world.dbs.get(this.upstream) : undefined;
    return this.running && !this.killed && this.inRecovery && !this.blocked && !!up && up.running && !up.killed && !up.frozen && !up.inRecovery;
  }

  catchUp(): void {
    if (this.streaming()) {
      const up = this.world.dbs.get(this.upstream!)!;
      this.wal = Math.max(this.wal, up.wal);
      this.timeline = up.timeline;
    }
  }

  present(): boolean {
    return true;
  }
  async dataPresent(): Promise<boolean> {
    return true;
  }
  endpoint() {
    return { host: this.member, port: 5432 };
  }
  async status(): Promise<DatabaseStatus> {
    this.catchUp();
    if (this.busy) return { running: false, healthy: false, inRecovery: null, timeline: null, walPosition: null, replayPosition: null, streaming: false, upstream: null, replicas: [], reason: this.busy, busy: this.busy };
    const up = this.running && !this.killed && !this.frozen;
    const replicas = up && !this.inRecovery ? [...this.world.dbs.values()].filter((d) => d.upstream === this.member && d.streaming()).map((d) => ({ member: d.member, state: 'streaming', syncState: 'async', flushPosition: d.wal, replayPosition: d.wal })) : [];
    return {
      running: up,
      healthy: up,
      inRecovery: up ? this.inRecovery : null,
      timeline: up ? this.timeline : null,
      walPosition: up ? this.wal : null,
      replayPosition: up && this.inRecovery ? this.wal : null,
      streaming: this.streaming(),
      upstream: up && this.inRecovery ? this.upstream : null,
      replicas,
      reason: up ? undefined : this.frozen ? 'PostgreSQL does not answer (frozen)' : 'PostgreSQL is stopped',
    };
  }
  async promote(): Promise<void> {
    this.record('promote');
    this.running = true;
    this.killed = false;
    this.inRecovery = false;
    this.upstream = null;
    this.timeline++;
  }
  async demote(_reason: string, opts: { stayDown?: boolean } = {}): Promise<{ stoppedAt: number | null }> {
    this.record('demote', opts);
    // A frozen PostgreSQL cannot shut down: the HA core must have the fence kill it first.
    if (this.frozen) throw new Error('PostgreSQL does not answer (frozen): it cannot be shut down');
    // A clean stop writes a shutdown checkpoint, and the walsenders hand it to the streaming followers.
    const stoppedAt = this.wal;
    if (this.writable()) {
      this.wal += 100;
      for (const d of this.world.dbs.values()) d.catchUp();
    }
    this.running = !opts.stayDown;
    this.killed = false;
    this.inRecovery = true;
    this.upstream = null;
    this.sqlFenced = false;
    return { stoppedAt };
  }
  async stopForRestore(): Promise<void> {
    this.record('stopForRestore');
    this.running = false;
    this.inRecovery = true;
    this.upstream = null;
  }
  /** How long a restore takes here (virtual ms), and where it leaves the database. */
  restoreTakesMs = 5000;
  restoreTo = 0;
  restoreFails: string | null = null;
  async restore(target: RestoreTarget, signal: AbortSignal): Promise<void> {
    this.record('restore', target);
    this.running = false;
    await sleep(this.clock, this.restoreTakesMs, signal);
    if (this.restoreFails) throw new Error(this.restoreFails);
    // Recovery ends at the target on a timeline past every one seen.
    this.wal = this.restoreTo;
    this.timeline = Math.max(...[...this.world.dbs.values()].map((d) => d.timeline)) + 1;
    this.running = true;
    this.killed = false;
    this.inRecovery = false;
  }
  async startStandby(): Promise<void> {
    this.record('startStandby');
    this.running = true;
    this.killed = false;
    this.inRecovery = true;
  }
  /** A warm spare's standby leader: no upstream, replaying the repository copy's archive. */
  async replayArchive(): Promise<void> {
    this.record('replayArchive');
    this.running = true;
    this.killed = false;
    this.inRecovery = true;
    this.upstream = null;
  }
  async follow(leader: PeerEndpoint): Promise<void> {
    this.record('follow', leader.member);
    this.running = true;
    this.killed = false;
    this.inRecovery = true;
    this.sqlFenced = false;
    this.upstream = leader.member;
    this.catchUp();
  }
  async setSynchronous(members: string[] | null): Promise<void> {
    this.record('setSynchronous', members);
    this.sync = members;
  }
  async syncSlots(): Promise<void> {}
  async prepareSynchronous(members: string[] | null): Promise<void> {
    this.record('prepareSynchronous', members);
    this.sync = members;
  }
  async peerRole(peer: PeerEndpoint): Promise<'primary' | 'standby' | 'unreachable'> {
    const d = this.world.dbs.get(peer.member);
    if (!d || !d.running || d.killed || d.frozen) return 'unreachable';
    return d.inRecovery ? 'standby' : 'primary';
  }
  async fencePeer(peer: PeerEndpoint): Promise<string> {
    this.record('fencePeer', peer.member);
    const d = this.world.dbs.get(peer.member);
    if (!d || d.inRecovery) throw new Error('it is not a primary (any more)');
    d.sqlFenced = true;
    return 'commits wait';
  }
}

/**
 * The fence process, on the machine's clock (which a supervisor's stall
 * does not stop): it freezes the database at the freeze instant, thaws it
 * on a later arm, and kills it at the kill instant, on a disarm while
 * frozen, or when asked.
 */
export class FakeFence implements LeaderFence {
  readonly freezes = true;
  private at: FenceDeadlines | null = null;
  private timers: Timer[] = [];
  private readonly listeners: ((cause: string) => void)[] = [];
  arms = 0;
  disarms = 0;
  /** Kills (on its own, asked, or on a disarm while frozen). */
  acted = 0;
  /** When it froze the database (machine clock), and when it thawed it. */
  readonly froze: number[] = [];
  readonly thawed: number[] = [];
  readonly kills: { at: number; cause: string }[] = [];
  /** Called when it freezes or kills the database on its own clock (the real fence removes the leader VIP then). */
  onAct?: (what: 'freeze' | 'kill') => void;

  constructor(
    private readonly db: FakeDb,
    private readonly machineClock: Clock,
    /** The supervisor hears what the fence did on its own clock: not while it is frozen. */
    private readonly supervisorClock: Clock,
    private readonly watchdog: FenceArmResult['watchdog'] = 'off',
  ) {}

  async arm(at: FenceDeadlines): Promise<FenceArmResult> {
    this.arms++;
    this.at = at;
    for (const t of this.timers.splice(0)) t.cancel();
    const now = this.machineClock.now();
    if (this.db.frozen && at.freeze > now) {
      this.db.frozen = false;
      this.thawed.push(now);
    }
    this.timers.push(
      this.machineClock.setTimeout(() => this.freeze(), Math.max(0, at.freeze - now)),
      this.machineClock.setTimeout(() => this.fire('deadline'), Math.max(0, at.kill - now)),
    );
    return { watchdog: this.watchdog };
  }
  async disarm(): Promise<void> {
    this.disarms++;
    if (this.db.frozen) this.fire('disarmed-frozen');
    this.at = null;
    for (const t of this.timers.splice(0)) t.cancel();
  }
  async kill(): Promise<void> {
    if (this.at) this.fire('supervisor');
  }
  armed(): boolean {
    return this.at !== null;
  }
  standBy(): void {}
  onFenced(listener: (cause: string) => void): void {
    this.listeners.push(listener);
  }
  private freeze(): void {
    if (this.at === null || this.db.frozen) return;
    this.onAct?.('freeze');
    this.db.frozen = true;
    this.froze.push(this.machineClock.now());
  }
  private fire(cause: string): void {
    if (this.at === null && !this.db.frozen) return;
    this.at = null;
    for (const t of this.timers.splice(0)) t.cancel();
    this.onAct?.('kill');
    this.acted++;
    this.kills.push({ at: this.machineClock.now(), cause });
    this.db.killed = true;
    this.db.frozen = false;
    this.supervisorClock.setTimeout(() => {
      for (const l of this.listeners) l(cause);
    }, 0);
  }
}

// ---- a cluster of controllers --------------------------------------------------

export interface FakeMember {
  id: string;
  controller: HaController;
  db: FakeDb;
  fence: FakeFence;
  clock: PausableClock;
  leadership: ElectedLeadership;
}

export class FakeCluster {
  readonly base: VirtualClock;
  readonly clock: Clock;
  readonly store: MemoryStore;
  readonly world = new FakeWorld();
  readonly members = new Map<string, FakeMember>();
  settings: HaSettings;
  /** Sampled after every virtual 10 ms: members whose database took writes at that moment. */
  readonly primarySamples: { at: number; primaries: string[] }[] = [];

  constructor(ids: string[], settings: Partial<HaSettings> = {}, opts: { watchdog?: FenceArmResult['watchdog'] } = {}) {
    ({ base: this.base, clock: this.clock } = virtualClock());
    this.store = new MemoryStore(this.clock);
    this.settings = { ...DEFAULT_HA_SETTINGS, synchronousModeAuto: false, ...settings };
    const log = pino({ level: 'silent' });
    for (const id of ids) {
      const clock = new PausableClock(this.clock);
      const db = new FakeDb(id, this.world, this.clock);
      const fence = new FakeFence(db, this.clock, clock, opts.watchdog);
      const leadership = new ElectedLeadership(`postgresql.default`, () => this.settings.loopWaitMs + this.settings.retryTimeoutMs / 2, () => clock.now(), () => clock.wallNow());
      const controller = new HaController({ memberId: id, serviceGroup: 'postgresql.default', store: this.store.client(id, clock), db, settings: () => this.settings, leadership, fence, log, clock });
      this.members.set(id, { id, controller, db, fence, clock, leadership });
    }
  }

  member(id: string): FakeMember {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  /** The first member has the database; the others start as standbys of nobody (the loop points them). */
  start(first: string): void {
    const db = this.member(first).db;
    db.wal = 1000;
    for (const m of this.members.values()) m.controller.start();
    const sample = () => {
      this.world.write(100);
      this.primarySamples.push({ at: this.clock.now(), primaries: this.world.primaries() });
      this.clock.setTimeout(sample, 10);
    };
    this.clock.setTimeout(sample, 10);
  }

  /** Awaits `p` while running virtual time (what it waits for happens on the clock). */
  async settle<T>(p: Promise<T>, limitMs = 30_000): Promise<T> {
    let done = false;
    const watched = p.finally(() => (done = true));
    if (!(await this.until(() => done, limitMs))) throw new Error(`still pending after ${limitMs} ms of virtual time`);
    return watched;
  }

  /** Runs virtual time until `done` or `limitMs`. */
  async until(done: () => boolean, limitMs: number): Promise<boolean> {
    return this.base.runUntil(done, limitMs, 10);
  }

  async run(ms: number): Promise<void> {
    await this.base.advance(ms);
  }

  /** The member that holds the key in the store and runs a writable primary, or null. */
  leader(): string | null {
    const l = this.store.leader();
    return l && this.member(l).db.writable() ? l : null;
  }

  /** Every follower streams from the leader. */
  whole(): boolean {
    const l = this.leader();
    if (!l) return false;
    return [...this.members.values()].every((m) => m.id === l || (m.db.upstream === l && m.db.running && !m.db.killed && m.db.inRecovery));
  }

  /** Any moment where two databases took writes. */
  doubleWriters(): { at: number; primaries: string[] }[] {
    return this.primarySamples.filter((s) => s.primaries.length > 1);
  }

  /** Stops every controller (running the clock meanwhile: in-flight calls finish on it). */
  async close(): Promise<void> {
    for (const m of this.members.values()) m.clock.resume();
    let closed = false;
    const closing = Promise.all([...this.members.values()].map((m) => m.controller.close({ leaving: false }))).then(() => (closed = true));
    await this.until(() => closed, 30_000);
    await closing;
  }
}
