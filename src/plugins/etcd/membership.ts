import type { Memberlist } from '../../gossip/index.js';
import type { MemberTlsFiles } from '../../supervisor/pki/member-files.js';
import { etcdClientTls, etcdScheme } from './tls.js';
import { backoffDelay, type BackoffOptions } from '../../supervisor/backoff.js';
import { assertSameCluster, readClusterState, type ClusterState } from '../../supervisor/cluster-state.js';
import { mergeLayers } from '../../supervisor/config-layers.js';
import type { Logger } from '../../supervisor/log.js';
import { findPlan } from '../../supervisor/plan.js';
import type { ClusterSecrets } from '../../supervisor/secrets.js';
import type { StateDir } from '../../supervisor/state-dir.js';
import type { Supervisor } from '../../supervisor/supervisor.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';
import { clientUrl, clusterToken, peerUrl } from './cluster.js';
import type { CensusSource } from '../../supervisor/rumors/service-members.js';
import { ETCD_SERVICE, etcdVoters, type EtcdVoterEndpoint } from './endpoints.js';
import { EtcdClient, endpointHost, hexId, type EtcdMember } from './client.js';
import { readDecision, writeDecision, type EtcdDecision, type EtcdVoterDecision } from './formation-file.js';
import { nextRumorVersion } from '../../supervisor/rumors/key.js';
import { decideSeat, etcdClients, etcdRoleRumor, parseStoredVoters, voterRemovalRefusal, votersKey, type EtcdRole } from './seats.js';

/**
 * etcd formed by the supervisors from the gossip census. The member where
 * `hasup cluster create` ran starts etcd as a new one-member cluster. Every
 * other member, on its first start, finds a voter's client URL in the census
 * and asks the running cluster: while it has fewer than `voters` members,
 * the newcomer adds itself (member/add) and starts its own etcd with the
 * member list etcd returned; once it is full, the newcomer is a client and
 * runs no etcd. The decision is remembered (formation-file.ts).
 *
 * Adds are serialised by etcd itself: with strict reconfiguration checks it
 * refuses an add while an added member has not started (quorum would be at
 * risk) and until the leader has been connected to every voter for a few
 * seconds. Parallel joiners therefore retry with backoff and jitter, and
 * re-read the member list before each try, so each sees the cluster grow
 * and the one that finds it full becomes a client. A newcomer whose add
 * overshot (the list it got back is larger than `voters`: another add won a
 * race it could not see) withdraws its own unstarted member.
 *
 * The calls go through the etcd client (client.ts) to the other voters in
 * the census, in census order, each call to a client of its own on
 * connections that close after it: the member list is hedged like every
 * read; an add or a removal takes etcd's first answer, and moves on to the
 * next voter only when one gives none.
 */

/** Deadline of a member list; of each attempt of an add or a removal. */
export const MEMBER_CALL_TIMEOUT_MS = 5000;

/** etcd voting members: an odd number, so a majority survives one (3) or two (5) lost members. */
export const ETCD_VOTER_COUNTS = [3, 5] as const;

/**
 * Join retries: 0.5 s growing to 5 s. etcd refuses an add for about 5 s
 * after each new voter starts (its health interval), so a cap near that
 * keeps queued joiners close behind each other; the jitter (up to half the
 * delay) keeps parallel joiners from retrying in lockstep.
 */
export const JOIN_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 5000, factor: 1.6, jitter: 0.5 };

export function joinRetryDelay(attempt: number, random: () => number = Math.random): number {
  return backoffDelay(attempt, JOIN_BACKOFF, random);
}

export type JoinStep =
  /** This member is in etcd's list (added earlier, maybe by a previous run): start etcd with this list. */
  | { kind: 'start'; members: EtcdMember[] }
  /** Our unstarted member made the cluster larger than wanted: remove it, then look again. */
  | { kind: 'withdraw'; id: string }
  /** The cluster has its voters: run no etcd. */
  | { kind: 'client' }
  | { kind: 'add' };

/** What a newcomer does, given etcd's member list. Pure. */
export function decideJoin(members: EtcdMember[], selfPeerUrl: string, voters: number): JoinStep {
  const self = members.find((m) => m.peerUrls.includes(selfPeerUrl));
  if (self) {
    if (members.length > voters && self.name === '') return { kind: 'withdraw', id: self.id };
    return { kind: 'start', members };
  }
  return members.length >= voters ? { kind: 'client' } : { kind: 'add' };
}

