import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseInterfaceAddress } from './cidr.js';
import type { TlsSettings } from './pki/provision.js';
import { DEFAULT_STATE_DIR } from './state-dir.js';
import { ConfigError, documentSchema, parseTomlFile, validate, type Schema, type TomlTable } from './toml-schema.js';

/**
 * hasup.toml: the node's own configuration. Every key is declared here with
 * its documentation (docs/config.md is generated from this schema by
 * `hasup config reference`); unknown keys and wrong types are errors naming
 * the file and line.
 */
const ipOrIpPort = (v: string) => {
  const host = v.startsWith('[') ? v.slice(1, v.indexOf(']')) : v.split(':')[0]!;
  return isIP(host) ? undefined : `"${v}" must be a literal IP address, optionally with :PORT`;
};

/** A name a certificate may carry: a literal IP address or a DNS name. */
const ipOrDnsName = (v: string) =>
  isIP(v) || /^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(v) ? undefined : `"${v}" must be an IP address or a DNS name`;

const vipAddress = (v: string) => {
  try {
    parseInterfaceAddress(v);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
};

/** A Linux interface name (IFNAMSIZ: 15 characters at most, no slash or space). */
const interfaceName = (v: string) => (/^[^\s/:]{1,15}$/.test(v) ? undefined : `"${v}" is not a network interface name (1-15 characters, no space, '/' or ':')`);

const httpUrl = (v: string) => (/^https?:\/\/[^/\s]+\/?$/.test(v) ? undefined : `"${v}" must be an http(s)://HOST:PORT URL`);

/** An etcd client URL: http(s)://IP:PORT, no user info, no path (addresses only: nothing looked up). */
const etcdUrl = (v: string) => {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return `"${v}" is not a URL (http://IP:2379)`;
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !isIP(host) || u.username || u.password || (u.pathname !== '/' && u.pathname !== '')) {
    return `"${v}" must be http://IP:PORT (a literal address, no user, no path)`;
  }
  return undefined;
};

