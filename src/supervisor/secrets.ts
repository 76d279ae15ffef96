import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { Keyring, RING_KEY_BYTES } from '../gossip/index.js';

/**
 * The cluster's shared secrets, in one JSON file of mode 0600 that every
 * member holds. They never appear in logs, rumors or API answers.
 *
 * `hasup cluster create` writes every field; files written before it existed
 * (by `hasup run` on a member's first start) lack cluster_id, cluster_name
 * and ring_key, and still load: such a member takes its ring key from
 * --ring-key / member.ring_key.
 */
export interface ClusterSecrets {
  /** Random id of the cluster (16 hex digits): a state dir formed for one cluster refuses another's secrets. */
  cluster_id?: string;
  /** The operator's name for the cluster (not secret; kept here so one file describes the cluster). */
  cluster_name?: string;
  /** The ring key (AES-256, base64): one file is then enough to join. A ring-key file given to `hasup run` wins over it. */
  ring_key?: string;
  /** How many members run etcd voting members (3 or 5), chosen at create: `cluster join` writes it into each node's hasup.toml. */
  etcd_voters?: number;
  api_token: string;
  /**
   * The read-only token: the console's viewer login, and GET requests with it
   * as bearer token. Files written before it existed lack it (then only the
   * operator token, api_token, logs in).
   */
  viewer_token?: string;
  postgresql: { superuser_password: string; replication_password: string };
  /**
   * The pgBackRest repository passphrase (used when the PostgreSQL service's
   * backup.cipher is true). The same on every member, since they share the
   * repository; files written before it existed lack it.
   */
  backup?: { repo_cipher_pass: string };
  /**
   * A standby cluster's primary (HOST:PORT, its HAProxy write port), chosen
   * at create (not secret; kept here so `cluster join` writes it into every
   * node's hasup.toml). Its PostgreSQL passwords and backup passphrase are
   * then the primary cluster's: its database is a copy of that one.
   */
  standby_of?: string;
  /** With standby_of: the primary cluster's CA certificates (PEM, public), which its servers' certificates must come from; taken from its secrets at create. */
  standby_of_ca?: string;
  /**
   * A warm spare kept current from a copy of the primary cluster's
   * pgBackRest repository (its path on these nodes, read only) and when it
   * re-bases on the newest backup there (cron, UTC): chosen at create, so
   * `cluster join` writes them into every node's hasup.toml. Not secret.
   */
  standby_of_repo?: string;
  restore_schedule?: string;
  /**
   * The cluster CA (docs/tls.md): its PEM certificate and PKCS#8 key. Every
   * member issues its own certificate from it when it is created or joins,
   * or at `hasup run` when its certificate is missing; the key never leaves
   * this file. Files written before TLS lack it: such a cluster runs in
   * clear text until `hasup cert init-ca` adds one. `trusted`: CA
   * certificates (no keys) still trusted beside it while the cluster moves
   * to a new CA (`hasup cert rotate --new-ca` until `--drop-old-ca`).
   */
  tls?: { ca_cert: string; ca_key: string; trusted?: string[] };
  /**
   * Passwords of hasup's own Elasticsearch users (file realm, written by the
   * Elasticsearch driver when [service.elasticsearch] security is on; see
   * docs/elasticsearch.md, "Security"). Files written before them lack
   * this: each password is then derived from api_token and cluster_id
   * (plugins/elasticsearch/users.ts), the same on every member, with
   * nothing to add by hand.
   */
  elasticsearch?: { admin_password: string; shipper_password: string; reader_password: string };
}

const token = () => randomBytes(24).toString('base64url');

export const DEFAULT_CLUSTER_NAME = 'hasup';

/**
 * Fresh secrets for a new cluster. `ringKey: false` leaves the ring key out
 * (for a member whose ring key lives in its own ring-key file).
 */
export function generateSecrets(opts: { name?: string; ringKey?: boolean; etcdVoters?: number } = {}): ClusterSecrets {
  return {
    cluster_id: randomBytes(8).toString('hex'),
    cluster_name: opts.name ?? DEFAULT_CLUSTER_NAME,
    ...(opts.ringKey === false ? {} : { ring_key: Keyring.generateKey().toString('base64') }),
    ...(opts.etcdVoters === undefined ? {} : { etcd_voters: opts.etcdVoters }),
    api_token: token(),
    viewer_token: token(),
    postgresql: { superuser_password: token(), replication_password: token() },
    // 48 random bytes, as pgBackRest's documentation suggests; base64url has no character its config format treats specially.
    backup: { repo_cipher_pass: randomBytes(48).toString('base64url') },
    elasticsearch: { admin_password: token(), shipper_password: token(), reader_password: token() },
  };
}

