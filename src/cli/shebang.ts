import { readFileSync } from 'node:fs';

/**
 * The Node flags on the first line of the hasup executable
 * (`#!/usr/bin/env -S node FLAGS`). Whoever starts hasup through `node`
 * itself (the test harness, the demo) passes these, so it runs with the
 * same heap and thread settings as an installed member.
 */
export function shebangNodeArgs(bin: string): string[] {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  const words = first.replace(/^#!\S*\s*(-S\s+)?/, '').split(/\s+/).filter(Boolean);
  const node = words.findIndex((w) => w === 'node' || w.endsWith('/node'));
  if (!first.startsWith('#!') || node < 0) throw new Error(`${bin} does not start with a node shebang line`);
  return words.slice(node + 1);
}
