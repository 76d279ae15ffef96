// Runs the compiled test files under dist/test with node's test runner, one
// file at a time (multi-process tests bind fixed loopback addresses).
// Usage: node scripts/run-tests.mjs [suite ...]   (suites: unit, sim, procs, ...)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

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
// --test-force-exit: a file whose tests (and after-hooks) are done exits even if a failed
// test left a writer or a socket open, instead of holding the run until CI's time limit.
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-force-exit', '--test-reporter=spec', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
// Forward the report and end with one plain "N passed, N failed" line.
const counts = { pass: 0, fail: 0, skipped: 0 };
createInterface({ input: child.stdout }).on('line', (line) => {
  console.log(line);
  const m = /^ℹ (pass|fail|skipped) (\d+)$/.exec(line);
  if (m) counts[m[1]] = Number(m[2]);
});
child.on('exit', (code) => {
  console.log(`${counts.pass} passed, ${counts.fail} failed, ${counts.skipped} skipped`);
  process.exit(code ?? 1);
});
