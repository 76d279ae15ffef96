/**
 * The HA core: election, lease keeping and fencing, replication upkeep,
 * switchover and views, over ports (the cluster store, the replicated
 * database, the fence, the clock). It knows no etcd and no SQL; the
 * composition root (src/node/postgres-ha.ts) plugs those in.
 */
export { HaController, type HaControllerDeps } from './controller.js';
export type { HaPhase, PhaseChange } from './context.js';
export { realClock, type Clock, type Timer } from './clock.js';
export type { BootstrapPlan, ConnectedReplica, DatabaseStatus, PeerEndpoint, ReplicatedDatabase } from './database.js';
export { ElectedLeadership, type LeadershipFacts, type RogueSighting } from './elected-leadership.js';
export { NoFence, type FenceArmResult, type FenceDeadlines, type FenceRecord, type FenceStatus, type LeaderFence } from './fence.js';
export { AUTO_SYNC_MIN_MEMBERS, checkHaSettings, DEFAULT_HA_SETTINGS, effectiveSettings, haSettingsFrom, isStandbyCluster, parseEndpoint, watchdogTimeoutS, type HaSettings, type WatchdogMode } from './settings.js';
export type { ClusterSnapshot, ClusterStore, MemberReport, MemberRole, OpTime, RestoreRequest, RestoreTarget, StoreCall, StoredReport, SwitchoverRequest, SyncState } from './store.js';
export { SwitchoverError, type SwitchoverResult } from './switchover.js';
export { describeTarget, RestoreRefused } from './restore.js';
export { PRIMARY_CLUSTER } from './standby-cluster.js';
import type { RestoreRequest, RestoreTarget } from './store.js';
import type { SwitchoverResult } from './switchover.js';
import type { HaView } from './view.js';
import type { FenceStatus } from './fence.js';
export type { HaMemberView, HaView, RoguePrimary } from './view.js';

/** What the HTTP API's operation routes call on a member of an HA cluster. */
export interface HaOperations {
  switchover(to: string | null): Promise<SwitchoverResult>;
  setPaused(paused: boolean): Promise<void>;
  /** A cluster restore from the backup repository, with this member as the restorer. */
  restore(target: RestoreTarget): Promise<RestoreRequest>;
  view(): HaView;
  fence(): FenceStatus;
}