export function writeSecretsFile(file: string, secrets: ClusterSecrets, opts: { force?: boolean } = {}): void {
  if (existsSync(file) && !opts.force) throw new Error(`${file} already exists; refusing to overwrite the cluster secrets`);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function loadSecretsFile(file: string): ClusterSecrets {
  let text: string;
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) throw new Error(`${file} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${file}`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`cluster secrets file ${file} does not exist`);
    throw err;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON`);
  }
  return checkSecrets(data, file);
}

/** Checks the shape of a parsed secrets file; errors name the field, never its value. */
export function checkSecrets(data: unknown, file: string): ClusterSecrets {
  const s = data as Partial<ClusterSecrets>;
  if (typeof s !== 'object' || s === null) throw new Error(`${file} does not hold a JSON object`);
  if (typeof s.api_token !== 'string' || typeof s.postgresql?.superuser_password !== 'string' || typeof s.postgresql?.replication_password !== 'string') {
    throw new Error(`${file} lacks api_token or postgresql.superuser_password / replication_password`);
  }
  if (s.cluster_id !== undefined && (typeof s.cluster_id !== 'string' || !/^[0-9a-f]{16}$/.test(s.cluster_id))) {
    throw new Error(`${file}: cluster_id must be 16 hex digits`);
  }
  if (s.viewer_token !== undefined && (typeof s.viewer_token !== 'string' || s.viewer_token.length < 16 || s.viewer_token === s.api_token)) {
    throw new Error(`${file}: viewer_token must be a string of at least 16 characters, other than api_token`);
  }
  if (s.cluster_name !== undefined && typeof s.cluster_name !== 'string') throw new Error(`${file}: cluster_name must be a string`);
  if (s.ring_key !== undefined) ringKeyBytes(s.ring_key, file);
  if (s.etcd_voters !== undefined && s.etcd_voters !== 3 && s.etcd_voters !== 5) throw new Error(`${file}: etcd_voters must be 3 or 5`);
  if (s.standby_of !== undefined && (typeof s.standby_of !== 'string' || !/^\S+:\d{1,5}$/.test(s.standby_of))) throw new Error(`${file}: standby_of must be HOST:PORT`);
  if (s.standby_of_ca !== undefined && (typeof s.standby_of_ca !== 'string' || !s.standby_of_ca.includes('-----BEGIN CERTIFICATE-----'))) throw new Error(`${file}: standby_of_ca must be PEM certificates`);
  if (s.standby_of_repo !== undefined && (typeof s.standby_of_repo !== 'string' || !s.standby_of_repo.startsWith('/'))) throw new Error(`${file}: standby_of_repo must be an absolute path`);
  if (s.restore_schedule !== undefined && typeof s.restore_schedule !== 'string') throw new Error(`${file}: restore_schedule must be a string`);
  if (s.backup !== undefined) {
    const pass = (s.backup as { repo_cipher_pass?: unknown } | null)?.repo_cipher_pass;
    if (typeof pass !== 'string' || pass.length < 16 || /[\n\r\0]/.test(pass)) {
      throw new Error(`${file}: backup.repo_cipher_pass must be a string of at least 16 characters on one line`);
    }
  }
  if (s.elasticsearch !== undefined) {
    const es = (s.elasticsearch ?? {}) as Record<string, unknown>;
    for (const field of ['admin_password', 'shipper_password', 'reader_password']) {
      const v = es[field];
      if (typeof v !== 'string' || v.length < 16 || /[\n\r\0]/.test(v)) throw new Error(`${file}: elasticsearch.${field} must be a string of at least 16 characters on one line`);
    }
  }
  if (s.tls !== undefined) {
    const t = s.tls as { ca_cert?: unknown; ca_key?: unknown } | null;
    if (typeof t?.ca_cert !== 'string' || !t.ca_cert.includes('-----BEGIN CERTIFICATE-----') || typeof t.ca_key !== 'string' || !t.ca_key.includes('-----BEGIN PRIVATE KEY-----')) {
      throw new Error(`${file}: tls must hold ca_cert (a PEM certificate) and ca_key (a PEM PKCS#8 private key)`);
    }
    const trusted = (t as { trusted?: unknown }).trusted;
    if (trusted !== undefined && (!Array.isArray(trusted) || !trusted.every((c) => typeof c === 'string' && c.includes('-----BEGIN CERTIFICATE-----')))) {
      throw new Error(`${file}: tls.trusted must be a list of PEM CA certificates`);
    }
  }
  return s as ClusterSecrets;
}

function ringKeyBytes(value: unknown, file: string): Buffer {
  const key = typeof value === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, 'base64') : undefined;
  if (!key || key.length !== RING_KEY_BYTES) throw new Error(`${file}: ring_key must be a base64-encoded ${RING_KEY_BYTES}-byte key`);
  return key;
}

/**
 * The ring keyring held by a secrets file. Throws a message an operator can
 * act on when the file predates `hasup cluster create` and holds none.
 */
export function keyringFromSecrets(secrets: ClusterSecrets, file: string): Keyring {
  if (secrets.ring_key === undefined) {
    throw new Error(
      `no ring key: ${file} holds none (it predates \`hasup cluster create\`); pass --ring-key FILE or set member.ring_key in hasup.toml (create one with \`hasup ring-key generate FILE\`)`,
    );
  }
  return new Keyring(ringKeyBytes(secrets.ring_key, file));
}

/** Loads the secrets file, creating it on a member's first start when asked to. */
export function loadOrCreateSecrets(file: string, create: boolean): ClusterSecrets {
  // A member that makes its own secrets has its ring key in a ring-key file: no second, unused key.
  if (!existsSync(file) && create) writeSecretsFile(file, generateSecrets({ ringKey: false }));
  return loadSecretsFile(file);
}