export const NODE_CONFIG_SCHEMA: Schema = {
  member: {
    type: 'table',
    doc: 'this member of the ring',
    fields: {
      advertise: { type: 'string', doc: 'address other members reach this one at (IP[:PORT], gossip port 9638)', check: ipOrIpPort },
      bind: { type: 'string', doc: 'address the gossip sockets bind to (default: the advertised address)', check: ipOrIpPort },
      peers: { type: 'string[]', doc: 'members to join through (IP[:PORT])', default: [], check: ipOrIpPort },
      state_dir: { type: 'string', doc: 'state directory: member id, rendered configs, data, logs', default: DEFAULT_STATE_DIR },
      ring_key: { type: 'string', doc: 'ring key file (hasup ring-key generate); default: the ring key in the secrets file' },
      secrets: { type: 'string', doc: 'cluster secrets file, mode 0600, from hasup cluster create (default: STATE_DIR/secrets.json)' },
    },
  },
  cluster: {
    type: 'table',
    doc: 'cluster formation (for members prepared by hasup cluster create / join)',
    fields: {
      etcd: { type: 'boolean', doc: 'form etcd from the gossip census: the first etcd_voters members run etcd voting members, later ones are clients and run none', default: true },
      etcd_voters: { type: 'integer', doc: 'how many members run an etcd voting member: 3 or 5', default: 3, min: 3, max: 5 },
      etcd_endpoints: {
        type: 'string[]',
        doc: 'client URLs of an etcd the cluster uses for PostgreSQL leader election instead of forming its own (http://IP:2379); when set, this member takes part in the election',
        default: [],
        check: etcdUrl,
      },
      vip: {
        type: 'string',
        doc: 'leader VIP, ADDRESS/PREFIX (e.g. 10.0.0.100/24): the member holding the PostgreSQL leader lease adds it to vip_interface and announces it; it moves with the lease (docs/vip.md)',
        check: vipAddress,
      },
      vip_interface: { type: 'string', doc: 'the interface the leader VIP goes on (needs vip); the VIP must lie in one of its networks', check: interfaceName },
    },
  },
  gossip: {
    type: 'table',
    doc: 'gossip timings',
    fields: {
      profile: { type: 'string', doc: 'timing profile', enum: ['lan', 'wan', 'local'], default: 'lan' },
      overrides: { type: 'any-table', doc: 'individual timing values overriding the profile (e.g. probeIntervalMs = 500)' },
    },
  },
  http: {
    type: 'table',
    doc: 'HTTP API',
    fields: {
      enabled: { type: 'boolean', doc: 'serve the HTTP API', default: true },
      listen: { type: 'string', doc: 'IP:PORT to listen on (default: the advertised address, port 9631)', check: ipOrIpPort },
      tls_cert: { type: 'string', doc: 'PEM certificate file: serve the API over HTTPS (needs tls_key)' },
      tls_key: { type: 'string', doc: 'PEM private key file of tls_cert' },
      tls_client_ca: { type: 'string', doc: 'PEM CA file: clients must present a certificate it signed (mutual TLS; needs tls_cert)' },
      checks_need_token: { type: 'boolean', doc: 'require the bearer token on the load-balancer checks (/primary, /replica, /health, ...) too', default: false },
      metrics_need_token: { type: 'boolean', doc: 'require the bearer token on /metrics too', default: false },
    },
  },
  tls: {
    type: 'table',
    doc: 'TLS on every link (docs/tls.md): by default each member has a certificate from the cluster CA in the secrets file, in STATE_DIR/tls',
    fields: {
      enabled: { type: 'boolean', doc: 'encrypt and authenticate PostgreSQL, etcd and the HTTP API with TLS; false runs them in clear text (hasup status says so)', default: true },
      ca_file: { type: 'string', doc: 'your own CA bundle (PEM) instead of the cluster CA; needs cert_file and key_file' },
      cert_file: { type: 'string', doc: 'your own certificate for this member (PEM, optionally followed by intermediates): serverAuth and clientAuth, naming its advertised address' },
      key_file: { type: 'string', doc: 'the private key of cert_file (PEM, unencrypted, not readable by others)' },
      member_days: { type: 'integer', doc: 'validity of a member certificate issued from the cluster CA, days (issued anew at start within 30 days of its end)', default: 365, min: 1, max: 36500 },
      extra_sans: { type: 'string[]', doc: 'more names for this member\'s certificate (IP addresses or DNS names), e.g. the load balancer address clients check with sslmode=verify-full', default: [], check: ipOrDnsName },
    },
  },
  services: {
    type: 'table',
    doc: 'the services this member runs',
    fields: {
      load: { type: 'string[]', doc: 'plans loaded at first start (later changed with hasup svc load/unload, remembered in the state dir)', default: [] },
      plan_path: { type: 'string[]', doc: 'extra folders searched for plans before the shipped plans/', default: [] },
      group: { type: 'string', doc: 'service group name, as in postgresql.default', default: 'default' },
    },
  },
  service: {
    type: 'any-table',
    doc: 'per-service user config layer: [service.postgresql] work_mem = "8MB" (keys checked against the plan\'s default.toml); how Elasticsearch is launched is [service.elasticsearch] launcher and home (docs/elasticsearch.md)',
  },
  log: {
    type: 'table',
    doc: 'the supervisor\'s own log',
    fields: {
      level: { type: 'string', doc: 'log level', enum: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info' },
    },
  },
  shipping: {
    type: 'table',
    doc: 'logs and metrics shipped to Elasticsearch (docs/shipping.md); on by default when this member runs Elasticsearch or elasticsearch URLs are listed',
    fields: {
      enabled: { type: 'boolean', doc: 'true or false to decide; unset: on when this member runs Elasticsearch or `elasticsearch` lists nodes' },
      elasticsearch: { type: 'string[]', doc: 'Elasticsearch URLs (http://IP:PORT) to fail over to, after the local node when this member runs one', default: [], check: httpUrl },
      spool_max_mb: { type: 'integer', doc: 'disk spool cap (STATE_DIR/spool/events); when full the oldest events are dropped and counted', default: 256, min: 1 },
      batch_max_events: { type: 'integer', doc: 'events per bulk request at most', default: 5000, min: 1, max: 100000 },
      batch_max_bytes: { type: 'integer', doc: 'uncompressed bytes per bulk request, about', default: 5242880, min: 1024, max: 104857600 },
      flush_interval_ms: { type: 'integer', doc: 'a smaller batch is sent once its oldest event waited this long', default: 1000, min: 0, max: 60000 },
      retry_max_s: { type: 'integer', doc: 'longest pause between retries of a failed bulk request (randomized exponential backoff up to this)', default: 30, min: 1, max: 600 },
      retention_days: { type: 'integer', doc: 'daily indices (hasup-logs-*, hasup-metrics-*) older than this many days are deleted', default: 7, min: 1 },
      metrics_interval_s: { type: 'integer', doc: 'seconds between metric samples (host, processes, services)', default: 10, min: 1, max: 3600 },
      host_name: { type: 'string', doc: 'host.name of every event (default: the OS host name)' },
      journal: { type: 'boolean', doc: 'also ship the systemd journal (journalctl -o json -f) where journald runs', default: true },
    },
  },
};

export interface NodeConfig {
  member: { advertise?: string; bind?: string; peers: string[]; state_dir: string; ring_key?: string; secrets?: string };
  cluster: { etcd: boolean; etcd_voters: number; etcd_endpoints: string[]; vip?: string; vip_interface?: string };
  gossip: { profile: 'lan' | 'wan' | 'local'; overrides?: TomlTable };
  http: {
    enabled: boolean;
    listen?: string;
    tls_cert?: string;
    tls_key?: string;
    tls_client_ca?: string;
    checks_need_token: boolean;
    metrics_need_token: boolean;
  };
  tls: { enabled: boolean; ca_file?: string; cert_file?: string; key_file?: string; member_days: number; extra_sans: string[] };
  services: { load: string[]; plan_path: string[]; group: string };
  service?: Record<string, TomlTable>;
  log: { level: string };
  shipping: {
    enabled?: boolean;
    elasticsearch: string[];
    spool_max_mb: number;
    batch_max_events: number;
    batch_max_bytes: number;
    flush_interval_ms: number;
    retry_max_s: number;
    retention_days: number;
    metrics_interval_s: number;
    host_name?: string;
    journal: boolean;
  };
  /** The file it came from, for error messages; undefined when built from flags alone. */
  file?: string;
}

export function parseNodeConfig(text: string, file: string): NodeConfig {
  const data = validate(parseTomlFile(text, file), NODE_CONFIG_SCHEMA, text, file) as unknown as NodeConfig;
  if ((data.http.tls_cert === undefined) !== (data.http.tls_key === undefined)) throw new ConfigError(file, undefined, '"http.tls_cert" and "http.tls_key" go together: set both or neither');
  if (data.cluster.etcd_voters !== 3 && data.cluster.etcd_voters !== 5) throw new ConfigError(file, undefined, `"cluster.etcd_voters" must be 3 or 5 (an odd number of voters keeps a majority), got ${data.cluster.etcd_voters}`);
  if ((data.cluster.vip === undefined) !== (data.cluster.vip_interface === undefined)) throw new ConfigError(file, undefined, '"cluster.vip" and "cluster.vip_interface" go together: set both or neither');
  if (data.http.tls_client_ca !== undefined && data.http.tls_cert === undefined) throw new ConfigError(file, undefined, '"http.tls_client_ca" needs "http.tls_cert" and "http.tls_key"');
  const own = [data.tls.ca_file, data.tls.cert_file, data.tls.key_file].filter((f) => f !== undefined).length;
  if (own !== 0 && own !== 3) throw new ConfigError(file, undefined, '"tls.ca_file", "tls.cert_file" and "tls.key_file" go together: set all three (your own CA) or none (the cluster CA)');
  for (const [name, layer] of Object.entries(data.service ?? {})) {
    if (typeof layer !== 'object' || layer === null || Array.isArray(layer)) throw new ConfigError(file, undefined, `"service.${name}" must be a table`);
  }
  return { ...data, file };
}

export function loadNodeConfig(file: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseNodeConfig(text, file);
}

/**
 * [tls] as the member's TLS provisioning takes it. The leader VIP
 * ([cluster] vip) is one of the names clients connect to with verify-full
 * (docs/vip.md), so every member certificate carries it too.
 */
export function tlsSettingsOf(config: Pick<NodeConfig, 'tls' | 'cluster'>): TlsSettings {
  const tls = config.tls;
  const operator = tls.ca_file && tls.cert_file && tls.key_file ? { ca: tls.ca_file, cert: tls.cert_file, key: tls.key_file } : undefined;
  const vip = config.cluster.vip === undefined ? [] : [parseInterfaceAddress(config.cluster.vip).address];
  const extraSans = [...new Set([...tls.extra_sans, ...vip])];
  return { enabled: tls.enabled, ...(operator ? { operator } : {}), memberDays: tls.member_days, extraSans };
}

/** A config with every default, for runs configured by flags alone. */
export function defaultNodeConfig(): NodeConfig {
  return parseNodeConfig('', '(defaults)');
}

/** docs/config.md: the reference of every hasup.toml key, generated from the schema. */
export function configReference(): string {
  return [
    '# hasup.toml reference',
    '',
    'Generated by `hasup config reference` from the schema in src/supervisor/config-file.ts.',
    'Unknown keys and wrong types stop `hasup run` with the file, line and reason.',
    'Command-line flags of `hasup run` override these values.',
    '',
    '| key | type | default | meaning |',
    '| --- | --- | --- | --- |',
    ...documentSchema(NODE_CONFIG_SCHEMA),
    '',
  ].join('\n');
}
