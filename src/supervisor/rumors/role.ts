import type { LeadershipState, PostgresRole, ReplicationState } from '../leadership.js';
import { jsonObjectPayload, memberServiceKey } from './key.js';

/**
 * The role rumor: what every member learns about another's place in its
 * PostgreSQL service group (key MEMBER/SVC.GROUP, beside that member's
 * service rumor for the same group). Published on every change of the
 * member's Leadership (gossipRoles in leadership.ts); the census (/census,
 * /cluster, `hasup status`) and /events read it.
 */
export const RUMOR_ROLE = 'role';

export interface RoleRumor {
  role: PostgresRole;
  writable: boolean;
  lease_in_doubt: boolean;
  lag_bytes: number | null;
  /** Absent from members that predate it. */
  lag_seconds?: number | null;
  replication_state: ReplicationState | null;
  timeline: number | null;
  since: number;
  /** LeadershipState.syncRole; absent from members that predate synchronous mode. */
  sync_role?: 'sync' | 'async' | null;
  /** LeadershipState.syncDegraded. */
  sync_degraded?: boolean;
  /** LeadershipState.roguePrimaries. */
  rogue_primaries?: { member: string; since: number; action: string | null }[];
}

/** What a member says about itself, from its Leadership's state. */
export function roleRumor(s: LeadershipState): RoleRumor {
  return {
    role: s.role,
    writable: s.writable,
    lease_in_doubt: s.leaseInDoubt,
    lag_bytes: s.replication?.lagBytes ?? null,
    lag_seconds: s.replication?.lagS ?? null,
    replication_state: s.replication?.state ?? null,
    timeline: s.timeline,
    since: s.since,
    sync_role: s.syncRole ?? null,
    sync_degraded: s.syncDegraded ?? false,
    rogue_primaries: s.roguePrimaries ?? [],
  };
}

export function encodeRoleRumor(s: LeadershipState): Uint8Array {
  return Buffer.from(JSON.stringify(roleRumor(s)));
}

/**
 * The rumor for this member's state in its service group, ready for the
 * ring; undefined when it runs none. `version` comes from nextRumorVersion.
 */
export function roleRumorFor(memberId: string, s: LeadershipState, version: number): { kind: string; key: string; version: number; payload: Uint8Array } | undefined {
  if (!s.serviceGroup) return undefined;
  return { kind: RUMOR_ROLE, key: memberServiceKey(memberId, s.serviceGroup), version, payload: encodeRoleRumor(s) };
}

/**
 * A peer's role, or undefined when the payload is not a JSON object naming
 * a role. Other fields are passed on as they came (a newer member may send
 * more). Never throws.
 */
export function decodeRoleRumor(payload: Uint8Array): RoleRumor | undefined {
  const data = jsonObjectPayload(payload);
  if (!data || typeof data.role !== 'string') return undefined;
  return data as unknown as RoleRumor;
}
