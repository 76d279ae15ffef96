import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { formatHostPort } from '../../gossip/index.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';
import { securityOn } from './access.js';
import { pathRepoValue } from './snapshot-settings.js';

/**
 * The values elasticsearch.yml.hbs writes, checked and encoded here so that
 * no config value can break the YAML: every string goes out as JSON (which
 * YAML reads as it is). A bad value throws, which the supervisor reports as
 * a render failure and keeps the config in force.
 */

/** A master-eligible Elasticsearch node of the cluster, as other nodes reach it. */
export interface ElasticsearchNode {
  /** node.name: the hasup member id. */
  name: string;
  /** IP of the transport layer. */
  host: string;
  transportPort: number;
}

/** vm.max_map_count Elasticsearch's bootstrap check asks for when it may mmap. */
export const MIN_MAX_MAP_COUNT = 262_144;

/** Settings elasticsearch.yml.hbs writes itself; [extra] may not repeat them (YAML would reject the duplicate). */
const MANAGED_SETTINGS = [
  'cluster.name',
  'node.name',
  'network.host',
  'http.port',
  'transport.port',
  'path.data',
  'path.logs',
  'discovery.seed_hosts',
  'discovery.seed_providers',
  'cluster.initial_master_nodes',
  'xpack.security.enabled',
  'node.store.allow_mmap',
  'action.auto_create_index',
  'cluster.routing.allocation.disk.threshold_enabled',
  // From [snapshot] repo_path (snapshot-settings.ts).
  'path.repo',
];
/** Setting prefixes hasup owns as a whole: [service.elasticsearch] security renders them (security.ts, the template). */
const MANAGED_PREFIXES = ['xpack.security.'];

/**
 * Where the node's TLS files are, relative to its config directory
 * (Elasticsearch reads SSL files only from under it): the driver copies
 * the member's certificate, key and CA there before every start.
 */
export const ES_TLS_DIR = 'tls';

export interface SettingsInput {
  cfg: TomlTable;
  memberId: string;
  /** The member's advertised IP. */
  ip: string;
  dataDir: string;
  logsDir: string;
  /** How the node finds the others and whether it bootstraps a cluster. */
  discovery: StaticDiscovery | CensusDiscovery;
  /** /proc/sys/vm/max_map_count, for allow_mmap = "auto"; read from the host when not given. */
  maxMapCount?: number;
  /** The member's TLS is on (the service has a copy of its certificate): security = true needs it. */
  tls?: boolean;
}

/**
 * A fixed node list in elasticsearch.yml: seed hosts, and their names as the
 * initial master nodes until this node has been in a formed cluster. What a
 * member on its own uses (the list is the member alone).
 */
export interface StaticDiscovery {
  kind: 'static';
  /** The cluster's master-eligible nodes, this one included. */
  nodes: ElasticsearchNode[];
  /** True once this node has been part of a formed cluster. */
  formed: boolean;
}

/**
 * Seed hosts from the gossip census, in unicast_hosts.txt (seed-hosts.ts),
 * which Elasticsearch re-reads on its own: the list follows the census
 * without a restart. Whether this node bootstraps is decided elsewhere
 * (bootstrap.ts); null means it only ever joins a cluster it discovers.
 */
export interface CensusDiscovery {
  kind: 'census';
  initialMasterNodes: string[] | null;
}

export function elasticsearchSettings(input: SettingsInput): Record<string, unknown> {
  const { cfg } = input;
  const clusterName = String(cfg.cluster_name);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(clusterName)) throw new Error(`elasticsearch: cluster_name ${JSON.stringify(clusterName)} must be letters, digits, dots, dashes and underscores`);
  port(cfg.http_port, 'http_port');
  port(cfg.transport_port, 'transport_port');
  heap(cfg.heap);
  const host = bindHost(cfg, input.ip);
  const autoCreate = String(cfg.auto_create_index);
  if (autoCreate.trim() === '') throw new Error('elasticsearch: auto_create_index must not be empty (use "true", "false" or a pattern list)');
  const discovery = discoveryValues(input.discovery);
  const security = securityOn(cfg, input.tls === true);
  if (security && !input.tls) {
    throw new Error('elasticsearch: security = true needs TLS, and TLS is off on this member (no cluster CA, or [tls] enabled = false; see docs/tls.md)');
  }
  return {
    es_cluster_name: JSON.stringify(clusterName),
    es_node_name: JSON.stringify(input.memberId),
    es_network_host: JSON.stringify(host),
    es_path_data: JSON.stringify(input.dataDir),
    es_path_logs: JSON.stringify(input.logsDir),
    ...discovery,
    es_allow_mmap: allowMmap(cfg.allow_mmap, input.maxMapCount),
    es_auto_create_index: JSON.stringify(autoCreate === 'true' || autoCreate === 'false' ? autoCreate === 'true' : autoCreate),
    es_extra: extraSettings(cfg.extra),
    es_path_repo: pathRepoValue(cfg),
    es_security: security,
    es_tls_key: JSON.stringify(`${ES_TLS_DIR}/member.key`),
    es_tls_cert: JSON.stringify(`${ES_TLS_DIR}/member.pem`),
    es_tls_ca: JSON.stringify([`${ES_TLS_DIR}/ca.pem`]),
  };
}

