/**
 * Real hasup members on 127.0.0.N that run Elasticsearch as their only
 * service, for the Elasticsearch integration and shipping tests: their
 * state dirs under one temp dir, one hasup.toml for all (free HTTP and
 * transport ports, no disk threshold, the rest as the test says), a
 * LocalRing that runs `hasup run` with it; for a cluster, `hasup cluster
 * create` on the founder and `hasup cluster join` on the others. Also what
 * a node says of its cluster (UUID, nodes, health, voting configuration),
 * and an end that leaves no JVM behind.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EsJvms } from './es-jvms.js';
import { eventually } from './eventually.js';
import { HASUP_BIN, LocalRing, generateRingKey, randomPortBase, type LogEvent, type MemberProc } from './member-procs.js';
import { freePort } from './service-harness.js';

/** A GET of `path` on member i's node, however the test reaches it (clear text, or HTTPS as hasup_admin). */
export type EsGet = <T>(i: number, path: string) => Promise<T>;

export interface ClusterFacts {
  uuid: string;
  /** Node names (member ids), sorted. */
  nodes: string[];
  status: string;
}

export interface VotingConfig {
  last_committed_config: string[];
  voting_config_exclusions: Array<{ node_id: string }>;
}

/** hasup.toml for the test's members, table by table (each line as TOML has it). */
export interface EsHasupConfig {
  /** [cluster], left out when not given. */
  cluster?: string[];
  /** [service.elasticsearch] besides the ports and the disk threshold, which every such test sets. */
  elasticsearch: string[];
  /** [shipping], left out when not given. */
  shipping?: string[];
}

/** One node's view of its cluster: UUID, node names, health. */
export async function clusterFacts(es: EsGet, i: number): Promise<ClusterFacts> {
  const meta = await es<{ metadata: { cluster_uuid: string } }>(i, '/_cluster/state/metadata?filter_path=metadata.cluster_uuid');
  const nodes = await es<Array<{ name: string }>>(i, '/_cat/nodes?format=json&h=name');
  const health = await es<{ status: string }>(i, '/_cluster/health');
  return { uuid: meta.metadata.cluster_uuid, nodes: nodes.map((n) => n.name).sort(), status: health.status };
}

/** The voting configuration and its exclusions, from node i's cluster state. */
export async function votingConfig(es: EsGet, i: number): Promise<VotingConfig> {
  type Coordination = { metadata: { cluster_coordination: VotingConfig } };
  return (await es<Coordination>(i, '/_cluster/state/metadata?filter_path=metadata.cluster_coordination')).metadata.cluster_coordination;
}

/** The Elasticsearch node id of the node named `name` (a member id), as node i's cluster lists it. */
export async function nodeIdOf(es: EsGet, i: number, name: string): Promise<string | undefined> {
  const nodes = await es<Array<{ id: string; name: string }>>(i, '/_cat/nodes?format=json&h=id,name&full_id=true');
  return nodes.find((n) => n.name === name)?.id;
}

/** Until node i's voting configuration no longer holds `nodeId` and no exclusion is left. */
export function votersWithout(es: EsGet, i: number, nodeId: string, budgetMs: number, everyMs: number): Promise<VotingConfig> {
  return eventually(async () => {
    const c = await votingConfig(es, i);
    return !c.last_committed_config.includes(nodeId) && c.voting_config_exclusions.length === 0 ? c : undefined;
  }, budgetMs, 'the departed node out of the voting configuration and the exclusions cleared', everyMs);
}

/**
 * Members 127.0.0.N (N in `indexes`, the first the founder) that run
 * Elasticsearch, their state dirs under one temp dir. For a single node,
 * configure() and ring.spawn(); for a cluster, form() and start() too.
 */
export class EsMembers {
  readonly base: string;
  readonly keyFile: string;
  readonly configFile: string;
  readonly gossipPort = randomPortBase();
  readonly founder: number;
  httpPort = 0;
  transportPort = 0;
  /** Every member it spawns runs with the test's hasup.toml (written by configure()). */
  readonly ring: LocalRing;
  /** Member index → member id, once formed. */
  readonly ids = new Map<number, string>();
  readonly jvms = new EsJvms();

  constructor(tmpPrefix: string, readonly indexes: number[]) {
    this.base = mkdtempSync(join(tmpdir(), tmpPrefix));
    chmodSync(this.base, 0o755);
    this.keyFile = join(this.base, 'ring.key');
    this.configFile = join(this.base, 'hasup.toml');
    this.founder = indexes[0]!;
    this.ring = new LocalRing({ baseDir: this.base, gossipPort: this.gossipPort, httpPort: this.gossipPort + 1, keyFile: this.keyFile, extraArgs: ['--config', this.configFile] });
  }

