import type pg from 'pg';
import { scramVerifier, verifierMatches } from './scram.js';

export type RoleSync = 'created' | 'updated' | 'unchanged';

/**
 * Makes `role` a LOGIN REPLICATION role whose password is `password`,
 * creating it or correcting it (a rotated secret, a role altered by hand).
 * Only a SCRAM verifier computed here crosses the wire, never the password.
 * Needs a superuser connection to a primary.
 */
export async function syncReplicationRole(client: pg.Client, role: string, password: string): Promise<RoleSync> {
  const found = await client.query<{ rolreplication: boolean; rolcanlogin: boolean; rolpassword: string | null }>(
    'SELECT rolreplication, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1',
    [role],
  );
  const row = found.rows[0];
  if (row && row.rolreplication && row.rolcanlogin && verifierMatches(row.rolpassword, password)) return 'unchanged';
  const verb = row ? 'ALTER' : 'CREATE';
  await client.query(`${verb} ROLE ${client.escapeIdentifier(role)} WITH LOGIN REPLICATION PASSWORD ${client.escapeLiteral(scramVerifier(password))}`);
  return row ? 'updated' : 'created';
}