function discoveryValues(discovery: StaticDiscovery | CensusDiscovery): Record<string, unknown> {
  if (discovery.kind === 'census') {
    const masters = discovery.initialMasterNodes;
    if (masters !== null && masters.length === 0) throw new Error('elasticsearch: a bootstrapping node needs at least one initial master node');
    return {
      // An explicit empty list: unset, Elasticsearch would also probe ports 9300-9305 on localhost.
      es_seed_hosts: '[]',
      es_seed_file: true,
      es_bootstrapping: masters !== null,
      es_initial_master_nodes: JSON.stringify(masters ?? []),
    };
  }
  if (discovery.nodes.length === 0) throw new Error('elasticsearch: the cluster needs at least one master-eligible node');
  return {
    es_seed_hosts: JSON.stringify(discovery.nodes.map(transportAddress)),
    es_seed_file: false,
    es_bootstrapping: !discovery.formed,
    es_initial_master_nodes: JSON.stringify(discovery.nodes.map((n) => n.name)),
  };
}

/** The address Elasticsearch binds and publishes: network_host, else the member's IP. */
export function bindHost(cfg: TomlTable, memberIp: string): string {
  const configured = String(cfg.network_host ?? '');
  const host = configured === '' ? memberIp : configured;
  if (isIP(host) === 0) throw new Error(`elasticsearch: network_host must be a literal IP address, got ${JSON.stringify(host)}`);
  return host;
}

/** HOST:PORT as discovery.seed_hosts wants it (IPv6 in brackets). */
export function transportAddress(node: ElasticsearchNode): string {
  return formatHostPort(node.host, node.transportPort);
}

function port(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) throw new Error(`elasticsearch: ${name} must be a port number (1-65535), got ${JSON.stringify(value)}`);
  return value;
}

function heap(value: unknown): void {
  if (typeof value !== 'string' || !/^[1-9][0-9]*[kKmMgG]$/.test(value)) throw new Error(`elasticsearch: heap must be a JVM size like "512m" or "2g", got ${JSON.stringify(value)}`);
}

function allowMmap(value: unknown, maxMapCount: number | undefined): boolean {
  if (value === 'true' || value === true) return true;
  if (value === 'false' || value === false) return false;
  if (value !== 'auto') throw new Error(`elasticsearch: allow_mmap must be "auto", "true" or "false", got ${JSON.stringify(value)}`);
  return (maxMapCount ?? hostMaxMapCount()) >= MIN_MAX_MAP_COUNT;
}

function hostMaxMapCount(): number {
  try {
    return Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8').trim());
  } catch {
    return 0;
  }
}

/** [extra] flattened to dotted keys, each value JSON-encoded. */
function extraSettings(extra: unknown): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  const walk = (value: unknown, path: string[]): void => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)) {
      for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
      return;
    }
    const key = path.join('.');
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(key)) throw new Error(`elasticsearch: extra setting name ${JSON.stringify(key)} is not an Elasticsearch setting name`);
    if (MANAGED_SETTINGS.includes(key) || MANAGED_PREFIXES.some((p) => key.startsWith(p))) throw new Error(`elasticsearch: extra.${key} is written by hasup; use the plan's own setting instead`);
    out.push({ key, value: JSON.stringify(value instanceof Date ? value.toISOString() : value) });
  };
  if (extra !== undefined) walk(extra, []);
  return out;
}
