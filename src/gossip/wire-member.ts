import type { Member, PacketInit } from './codec.js';
import { Packet } from './codec.js';
import { stateFromWire, stateToWire, type MemberRecord, type MemberStateName } from './member-state.js';
import type { StoredRumor } from './rumor-store.js';
import type { hasup } from './wire-types.js';

/**
 * Conversions between member records and their wire form, and the exact
 * number of bytes each piggybacked rumor adds to a Packet. Sizes are computed
 * arithmetically (protobuf's rules for the fields we use) because the queue
 * needs them for every rumor it holds, and encoding each one just to measure
 * it is a large share of a 1000-member simulation.
 */

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

/**
 * What a queued member rumor says, fixed when it was queued: the record
 * supplies id/address/meta, which only change together with a new rumor.
 */
export interface MemberRumorEntry {
  record: MemberRecord;
  incarnation: number;
  state: MemberStateName;
  fromId: string;
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
  return wireMember(r, r.incarnation, r.state, withMeta);
}

function wireMember(r: MemberRecord, incarnation: number, state: MemberStateName, withMeta: boolean): Member {
  const out: Member = { id: r.id, addr: r.addr, port: r.port, incarnation, state: stateToWire(state) };
  if (withMeta && r.meta.length > 0) out.meta = r.meta;
  return out;
}

/** A member rumor as it stands now. Only suspicions carry their source (Lifeguard counts distinct ones). */
export function memberRumorEntry(r: MemberRecord, fromId: string): MemberRumorEntry {
  return { record: r, incarnation: r.incarnation, state: r.state, fromId: r.state === 'suspect' ? fromId : '' };
}

export function memberRumorToWire(e: MemberRumorEntry): MemberRumorInit {
  const msg: MemberRumorInit = { member: wireMember(e.record, e.incarnation, e.state, e.state === 'alive') };
  if (e.fromId) msg.fromId = e.fromId;
  return msg;
}

/** Bytes a member rumor adds to a Packet (field tag, length and body). */
export function memberRumorSize(e: MemberRumorEntry): number {
  const r = e.record;
  let member = stringField(r.id) + stringField(r.addr) + varintField(r.port) + varintField(e.incarnation) + varintField(stateToWire(e.state));
  if (e.state === 'alive' && r.meta.length > 0) member += bytesField(r.meta.length);
  const rumor = bytesField(member) + stringField(e.fromId);
  return bytesField(rumor);
}

/** Bytes a store rumor adds to a Packet. */
export function rumorSize(r: StoredRumor): number {
  const body =
    stringField(r.kind) + stringField(r.key) + varintField(r.version) + (r.payload.length > 0 ? bytesField(r.payload.length) : 0) + stringField(r.originId);
  return bytesField(body);
}

/** Bytes of a packet before piggybacking. */
export function packetSize(p: PacketInit): number {
  return Packet.encode(p).finish().length;
}

/** One-byte tag + value, omitted when 0 (proto3 default). */
function varintField(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

function stringField(s: string): number {
  if (s.length === 0) return 0;
  return bytesField(Buffer.byteLength(s, 'utf8'));
}

/** One-byte tag + length + body (fields 1..15 have one-byte tags). */
function bytesField(length: number): number {
  return 1 + varintSize(length) + length;
}

export function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}