/**
 * etcd's --initial-cluster entries for a member list: every member by name,
 * this member by its own name although etcd does not know it yet, and
 * another not-yet-started member (no name) by a placeholder: on an existing
 * cluster etcd matches members by peer URL, not name.
 */
export function initialMembers(members: EtcdMember[], selfName: string, selfPeerUrl: string): EtcdVoterDecision['members'] {
  return members.map((m) => ({
    name: m.peerUrls.includes(selfPeerUrl) ? selfName : m.name !== '' ? m.name : `unstarted-${hexId(m.id) ?? m.id}`,
    peer_urls: m.peerUrls,
  }));
}

export function checkVoterCount(n: number): number {
  if (!(ETCD_VOTER_COUNTS as readonly number[]).includes(n)) throw new Error(`etcd voters must be ${ETCD_VOTER_COUNTS.join(' or ')}, got ${n}`);
  return n;
}

/** How often an etcd client looks for a free voter seat (with up to half of it as jitter). */
export const SEAT_CHECK_MS = 5000;

/** How often a voter re-reads the wanted voter count (for its status only: voters never act on it). */
export const WANTED_REFRESH_MS = 30_000;

/** A depart that would be unsafe for etcd: the route answers 409 with the reason. */
export class DepartRefused extends Error {}

export interface EtcdMembershipDeps {
  ring: CensusSource & Pick<Memberlist, 'member' | 'publish'>;
  supervisor: Pick<Supervisor, 'get' | 'load'>;
  stateDir: StateDir;
  memberId: string;
  /** The member's advertised IP (etcd listens there unless listen_address says otherwise). */
  ip: string;
  secrets: ClusterSecrets;
  secretsFile: string;
  /** The member's TLS files (docs/tls.md): etcd's URLs are https and its calls present them; absent when TLS is off. */
  tls?: MemberTlsFiles;
  /** hasup.toml [cluster] etcd: formation on (for members prepared by cluster create/join). */
  enabled: boolean;
  voters: number;
  planPath: string[];
  /** [service.etcd] from hasup.toml: ports and listen address of this member's etcd. */
  userLayer: TomlTable;
  log: Logger;
  random?: () => number;
  /** ms since the epoch (tests inject one). */
  now?: () => number;
}

export interface EtcdMembershipStatus {
  /** Formation runs on this member (it was prepared by cluster create/join). */
  forming: boolean;
  founder: boolean;
  /** joining: not decided yet. null when formation is off. */
  role: 'voter' | 'client' | 'joining' | null;
  voters_wanted: number;
  /** cluster: set with `hasup cluster set etcd_voters` (kept in etcd); config: this member's hasup.toml / secrets (until it has read etcd, or nobody set it). */
  voters_wanted_source?: 'cluster' | 'config';
  /** Alive etcd clients, in the order they take a free voter seat. */
  clients?: string[];
  /** A client's last look for a free seat. */
  seat?: string | null;
  attempts: number;
  last_error: string | null;
  /** Voters in the census, healthy first. */
  voters: Array<{ member: string; member_state: EtcdVoterEndpoint['memberState']; client_url: string; peer_url: string | null; healthy: boolean }>;
}

export interface RemovedVoter {
  was_voter: boolean;
  /** etcd's id of the removed member (hex, as etcdctl prints it). */
  etcd_member_id?: string;
  /** Voting members etcd has after the removal. */
  voters_left?: number;
  /** The etcd client that takes the freed seat (the first in line), when there is one and a seat is wanted. */
  promotes?: string;
  note?: string;
}

export interface VotersSet {
  voters: number;
  previous: number;
  /** etcd's members now. */
  members: number;
  note: string;
}

/**
 * A voter's own entry in etcd's member list when it still holds clear-text
 * peer URLs while this member's etcd serves its peer port over TLS: a
 * cluster whose etcd was formed before it had a CA (`hasup cert init-ca`)
 * keeps the http:// URLs in etcd's own data, which the flags of a restart do
 * not change (docs/tls.md). undefined when there is nothing to move.
 */
export function peerUrlsToMove(members: EtcdMember[], name: string, selfPeerUrl: string): { id: string; from: string[] } | undefined {
  if (!selfPeerUrl.startsWith('https:')) return undefined;
  const own = members.find((m) => m.name === name);
  if (!own || !own.peerUrls.some((u) => u.startsWith('http:'))) return undefined;
  return { id: own.id, from: own.peerUrls };
}

