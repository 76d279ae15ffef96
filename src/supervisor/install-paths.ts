import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The hasup installation's root (the folder with package.json and plans/),
 * found from this file's location so it works from dist/ and from any
 * build output directory.
 */
export function installRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'plans'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the hasup installation root (package.json and plans/)');
    dir = parent;
  }
  return dir;
}

/** Where the shipped plans live. */
export function shippedPlansDir(): string {
  return join(installRoot(), 'plans');
}
