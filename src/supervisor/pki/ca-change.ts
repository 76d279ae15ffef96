import { createPrivateKey, type X509Certificate } from 'node:crypto';
import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import type { ClusterSecrets } from '../secrets.js';
import { certificateInfo, parseCertificates, readCertificateFile, TlsFileError } from './inspect.js';
import { keyMatches, verifyChain } from './verify.js';
import type { MemberTlsFiles } from './member-files.js';

/**
 * Moving a cluster to a new CA without downtime (docs/tls.md, "A new CA"),
 * in three steps, each one member at a time:
 *
 *   1. `hasup cert rotate --new-ca`: every member's secrets file takes the
 *      new CA (certificate and key) with the old CA's certificate under
 *      `tls.trusted`, and its CA bundle (STATE_DIR/tls/ca.pem and every
 *      service's copy) holds both; members keep their certificates of the
 *      old CA. Services that read the bundle only at start (etcd) restart,
 *      the member answering once they are healthy again.
 *   2. `hasup cert rotate`: each member a certificate from the new CA (the
 *      secrets file's CA), trusted everywhere since step 1.
 *   3. `hasup cert rotate --drop-old-ca`: `tls.trusted` emptied and the
 *      bundle left with the new CA only, once every member's certificate
 *      chains to it (each member refuses otherwise).
 *
 * Every step sends POST /tls/ca to each member with the CA section its
 * secrets file must hold (a CaChange); a member answers the same for the
 * same request, so an interrupted step is run again. The new CA's key is
 * sent only in step 1 and only over the API (TLS verified against the
 * cluster CA, with the cluster's token), to members that already hold the
 * old CA's key in the same file: never in a rumor or a log.
 */
export interface CaChange {
  /** The cluster CA members issue from (PEM). */
  ca_cert: string;
  /** Its key: required when ca_cert is not the member's CA already, refused to be anything but ca_cert's. */
  ca_key?: string;
  /** CA certificates trusted beside it (the old CA during a change; [] once it is dropped). */
  trusted: string[];
  /** Check only: answer whether the member would take it, change nothing. */
  check_only?: boolean;
}

/** What a member does for a CaChange. */
export interface CaChangePlan {
  /** The secrets file's new tls section. */
  secretsTls: NonNullable<ClusterSecrets['tls']>;
  /** The new CA bundle (PEM): ca_cert first, then the trusted ones. */
  bundle: string;
  /** The bundle differs from the one in place (services must be told). */
  bundleChanged: boolean;
  /** The secrets file's tls section differs from the one in place. */
  secretsChanged: boolean;
  /** Fingerprints (SHA-256) of the bundle's CAs, in order. */
  fingerprints: string[];
}

/** The bundle a member trusts for its secrets: the cluster CA, then any CA still trusted beside it. */
export function clusterBundle(tls: NonNullable<ClusterSecrets['tls']>): string {
  return [tls.ca_cert, ...(tls.trusted ?? [])].map((pem) => `${pem.trim()}\n`).join('');
}

/** A request body from the API as a CaChange, or a clear error (400) naming the field. */
export function parseCaChange(body: unknown): CaChange {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.ca_cert !== 'string') throw new CaChangeRefused('ca_cert must be a PEM CA certificate', 400);
  if (b.ca_key !== undefined && typeof b.ca_key !== 'string') throw new CaChangeRefused('ca_key must be a PEM private key', 400);
  if (!Array.isArray(b.trusted) || !b.trusted.every((c) => typeof c === 'string')) throw new CaChangeRefused('trusted must be a list of PEM CA certificates', 400);
  if (b.check_only !== undefined && typeof b.check_only !== 'boolean') throw new CaChangeRefused('check_only must be true or false', 400);
  return { ca_cert: b.ca_cert, ...(b.ca_key !== undefined ? { ca_key: b.ca_key as string } : {}), trusted: b.trusted as string[], ...(b.check_only ? { check_only: true } : {}) };
}

/** A CA change this member will not make; nothing was changed. */
export class CaChangeRefused extends Error {
  constructor(
    message: string,
    readonly statusCode = 409,
  ) {
    super(message);
  }
}