/**
 * Moves this voter's peer URLs to https (etcd's member update) through its
 * own etcd once that serves TLS; the other members then dial it over TLS.
 * Each member does it for itself when it restarts with TLS, so a rolling
 * restart after `cert init-ca` moves the voters one at a time. Returns what
 * it moved, or undefined when etcd already had https URLs for it.
 */
export async function movePeerUrlsToTls(etcd: Pick<EtcdClient, 'memberList' | 'memberUpdate'>, name: string, selfPeerUrl: string): Promise<{ id: string; from: string[]; to: string[] } | undefined> {
  const move = peerUrlsToMove(await etcd.memberList(), name, selfPeerUrl);
  if (!move) return undefined;
  await etcd.memberUpdate(move.id, [selfPeerUrl]);
  return { ...move, to: [selfPeerUrl] };
}

export class EtcdMembership {
  private readonly cluster: ClusterState | undefined;
  private readonly serviceRoot: string;
  private decision: EtcdDecision | undefined;
  private attempts = 0;
  private lastError: string | null = null;
  private stopped = false;
  private wake?: () => void;
  private timer?: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly now: () => number;
  /** The cluster's count, once read from etcd. */
  private clusterVoters: number | undefined;
  private seat: string | null = null;
  private roleVersion = 0;

  constructor(private readonly deps: EtcdMembershipDeps) {
    checkVoterCount(deps.voters);
    this.cluster = deps.enabled ? readClusterState(deps.stateDir.root) : undefined;
    if (this.cluster) assertSameCluster(this.cluster, deps.secrets.cluster_id, deps.stateDir.root, deps.secretsFile);
    this.serviceRoot = deps.stateDir.path('svc', ETCD_SERVICE);
    this.log = deps.log.child({ component: 'etcd-membership' });
    this.now = deps.now ?? Date.now;
  }

  /** Formation decides whether this member runs etcd (so etcd is not started from services.load). */
  get forming(): boolean {
    return this.cluster !== undefined;
  }

