import type { ClusterState } from '../../supervisor/cluster-state.js';

/**
 * Who may bootstrap the Elasticsearch cluster. Bootstrapping (setting
 * cluster.initial_master_nodes) is the one step that can make two clusters
 * out of one: two nodes that each bootstrap before they see each other
 * never merge. So exactly one member ever does it, decided without looking
 * at the census (which is incomplete while the ring forms):
 *
 *   standalone  no STATE_DIR/cluster.json (`hasup run` on its own, or a ring
 *               started with --ring-key): a one-node cluster of its own, as
 *               before clustering; not this module's business
 *   founder     `hasup cluster create` ran here: its node bootstraps a
 *               cluster of itself, once; the others join it and
 *               Elasticsearch grows the voting configuration as they come
 *   joiner      `hasup cluster join` ran here: its node never bootstraps;
 *               it waits until it discovers a cluster with a master
 */
export type ClusterRole = 'standalone' | 'founder' | 'joiner';

export function clusterRoleOf(state: ClusterState | undefined): ClusterRole {
  if (!state) return 'standalone';
  return state.founder ? 'founder' : 'joiner';
}

export interface BootstrapFacts {
  role: Exclude<ClusterRole, 'standalone'>;
  /** node.name: the member id. */
  selfName: string;
  /** The node's data dir says it has been part of a formed cluster. */
  formed: boolean;
  /**
   * The service dir (outside the data dir) says this founder's node has
   * been part of a formed cluster: kept when the data is wiped, so a
   * founder that lost its data joins the cluster instead of founding a
   * second one.
   */
  bootstrapped: boolean;
}

/** cluster.initial_master_nodes for the next start, or null: never bootstrap, only join. */
export function initialMasterNodes(f: BootstrapFacts): string[] | null {
  if (f.role !== 'founder' || f.formed || f.bootstrapped) return null;
  return [f.selfName];
}
