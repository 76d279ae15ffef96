import type { TlsClientOptions } from '../http-json.js';
import { EtcdClient, type EtcdMember } from './client.js';

/**
 * What is left of the second path to etcd's membership calls: the names
 * test/cluster/etcd-formation.test.ts imports, over the one client
 * (client.ts). Nothing in src uses this file; it goes once that test imports
 * EtcdClient and EtcdMember from client.ts.
 */
export type EtcdMemberInfo = EtcdMember;

/** The members as the first of `urls` that answers knows them (a hedged read, `timeoutMs` in all); `tls` for https:// URLs. */
export function listMembers(urls: string[], timeoutMs = 5000, tls?: TlsClientOptions): Promise<EtcdMember[]> {
  return new EtcdClient({ endpoints: () => urls, timeoutMs, keepAlive: false, tls: () => tls }).memberList();
}
