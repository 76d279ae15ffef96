import { parseInterfaceAddress } from '../../supervisor/cidr.js';

/**
 * `hasup gen-frontend-config --vip`: what the frontends need when they
 * reach PostgreSQL through the leader VIP instead of a load balancer (the
 * VIP is on the leader and moves with its lease, docs/vip.md). Only the
 * address matters: there is nothing to check, as the VIP is never on a
 * member that is not the writable leader.
 */
export interface VipFrontendInput {
  /** ADDRESS/PREFIX as configured, or a bare address. */
  vip: string;
  pgPort: number;
  /** Where the VIP came from, for the header. */
  source: string;
}

export function renderVipFrontendConfig(input: VipFrontendInput): string {
  const address = input.vip.includes('/') ? parseInterfaceAddress(input.vip).address : input.vip;
  return [
    `# Frontend settings for the hasup cluster's leader VIP (hasup gen-frontend-config --vip; from ${input.source}).`,
    `# ${address} is on the PostgreSQL leader only and moves with the leader lease: clients connect to it`,
    '# directly, with no load balancer between. After a failover a client reconnects once; a session that',
    '# hangs on the old leader is cut by the TCP keepalives below.',
    '#',
    '# libpq (psql, any driver that takes a connection string); verify-full needs the VIP among every',
    `# member certificate's names ([tls] extra_sans = ["${address}"], docs/tls.md) and the cluster CA (STATE_DIR/tls/ca.pem):`,
    `#   host=${address} port=${input.pgPort} sslmode=verify-full sslrootcert=ca.pem target_session_attrs=read-write connect_timeout=5 keepalives_idle=5 keepalives_interval=2 keepalives_count=3`,
    '#',
    '# Chef Infra Server (chef-server.rb), as with Chef Backend:',
    "postgresql['external'] = true",
    `postgresql['vip'] = '${address}'`,
    `postgresql['port'] = ${input.pgPort}`,
    '',
  ].join('\n');
}
