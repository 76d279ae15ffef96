import { hasupVersion } from '../../src/supervisor/version.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishedPorts } from '../../src/cli/frontend-config.js';
import { renderNodeConfig } from '../../src/cli/node-config-template.js';
import { assertSameCluster, readClusterState, writeClusterState } from '../../src/supervisor/cluster-state.js';
import { parseNodeConfig } from '../../src/supervisor/config-file.js';
import { generateSecrets, keyringFromSecrets, loadOrCreateSecrets, loadSecretsFile, writeSecretsFile } from '../../src/supervisor/secrets.js';
import { decodeServiceRumor, encodeServiceRumor, parseServiceRumorKey } from '../../src/supervisor/rumors/service.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-lifecycle-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('new cluster secrets hold a cluster id and a 32-byte ring key, and round-trip through a 0600 file', () => {
  withDir((dir) => {
    const file = join(dir, 'secrets.json');
    const secrets = generateSecrets({ name: 'prod' });
    writeSecretsFile(file, secrets);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const loaded = loadSecretsFile(file);
    assert.deepEqual(loaded, secrets);
    assert.match(loaded.cluster_id!, /^[0-9a-f]{16}$/);
    assert.equal(loaded.cluster_name, 'prod');
    assert.equal(keyringFromSecrets(loaded, file).primary.length, 32);
    assert.notEqual(generateSecrets().ring_key, secrets.ring_key, 'every cluster gets its own ring key');
    assert.equal(generateSecrets({ etcdVoters: 5 }).etcd_voters, 5, 'the voter count travels with the secrets to every join');
    assert.throws(() => writeSecretsFile(file, generateSecrets()), /already exists/);
  });
});

test('a secrets file from before cluster create still loads; asking it for a ring key says what to do', () => {
  withDir((dir) => {
    const file = join(dir, 'old.json');
    writeFileSync(file, JSON.stringify({ api_token: 't', postgresql: { superuser_password: 's', replication_password: 'r' } }), { mode: 0o600 });
    const old = loadSecretsFile(file);
    assert.equal(old.api_token, 't');
    assert.equal(old.ring_key, undefined);
    assert.throws(() => keyringFromSecrets(old, file), /holds none .*--ring-key FILE/);
    // The daemon's own first-start file has no ring key either (its key is in a ring-key file).
    assert.equal(loadOrCreateSecrets(join(dir, 'made.json'), true).ring_key, undefined);
  });
});

test('malformed new fields are refused, naming the field but never its value', () => {
  withDir((dir) => {
    const file = join(dir, 's.json');
    const base = { api_token: 't', postgresql: { superuser_password: 's', replication_password: 'r' } };
    for (const [extra, reason] of [
      [{ ring_key: 'c2hvcnQ=' }, /ring_key must be a base64-encoded 32-byte key/],
      [{ ring_key: 42 }, /ring_key must be/],
      [{ cluster_id: 'NOT-HEX' }, /cluster_id must be 16 hex digits/],
      [{ etcd_voters: 4 }, /etcd_voters must be 3 or 5/],
    ] as const) {
      writeFileSync(file, JSON.stringify({ ...base, ...extra }), { mode: 0o600 });
      assert.throws(() => loadSecretsFile(file), (err: Error) => reason.test(err.message) && !err.message.includes('c2hvcnQ'));
    }
    chmodSync(file, 0o644);
    assert.throws(() => loadSecretsFile(file), /readable by others/);
  });
});

