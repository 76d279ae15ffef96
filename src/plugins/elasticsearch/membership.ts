import type { Memberlist, StoredRumor } from '../../gossip/index.js';
import { readClusterState } from '../../supervisor/cluster-state.js';
import type { ServiceDriver } from '../../supervisor/driver.js';
import type { Logger } from '../../supervisor/log.js';
import { parseServiceRumorKey, RUMOR_SERVICE } from '../../supervisor/rumors/service.js';
import type { StateDir } from '../../supervisor/state-dir.js';
import { elasticsearchPeerUrls } from '../shipper/census.js';
import { clusterRoleOf, type ClusterRole } from './bootstrap.js';
import { censusNodes, departedMembers, ELASTICSEARCH_SERVICE } from './census.js';
import { ElasticsearchDriver } from './driver.js';
import { esError, firstAnswer } from './es-http.js';
import { KnownNodes } from './known-nodes.js';
import { coordinationFacts, planExclusions, type CoordinationAnswer } from './voting-exclusions.js';

/**
 * One Elasticsearch cluster out of the members' nodes, kept in step with
 * the gossip census (docs/elasticsearch.md, "Cluster formation"):
 *
 * - the driver of a cluster member renders file-based discovery and
 *   bootstraps only on the founder (bootstrap.ts);
 * - unicast_hosts.txt is rewritten as members running Elasticsearch come
 *   and go (on every census change, and every tick in case one was missed);
 * - the nodes in the cluster are remembered by id (known-nodes.ts), and a
 *   departed member's node leaves the voting configuration
 *   (voting-exclusions.ts), retried every tick until it has.
 *
 * A member on its own (no cluster.json) gets none of this: its node is a
 * cluster of one, as before.
 */

/** How often the seed file is checked and departed members' nodes looked after. */
export const TICK_MS = 5000;
/** Census changes come in bursts (a member's rumors arrive together): one rewrite per burst. */
const SEED_DEBOUNCE_MS = 300;
/** How long Elasticsearch may take to move a departed node out of the voting configuration, per request. */
const EXCLUSION_TIMEOUT_S = 20;
const QUERY_TIMEOUT_MS = 5000;

export interface ElasticsearchMembershipDeps {
  ring: Memberlist;
  stateDir: StateDir;
  log: Logger;
  tickMs?: number;
}

export class ElasticsearchMembership {
  readonly role: ClusterRole;
  private driver?: ElasticsearchDriver;
  private readonly known: KnownNodes;
  /** Departed members whose node needs nothing more (looked at again after a restart, cheaply). */
  private readonly settled = new Set<string>();
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private busy = false;
  private stopped = false;
  /** The last failure logged, so a node that stays down is reported once, not every tick. */
  private lastProblem: string | undefined;
  private readonly log: Logger;
  private readonly onMember = () => this.seedsSoon();
  private readonly onRumor = (r: StoredRumor) => {
    if (r.kind === RUMOR_SERVICE && parseServiceRumorKey(r.key)?.service === ELASTICSEARCH_SERVICE) this.seedsSoon();
  };

  constructor(private readonly deps: ElasticsearchMembershipDeps) {
    this.role = clusterRoleOf(readClusterState(deps.stateDir.root));
    this.known = new KnownNodes(deps.stateDir.path('svc', ELASTICSEARCH_SERVICE, 'known-nodes.json'));
    this.log = deps.log.child({ component: 'es-membership' });
  }

  /** The driver for the elasticsearch plan on a cluster member; undefined on a member on its own (the plain driver). */
  driverFor(name: string): ServiceDriver | undefined {
    if (name !== ELASTICSEARCH_SERVICE || this.role === 'standalone') return undefined;
    const role = this.role;
    this.driver = new ElasticsearchDriver({ cluster: { role, seedNodes: (self) => censusNodes(this.deps.ring, self) } });
    return this.driver;
  }

