import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * postgresql.auto.conf, where ALTER SYSTEM (a peer's fence over SQL) and
 * pgBackRest's restore (the recovery settings) write. hasup removes what
 * those left once it no longer applies, and keeps every other line as it
 * is. Rewriting the file in place keeps its owner (the service user).
 */
export async function dropAutoConfSettings(dataDir: string, names: readonly string[], when?: (text: string) => boolean): Promise<boolean> {
  const file = join(dataDir, 'postgresql.auto.conf');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return false;
  }
  if (when && !when(text)) return false;
  const setting = new RegExp(`^\\s*(${names.join('|')})\\s*=`);
  const lines = text.split('\n');
  const kept = lines.filter((line) => !setting.test(line));
  if (kept.length === lines.length) return false;
  await writeFile(file, kept.join('\n'));
  return true;
}
