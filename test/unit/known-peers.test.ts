/**
 * STATE_DIR/known-peers.json: the members a restarted hasup rejoins
 * through. Departed members are forgotten, dead and left ones kept; the
 * file is written only when the list changes; a missing or damaged file is
 * no peers (the configured ones still count), never an error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MemberView } from '../../src/gossip/index.js';
import { joinCandidates, peersToRemember, readKnownPeers, writeKnownPeers } from '../../src/node/known-peers.js';

const member = (id: string, addr: string, state: MemberView['state']): MemberView => ({ id, addr, port: 9638, incarnation: 1, state, meta: new Uint8Array(), since: 0 });

test('who is remembered: every other member but the departed, by address', () => {
  const members = [member('self', '10.0.0.1', 'alive'), member('b', '10.0.0.3', 'dead'), member('a', '10.0.0.2', 'alive'), member('c', '10.0.0.4', 'departed'), member('d', '10.0.0.5', 'left')];
  assert.deepEqual(peersToRemember('self', members), ['10.0.0.2:9638', '10.0.0.3:9638', '10.0.0.5:9638']);
});

test('written when changed, read back; a damaged or missing file is no peers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-peers-'));
  try {
    assert.deepEqual(readKnownPeers(dir), []);
    const text = writeKnownPeers(dir, ['10.0.0.2:9638', '[fd00::3]:9700'], undefined);
    const file = join(dir, 'known-peers.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readKnownPeers(dir), [{ addr: '10.0.0.2', port: 9638 }, { addr: 'fd00::3', port: 9700 }]);
    const before = statSync(file).mtimeMs;
    assert.equal(writeKnownPeers(dir, ['10.0.0.2:9638', '[fd00::3]:9700'], text), text);
    assert.equal(statSync(file).mtimeMs, before, 'the same list is not written again');
    writeFileSync(file, '{"peers": ["10.0.0.9:9638", 7, "not an address:port:x"]');
    assert.deepEqual(readKnownPeers(dir), [], 'unparseable JSON');
    writeFileSync(file, '{"peers": ["10.0.0.9:9638", 7, "::::"]}');
    assert.deepEqual(readKnownPeers(dir), [{ addr: '10.0.0.9', port: 9638 }], 'entries that are not addresses are skipped');
    assert.match(readFileSync(file, 'utf8'), /10\.0\.0\.9/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('join candidates: the configured peers first, then remembered ones not among them', () => {
  const configured = [{ addr: '10.0.0.2', port: 9638 }];
  const remembered = [{ addr: '10.0.0.3', port: 9638 }, { addr: '10.0.0.2', port: 9638 }];
  assert.deepEqual(joinCandidates(configured, remembered), [{ addr: '10.0.0.2', port: 9638 }, { addr: '10.0.0.3', port: 9638 }]);
});
