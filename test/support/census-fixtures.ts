import type { MemberView } from '../../src/gossip/memberlist.js';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import type { LeadershipState } from '../../src/supervisor/leadership.js';
import { RUMOR_ROLE, type RoleRumor } from '../../src/supervisor/rumors/role.js';
import { RUMOR_SERVICE } from '../../src/supervisor/rumors/service.js';

/** A ring member as the census sees it (gossip port 9638). */
export function member(id: string, addr: string, state: MemberView['state']): MemberView {
  return { id, addr, port: 9638, incarnation: 1, state, meta: new Uint8Array(), since: 0 };
}

/** A member's service rumor for SERVICE.default carrying `payload` (state, health, ports). */
export function rumor(memberId: string, service: string, payload: object): StoredRumor {
  return { kind: RUMOR_SERVICE, key: `${memberId}/${service}.default`, version: 1, payload: Buffer.from(JSON.stringify(payload)), originId: memberId };
}

/** A member's role rumor for postgresql.default (role, replication state, lag, sync role). */
export function roleRumorOf(memberId: string, payload: Partial<RoleRumor> & Pick<RoleRumor, 'role'>): StoredRumor {
  const full: RoleRumor = { writable: payload.role === 'leader', lease_in_doubt: false, lag_bytes: null, replication_state: null, timeline: 1, since: 0, ...payload };
  return { kind: RUMOR_ROLE, key: `${memberId}/postgresql.default`, version: 1, payload: Buffer.from(JSON.stringify(full)), originId: memberId };
}

/** A LeadershipState for a member that runs no PostgreSQL (its census then holds only the rumors). */
export const NO_LEADERSHIP: LeadershipState = { serviceGroup: null, role: 'unknown', holdsLease: false, leaseInDoubt: false, writable: false, replication: null, timeline: null, leader: null, since: 0, reason: 'fixture' };
