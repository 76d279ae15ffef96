import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DriverContext } from '../../src/supervisor/driver.js';
import { writeHaConf } from '../../src/plugins/postgresql/standby-config.js';

test('writes of ha.conf at once (the HA loop and a start being prepared) all succeed, and the one asked for last stays', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-haconf-'));
  try {
    // The owner is set on every write, as for the service user (chown needs the file to still be there).
    const ctx = { paths: { config: dir }, user: { uid: process.getuid!(), gid: process.getgid!() } } as unknown as DriverContext;
    await Promise.all(Array.from({ length: 30 }, (_, i) => writeHaConf(ctx, { upstream: null, syncStandbys: [`m${i}`] })));
    const text = readFileSync(join(dir, 'ha.conf'), 'utf8');
    assert.match(text, /synchronous_standby_names = 'ANY 1 \("m29"\)'/);
    assert.deepEqual(readdirSync(dir), ['ha.conf'], 'no temporary file left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
