import type { MemberStateName, Memberlist } from '../../gossip/index.js';
import { jsonObjectPayload } from '../../supervisor/rumors/key.js';
import { decodeRoleRumor, RUMOR_ROLE } from '../../supervisor/rumors/role.js';
import { parseServiceRumorKey, RUMOR_SERVICE } from '../../supervisor/rumors/service.js';
import type { EtcdMember } from './client.js';

/**
 * How the etcd voter set grows and shrinks on a running cluster (pure
 * decisions; membership.ts and the depart route act on them):
 *
 * - The cluster's wanted voter count lives in etcd (votersKey), set by
 *   `hasup cluster set etcd_voters N`; a member falls back to its
 *   hasup.toml / secrets value while the key is absent.
 * - Every member says in the ring whether it is an etcd voter or client
 *   (the etcd_role rumor). A client whose etcd has fewer members than
 *   wanted takes the free seat: it adds itself (member/add, which etcd's
 *   strict reconfiguration check refuses while that would risk the
 *   quorum) and starts etcd as a member of the running cluster. Clients
 *   go in member id order; the next one tries only after the seat has
 *   stayed free for PROMOTE_STAGGER_MS per place ahead of it.
 * - A voter leaves only through `hasup depart`, refused when the voters
 *   left would not hold a quorum, and a member is not departed while it is
 *   the last PostgreSQL member or the leader nobody has replaced yet.
 */

/** The rumor kind of a member's etcd role (key: the member id). */
export const RUMOR_ETCD_ROLE = 'etcd_role';

export type EtcdRole = 'voter' | 'client';

export interface EtcdRoleRumor {
  role: EtcdRole;
  since: number;
}

export function etcdRoleRumor(memberId: string, role: EtcdRole, since: number, version: number): { kind: string; key: string; version: number; payload: Uint8Array } {
  return { kind: RUMOR_ETCD_ROLE, key: memberId, version, payload: Buffer.from(JSON.stringify({ role, since } satisfies EtcdRoleRumor)) };
}

export function decodeEtcdRoleRumor(payload: Uint8Array): EtcdRoleRumor | undefined {
  const d = jsonObjectPayload(payload);
  if (!d || (d.role !== 'voter' && d.role !== 'client')) return undefined;
  return { role: d.role, since: typeof d.since === 'number' ? d.since : 0 };
}

/** The etcd clients the ring knows that are alive, by member id: the order in which they take a free seat. */
export function etcdClients(ring: Pick<Memberlist, 'members' | 'rumors'>): string[] {
  const alive = new Set(ring.members().filter((m) => m.state === 'alive').map((m) => m.id));
  const out: string[] = [];
  for (const r of ring.rumors(RUMOR_ETCD_ROLE)) {
    if (!alive.has(r.key)) continue;
    if (decodeEtcdRoleRumor(r.payload)?.role === 'client') out.push(r.key);
  }
  return out.sort();
}

/** The etcd key of the cluster's wanted voter count (`hasup cluster set etcd_voters N`). */
export function votersKey(scope: string): string {
  return `/hasup/${scope}/cluster/etcd_voters`;
}

/** The stored count if it is 3 or 5, else undefined (absent or not a count hasup would write). */
export function parseStoredVoters(value: string | undefined): 3 | 5 | undefined {
  const n = value === undefined ? NaN : Number(value.trim());
  return n === 3 || n === 5 ? n : undefined;
}

/** Time a free seat waits for each client ahead of this one before this one tries. */
export const PROMOTE_STAGGER_MS = 20_000;

export type SeatStep =
  /** This member is in etcd's list (its add went through): start etcd with this list. */
  | { kind: 'start'; members: EtcdMember[] }
  /** Take the free seat: add this member. */
  | { kind: 'add' }
  | { kind: 'wait'; reason: string };

export interface SeatInput {
  /** etcd's member list. */
  members: EtcdMember[];
  selfPeerUrl: string;
  /** The cluster's wanted voter count. */
  wanted: number;
  /** The alive etcd clients in promotion order (etcdClients). */
  clients: string[];
  selfId: string;
  /** How long the seat has been seen free (0 on the first look). */
  freeForMs: number;
}

