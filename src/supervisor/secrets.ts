import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';

/**
 * The cluster's shared secrets, in one JSON file of mode 0600 that every
 * member holds. They never appear in logs, rumors or API answers.
 */
export interface ClusterSecrets {
  api_token: string;
  postgresql: { superuser_password: string; replication_password: string };
}

const token = () => randomBytes(24).toString('base64url');

export function generateSecrets(): ClusterSecrets {
  return { api_token: token(), postgresql: { superuser_password: token(), replication_password: token() } };
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
  const s = data as Partial<ClusterSecrets>;
  if (typeof s.api_token !== 'string' || typeof s.postgresql?.superuser_password !== 'string' || typeof s.postgresql?.replication_password !== 'string') {
    throw new Error(`${file} lacks api_token or postgresql.superuser_password / replication_password`);
  }
  return s as ClusterSecrets;
}

/** Loads the secrets file, creating it on a member's first start when asked to. */
export function loadOrCreateSecrets(file: string, create: boolean): ClusterSecrets {
  if (!existsSync(file) && create) writeSecretsFile(file, generateSecrets());
  return loadSecretsFile(file);
}
