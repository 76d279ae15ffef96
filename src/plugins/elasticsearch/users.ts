import { hkdfSync, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { chown, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServiceUser } from '../../supervisor/driver.js';
import type { ClusterSecrets } from '../../supervisor/secrets.js';
import { INDEX_PREFIX, STREAMS } from '../shipper/indices.js';

/**
 * hasup's Elasticsearch users, in Elasticsearch's file realm
 * (docs/elasticsearch.md, "Security"). Every node reads them from files in
 * its own config directory, which its driver writes before every start:
 * no node waits on another (or on a cluster with a master) to have them,
 * and Elasticsearch re-reads the files when they change.
 *
 *   users        NAME:HASH, one line per user ({PBKDF2} hashes, below)
 *   users_roles  ROLE:NAME,NAME
 *   roles.yml    the two roles hasup defines (the admin has the built-in superuser)
 */

/** Which of hasup's users a client speaks as. */
export type EsUser = 'admin' | 'shipper' | 'reader';

export const ES_USERNAMES: Readonly<Record<EsUser, string>> = {
  /** Health, cluster membership, snapshots, index templates and expiry, node stats. */
  admin: 'hasup_admin',
  /** The shipper's bulk requests: documents into the log and metric indices, nothing else. */
  shipper: 'hasup_shipper',
  /** The console's charts and log search. */
  reader: 'hasup_reader',
};

/** The indices the shipper writes and the console reads: hasup-logs-*, hasup-metrics-*. */
export const SHIPPED_INDEX_PATTERNS: readonly string[] = STREAMS.map((s) => `${INDEX_PREFIX}${s}-*`);

export const SHIPPER_ROLE = 'hasup_shipper';
export const READER_ROLE = 'hasup_reader';

/**
 * The passwords of the three users: from the secrets file's `elasticsearch`
 * table when it has one (`hasup cluster create` writes it), otherwise
 * derived from the cluster's api_token (HKDF-SHA256, salted with the
 * cluster id), so a secrets file from before works unchanged and every
 * member that holds it derives the same ones. Nothing derived is ever
 * written back or logged.
 */
export function esPasswords(secrets: ClusterSecrets): Record<EsUser, string> {
  const stored = secrets.elasticsearch;
  if (stored) return { admin: stored.admin_password, shipper: stored.shipper_password, reader: stored.reader_password };
  const derive = (user: EsUser) => Buffer.from(hkdfSync('sha256', secrets.api_token, secrets.cluster_id ?? '', `hasup elasticsearch ${user} password`, 24)).toString('base64url');
  return { admin: derive('admin'), shipper: derive('shipper'), reader: derive('reader') };
}

/** Whether the passwords come from the secrets file (`stored`) or are derived from its api_token. */
export function esPasswordSource(secrets: ClusterSecrets): 'stored' | 'derived' {
  return secrets.elasticsearch ? 'stored' : 'derived';
}

/**
 * Elasticsearch's PBKDF2 password hash, which its file realm reads besides
 * bcrypt: `{PBKDF2}COST$SALT$KEY`, PBKDF2-HMAC-SHA512 over the UTF-8
 * password, a 32-byte random salt and a 32-byte key, both base64. Made with
 * node:crypto (no bcrypt library needed); checked against the real server
 * in test/integration/elasticsearch-security.test.ts.
 */
const PBKDF2_PREFIX = '{PBKDF2}';
const PBKDF2_COST = 10_000;
const PBKDF2_KEY_BYTES = 32;

export function pbkdf2Hash(password: string, salt: Buffer = randomBytes(32), cost = PBKDF2_COST): string {
  const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, cost, PBKDF2_KEY_BYTES, 'sha512');
  return `${PBKDF2_PREFIX}${cost}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Does `hash` (one of pbkdf2Hash's) hold `password`? False for anything else. */
export function pbkdf2Matches(password: string, hash: string): boolean {
  const m = /^\{PBKDF2\}(\d{1,7})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(hash);
  if (!m) return false;
  const cost = Number(m[1]);
  const key = Buffer.from(m[3]!, 'base64');
  if (cost < 1 || key.length === 0) return false;
  const again = pbkdf2Sync(Buffer.from(password, 'utf8'), Buffer.from(m[2]!, 'base64'), cost, key.length, 'sha512');
  return timingSafeEqual(again, key);
}

/** roles.yml: the shipper may only add documents (and create the daily index), the reader only read; neither has any cluster privilege. */
export function rolesYml(): string {
  const names = JSON.stringify(SHIPPED_INDEX_PATTERNS);
  return [
    '# Written by hasup (plugins/elasticsearch/users.ts) before every start; edits are replaced.',
    `${SHIPPER_ROLE}:`,
    '  cluster: []',
    '  indices:',
    `    - names: ${names}`,
    // create_doc: the bulk "create" action only (no overwrite, no delete); create_index and
    // auto_configure: the day's index appears on its first document, with dynamic mappings.
    '      privileges: ["create_doc", "create_index", "auto_configure"]',
    `${READER_ROLE}:`,
    '  cluster: []',
    '  indices:',
    `    - names: ${names}`,
    '      privileges: ["read", "view_index_metadata"]',
    '',
  ].join('\n');
}

/** users_roles: the admin is a superuser (Elasticsearch's built-in role), the others have hasup's roles. */
export function usersRolesFile(): string {
  return [`superuser:${ES_USERNAMES.admin}`, `${SHIPPER_ROLE}:${ES_USERNAMES.shipper}`, `${READER_ROLE}:${ES_USERNAMES.reader}`, ''].join('\n');
}

/**
 * users: NAME:HASH per user. A hash in `current` (the file as it is) that
 * still holds the user's password is kept, so a restart does not rewrite
 * the file (and Elasticsearch does not reload it) for nothing.
 */
export function usersFile(passwords: Record<EsUser, string>, current = ''): string {
  const existing = new Map<string, string>();
  for (const line of current.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) existing.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  const lines = (Object.keys(ES_USERNAMES) as EsUser[]).map((user) => {
    const name = ES_USERNAMES[user];
    const old = existing.get(name);
    return `${name}:${old !== undefined && pbkdf2Matches(passwords[user], old) ? old : pbkdf2Hash(passwords[user])}`;
  });
  return `${lines.join('\n')}\n`;
}

/**
 * Writes users, users_roles and roles.yml into the node's config directory
 * (each beside, then renamed: Elasticsearch never reads half a file), owned
 * by the service user, mode 0640 (600 for users). Returns the names of the
 * files that changed.
 */
export async function writeSecurityFiles(configDir: string, secrets: ClusterSecrets, owner?: ServiceUser): Promise<string[]> {
  const usersPath = join(configDir, 'users');
  const current = await readFile(usersPath, 'utf8').catch(() => '');
  const files: Array<[string, string, number]> = [
    ['roles.yml', rolesYml(), 0o640],
    ['users_roles', usersRolesFile(), 0o640],
    ['users', usersFile(esPasswords(secrets), current), 0o600],
  ];
  const changed: string[] = [];
  for (const [name, content, mode] of files) {
    const target = join(configDir, name);
    if ((await readFile(target, 'utf8').catch(() => undefined)) === content) continue;
    const tmp = `${target}.tmp`;
    await writeFile(tmp, content, { mode });
    if (owner) await chown(tmp, owner.uid, owner.gid);
    await rename(tmp, target);
    changed.push(name);
  }
  return changed;
}