  stateDir(i: number): string {
    return join(this.base, `member-${i}`);
  }

  serviceDir(i: number): string {
    return join(this.stateDir(i), 'svc', 'elasticsearch');
  }

  /** Free HTTP and transport ports, a ring key, and hasup.toml with Elasticsearch the only service. */
  async configure(config: EsHasupConfig): Promise<void> {
    this.httpPort = await freePort();
    this.transportPort = await freePort();
    generateRingKey(this.keyFile);
    const lines = config.cluster ? ['[cluster]', ...config.cluster] : [];
    lines.push('[services]', 'load = ["elasticsearch"]', '[service.elasticsearch]', ...config.elasticsearch);
    // A nearly full CI disk must not make the test's indices read-only.
    lines.push(`http_port = ${this.httpPort}`, `transport_port = ${this.transportPort}`, 'disk_threshold_enabled = false');
    if (config.shipping) lines.push('[shipping]', ...config.shipping);
    writeFileSync(this.configFile, lines.join('\n'));
  }

  /** `hasup cluster create --name NAME` on the founder and `hasup cluster join` through it on the others (nothing runs yet). */
  form(name: string): void {
    const founderAddr = `${LocalRing.addr(this.founder)}:${this.gossipPort}`;
    for (const i of this.indexes) {
      const prepare = i === this.founder ? ['cluster', 'create', '--name', name] : ['cluster', 'join', founderAddr, '--secrets', join(this.stateDir(this.founder), 'secrets.json')];
      const made = spawnSync(process.execPath, [HASUP_BIN, ...prepare, '--advertise', `${LocalRing.addr(i)}:${this.gossipPort}`, '--state-dir', this.stateDir(i), '--print-config'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(made.status, 0, made.stderr);
      this.ids.set(i, readFileSync(join(this.stateDir(i), 'member-id'), 'utf8').trim());
    }
  }

  /** `hasup run` on every member (each joining through the founder), until each one's API listens. */
  async start(): Promise<void> {
    for (const i of this.indexes) this.ring.spawn(i, { peers: i === this.founder ? [] : [this.founder] });
    await this.ring.ready(this.indexes, 30_000);
  }
  member(i: number): MemberProc {
    return this.ring.members.get(i)!;
  }

  /** Every log line of every member so far. */
  events(): LogEvent[] {
    return [...this.ring.members.values()].flatMap((m) => m.events);
  }

  /** The member ids of `indexes`, sorted (as clusterFacts lists node names). */
  idsOf(indexes: number[]): string[] {
    return indexes.map((i) => this.ids.get(i)!).sort();
  }

  /** A hasup command on member i's state dir. */
  cli(i: number, ...args: string[]): SpawnSyncReturns<string> {
    return spawnSync(process.execPath, [HASUP_BIN, ...args, '--state-dir', this.stateDir(i)], { encoding: 'utf8', timeout: 60_000 });
  }

  /** Every listed member's node sees the same cluster with exactly these nodes, in `status`; the JVMs are noted on the way. */
  oneCluster(es: EsGet, indexes: number[], status: string, budgetMs: number, what: string): Promise<ClusterFacts> {
    const want = JSON.stringify(this.idsOf(indexes));
    return eventually(async () => {
      for (const i of indexes) this.jvms.find(this.serviceDir(i));
      const facts = await Promise.all(indexes.map((i) => clusterFacts(es, i).catch(() => undefined)));
      const first = facts[0];
      if (!first || facts.some((f) => !f || f.uuid !== first.uuid || f.status !== status || JSON.stringify(f.nodes) !== want)) return undefined;
      return first;
    }, budgetMs, what, 1000);
  }

  /** `hasup depart` of member `id` on member i, until accepted (once the ring sees the member gone). */
  depart(i: number, id: string): Promise<SpawnSyncReturns<string>> {
    return eventually(async () => {
      const r = this.cli(i, 'depart', id);
      return r.status === 0 ? r : undefined;
    }, 30_000, 'hasup depart accepted (once the ring sees the member gone)', 500);
  }

  /** Every member stopped, then any JVM of theirs still running killed by pid, and the state dirs removed. */
  async cleanup(): Promise<void> {
    await this.ring.stopAll();
    for (const i of this.indexes) this.jvms.find(this.serviceDir(i));
    this.jvms.killLeftovers();
    rmSync(this.base, { recursive: true, force: true });
  }
}