function oneCa(pem: string, what: string, now: Date): X509Certificate {
  let certs: X509Certificate[];
  try {
    certs = parseCertificates(pem, what);
  } catch (err) {
    throw new CaChangeRefused((err as Error).message, 400);
  }
  if (certs.length !== 1) throw new CaChangeRefused(`${what} must hold one certificate, it holds ${certs.length}`, 400);
  const cert = certs[0]!;
  if (!cert.ca) throw new CaChangeRefused(`${what} is not a CA certificate`, 400);
  if (now > new Date(cert.validTo)) throw new CaChangeRefused(`${what} expired on ${new Date(cert.validTo).toISOString()}`, 400);
  return cert;
}

/**
 * What a member would do for `change`, checked against what it holds: its
 * secrets' CA section and its certificate, which must chain to the new
 * bundle (a member is never left distrusting its own certificate: the old
 * CA is dropped only once the member has one of the new CA). Throws a
 * CaChangeRefused (409 for the member's state, 400 for a bad request).
 */
export function planCaChange(o: { current: NonNullable<ClusterSecrets['tls']>; change: CaChange; memberFiles: MemberTlsFiles; now: Date }): CaChangePlan {
  const { current, change, now } = o;
  const ca = oneCa(change.ca_cert, 'ca_cert', now);
  const trusted = change.trusted.map((pem, i) => oneCa(pem, `trusted[${i}]`, now));
  const [currentCa] = parseCertificates(current.ca_cert, 'the secrets file (tls.ca_cert)');
  const sameCa = currentCa!.fingerprint256 === ca.fingerprint256;
  let caKey = current.ca_key;
  if (!sameCa) {
    if (change.ca_key === undefined) throw new CaChangeRefused(`ca_cert is not this member's cluster CA (${certificateInfo(currentCa!).fingerprint}): its key (ca_key) must come with it`, 400);
    let key;
    try {
      key = createPrivateKey(change.ca_key);
    } catch {
      throw new CaChangeRefused('ca_key is corrupt (cannot be parsed)', 400);
    }
    if (!keyMatches(ca, key)) throw new CaChangeRefused('ca_key does not belong to ca_cert', 400);
    caKey = change.ca_key;
  } else if (change.ca_key !== undefined && change.ca_key.trim() !== current.ca_key.trim()) {
    throw new CaChangeRefused("ca_key is not the key of this member's cluster CA", 400);
  }
  const bundleCerts = [ca, ...trusted.filter((t, i) => t.fingerprint256 !== ca.fingerprint256 && trusted.findIndex((u) => u.fingerprint256 === t.fingerprint256) === i)];
  const secretsTls = { ca_cert: ca.toString(), ca_key: caKey, ...(bundleCerts.length > 1 ? { trusted: bundleCerts.slice(1).map((c) => c.toString()) } : {}) };
  const bundle = clusterBundle(secretsTls);
  // The member's own certificate must stay trusted by the bundle it is given.
  const [leaf, ...intermediates] = readCertificateFile(o.memberFiles.cert);
  try {
    verifyChain(leaf!, { intermediates, trusted: bundleCerts, file: o.memberFiles.cert, trustedFile: 'the new CA bundle', now });
  } catch (err) {
    const why = err instanceof TlsFileError ? err.message : String(err);
    throw new CaChangeRefused(`this member's certificate would not be trusted by the new CA bundle (${why}); give it a certificate of the new CA first (hasup cert rotate)`);
  }
  const inPlace = readCertificateFile(o.memberFiles.ca, 'CA bundle').map((c) => c.fingerprint256);
  const fingerprints = bundleCerts.map((c) => c.fingerprint256);
  const sameTrusted = (current.trusted ?? []).map((p) => p.trim()).join('\n') === (secretsTls.trusted ?? []).map((p) => p.trim()).join('\n');
  return {
    secretsTls,
    bundle,
    bundleChanged: inPlace.join() !== fingerprints.join(),
    secretsChanged: !sameCa || !sameTrusted || caKey.trim() !== current.ca_key.trim(),
    fingerprints,
  };
}

