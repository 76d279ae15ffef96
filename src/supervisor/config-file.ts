import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
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

export const NODE_CONFIG_SCHEMA: Schema = {
  member: {
    type: 'table',
    doc: 'this member of the ring',
    fields: {
      advertise: { type: 'string', doc: 'address other members reach this one at (IP[:PORT], gossip port 9638)', check: ipOrIpPort },
      bind: { type: 'string', doc: 'address the gossip sockets bind to (default: the advertised address)', check: ipOrIpPort },
      peers: { type: 'string[]', doc: 'members to join through (IP[:PORT])', default: [], check: ipOrIpPort },
      state_dir: { type: 'string', doc: 'state directory: member id, rendered configs, data, logs', default: DEFAULT_STATE_DIR },
      ring_key: { type: 'string', doc: 'ring key file (hasup ring-key generate)' },
      secrets: { type: 'string', doc: 'cluster secrets file, mode 0600 (default: STATE_DIR/secrets.json, created on first start)' },
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
};

export interface NodeConfig {
  member: { advertise?: string; bind?: string; peers: string[]; state_dir: string; ring_key?: string; secrets?: string };
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
  services: { load: string[]; plan_path: string[]; group: string };
  service?: Record<string, TomlTable>;
  log: { level: string };
  /** The file it came from, for error messages; undefined when built from flags alone. */
  file?: string;
}

export function parseNodeConfig(text: string, file: string): NodeConfig {
  const data = validate(parseTomlFile(text, file), NODE_CONFIG_SCHEMA, text, file) as unknown as NodeConfig;
  if ((data.http.tls_cert === undefined) !== (data.http.tls_key === undefined)) throw new ConfigError(file, undefined, '"http.tls_cert" and "http.tls_key" go together: set both or neither');
  if (data.http.tls_client_ca !== undefined && data.http.tls_cert === undefined) throw new ConfigError(file, undefined, '"http.tls_client_ca" needs "http.tls_cert" and "http.tls_key"');
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