  start(): void {
    if (this.role === 'standalone' || this.stopped) return;
    this.log.info(
      { event: 'es_cluster_role', role: this.role },
      this.role === 'founder' ? 'Elasticsearch: this member founds the cluster (its node bootstraps it once)' : 'Elasticsearch: this member joins the cluster the founder\'s node forms',
    );
    this.deps.ring.on('member', this.onMember);
    this.deps.ring.on('rumor', this.onRumor);
    this.timer = setInterval(() => void this.tick(), this.deps.tickMs ?? TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    this.deps.ring.off('member', this.onMember);
    this.deps.ring.off('rumor', this.onRumor);
  }

  private seedsSoon(): void {
    if (this.debounce || this.stopped) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.refreshSeeds();
    }, SEED_DEBOUNCE_MS);
    this.debounce.unref();
  }

  private async refreshSeeds(): Promise<void> {
    try {
      const seeds = await this.driver?.refreshSeedHosts();
      if (seeds) this.log.info({ event: 'es_seed_hosts', seeds }, `Elasticsearch seed hosts: ${seeds.join(', ')}`);
    } catch (err) {
      this.log.warn({ event: 'es_seed_hosts_failed', reason: (err as Error).message }, `cannot write Elasticsearch's seed hosts file: ${(err as Error).message}`);
    }
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      await this.refreshSeeds();
      await this.lookAfterVoters();
      this.lastProblem = undefined;
    } catch (err) {
      const reason = (err as Error).message;
      if (reason !== this.lastProblem) {
        // Only worth a warning while a departed member waits; otherwise the node is just starting or restarting.
        const waiting = departedMembers(this.deps.ring).some((m) => !this.settled.has(m));
        const fields = { event: 'es_membership_retry', reason, retry_ms: this.deps.tickMs ?? TICK_MS };
        if (waiting) this.log.warn(fields, `Elasticsearch voting configuration: ${reason}; retrying`);
        else this.log.debug(fields, `Elasticsearch nodes: ${reason}; retrying`);
      }
      this.lastProblem = reason;
    } finally {
      this.busy = false;
    }
  }

  /** Learns the nodes in the cluster; takes departed members' nodes out of the voting configuration. */
  private async lookAfterVoters(): Promise<void> {
    const local = this.driver?.localUrl();
    // Members without an Elasticsearch node leave this to those with one.
    if (!local) return;
    const access = this.driver?.access('admin');
    const urls = [local, ...elasticsearchPeerUrls(this.deps.ring, access?.scheme)];
    const nodesAnswer = await firstAnswer(urls, 'GET', '/_cat/nodes?format=json&h=id,name&full_id=true', QUERY_TIMEOUT_MS, undefined, access);
    if (nodesAnswer.status !== 200 || !Array.isArray(nodesAnswer.json)) throw new Error(`GET /_cat/nodes on ${nodesAnswer.base}: ${esError(nodesAnswer)}`);
    const live = (nodesAnswer.json as Array<{ id?: unknown; name?: unknown }>).flatMap((n) => (typeof n.id === 'string' && typeof n.name === 'string' ? [{ id: n.id, name: n.name }] : []));
    const learned = this.known.learn(live);
    if (learned.length > 0) this.log.info({ event: 'es_nodes_learned', nodes: learned }, `Elasticsearch nodes seen in the cluster: ${learned.join(', ')}`);

    const departed = departedMembers(this.deps.ring).filter((m) => !this.settled.has(m));
    if (departed.length === 0) return;
    const state = await firstAnswer(urls, 'GET', '/_cluster/state/metadata?filter_path=metadata.cluster_coordination', QUERY_TIMEOUT_MS, undefined, access);
    if (state.status !== 200) throw new Error(`GET /_cluster/state on ${state.base}: ${esError(state)}`);
    const plan = planExclusions({ departed, knownIds: this.known.map, liveNodes: live, ...coordinationFacts(state.json as CoordinationAnswer) });

    for (const { member, nodeId } of plan.exclude) {
      const answer = await firstAnswer(urls, 'POST', `/_cluster/voting_config_exclusions?node_ids=${encodeURIComponent(nodeId)}&timeout=${EXCLUSION_TIMEOUT_S}s`, (EXCLUSION_TIMEOUT_S + 5) * 1000, undefined, access);
      if (answer.status !== 200) throw new Error(`excluding departed member ${member} (node ${nodeId}) from the voting configuration: ${esError(answer)}`);
      this.log.warn({ event: 'es_voter_excluded', peer: member, node_id: nodeId }, `departed member ${member}: its Elasticsearch node ${nodeId} is out of the voting configuration`);
    }
    if (plan.clear) {
      const answer = await firstAnswer(urls, 'DELETE', '/_cluster/voting_config_exclusions?wait_for_removal=false', QUERY_TIMEOUT_MS, undefined, access);
      if (answer.status !== 200) throw new Error(`clearing the voting configuration exclusions: ${esError(answer)}`);
      this.log.info({ event: 'es_voting_exclusions_cleared' }, 'voting configuration exclusions cleared: the excluded nodes have left the cluster');
    }
    for (const { member, reason } of plan.settled) {
      this.settled.add(member);
      this.log.info(
        { event: 'es_departed_settled', peer: member, reason },
        reason === 'unknown_node' ? `departed member ${member}: no Elasticsearch node of that name was seen in the cluster from here` : `departed member ${member}: its Elasticsearch node is not in the voting configuration`,
      );
    }
  }
}
