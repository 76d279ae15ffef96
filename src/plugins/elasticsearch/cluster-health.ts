import type { HealthResult } from '../../supervisor/driver.js';

/** The fields of GET /_cluster/health that hasup reads. */
export interface ClusterHealthAnswer {
  cluster_name?: string;
  status?: string;
  number_of_nodes?: number;
  number_of_data_nodes?: number;
  active_primary_shards?: number;
  active_shards?: number;
  unassigned_shards?: number;
  error?: { type?: string; reason?: string } | string;
}

/**
 * What a /_cluster/health answer means for this member. Never a reason to
 * restart anything: red or a yellow cluster is a WARNING (the node is up and
 * serving; restarting it would only make things worse), and only a node that
 * does not answer, or answers without an elected master, is CRITICAL.
 *
 * A one-data-node cluster is yellow whenever an index asks for replicas (they
 * have nowhere to go), so there yellow is OK; with more data nodes it means
 * lost redundancy.
 */
export function interpretClusterHealth(httpStatus: number, body: ClusterHealthAnswer, expectedCluster: string, where: string): HealthResult {
  if (httpStatus !== 200) {
    const err = body.error;
    const type = typeof err === 'object' ? err.type : undefined;
    const reason = typeof err === 'object' ? err.reason : err;
    if (type === 'master_not_discovered_exception') return { status: 'critical', message: `Elasticsearch at ${where} has no elected master yet` };
    return { status: 'critical', message: `Elasticsearch at ${where} answered ${httpStatus}${reason ? `: ${reason}` : ''}` };
  }
  if (body.cluster_name !== expectedCluster) {
    return { status: 'critical', message: `${where} answers for cluster ${JSON.stringify(body.cluster_name)}, not ${JSON.stringify(expectedCluster)}: another Elasticsearch holds the port` };
  }
  const details = {
    status: body.status,
    number_of_nodes: body.number_of_nodes,
    number_of_data_nodes: body.number_of_data_nodes,
    active_primary_shards: body.active_primary_shards,
    active_shards: body.active_shards,
    unassigned_shards: body.unassigned_shards,
  };
  switch (body.status) {
    case 'green':
      return { status: 'ok', details };
    case 'yellow':
      if ((body.number_of_data_nodes ?? 0) <= 1) return { status: 'ok', message: `yellow: ${body.unassigned_shards ?? '?'} replica shards have no second node to live on`, details };
      return { status: 'warning', message: `yellow: ${body.unassigned_shards ?? '?'} replica shards unassigned`, details };
    case 'red':
      return { status: 'warning', message: `red: ${body.unassigned_shards ?? '?'} shards unassigned, some of them primaries`, details };
    default:
      return { status: 'critical', message: `Elasticsearch at ${where} reports an unknown cluster status ${JSON.stringify(body.status)}`, details };
  }
}
