/**
 * A departed member's Elasticsearch node leaves the voting configuration.
 *
 * Elasticsearch shrinks the voting configuration by itself only while it can
 * stay at three or more voters: in a 3-node cluster a dead node stays a
 * voter, and one more loss would stop the cluster. Once the operator has
 * said the member is gone for good (`hasup depart`), hasup excludes its node
 * (POST /_cluster/voting_config_exclusions?node_ids=ID) and, once the
 * exclusion has taken effect and the node is not in the cluster, clears the
 * exclusion list (DELETE /_cluster/voting_config_exclusions) so the list
 * never fills up (cluster.max_voting_config_exclusions).
 *
 * By id, not by name: a name Elasticsearch cannot match to a node in the
 * cluster is recorded as an exclusion of an unknown id, which does not
 * remove the dead node's id from the voting configuration. The ids come
 * from the nodes every member has seen in the cluster (known-nodes.ts).
 *
 * Everything is decided from Elasticsearch's current state on every pass,
 * so a pass is idempotent: members may all do it, and a pass that failed
 * (Elasticsearch down, no master) is simply done again later.
 */

/** A voting configuration exclusion as the cluster state lists it. */
export interface VotingExclusion {
  node_id: string;
  node_name: string;
}

/** Elasticsearch's id for an exclusion whose node it could not resolve. */
export const ABSENT_NODE_ID = '_absent_';

export interface ExclusionFacts {
  /** Departed member ids (= node names) still to be looked at. */
  departed: string[];
  /** Node ids by node name, as seen in the cluster. */
  knownIds: ReadonlyMap<string, string>;
  /** The nodes in the cluster now. */
  liveNodes: Array<{ id: string; name: string }>;
  /** Voter ids: the last committed and the last accepted configuration together. */
  votingConfig: string[];
  exclusions: VotingExclusion[];
}

export type SettledReason =
  /** Its node is neither a voter nor excluded any more: done. */
  | 'not_a_voter'
  /** No node of that name was ever seen in the cluster from here: nothing to exclude. */
  | 'unknown_node';

export interface ExclusionPlan {
  /** Voters of departed members that are not excluded yet. */
  exclude: Array<{ member: string; nodeId: string }>;
  /** Every exclusion has taken effect and its node has left the cluster: clear the list. */
  clear: boolean;
  /** Departed members with nothing left to do. */
  settled: Array<{ member: string; reason: SettledReason }>;
  /** Departed members whose exclusion is in progress (a voter still, or excluded and not yet cleared). */
  waiting: string[];
}

/** What to do next about departed members' nodes. Pure. */
export function planExclusions(f: ExclusionFacts): ExclusionPlan {
  const voters = new Set(f.votingConfig);
  const liveIds = new Set(f.liveNodes.map((n) => n.id));
  const liveNames = new Set(f.liveNodes.map((n) => n.name));
  const excludedIds = new Set(f.exclusions.map((e) => e.node_id));
  const plan: ExclusionPlan = { exclude: [], clear: false, settled: [], waiting: [] };
  for (const member of f.departed) {
    const nodeId = f.knownIds.get(member) ?? f.liveNodes.find((n) => n.name === member)?.id;
    if (nodeId === undefined) plan.settled.push({ member, reason: 'unknown_node' });
    else if (voters.has(nodeId) && !excludedIds.has(nodeId)) plan.exclude.push({ member, nodeId });
    else if (voters.has(nodeId) || excludedIds.has(nodeId)) plan.waiting.push(member);
    else plan.settled.push({ member, reason: 'not_a_voter' });
  }
  // As DELETE ?wait_for_removal=true would: only when no excluded node is a voter or in the cluster
  // (an operator's exclusion of a node being retired stays until that node is gone).
  const gone = (e: VotingExclusion) => (e.node_id === ABSENT_NODE_ID ? !liveNames.has(e.node_name) : !voters.has(e.node_id) && !liveIds.has(e.node_id));
  plan.clear = f.exclusions.length > 0 && plan.exclude.length === 0 && f.exclusions.every(gone);
  return plan;
}

/** The fields of GET /_cluster/state/metadata?filter_path=metadata.cluster_coordination that matter here. */
export interface CoordinationAnswer {
  metadata?: {
    cluster_coordination?: {
      last_committed_config?: string[];
      last_accepted_config?: string[];
      voting_config_exclusions?: VotingExclusion[];
    };
  };
}

export function coordinationFacts(answer: CoordinationAnswer): Pick<ExclusionFacts, 'votingConfig' | 'exclusions'> {
  const c = answer.metadata?.cluster_coordination ?? {};
  return {
    votingConfig: [...new Set([...(c.last_committed_config ?? []), ...(c.last_accepted_config ?? [])])],
    exclusions: c.voting_config_exclusions ?? [],
  };
}
