import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installRoot } from './install-paths.js';

let cached: string | undefined;

/** This hasup's version (its package.json), read once: what every member tells the others in its service rumors. */
export function hasupVersion(): string {
  cached ??= installedHasupVersion();
  return cached;
}

/** The version of the hasup installed on disk now (its package.json, read anew): a new one may be installed under a running hasup. */
export function installedHasupVersion(): string {
  try {
    return String((JSON.parse(readFileSync(join(installRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
