// Runs the compiled test files under dist/test with node's test runner, one
// file at a time (multi-process tests bind fixed loopback addresses).
// Usage: node scripts/run-tests.mjs [suite ...]   (suites: unit, sim, procs, ...)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = 'dist/test';
const suites = process.argv.slice(2);
const dirs = suites.length > 0 ? suites.map((s) => join(root, s)) : [root];

function collect(dir) {
  let out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(collect(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = dirs.flatMap(collect);
if (files.length === 0) {
  console.error(`no test files under ${dirs.join(', ')}; run npm run build first`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