/** What an etcd client does on one look at the cluster. Pure. */
export function decideSeat(s: SeatInput): SeatStep {
  if (s.members.some((m) => m.peerUrls.includes(s.selfPeerUrl))) return { kind: 'start', members: s.members };
  if (s.members.length >= s.wanted) return { kind: 'wait', reason: `etcd has ${s.members.length} voters, ${s.wanted} wanted` };
  const unstarted = s.members.find((m) => m.name === '');
  if (unstarted) return { kind: 'wait', reason: `another member (${unstarted.peerUrls.join(', ')}) was added and has not started yet` };
  // A client the ring does not list yet (its rumor is on its way) queues behind those it lists.
  const place = s.clients.indexOf(s.selfId);
  const rank = place < 0 ? s.clients.length : place;
  if (rank > 0 && s.freeForMs < rank * PROMOTE_STAGGER_MS) return { kind: 'wait', reason: `client ${s.clients[0]} goes first` };
  return { kind: 'add' };
}

export function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * Why removing etcd member `targetId` would be unsafe, or undefined when it
 * is safe: the voters left must still be a quorum of the smaller cluster
 * with only the healthy ones counted (by member name: the hasup member id;
 * an added member that never started is not healthy).
 */
export function voterRemovalRefusal(members: EtcdMember[], targetId: string, healthy: ReadonlySet<string>): string | undefined {
  const rest = members.filter((m) => m.id !== targetId);
  if (rest.length === 0) return 'it is the only etcd voter: the cluster would have no etcd left';
  const up = rest.filter((m) => m.name !== '' && healthy.has(m.name)).length;
  const quorum = quorumOf(rest.length);
  if (up < quorum) {
    return `etcd would be left with ${rest.length} voter${rest.length === 1 ? '' : 's'}, ${up} of them healthy; a quorum of ${rest.length} needs ${quorum}. Bring the stopped voters back (or wait until they are healthy) first`;
  }
  return undefined;
}

/** Members whose PostgreSQL data directory still exists: a stopped (left) member's too. */
const HOLDS_DATA: ReadonlySet<MemberStateName> = new Set(['alive', 'suspect', 'dead', 'left']);

/**
 * Why departing `target` would lose the database, or undefined: it is the
 * only member that runs PostgreSQL, or no other alive PostgreSQL member
 * has run it since, or it was the PostgreSQL leader and no other alive
 * member has taken over yet (departing it now would not wait for the
 * failover to finish). From the ring's service and role rumors.
 */
export function postgresDepartRefusal(ring: Pick<Memberlist, 'members' | 'rumors'>, target: string): string | undefined {
  const states = new Map(ring.members().map((m) => [m.id, m.state]));
  const runsPostgres = new Set<string>();
  for (const r of ring.rumors(RUMOR_SERVICE)) {
    const key = parseServiceRumorKey(r.key);
    if (key?.service === 'postgresql' && HOLDS_DATA.has(states.get(key.member) ?? 'departed')) runsPostgres.add(key.member);
  }
  if (!runsPostgres.has(target)) return undefined;
  const othersAlive = [...runsPostgres].filter((m) => m !== target && states.get(m) === 'alive');
  if (othersAlive.length === 0) {
    return `it is the last PostgreSQL member (no other alive member runs PostgreSQL): its data directory holds the only copy of the database. Start it again, or join a member that clones it first`;
  }
  const leaders = new Set<string>();
  for (const r of ring.rumors(RUMOR_ROLE)) {
    const key = parseServiceRumorKey(r.key);
    if (key?.service !== 'postgresql') continue;
    if (decodeRoleRumor(r.payload)?.role === 'leader') leaders.add(key.member);
  }
  if (leaders.has(target) && !othersAlive.some((m) => leaders.has(m))) {
    return 'it was the PostgreSQL leader and no other member has taken over yet; wait for the failover (hasup status shows the new leader), then depart it';
  }
  return undefined;
}
