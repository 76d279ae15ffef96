import type pg from 'pg';
import { dropAutoConfSettings } from './auto-conf.js';

/**
 * Fencing another member's PostgreSQL over SQL: a rogue primary (writable
 * while some other member holds the leader lease, its own supervisor and
 * fence gone or stalled) is made unable to acknowledge a commit, as far as
 * PostgreSQL lets a superuser do it from outside:
 *
 *   - synchronous_standby_names names a standby that never exists, so every
 *     commit waits forever for it instead of being acknowledged;
 *   - default_transaction_read_only = on refuses writes in new transactions;
 *   - every client session is ended, so no session keeps old settings.
 *
 * Both settings go to postgresql.auto.conf (ALTER SYSTEM), which wins over
 * hasup's own include files and survives a restart; the member's own
 * supervisor removes them (clearPeerFence) before it starts PostgreSQL
 * again, as a standby.
 */
export const PEER_FENCE_STANDBY = 'hasup_fenced_rogue_primary';

/** What was done, for logs and views; throws when the server turned out not to be a primary after all. */
export async function fenceOverSql(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  if (rows[0]?.r !== false) throw new Error('it is not a primary (any more)');
  await client.query(`ALTER SYSTEM SET synchronous_standby_names = '"${PEER_FENCE_STANDBY}"'`);
  await client.query('ALTER SYSTEM SET default_transaction_read_only = on');
  await client.query('SELECT pg_reload_conf()');
  const ended = await client.query<{ n: string }>("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'");
  return `commits now wait for a standby that never comes, new transactions are read-only, ${ended.rows[0]?.n ?? 0} client sessions ended`;
}

/**
 * Removes a peer's SQL fence from this member's postgresql.auto.conf before
 * PostgreSQL starts (as a standby: only the HA loop makes a primary). Lines
 * of anything else are kept as they are. Returns true when it removed one.
 */
export function clearPeerFence(dataDir: string): Promise<boolean> {
  return dropAutoConfSettings(dataDir, ['synchronous_standby_names', 'default_transaction_read_only'], (text) => text.includes(PEER_FENCE_STANDBY));
}
