import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HASUP_BIN } from '../support/member-procs.js';

/** `hasup cluster set`: bad input is refused before the daemon is asked (none runs here). */
const cli = (args: string[]) => spawnSync(process.execPath, [HASUP_BIN, 'cluster', 'set', ...args], { encoding: 'utf8', timeout: 30_000 });

test('cluster set refuses an unknown setting and a voter count other than 3 or 5, without asking the daemon', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-cluster-set-'));
  try {
    const unknown = cli(['etcd_learners', '5', '--state-dir', dir]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /unknown cluster setting "etcd_learners"; known: etcd_voters/);
    for (const bad of ['4', '7', 'five', '5.0', '-3']) {
      const r = cli(['etcd_voters', bad, '--state-dir', dir]);
      assert.equal(r.status, 1, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /etcd_voters must be 3 or 5|etcd voters must be 3 or 5/, bad);
      assert.doesNotMatch(r.stderr, /api\.json|daemon/, `${bad}: refused before looking for the daemon`);
    }
    // A good count goes to the daemon: none has run with this state dir.
    const ok = cli(['etcd_voters', '5', '--state-dir', dir]);
    assert.equal(ok.status, 1);
    assert.match(ok.stderr, /no hasup daemon has run with state directory/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