/** What applying a CA change needs from the member (the daemon gives the real ones; unit tests give fakes). */
export interface CaChangeDeps {
  /** Writes the secrets file with this tls section (atomically, mode 0600), and keeps it as the member's secrets. */
  writeSecrets(tls: NonNullable<ClusterSecrets['tls']>): void;
  /** Writes STATE_DIR/tls/ca.pem (the member's certificate and key stay). */
  writeBundle(pem: string): void;
  /** Every service's copy brought up to date and reloaded where it can (PostgreSQL, Elasticsearch); hasup's own clients take the bundle up. */
  refreshServices(): Promise<void>;
  /** Names of the running services that read the bundle only at start (etcd). */
  restartNeeded(): string[];
  /** Restarts one service and resolves once it is healthy again (or throws saying why not). */
  restartAndWait(service: string): Promise<void>;
  log(fields: Record<string, unknown>, message: string): void;
}

export interface CaChangeResult {
  changed: boolean;
  /** The bundle's CAs (SHA-256 fingerprints). */
  trusted: string[];
  /** Services restarted, one after the other, each healthy again before the next. */
  restarted: string[];
}

/**
 * Applies a planned change: the secrets file first (a member that restarts
 * midway issues from the new CA and trusts both), then the bundle, then the
 * services: reloaded, and those that read the bundle only at start
 * restarted one at a time. Nothing is restarted when the bundle is already
 * the one asked for (the request ran before).
 */
export async function applyCaChange(plan: CaChangePlan, deps: CaChangeDeps): Promise<CaChangeResult> {
  if (plan.secretsChanged) deps.writeSecrets(plan.secretsTls);
  if (!plan.bundleChanged) {
    if (plan.secretsChanged) deps.log({ event: 'tls_ca', trusted: plan.fingerprints }, 'TLS: the secrets file takes the cluster CA; the CA bundle already holds it');
    return { changed: plan.secretsChanged, trusted: plan.fingerprints, restarted: [] };
  }
  deps.writeBundle(plan.bundle);
  deps.log({ event: 'tls_ca', trusted: plan.fingerprints }, `TLS: the CA bundle now holds ${plan.fingerprints.length} CA${plan.fingerprints.length === 1 ? '' : 's'} (${plan.fingerprints.join(', ')})`);
  await deps.refreshServices();
  const restarted: string[] = [];
  for (const service of deps.restartNeeded()) {
    deps.log({ event: 'tls_ca_restart', service }, `TLS: restarting ${service}, which reads its CA bundle only at start`);
    await deps.restartAndWait(service);
    restarted.push(service);
  }
  return { changed: true, trusted: plan.fingerprints, restarted };
}

/** Writes a CA bundle file atomically (a temporary file renamed over it), mode 0644 as the member's bundle is. */
export function writeCaBundle(file: string, pem: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, pem, { mode: 0o644 });
  chmodSync(tmp, 0o644);
  renameSync(tmp, file);
}

/** The services of a member that read their CA bundle only when they start (etcd 3.4 builds its client and peer CA pools once). */
export const RESTART_FOR_NEW_BUNDLE = ['etcd'];

export interface ServiceProbe {
  state: string;
  pid?: number;
  health: string;
  healthSince: number;
  healthMessage?: string;
}

/**
 * Resolves once a restarted service runs again and its health check has
 * said ok since `since` (ms), polling every `everyMs`; throws after
 * `timeoutMs` with its last state. The clock and the sleep are injected.
 */
export async function waitHealthySince(probe: () => ServiceProbe | undefined, o: { name: string; since: number; timeoutMs: number; everyMs?: number; now?: () => number; sleep?: (ms: number) => Promise<void> }): Promise<void> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + o.timeoutMs;
  for (;;) {
    const s = probe();
    if (s && s.state === 'running' && s.health === 'ok' && s.healthSince >= o.since) return;
    if (now() >= deadline) {
      throw new Error(`${o.name} was restarted to take up the new CA bundle but is not healthy after ${Math.round(o.timeoutMs / 1000)} s (${s ? `${s.state}, ${s.health}${s.healthMessage ? `: ${s.healthMessage}` : ''}` : 'gone'})`);
    }
    await sleep(o.everyMs ?? 500);
  }
}
