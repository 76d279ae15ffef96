import { Packet, type Member, type PacketInit, type Rumor } from './codec.js';
import { stateFromWire, stateToWire, type MemberRecord, type MemberStateName } from './member-state.js';
import { hasup } from '../gen/proto.js';

/** Conversions between member records and their wire form, and piggyback sizes. */

export type MemberRumorInit = hasup.gossip.IMemberRumor;

/** A member as a rumor claims it to be. */
export interface MemberClaim {
  id: string;
  addr: string;
  port: number;
  incarnation: number;
  state: MemberStateName;
  meta: Uint8Array;
}

const NO_META = new Uint8Array(0);

export function claimFromWire(m: Member): MemberClaim {
  return {
    id: m.id ?? '',
    addr: m.addr ?? '',
    port: m.port ?? 0,
    incarnation: Number(m.incarnation ?? 0),
    state: stateFromWire(m.state),
    meta: m.meta ?? NO_META,
  };
}

/**
 * The wire form of a record. Meta only matters while a member is alive, so
 * suspect/dead/left rumors leave it out (they must stay small); push-pull
 * state carries it always.
 */
export function memberToWire(r: MemberRecord, withMeta: boolean): Member {
  const out: Member = { id: r.id, addr: r.addr, port: r.port, incarnation: r.incarnation, state: stateToWire(r.state) };
  if (withMeta && r.meta.length > 0) out.meta = r.meta;
  return out;
}

export function memberRumor(r: MemberRecord, fromId: string): MemberRumorInit {
  const msg: MemberRumorInit = { member: memberToWire(r, r.state === 'alive') };
  // Only suspicions need their source (Lifeguard counts distinct ones).
  if (r.state === 'suspect' && fromId) msg.fromId = fromId;
  return msg;
}

/** Bytes a member rumor adds to a Packet (field tag, length and body). */
export function memberRumorSize(msg: MemberRumorInit): number {
  return Packet.encode({ members: [msg] }).finish().length;
}

/** Bytes a store rumor adds to a Packet. */
export function rumorSize(r: Rumor): number {
  return Packet.encode({ rumors: [r] }).finish().length;
}

/** Bytes of a packet before piggybacking. */
export function packetSize(p: PacketInit): number {
  return Packet.encode(p).finish().length;
}
