import { formatHostPort } from '../../gossip/index.js';
import type { DriverContext } from '../../supervisor/driver.js';
import { etcdScheme } from './tls.js';

/**
 * Where this member's etcd listens and how its cluster is described, from
 * the merged config and the member's address. The same address rules as
 * plans/etcd/config/etcd.yml.hbs: listen_address, or the advertised IP.
 */
/** One entry of etcd's --initial-cluster (the cluster's members are client.ts's EtcdMember). */
export interface InitialMember {
  /** etcd member name: the hasup member id. */
  name: string;
  peerUrl: string;
}

function listenHost(cfg: DriverContext['cfg'], ip: string): string {
  const configured = typeof cfg.listen_address === 'string' ? cfg.listen_address.trim() : '';
  return configured === '' ? ip : configured;
}

/** A host clients on this member can use; a wildcard listen address is reached on loopback. */
function reachableHost(cfg: DriverContext['cfg'], ip: string): string {
  const host = listenHost(cfg, ip);
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/** `tls`: the member's etcd serves TLS (etcd.yml.hbs with svc.tls). */
export function peerUrl(cfg: DriverContext['cfg'], ip: string, tls = false): string {
  return `${etcdScheme(tls)}://${formatHostPort(listenHost(cfg, ip), Number(cfg.peer_port))}`;
}

export function clientUrl(cfg: DriverContext['cfg'], ip: string, tls = false): string {
  return `${etcdScheme(tls)}://${formatHostPort(reachableHost(cfg, ip), Number(cfg.client_port))}`;
}

/** etcd's --initial-cluster: name=peerUrl pairs, sorted so every member renders the same string. */
export function initialCluster(members: InitialMember[]): string {
  return [...members]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((m) => `${m.name}=${m.peerUrl}`)
    .join(',');
}

/**
 * The token keeps a new cluster's members from talking to another cluster
 * that happens to reuse the same addresses. It must be the same on every
 * founding member, so it derives from one id they share: the cluster id of
 * the secrets file (or, for a one-member etcd of its own, the member id).
 */
export function clusterToken(id: string): string {
  return `hasup-${id}`;
}
