import { hasup } from './wire-types.js';
import { open, seal, type OpenFailure } from './envelope.js';
import type { Keyring } from './keyring.js';

export const Packet = hasup.gossip.Packet;
export type Packet = hasup.gossip.Packet;
export type PacketInit = hasup.gossip.IPacket;
export type Member = hasup.gossip.IMember;
export type Rumor = hasup.gossip.IRumor;
export const MemberState = hasup.gossip.MemberState;
export type MemberState = hasup.gossip.MemberState;

export type DropReason = OpenFailure | 'oversized' | 'malformed';
export type DecodeResult = { ok: true; packet: Packet } | { ok: false; reason: DropReason };

/** Counts of dropped packets by reason, for metrics. */
export type DropCounters = Record<DropReason, number>;

export function emptyDropCounters(): DropCounters {
  return { truncated: 0, oversized: 0, bad_version: 0, auth_failed: 0, malformed: 0 };
}

/**
 * Turns packets into sealed bytes and back. `decode` never throws: anything
 * that is not an authentic, well-formed packet comes back as a drop reason and
 * is counted, so the receive path cannot be crashed by what arrives.
 */
export class WireCodec {
  readonly dropped: DropCounters = emptyDropCounters();

  constructor(private readonly keyring: Keyring) {}

  encode(packet: PacketInit): Buffer {
    return seal(this.keyring, Packet.encode(packet).finish());
  }

  decode(data: Uint8Array, maxBytes: number): DecodeResult {
    const result = this.decodeUncounted(data, maxBytes);
    if (!result.ok) this.dropped[result.reason]++;
    return result;
  }

  private decodeUncounted(data: Uint8Array, maxBytes: number): DecodeResult {
    if (data.length > maxBytes) return { ok: false, reason: 'oversized' };
    const opened = open(this.keyring, data);
    if (!opened.ok) return opened;
    let packet: Packet;
    try {
      packet = Packet.decode(opened.plaintext);
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    return validatePacket(packet) ? { ok: true, packet } : { ok: false, reason: 'malformed' };
  }
}

const MAX_ID_LENGTH = 64;
const MAX_ADDR_LENGTH = 64;
const MAX_META_BYTES = 512;
const MAX_KIND_LENGTH = 32;
const MAX_KEY_LENGTH = 256;

/**
 * Semantic checks beyond protobuf's own: an authentic packet from a buggy or
 * newer peer must still not put nonsense into the member table.
 */
export function validatePacket(p: Packet): boolean {
  const members = [...p.members.map((r) => r.member), p.pingReq?.target, ...(p.pushPull?.members ?? [])];
  for (const m of members) {
    if (m === undefined) continue;
    if (m === null || !validMember(m)) return false;
  }
  for (const r of p.members) if (!validId(r.fromId, true)) return false;
  if (p.pushPull && !validId(p.pushPull.fromId, true)) return false;
  if (p.ack && !Number.isSafeInteger(p.ack.clockMs ?? 0)) return false;
  for (const r of [...p.rumors, ...(p.pushPull?.rumors ?? [])]) if (!validRumor(r)) return false;
  if (p.ping && (!validId(p.ping.targetId, true) || !validId(p.ping.fromId, true))) return false;
  if (p.ack && !validId(p.ack.fromId, true)) return false;
  if (p.nack && !validId(p.nack.fromId, true)) return false;
  if (p.pingReq && (!validId(p.pingReq.fromId, false) || !validPort(p.pingReq.fromPort) || (p.pingReq.fromAddr ?? '').length > MAX_ADDR_LENGTH)) {
    return false;
  }
  return true;
}

function validId(id: string | null | undefined, allowEmpty: boolean): boolean {
  id ??= '';
  return id.length <= MAX_ID_LENGTH && (allowEmpty || id.length > 0);
}

function validPort(port: number | null | undefined): boolean {
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port <= 65535;
}

function validMember(m: hasup.gossip.IMember): boolean {
  return (
    validId(m.id, false) &&
    (m.addr ?? '').length > 0 &&
    (m.addr ?? '').length <= MAX_ADDR_LENGTH &&
    validPort(m.port) &&
    Number.isSafeInteger(m.incarnation ?? 0) &&
    (m.state ?? 0) in MemberState &&
    (m.meta?.length ?? 0) <= MAX_META_BYTES
  );
}

function validRumor(r: hasup.gossip.IRumor): boolean {
  const kind = r.kind ?? '';
  const key = r.key ?? '';
  return (
    kind.length > 0 &&
    kind.length <= MAX_KIND_LENGTH &&
    key.length > 0 &&
    key.length <= MAX_KEY_LENGTH &&
    Number.isSafeInteger(r.version ?? 0) &&
    validId(r.originId, true)
  );
}
