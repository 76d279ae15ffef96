import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * STATE_DIR/cluster.json: which cluster this state directory belongs to and
 * how the member came into it, written once by `hasup cluster create` or
 * `hasup cluster join`. Its presence is what turns on etcd formation in
 * `hasup run`; `founder` is what lets exactly one member start etcd as a
 * new cluster (every other member asks the running cluster to add it).
 */
export interface ClusterState {
  /** The secrets file's cluster_id; null for secrets files made before cluster ids existed. */
  cluster_id: string | null;
  cluster_name: string | null;
  /** True on the member where `hasup cluster create` ran. */
  founder: boolean;
  /** The peer a joining member was pointed at (for operators; the ring config lists it too). */
  joined_via?: string;
  /** ms since the epoch. */
  created_at: number;
}

export const CLUSTER_STATE_FILE = 'cluster.json';

export function clusterStatePath(stateDir: string): string {
  return join(stateDir, CLUSTER_STATE_FILE);
}

export function readClusterState(stateDir: string): ClusterState | undefined {
  const file = clusterStatePath(stateDir);
  if (!existsSync(file)) return undefined;
  let data: Partial<ClusterState>;
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as Partial<ClusterState>;
  } catch {
    throw new Error(`${file} is not valid JSON; it was written by \`hasup cluster create/join\`: restore it or remove the state directory to start over`);
  }
  if (typeof data.founder !== 'boolean') throw new Error(`${file} lacks "founder"; restore it or remove the state directory to start over`);
  return {
    cluster_id: typeof data.cluster_id === 'string' ? data.cluster_id : null,
    cluster_name: typeof data.cluster_name === 'string' ? data.cluster_name : null,
    founder: data.founder,
    ...(typeof data.joined_via === 'string' ? { joined_via: data.joined_via } : {}),
    created_at: typeof data.created_at === 'number' ? data.created_at : 0,
  };
}

/** Written once; refuses a state directory that already belongs to a cluster. */
export function writeClusterState(stateDir: string, state: ClusterState): void {
  const file = clusterStatePath(stateDir);
  const existing = readClusterState(stateDir);
  if (existing) {
    throw new Error(
      `state directory ${stateDir} already belongs to cluster ${existing.cluster_name ?? '?'} (${existing.cluster_id ?? 'no id'}, ${existing.founder ? 'created' : 'joined'} here); use another --state-dir, or remove this one to start over`,
    );
  }
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * A state directory formed for one cluster must not run with another
 * cluster's secrets: it would gossip with strangers and carry a foreign etcd
 * member id. Secrets without an id (older files) cannot be checked.
 */
export function assertSameCluster(state: ClusterState, secretsClusterId: string | undefined, stateDir: string, secretsFile: string): void {
  if (state.cluster_id === null || secretsClusterId === undefined) return;
  if (state.cluster_id !== secretsClusterId) {
    throw new Error(`state directory ${stateDir} belongs to cluster ${state.cluster_id}, but ${secretsFile} is the secrets file of cluster ${secretsClusterId}`);
  }
}
