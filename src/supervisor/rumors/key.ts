/**
 * What the per-member rumor kinds share. The service and role rumors are
 * keyed MEMBER/SVC.GROUP (member ids hold no '/'), so a member's rumor
 * about one service group has one slot on the ring. The ring merges a slot
 * by version (higher wins; ties by payload, then origin: gossip's
 * rumor-store.ts); a member versions its rumors by the wall clock, so the
 * rumors of a restarted member beat the ones it sent before.
 */

export function memberServiceKey(member: string, serviceGroup: string): string {
  return `${member}/${serviceGroup}`;
}

/** MEMBER/REST → { member, serviceGroup: REST }; undefined without a member part. */
export function splitMemberServiceKey(key: string): { member: string; serviceGroup: string } | undefined {
  const slash = key.indexOf('/');
  return slash > 0 ? { member: key.slice(0, slash), serviceGroup: key.slice(slash + 1) } : undefined;
}

/** The version of a member's next rumor in a slot: above the last one, and at least now (ms). */
export function nextRumorVersion(last: number, now: number = Date.now()): number {
  return Math.max(last + 1, now);
}

/** A payload that is a JSON object, or undefined (malformed, or another JSON value): decoders start here and never throw. */
export function jsonObjectPayload(payload: Uint8Array): Record<string, unknown> | undefined {
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return undefined;
  }
  return typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined;
}