  /** Decides (or recalls) this member's etcd role in the background and starts etcd on a voter. */
  start(): void {
    if (!this.forming || this.stopped) return;
    void this.run().catch((err: unknown) => {
      this.lastError = (err as Error).message;
      this.log.error({ event: 'etcd_formation_failed', reason: this.lastError }, `etcd formation stopped: ${this.lastError}`);
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
  }

  status(): EtcdMembershipStatus {
    return {
      forming: this.forming,
      founder: this.cluster?.founder ?? false,
      role: !this.forming ? null : (this.decision?.role ?? 'joining'),
      voters_wanted: this.clusterVoters ?? this.deps.voters,
      voters_wanted_source: this.clusterVoters === undefined ? 'config' : 'cluster',
      clients: etcdClients(this.deps.ring),
      seat: this.seat,
      attempts: this.attempts,
      last_error: this.lastError,
      voters: etcdVoters(this.deps.ring, etcdScheme(!!this.deps.tls)).map((v) => ({ member: v.member, member_state: v.memberState, client_url: v.clientUrl, peer_url: v.peerUrl, healthy: v.healthy })),
    };
  }

  /**
   * Removes a departed member from etcd's voting members, through the other
   * voters in the census. Finds it by name (the hasup member id) or, for a
   * member that was added but never started, by the host of its peer URL.
   */
  async removeVoter(memberId: string): Promise<RemovedVoter> {
    const view = this.deps.ring.member(memberId);
    const voters = etcdVoters(this.deps.ring, etcdScheme(!!this.deps.tls));
    const urls = voters.filter((v) => v.member !== memberId).map((v) => v.clientUrl);
    if (urls.length === 0) return { was_voter: false, note: 'no etcd voter in the census' };
    const etcd = etcdAt(urls, this.deps.tls);
    const members = await etcd.memberList();
    const target = members.find((m) => m.name === memberId) ?? (view ? members.find((m) => m.peerUrls.some((u) => endpointHost(u) === view.addr)) : undefined);
    if (!target) return { was_voter: false };
    const healthy = new Set(voters.filter((v) => v.healthy && v.member !== memberId).map((v) => v.member));
    const refusal = voterRemovalRefusal(members, target.id, healthy);
    if (refusal) throw new DepartRefused(refusal);
    const wanted = await this.wantedVoters(etcd);
    const left = await etcd.memberRemove(target.id);
    const hex = hexId(target.id) ?? target.id;
    const promotes = left.length < wanted ? etcdClients(this.deps.ring).find((c) => c !== memberId) : undefined;
    this.log.warn(
      { event: 'etcd_member_removed', peer: memberId, etcd_member_id: hex, voters_left: left.length, promotes: promotes ?? null },
      `removed departed member ${memberId} (etcd member ${hex}) from etcd; ${left.length} voters left${promotes ? `, client ${promotes} takes the seat` : ''}`,
    );
    const note =
      left.length >= wanted ? undefined : promotes ? undefined : `no etcd client to promote: etcd runs with ${left.length} voters until a member joins (or a client appears)`;
    return { was_voter: true, etcd_member_id: hex, voters_left: left.length, ...(promotes ? { promotes } : {}), ...(note ? { note } : {}) };
  }

  /**
   * `hasup cluster set etcd_voters N`: the cluster's wanted voter count,
   * kept in etcd. Raising it lets clients (and the next joiners) take the
   * new seats; lowering it demotes nobody: voters above it leave only when
   * departed.
   */
  async setVoters(n: number): Promise<VotersSet> {
    checkVoterCount(n);
    const urls = etcdVoters(this.deps.ring, etcdScheme(!!this.deps.tls)).map((v) => v.clientUrl);
    if (urls.length === 0) throw new Error('no etcd voter in the census');
    const etcd = etcdAt(urls, this.deps.tls);
    const previous = await this.wantedVoters(etcd);
    const members = (await etcd.memberList()).length;
    await etcd.put(votersKey(this.scope()), String(n));
    this.clusterVoters = n;
    const clients = etcdClients(this.deps.ring);
    let note: string;
    if (members > n) note = `etcd has ${members} voters; nobody is demoted: voters above ${n} leave only when departed`;
    else if (members === n) note = `etcd has its ${n} voters`;
    else if (clients.length > 0) {
      const taking = clients.slice(0, n - members);
      note = `etcd client(s) ${taking.join(', ')} take the free seat(s), one at a time${taking.length < n - members ? `; the next ${n - members - taking.length} member(s) to join take the rest` : ''}`;
    }
    else note = `the next ${n - members} member(s) to join become voters`;
    this.log.warn({ event: 'etcd_voters_set', voters: n, previous, members }, `etcd voters wanted: ${n} (was ${previous}); ${note}`);
    return { voters: n, previous, members, note };
  }

  // ---- internals --------------------------------------------------------------

  private async run(): Promise<void> {
    const selfPeerUrl = this.ownPeerUrl();
    let decision = readDecision(this.serviceRoot);
    if (decision) this.log.info({ event: 'etcd_role', role: decision.role, recalled: true }, `etcd role: ${decision.role} (decided earlier)`);
    if (!decision && this.cluster!.founder) {
      decision = { role: 'voter', state: 'new', token: this.token(), members: [{ name: this.deps.memberId, peer_urls: [selfPeerUrl] }], decided_at: this.now() };
      writeDecision(this.serviceRoot, decision);
      this.log.info({ event: 'etcd_role', role: 'voter', founder: true }, 'etcd role: voter, founding a new etcd cluster');
    }
    while (!decision && !this.stopped) {
      try {
        decision = await this.tryJoin(selfPeerUrl);
      } catch (err) {
        this.lastError = (err as Error).message;
      }
      if (decision || this.stopped) break;
      const delay = joinRetryDelay(this.attempts++, this.deps.random);
      this.log.info({ event: 'etcd_join_retry', attempt: this.attempts, delay_ms: Math.round(delay), reason: this.lastError }, `etcd join: ${this.lastError}; retrying in ${Math.round(delay)} ms`);
      await this.sleep(delay);
    }
    if (!decision || this.stopped) return;
    this.decided(decision);
    if (decision.role === 'voter') {
      if (!this.deps.supervisor.get(ETCD_SERVICE)) await this.deps.supervisor.load(ETCD_SERVICE);
      if (this.deps.tls) void this.keepPeerUrlsTls(selfPeerUrl).catch((err: unknown) => this.log.warn({ event: 'etcd_peer_urls_failed', reason: (err as Error).message }, `etcd peer URLs not checked: ${(err as Error).message}`));
    } else {
      await this.watchSeats(selfPeerUrl);
    }
    await this.followWanted();
  }

  /** A voter re-reads the cluster's wanted count now and then, so its GET /etcd says what the cluster wants. */
  private async followWanted(): Promise<void> {
    while (!this.stopped) {
      await this.sleep(WANTED_REFRESH_MS);
      if (this.stopped) return;
      const urls = etcdVoters(this.deps.ring, etcdScheme(!!this.deps.tls)).map((v) => v.clientUrl);
      if (urls.length > 0) await this.wantedVoters(etcdAt(urls, this.deps.tls)).catch(() => undefined);
    }
  }

  private decided(decision: EtcdDecision): void {
    this.decision = decision;
    this.lastError = null;
    this.publishRole(decision.role);
  }

  /** Tells the ring whether this member is an etcd voter or client (the order of promotion reads it). */
  private publishRole(role: EtcdRole): void {
    this.roleVersion = nextRumorVersion(this.roleVersion, this.now());
    this.deps.ring.publish(etcdRoleRumor(this.deps.memberId, role, this.now(), this.roleVersion));
  }

  /**
   * An etcd client looks for a free voter seat every SEAT_CHECK_MS (seats.ts
   * decideSeat) and takes it: adds itself, then starts etcd as a member of
   * the running cluster, as a joiner does.
   */
  private async watchSeats(selfPeerUrl: string): Promise<void> {
    let freeSince: number | undefined;
    while (!this.stopped) {
      await this.sleep(SEAT_CHECK_MS * (1 + 0.5 * (this.deps.random ?? Math.random)()));
      if (this.stopped) return;
      try {
        const urls = etcdVoters(this.deps.ring, etcdScheme(!!this.deps.tls)).map((v) => v.clientUrl);
        if (urls.length === 0) {
          this.seat = 'no etcd voter in the census';
          continue;
        }
        const etcd = etcdAt(urls, this.deps.tls);
        const wanted = await this.wantedVoters(etcd);
        const members = await etcd.memberList();
        const free = members.length < wanted;
        if (!free) freeSince = undefined;
        else freeSince ??= this.now();
        let step = decideSeat({ members, selfPeerUrl, wanted, clients: etcdClients(this.deps.ring), selfId: this.deps.memberId, freeForMs: free ? this.now() - freeSince! : 0 });
        if (step.kind === 'wait') {
          this.seat = step.reason;
          continue;
        }
        if (step.kind === 'add') {
          this.log.info({ event: 'etcd_promote', voters: members.length, wanted }, `etcd has ${members.length} of ${wanted} voters: this client takes a seat`);
          const added = await etcd.memberAdd(selfPeerUrl);
          const after = decideJoin(added.members, selfPeerUrl, wanted);
          if (after.kind === 'withdraw') {
            await etcd.memberRemove(after.id);
            this.seat = 'withdrew: another member took the seat at the same time';
            continue;
          }
          step = { kind: 'start', members: added.members };
        }
        const decision: EtcdVoterDecision = { role: 'voter', state: 'existing', token: this.token(), members: initialMembers(step.members, this.deps.memberId, selfPeerUrl), decided_at: this.now() };
        writeDecision(this.serviceRoot, decision);
        this.log.warn({ event: 'etcd_role', role: 'voter', promoted: true, members: step.members.length }, `etcd role: voter (promoted from client), joining an etcd cluster of ${step.members.length}`);
        this.seat = null;
        this.decided(decision);
        if (!this.deps.supervisor.get(ETCD_SERVICE)) await this.deps.supervisor.load(ETCD_SERVICE);
        return;
      } catch (err) {
        this.seat = `could not look at etcd: ${(err as Error).message}`;
      }
    }
  }

  /** The cluster's wanted voter count: etcd's key when set (cluster set etcd_voters), else this member's config. */
  private async wantedVoters(etcd: EtcdClient): Promise<number> {
    const stored = parseStoredVoters((await etcd.get(votersKey(this.scope())))?.value);
    this.clusterVoters = stored;
    return stored ?? this.deps.voters;
  }

  /** The etcd key prefix every member shares (the daemon's HA scope). */
  private scope(): string {
    return this.deps.secrets.cluster_id ?? this.deps.secrets.cluster_name ?? 'hasup';
  }

  /** One look at the cluster: returns the decision, or undefined to look again later. */
  private async tryJoin(selfPeerUrl: string): Promise<EtcdDecision | undefined> {
    const urls = etcdVoters(this.deps.ring, etcdScheme(!!this.deps.tls))
      .filter((v) => v.member !== this.deps.memberId)
      .map((v) => v.clientUrl);
    if (urls.length === 0) {
      this.lastError = 'no etcd voter in the census yet';
      return undefined;
    }
    const etcd = etcdAt(urls, this.deps.tls);
    const wanted = await this.wantedVoters(etcd);
    let step = decideJoin(await etcd.memberList(), selfPeerUrl, wanted);
    if (step.kind === 'add') {
      const { members } = await etcd.memberAdd(selfPeerUrl);
      this.log.info({ event: 'etcd_member_added', members: members.length }, `added to etcd (${members.length} members now)`);
      step = decideJoin(members, selfPeerUrl, wanted);
    }
    switch (step.kind) {
      case 'start': {
        const decision: EtcdDecision = { role: 'voter', state: 'existing', token: this.token(), members: initialMembers(step.members, this.deps.memberId, selfPeerUrl), decided_at: this.now() };
        writeDecision(this.serviceRoot, decision);
        this.log.info({ event: 'etcd_role', role: 'voter', members: step.members.length }, `etcd role: voter, joining an etcd cluster of ${step.members.length}`);
        return decision;
      }
      case 'client': {
        const decision: EtcdDecision = { role: 'client', decided_at: this.now() };
        writeDecision(this.serviceRoot, decision);
        this.log.info({ event: 'etcd_role', role: 'client', voters: wanted }, `etcd role: client (the cluster has its ${wanted} voters)`);
        return decision;
      }
      case 'withdraw':
        await etcd.memberRemove(step.id);
        this.lastError = `withdrew from etcd: another member was added at the same time and the cluster has its ${wanted} voters`;
        this.log.info({ event: 'etcd_member_withdrawn', etcd_member_id: hexId(step.id) ?? step.id }, this.lastError);
        return undefined;
      case 'add':
        return undefined;
    }
  }

  /** This member's etcd peer URL from the plan defaults and [service.etcd] (before etcd is loaded). */
  /** A voter under TLS: its clear-text peer URLs in etcd moved to https through its own etcd, retried until etcd answers. */
  private async keepPeerUrlsTls(selfPeerUrl: string): Promise<void> {
    const plan = findPlan(ETCD_SERVICE, this.deps.planPath);
    const cfg = mergeLayers(plan.defaults, [{ name: '[service.etcd] in hasup.toml', data: this.deps.userLayer }]);
    const etcd = etcdAt([clientUrl(cfg, this.deps.ip, true)], this.deps.tls);
    while (!this.stopped) {
      try {
        const moved = await movePeerUrlsToTls(etcd, this.deps.memberId, selfPeerUrl);
        if (moved) {
          this.log.warn(
            { event: 'etcd_peer_urls_tls', etcd_member_id: hexId(moved.id) ?? moved.id, from: moved.from, to: moved.to },
            `etcd held clear-text peer URLs for this member (${moved.from.join(', ')}), formed before the cluster CA: moved to ${moved.to.join(', ')}`,
          );
        }
        return;
      } catch (err) {
        this.log.info({ event: 'etcd_peer_urls_retry', reason: (err as Error).message }, `etcd peer URLs not checked yet: ${(err as Error).message}`);
      }
      await this.sleep(SEAT_CHECK_MS);
    }
  }

  private ownPeerUrl(): string {
    const plan = findPlan(ETCD_SERVICE, this.deps.planPath);
    const cfg = mergeLayers(plan.defaults, [{ name: '[service.etcd] in hasup.toml', data: this.deps.userLayer }]);
    return peerUrl(cfg, this.deps.ip, !!this.deps.tls);
  }

  private token(): string {
    return clusterToken(this.deps.secrets.cluster_id ?? this.cluster?.cluster_id ?? this.deps.memberId);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
      this.timer.unref();
    });
  }
}

/** A client for the voters at `urls`, tried in this order (census order: healthy first), leaving no connection open. */
function etcdAt(urls: string[], tls: MemberTlsFiles | undefined): EtcdClient {
  return new EtcdClient({ endpoints: () => urls, timeoutMs: MEMBER_CALL_TIMEOUT_MS, keepAlive: false, tls: () => etcdClientTls(tls) });
}
