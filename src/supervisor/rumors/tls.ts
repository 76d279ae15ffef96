import { jsonObjectPayload } from './key.js';

/**
 * The TLS rumor: a member's certificate as public facts (key MEMBER):
 * whether its TLS is on, the issuer, the end of validity and the
 * fingerprint, or why it is off. Published by the daemon at start, after
 * its certificate is in place (docs/tls.md); /cluster shows it per member,
 * and `hasup cert status` warns of a member whose certificate ends within
 * 30 days. Never a key: nothing of the secrets file is in it.
 */
export const RUMOR_TLS = 'tls';

export interface TlsRumor {
  on: boolean;
  /** cluster-ca or operator, when on. */
  source?: string;
  issuer?: string;
  /** ms since the epoch. */
  not_after?: number;
  fingerprint?: string;
  /** Why TLS is off. */
  reason?: string;
}

export function tlsRumorFor(memberId: string, r: TlsRumor, version: number): { kind: string; key: string; version: number; payload: Uint8Array } {
  const fitted = { ...r, ...(r.reason ? { reason: r.reason.slice(0, 300) } : {}), ...(r.issuer ? { issuer: r.issuer.slice(0, 300) } : {}) };
  return { kind: RUMOR_TLS, key: memberId, version, payload: Buffer.from(JSON.stringify(fitted)) };
}

/** A peer's rumor, or undefined when malformed. Never throws. */
export function decodeTlsRumor(payload: Uint8Array): TlsRumor | undefined {
  const d = jsonObjectPayload(payload) as Partial<Record<keyof TlsRumor, unknown>> | undefined;
  if (!d || typeof d.on !== 'boolean') return undefined;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const out: TlsRumor = { on: d.on };
  if (text(d.source)) out.source = text(d.source);
  if (text(d.issuer)) out.issuer = text(d.issuer);
  if (typeof d.not_after === 'number' && Number.isFinite(d.not_after)) out.not_after = d.not_after;
  if (text(d.fingerprint)) out.fingerprint = text(d.fingerprint);
  if (text(d.reason)) out.reason = text(d.reason);
  return out;
}
