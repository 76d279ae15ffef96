import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installRoot } from './install-paths.js';

let cached: string | undefined;

/** This hasup's version (its package.json), read once: what every member tells the others in its service rumors. */
export function hasupVersion(): string {
  if (cached === undefined) {
    try {
      cached = String((JSON.parse(readFileSync(join(installRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
