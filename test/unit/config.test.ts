import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GOSSIP_PROFILES, resolveGossipConfig, type GossipProfile } from '../../src/gossip/config.js';

test('the default profile is lan and a copy is returned', () => {
  const c = resolveGossipConfig();
  assert.deepEqual(c, { ...GOSSIP_PROFILES.lan });
  c.probeIntervalMs = 1;
  assert.notEqual(GOSSIP_PROFILES.lan.probeIntervalMs, 1, 'profiles must not be mutated through a result');
});

test('every profile is internally consistent', () => {
  for (const name of Object.keys(GOSSIP_PROFILES) as GossipProfile[]) {
    const c = resolveGossipConfig(name);
    assert.ok(c.probeTimeoutMs < c.probeIntervalMs, name);
    assert.ok(c.gossipIntervalMs < c.probeIntervalMs, name);
    assert.ok(c.suspicionMult >= 1 && c.suspicionMaxTimeoutMult >= 1, name);
  }
  assert.ok(GOSSIP_PROFILES.wan.probeIntervalMs > GOSSIP_PROFILES.lan.probeIntervalMs);
  assert.ok(GOSSIP_PROFILES.local.probeIntervalMs < GOSSIP_PROFILES.lan.probeIntervalMs);
});

test('overrides are applied on top of the profile', () => {
  const c = resolveGossipConfig('wan', { probeIntervalMs: 7000, gossipNodes: 5 });
  assert.equal(c.probeIntervalMs, 7000);
  assert.equal(c.gossipNodes, 5);
  assert.equal(c.probeTimeoutMs, GOSSIP_PROFILES.wan.probeTimeoutMs);
});

test('an unknown setting is an error naming it', () => {
  assert.throws(() => resolveGossipConfig('lan', { probeIntervalMS: 500 }), /unknown gossip setting "probeIntervalMS"/);
});

test('a wrong type is an error naming the setting', () => {
  assert.throws(() => resolveGossipConfig('lan', { gossipIntervalMs: '100' }), /"gossipIntervalMs" must be a finite number, got the string "100"/);
  assert.throws(() => resolveGossipConfig('lan', { gossipIntervalMs: null }), /"gossipIntervalMs".*null/);
  assert.throws(() => resolveGossipConfig('lan', { gossipIntervalMs: Number.NaN }), /"gossipIntervalMs"/);
  assert.throws(() => resolveGossipConfig('lan', { indirectChecks: 2.5 }), /"indirectChecks" must be an integer/);
});

test('impossible values are errors naming the setting', () => {
  assert.throws(() => resolveGossipConfig('lan', { probeIntervalMs: 0 }), /"probeIntervalMs" must be > 0/);
  assert.throws(() => resolveGossipConfig('lan', { retransmitMult: -1 }), /"retransmitMult"/);
  assert.throws(() => resolveGossipConfig('lan', { probeTimeoutMs: 600 }), /"probeTimeoutMs" \(600\) must be less than probeIntervalMs \(500\)/);
  assert.equal(resolveGossipConfig('lan', { indirectChecks: 0 }).indirectChecks, 0, '0 turns indirect probes off');
});

test('an unknown profile is an error', () => {
  assert.throws(() => resolveGossipConfig('moon' as GossipProfile), /unknown gossip profile "moon"/);
});
