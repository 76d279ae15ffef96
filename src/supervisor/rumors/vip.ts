import { jsonObjectPayload, memberServiceKey } from './key.js';

/**
 * The VIP rumor: what a member's leader VIP is doing (key
 * MEMBER/SVC.GROUP of the PostgreSQL group it follows). Published by the
 * daemon on every change of its LeaderVip's report (src/plugins/vip);
 * /cluster and `hasup status` say from them who holds the VIP, and warn
 * when a member refused it or more than one says it holds it.
 */
export const RUMOR_VIP = 'vip';

export interface VipReport {
  /** ADDRESS/PREFIX as configured. */
  address: string;
  interface: string;
  /**
   * starting; held: on this member's interface; standby: not here (not the
   * leader, or its writes stopped); refused: this host cannot carry it
   * (bad interface, network or permission: never touched); failing: adding
   * or removing it failed, retried; stopped.
   */
  state: 'starting' | 'held' | 'standby' | 'refused' | 'failing' | 'stopped';
  reason: string;
  /** ms since the epoch of the last change of state. */
  since: number;
}

const STATES: ReadonlySet<string> = new Set(['starting', 'held', 'standby', 'refused', 'failing', 'stopped']);

export function vipRumorFor(memberId: string, serviceGroup: string, r: VipReport, version: number): { kind: string; key: string; version: number; payload: Uint8Array } {
  return { kind: RUMOR_VIP, key: memberServiceKey(memberId, serviceGroup), version, payload: Buffer.from(JSON.stringify({ ...r, reason: r.reason.slice(0, 300) })) };
}

/** A peer's report, or undefined when malformed. Never throws. */
export function decodeVipReport(payload: Uint8Array): VipReport | undefined {
  const d = jsonObjectPayload(payload) as Partial<VipReport> | undefined;
  if (!d || typeof d.address !== 'string' || typeof d.interface !== 'string' || typeof d.state !== 'string' || !STATES.has(d.state) || typeof d.since !== 'number') return undefined;
  return { address: d.address, interface: d.interface, state: d.state, reason: typeof d.reason === 'string' ? d.reason : '', since: d.since };
}