test('cluster.json is written once and ties the state dir to one cluster', () => {
  withDir((dir) => {
    assert.equal(readClusterState(dir), undefined);
    writeClusterState(dir, { cluster_id: '00112233aabbccdd', cluster_name: 'prod', founder: true, created_at: 1 });
    assert.deepEqual(readClusterState(dir), { cluster_id: '00112233aabbccdd', cluster_name: 'prod', founder: true, created_at: 1 });
    assert.throws(() => writeClusterState(dir, { cluster_id: null, cluster_name: null, founder: false, created_at: 2 }), /already belongs to cluster prod/);
    const state = readClusterState(dir)!;
    assert.doesNotThrow(() => assertSameCluster(state, '00112233aabbccdd', dir, 's.json'));
    assert.doesNotThrow(() => assertSameCluster(state, undefined, dir, 's.json'), 'an old secrets file cannot be checked');
    assert.throws(() => assertSameCluster(state, 'ffffffffffffffff', dir, 's.json'), /belongs to cluster 00112233aabbccdd, but s\.json is the secrets file of cluster ffffffffffffffff/);
  });
});

test('the hasup.toml that cluster create/join write is accepted by the real schema', () => {
  const toml = renderNodeConfig({ clusterName: 'prod "eu"', advertise: '10.0.0.12', peers: ['10.0.0.11:9638'], stateDir: '/var/lib/hasup', secrets: '/var/lib/hasup/secrets.json', etcdVoters: 5, services: ['postgresql'], writtenBy: 'join' });
  const cfg = parseNodeConfig(toml, 'hasup.toml');
  assert.equal(cfg.member.advertise, '10.0.0.12');
  assert.deepEqual(cfg.member.peers, ['10.0.0.11:9638']);
  assert.equal(cfg.member.secrets, '/var/lib/hasup/secrets.json');
  assert.equal(cfg.member.ring_key, undefined, 'the ring key comes from the secrets file');
  assert.equal(cfg.cluster.etcd, true, 'etcd formation on');
  assert.equal(cfg.cluster.etcd_voters, 5);
  assert.deepEqual(cfg.services.load, ['postgresql']);
  assert.equal(parseNodeConfig('', 'x').cluster.etcd_voters, 3, 'default: 3 voters');
  assert.throws(() => parseNodeConfig('[cluster]\netcd_voters = 4\n', 'hasup.toml'), /"cluster\.etcd_voters" must be 3 or 5/);
});

test('service rumors carry ports, the API port and the versions; the frontend config reads them from /butterfly', () => {
  const status = { name: 'postgresql', group: 'default', state: 'running', pid: 7, since: 1, restarts: 0, health: 'ok', healthSince: 1, configVersion: 2, version: '15' } as ServiceStatus;
  const payload = encodeServiceRumor(status, { port: 5433 }, 9700);
  assert.deepEqual(decodeServiceRumor(payload), { state: 'running', pid: 7, health: 'ok', since: 1, config_version: 2, version: '15', hasup_version: hasupVersion(), ports: { port: 5433 }, api_port: 9700 });
  assert.match(hasupVersion(), /^\d+\.\d+\.\d+/, 'the package\'s version');
  assert.deepEqual(parseServiceRumorKey('abcd/postgresql.default'), { member: 'abcd', service: 'postgresql', group: 'default' });
  assert.equal(parseServiceRumorKey('no-slash'), undefined);
  const hostile = decodeServiceRumor(Buffer.from(JSON.stringify({ state: 'running', ports: { port: 70000, x: 'y' }, api_port: -1 })));
  assert.deepEqual(hostile?.ports, {}, 'out-of-range and non-numeric ports are dropped');
  assert.equal(hostile?.api_port, undefined);

  const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64');
  const ports = publishedPorts([
    { kind: 'service', key: 'm1/postgresql.default', payload: b64(payload) },
    { kind: 'service', key: 'm2/etcd.default', payload: b64(encodeServiceRumor({ ...status, name: 'etcd' }, { client_port: 2379 }, 9631)) },
    { kind: 'service-config', key: 'postgresql.default', payload: b64(Buffer.from('x = 1')) },
    { kind: 'service', key: 'm3/postgresql.default', payload: b64(Buffer.from('not json')) },
  ]);
  assert.deepEqual(Object.fromEntries(ports), { m1: { pgPort: 5433, apiPort: 9700 }, m2: { apiPort: 9631 } });
});
