import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HaContext } from '../../src/ha/context.js';
import type { DatabaseStatus } from '../../src/ha/database.js';
import type { ClusterSnapshot } from '../../src/ha/store.js';
import { replicaLag } from '../../src/ha/view.js';

const standby = (extra: Partial<DatabaseStatus> = {}): DatabaseStatus => ({ running: true, healthy: true, inRecovery: true, timeline: 2, walPosition: 9000, replayPosition: 8000, streaming: true, upstream: 'L', replicas: [], replayLagS: 3, ...extra });
const ctx = (holding: boolean) => ({ holding }) as HaContext;
const snap = { optime: { member: 'L', wal_position: 10_000, timeline: 2, updated: 0 } } as ClusterSnapshot;

test("a replica's lag is behind the leader's published position, in bytes and seconds", () => {
  assert.deepEqual(replicaLag(ctx(false), standby(), snap), { bytes: 2000, seconds: 3 });
  assert.deepEqual(replicaLag(ctx(false), standby({ replayPosition: 12_000 }), snap), { bytes: 0, seconds: 3 }, 'never negative');
  assert.deepEqual(replicaLag(ctx(false), standby(), null), { bytes: null, seconds: 3 }, 'no leader position known');
});

test("a standby leader's lag is behind the primary cluster, as its upstream last said; a primary has none", () => {
  assert.deepEqual(replicaLag(ctx(true), standby({ upstreamWalEnd: 8500 }), snap), { bytes: 500, seconds: 3 });
  assert.deepEqual(replicaLag(ctx(true), standby({ upstreamWalEnd: null, streaming: false }), snap), { bytes: null, seconds: 3 });
  assert.deepEqual(replicaLag(ctx(true), standby({ inRecovery: false }), snap), { bytes: null, seconds: null });
  assert.deepEqual(replicaLag(ctx(false), standby({ running: false }), snap), { bytes: null, seconds: null });
});
