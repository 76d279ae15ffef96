import { chown, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServiceUser } from '../../supervisor/driver.js';
import { transportAddress, type ElasticsearchNode } from './settings.js';

/**
 * unicast_hosts.txt: the seed hosts of Elasticsearch's file-based provider
 * (`discovery.seed_providers: file`), in the node's config dir. Elasticsearch
 * reads it again at every discovery round, so a member that joins or leaves
 * the census reaches every node without a restart. hasup writes it whole
 * (beside, then rename): Elasticsearch never reads half a list.
 */
export const SEED_HOSTS_FILE = 'unicast_hosts.txt';

/** The file's text: a comment, then one transport address per line, ordered by node name so equal lists give equal files. */
export function seedHostsContent(nodes: ElasticsearchNode[]): string {
  const lines = [...nodes].sort((a, b) => a.name.localeCompare(b.name)).map((n) => `${transportAddress(n)}\n`);
  return `# Written by hasup from the gossip census; rewritten when members come and go.\n${lines.join('')}`;
}

/** Replaces the file when its text differs. Returns whether it was written. */
export async function writeSeedHostsFile(configDir: string, content: string, user?: ServiceUser): Promise<boolean> {
  const file = join(configDir, SEED_HOSTS_FILE);
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === content) return false;
  const tmp = `${file}.tmp`;
  await writeFile(tmp, content, { mode: 0o640 });
  if (user) await chown(tmp, user.uid, user.gid);
  await rename(tmp, file);
  return true;
}
