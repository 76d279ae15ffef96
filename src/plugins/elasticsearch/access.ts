import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { ClientOptions } from '@elastic/elasticsearch';
import type { ClusterSecrets } from '../../supervisor/secrets.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';
import type { RequestExtras } from '../http-json.js';
import { ES_USERNAMES, esPasswords, type EsUser } from './users.js';

export type { EsUser };

/**
 * How hasup reaches Elasticsearch: the one place every Elasticsearch client
 * in hasup takes its scheme, CA and user from (the driver's health check,
 * cluster membership, snapshots, the shipper's bulk requests and index
 * administration, the metric collector, the console's charts and logs).
 *
 * With [service.elasticsearch] security = false (the default): plain HTTP,
 * no user. With security = true: HTTPS verified against the cluster CA (the
 * node's certificate must name the address connected to), and one of
 * hasup's file-realm users (users.ts) by HTTP Basic authentication. Never a
 * fallback from one to the other.
 */
export interface EsAccess {
  scheme: 'http' | 'https';
  /** The CA bundle (PEM) the server's certificate must chain to; https only. */
  ca?: string;
  /** The user hasup speaks as; https only. */
  auth?: { username: string; password: string };
}

/** Where an EsAccess comes from. */
export interface EsAccessSource {
  /** The Elasticsearch config in force here (plan defaults and layers); undefined: the defaults (security off). */
  cfg: TomlTable | undefined;
  secrets: ClusterSecrets;
  /** The CA bundle file: the member's (STATE_DIR/tls/ca.pem) or the service's copy; undefined when TLS is off here. */
  caFile: string | undefined;
}

/**
 * [service.elasticsearch] security: true, false, or "auto" (on where the
 * member's TLS is on, `tlsOn`: a cluster with a CA secures its
 * Elasticsearch, a member running in clear text does not). Anything else
 * is refused at render time.
 */
export function securityOn(cfg: TomlTable | undefined, tlsOn = false): boolean {
  const v = cfg?.security;
  if (v === undefined || v === false) return false;
  if (v === true) return true;
  if (v === 'auto') return tlsOn;
  throw new Error(`elasticsearch: security must be true, false or "auto", got ${JSON.stringify(v)}`);
}

/** The scheme of every Elasticsearch URL, by the config in force and whether the member's TLS is on. */
export function esScheme(cfg: TomlTable | undefined, tlsOn = false): 'http' | 'https' {
  return securityOn(cfg, tlsOn) ? 'https' : 'http';
}

/** Why security cannot be on here, or undefined. */
export function securityProblem(cfg: TomlTable | undefined, caFile: string | undefined): string | undefined {
  if (!securityOn(cfg, caFile !== undefined) || caFile !== undefined) return undefined;
  return 'elasticsearch: security = true needs TLS, and TLS is off on this member (no cluster CA, or [tls] enabled = false; see docs/tls.md): Elasticsearch would require a user on every request but could only serve them in clear text';
}

const caCache = new Map<string, { mtimeMs: number; size: number; pem: string }>();

/** The CA bundle's PEM, read again only when the file changed (a new CA is trusted at once). */
function readCa(file: string): string {
  const st = statSync(file);
  const hit = caCache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.pem;
  const pem = readFileSync(file, 'utf8');
  caCache.set(file, { mtimeMs: st.mtimeMs, size: st.size, pem });
  return pem;
}

/** How to reach Elasticsearch as `user`. Throws (a message without any secret) when security is on but this member has no CA. */
export function esAccess(source: EsAccessSource, user: EsUser): EsAccess {
  if (!securityOn(source.cfg, source.caFile !== undefined)) return { scheme: 'http' };
  const problem = securityProblem(source.cfg, source.caFile);
  if (problem) throw new Error(problem);
  return { scheme: 'https', ca: readCa(source.caFile!), auth: { username: ES_USERNAMES[user], password: esPasswords(source.secrets)[user] } };
}

/** The options of the @elastic/elasticsearch client for an access: the CA to verify against and the user. */
export function esClientOptions(access: EsAccess): Pick<ClientOptions, 'tls' | 'auth'> {
  if (access.scheme === 'http') return {};
  return { tls: { ca: access.ca, rejectUnauthorized: true }, ...(access.auth ? { auth: { username: access.auth.username, password: access.auth.password } } : {}) };
}

/** The same for hasup's own JSON requests (http-json.ts). */
export function esRequestExtras(access: EsAccess | undefined): RequestExtras {
  if (!access || access.scheme === 'http') return {};
  const headers = access.auth ? { authorization: `Basic ${Buffer.from(`${access.auth.username}:${access.auth.password}`).toString('base64')}` } : undefined;
  return { ...(access.ca ? { tls: { ca: access.ca } } : {}), ...(headers ? { headers } : {}) };
}

/** A digest of an access (never its content), so a client made for an older CA or password is replaced. */
export function accessKey(access: EsAccess): string {
  return createHash('sha256').update(`${access.scheme}\0${access.ca ?? ''}\0${access.auth?.username ?? ''}\0${access.auth?.password ?? ''}`).digest('base64url');
}

/**
 * The Elasticsearch config to go by on this member: the service's config in
 * force where it runs, otherwise hasup.toml's [service.elasticsearch] layer
 * over the plan's defaults (a member that only ships into other members'
 * nodes must be told `security = true` too, unless the default says so).
 */
export function elasticsearchConfigHere(loaded: TomlTable | undefined, userLayer: TomlTable | undefined, defaults: TomlTable | undefined = undefined): TomlTable | undefined {
  if (loaded) return loaded;
  if (!userLayer && !defaults) return undefined;
  return { ...(defaults ?? {}), ...(userLayer ?? {}) };
}

/**
 * A member's way to Elasticsearch for the clients the daemon composes (the
 * shipper, the console's routes, snapshots): one object, made once, that
 * reads the config and the CA file at each use.
 */
export class MemberEsAccess {
  constructor(
    private readonly source: {
      /** elasticsearchConfigHere(...) of this member. */
      config: () => TomlTable | undefined;
      secrets: ClusterSecrets;
      /** The member's CA bundle (STATE_DIR/tls/ca.pem); undefined when its TLS is off. */
      caFile: () => string | undefined;
    },
  ) {}

  scheme(): 'http' | 'https' {
    try {
      return esScheme(this.source.config(), this.source.caFile() !== undefined);
    } catch {
      // A refused security value: its render says why; no request goes out in clear text meanwhile.
      return 'https';
    }
  }

  as(user: EsUser): EsAccess {
    return esAccess({ cfg: this.source.config(), secrets: this.source.secrets, caFile: this.source.caFile() }, user);
  }
}
