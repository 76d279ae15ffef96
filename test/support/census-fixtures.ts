import type { MemberView } from '../../src/gossip/memberlist.js';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import { RUMOR_SERVICE } from '../../src/supervisor/rumors/service.js';

/** A ring member as the census sees it (gossip port 9638). */
export function member(id: string, addr: string, state: MemberView['state']): MemberView {
  return { id, addr, port: 9638, incarnation: 1, state, meta: new Uint8Array(), since: 0 };
}

/** A member's service rumor for SERVICE.default carrying `payload` (state, health, ports). */
export function rumor(memberId: string, service: string, payload: object): StoredRumor {
  return { kind: RUMOR_SERVICE, key: `${memberId}/${service}.default`, version: 1, payload: Buffer.from(JSON.stringify(payload)), originId: memberId };
}
