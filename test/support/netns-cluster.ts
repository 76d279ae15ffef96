/**
 * A multi-host cluster on one machine for tests: each node is a Linux network
 * namespace (what a container is, without a container engine) with its own
 * address on a bridge in the root namespace, its own state directory and its
 * own processes. The harness can power a node off (SIGKILL everything in it),
 * pull its cable, partition sets of nodes and drop a share of packets, all
 * with nftables inside the namespaces so the host is never changed.
 *
 * Layout of a run (X is picked per run so parallel or leftover runs never
 * share a subnet):
 *   bridge PREFIX+RUNID-br in the root namespace, address 10.231.X.1/24
 *   node i: namespace PREFIX+RUNID-n<i>, eth0 = 10.231.X.(10+i)/24, lo up,
 *           default route via 10.231.X.1; host end of its veth PREFIX+RUNID-v<i>
 * The root namespace (the test process, HAProxy) reaches every node directly
 * on the bridge; nodes reach the host at 10.231.X.1. Nothing is forwarded
 * beyond the bridge (the host does not route for them), and there is no DNS
 * inside: use addresses only. Each node has its own loopback, so a service
 * bound to 127.0.0.1 in a node is reachable only from inside that node. Only
 * the network is separate: the filesystem, users and pid space are shared,
 * so anything with a fixed path (unix sockets, pid or lock files) must live
 * under the node's state dir.
 *
 * Without root (or with HASUP_CLUSTER_MODE=loopback) nodes are 127.231.X.(10+i)
 * in the root namespace: processes run the same way, but network faults throw
 * a "needs root" error (see `supportsFaults`).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_HTTP_PORT } from '../../src/cli/run.js';
import { HASUP_BIN, HASUP_NODE_ARGS, MemberProc } from './member-procs.js';
import { commandExists, runCommand, runCommandSync, runCommandSyncQuiet, sleepSync } from './netns/commands.js';
import { droppedPacketsFromJson, FAULT_TABLE, hasFaults, noFaults, renderFaultScript, type NodeFaults } from './netns/fault-rules.js';
import { listLinks, listNamespaces, liveMarkers, namespacePids, processStartTime, removeMarker, sweepOrphans, writeMarker } from './netns/ownership.js';

export type ClusterMode = 'netns' | 'loopback';

export interface NetnsClusterOptions {
  /** Start of every namespace and link name; at most 5 characters (Linux caps link names at 15). */
  prefix?: string;
  nodes: number;
  /** First three octets of the /24, e.g. "10.231.7"; default 10.231.X (netns) or 127.231.X (loopback) with a free random X. */
  subnet?: string;
  /** Default: netns when root with ip and nft available, else loopback; HASUP_CLUSTER_MODE overrides. */
  mode?: ClusterMode;
  /** Where the nodes' state directories go; default a fresh dir under the OS temp dir, removed by destroy(). */
  baseDir?: string;
}

export const DEFAULT_PREFIX = 'hsp-';

/** Why namespaces cannot be used here, or null when they can. */
export function netnsUnavailableReason(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const tool of ['ip', 'nft']) {
    if (!commandExists(tool)) return `\`${tool}\` is not installed (apt-get install -y --no-install-recommends iproute2 nftables)`;
  }
  return null;
}

/**
 * A `hasup` process on a node: LocalRing's MemberProc (JSON log events,
 * exit, stop) whose API calls carry the cluster's bearer token, read from
 * the secrets file the member uses.
 */
/** A member started by the harness: MemberProc knows its secrets file and speaks the token. */
export type HasupMember = MemberProc;

export class ClusterNode {
  /** Processes started on this node through exec()/spawnHasup(), alive or not. */
  readonly children: ChildProcess[] = [];
  readonly members: HasupMember[] = [];
  faults: NodeFaults = noFaults();

  constructor(
    private readonly cluster: NetnsCluster,
    /** 1-based. */
    readonly index: number,
    /** Network namespace name (netns mode only). */
    readonly namespace: string,
    /** Host end of the node's veth (netns mode only). */
    readonly vethName: string,
    readonly address: string,
    readonly stateDir: string,
  ) {}

  /** Spawns a command inside this node (its namespace; plain spawn in loopback mode). */
  exec(cmd: string, args: string[] = [], opts: SpawnOptions = {}): ChildProcess {
    this.cluster.assertAlive();
    const child =
      this.cluster.mode === 'netns'
        ? // `ip netns exec` execs the command in place: the pid is the command's own.
          spawn('ip', ['netns', 'exec', this.namespace, cmd, ...args], opts)
        : spawn(cmd, args, opts);
    this.children.push(child);
    return child;
  }

  /**
   * `hasup ARGS...` inside this node with HASUP_STATE_DIR set to the node's
   * state directory, watched like LocalRing's members (JSON log events,
   * authenticated API calls over HTTP from the host).
   */
  spawnHasup(args: string[], opts: { env?: NodeJS.ProcessEnv; httpPort?: number } = {}): HasupMember {
    const child = this.exec(process.execPath, [...HASUP_NODE_ARGS, HASUP_BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HASUP_STATE_DIR: this.stateDir, ...opts.env },
    });
    const secretsFile = flagValue(args, '--secrets') ?? join(this.stateDir, 'secrets.json');
    const member = new MemberProc(this.index, this.address, opts.httpPort ?? httpPortOf(args), child, secretsFile);
    this.members.push(member);
    return member;
  }

  /**
   * `hasup run` on this node with gossip on ADDRESS:9638 and the HTTP API on
   * ADDRESS:9631 (every node has its own address, so default ports never
   * clash). Pass the cluster's shared `secrets` file as a real cluster does;
   * without it the member makes its own in its state dir.
   */
  startMember(o: { ringKey: string; secrets?: string; peers?: number[]; extraArgs?: string[]; env?: NodeJS.ProcessEnv }): HasupMember {
    const args = ['run', '--advertise', this.address, '--ring-key', o.ringKey, '--state-dir', this.stateDir];
    if (o.secrets) args.push('--secrets', o.secrets);
    for (const p of o.peers ?? []) args.push('--peer', this.cluster.node(p).address);
    return this.spawnHasup([...args, ...(o.extraArgs ?? [])], { env: o.env });
  }

  /** The newest member process started on this node. */
  get member(): HasupMember | undefined {
    return this.members[this.members.length - 1];
  }

  /** Pids of every process in the node's namespace (netns), or of its live spawned children (loopback). */
  pids(): number[] {
    if (this.cluster.mode === 'netns') return namespacePids(this.namespace);
    return this.children.filter((c) => c.exitCode === null && c.signalCode === null && c.pid !== undefined).map((c) => c.pid!);
  }
}

function flagValue(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at >= 0 ? args[at + 1] : undefined;
}

function httpPortOf(args: string[]): number {
  const value = flagValue(args, '--listen-http');
  const port = value ? Number(value.slice(value.lastIndexOf(':') + 1)) : NaN;
  return Number.isInteger(port) && port > 0 ? port : DEFAULT_HTTP_PORT;
}

const liveClusters = new Set<NetnsCluster>();
let exitHooksInstalled = false;

/** Safety net: a test process that exits or is interrupted without destroy() still cleans up. */
function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const c of liveClusters) c.destroySync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      for (const c of liveClusters) c.destroySync();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

export class NetnsCluster {
  readonly nodes: ClusterNode[] = [];
  /** Address of the root namespace as the nodes see it (the bridge). */
  readonly hostAddress: string;
  readonly bridgeName: string;
  private destroyed = false;
  /** Processes in the root namespace that serve this cluster (HAProxy): killed with it, even on SIGINT. */
  private readonly hostProcesses: ChildProcess[] = [];

  private constructor(
    readonly mode: ClusterMode,
    readonly prefix: string,
    readonly runId: string,
    readonly subnet: string,
    readonly baseDir: string,
    private readonly ownsBaseDir: boolean,
    nodeCount: number,
  ) {
    const name = (role: string) => `${prefix}${runId}-${role}`;
    this.bridgeName = name('br');
    this.hostAddress = mode === 'netns' ? `${subnet}.1` : '127.0.0.1';
    for (let i = 1; i <= nodeCount; i++) {
      const stateDir = join(baseDir, `node-${i}`);
      mkdirSync(stateDir, { recursive: true, mode: 0o755 });
      this.nodes.push(new ClusterNode(this, i, name(`n${i}`), name(`v${i}`), `${subnet}.${10 + i}`, stateDir));
    }
  }

  static async create(opts: NetnsClusterOptions): Promise<NetnsCluster> {
    const prefix = opts.prefix ?? DEFAULT_PREFIX;
    if (!/^[a-z][a-z0-9-]{0,4}$/.test(prefix)) throw new Error(`prefix "${prefix}" must be 1-5 lowercase letters, digits or dashes`);
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 99) throw new Error('nodes must be 1-99');
    const forced = process.env.HASUP_CLUSTER_MODE || undefined;
    if (forced !== undefined && forced !== 'netns' && forced !== 'loopback') throw new Error(`HASUP_CLUSTER_MODE must be netns or loopback, got "${forced}"`);
    const mode = opts.mode ?? forced ?? (netnsUnavailableReason() === null ? 'netns' : 'loopback');
    if (mode === 'netns') {
      const reason = netnsUnavailableReason();
      if (reason) throw new Error(`cannot build a namespace cluster: ${reason}`);
    }
    const runId = randomBytes(3).toString('hex');
    const subnet = opts.subnet ?? (mode === 'netns' ? freeSubnet('10.231', prefix) : freeSubnet('127.231', prefix));
    if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnet)) throw new Error(`subnet "${subnet}" must be three octets, e.g. 10.231.7`);
    const ownsBaseDir = opts.baseDir === undefined;
    const baseDir = opts.baseDir ?? mkdtempSync(join(tmpdir(), 'hasup-cluster-'));
    // Services run as their own users (PostgreSQL refuses root) and must reach their state dirs.
    chmodSync(baseDir, 0o755);
    const cluster = new NetnsCluster(mode, prefix, runId, subnet, baseDir, ownsBaseDir, opts.nodes);
    liveClusters.add(cluster);
    installExitHooks();
    if (mode === 'netns') {
      sweepOrphans(prefix);
      // Claim the names before creating anything, so a crash at any point leaves only orphans a later sweep removes.
      writeMarker({ pid: process.pid, startTime: processStartTime(process.pid) ?? '', prefix, runId, subnet, ownedDir: ownsBaseDir ? baseDir : undefined });
      try {
        await cluster.build();
      } catch (err) {
        await cluster.destroy();
        throw err;
      }
    }
    return cluster;
  }

  private async build(): Promise<void> {
    const ip = (...args: string[]) => runCommand('ip', args);
    await ip('link', 'add', this.bridgeName, 'type', 'bridge');
    await ip('addr', 'add', `${this.hostAddress}/24`, 'dev', this.bridgeName);
    await ip('link', 'set', this.bridgeName, 'up');
    for (const n of this.nodes) {
      await ip('netns', 'add', n.namespace);
      await ip('link', 'add', n.vethName, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.namespace);
      await ip('link', 'set', n.vethName, 'master', this.bridgeName, 'up');
      await ip('-n', n.namespace, 'addr', 'add', `${n.address}/24`, 'dev', 'eth0');
      await ip('-n', n.namespace, 'link', 'set', 'lo', 'up');
      await ip('-n', n.namespace, 'link', 'set', 'eth0', 'up');
      await ip('-n', n.namespace, 'route', 'add', 'default', 'via', this.hostAddress);
    }
  }

  /** 1-based, like the addresses (.11 is node 1). */
  node(i: number): ClusterNode {
    const n = this.nodes[i - 1];
    if (!n) throw new Error(`no node ${i} (cluster has ${this.nodes.length})`);
    return n;
  }

  get supportsFaults(): boolean {
    return this.mode === 'netns';
  }

  assertAlive(): void {
    if (this.destroyed) throw new Error('the cluster has been destroyed');
  }

  /**
   * Powers node i off: SIGKILL every process in its namespace (the member and
   * all its children, whatever their process group or user) and waits until
   * none is left. The namespace, its address and state dir stay: start a
   * member again to "reboot" it. In loopback mode only the processes started
   * through this node are killed (their own children may survive).
   */
  async killNode(i: number, timeoutMs = 10_000): Promise<void> {
    this.assertAlive();
    const node = this.node(i);
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const pids = node.pids();
      if (pids.length === 0) break;
      if (Date.now() > deadline) throw new Error(`node ${i}: processes ${pids.join(', ')} survived SIGKILL for ${timeoutMs} ms`);
      for (const pid of pids) killQuietly(pid, 'SIGKILL');
      await sleep(20);
    }
    await Promise.all(node.members.map((m) => m.exited));
  }

  /** Pulls node i's cable: everything but loopback is dropped, both ways, including the host's traffic. */
  async isolate(i: number): Promise<void> {
    await this.changeFaults(i, (f) => (f.isolated = true));
  }

  /** Plugs node i's cable back in (partitions and loss set separately stay). */
  async heal(i: number): Promise<void> {
    await this.changeFaults(i, (f) => (f.isolated = false));
  }

  /**
   * Nodes in `a` and nodes in `b` can no longer exchange packets; each side
   * still reaches its own side and the host (so HAProxy in the root namespace
   * sees both sides, as a load balancer between two halves of a split DC would).
   */
  async partition(a: number[], b: number[]): Promise<void> {
    if (a.some((x) => b.includes(x))) throw new Error(`partition sides overlap: [${a}] / [${b}]`);
    const addresses = (side: number[]) => side.map((x) => this.node(x).address);
    for (const x of a) await this.changeFaults(x, (f) => addresses(b).forEach((addr) => f.blocked.add(addr)));
    for (const y of b) await this.changeFaults(y, (f) => addresses(a).forEach((addr) => f.blocked.add(addr)));
  }

  /** Drops pct % of node i's packets, independently on the way in and out (0 turns it off). */
  async loss(i: number, pct: number): Promise<void> {
    if (!Number.isInteger(pct) || pct < 0 || pct > 99) throw new Error(`loss must be an integer percentage 0-99, got ${pct}`);
    await this.changeFaults(i, (f) => (f.lossPct = pct));
  }

  /** Removes every fault from node i, or from all nodes. */
  async clearFaults(i?: number): Promise<void> {
    for (const n of i === undefined ? this.nodes : [this.node(i)]) {
      if (!hasFaults(n.faults) && i === undefined) continue;
      await this.changeFaults(n.index, (f) => {
        f.isolated = false;
        f.blocked.clear();
        f.lossPct = 0;
      });
    }
  }

  private async changeFaults(i: number, change: (f: NodeFaults) => void): Promise<void> {
    this.assertAlive();
    if (!this.supportsFaults) {
      throw new Error('network fault injection needs root (network namespaces + nftables); this cluster runs on loopback addresses');
    }
    const node = this.node(i);
    const next: NodeFaults = { ...node.faults, blocked: new Set(node.faults.blocked) };
    change(next);
    await runCommand('ip', ['netns', 'exec', node.namespace, 'nft', '-f', '-'], renderFaultScript(next));
    node.faults = next;
  }

  /** Packets node i's fault rules have dropped since they were last replaced (0 without faults). */
  async droppedPackets(i: number): Promise<number> {
    const node = this.node(i);
    if (!this.supportsFaults || !hasFaults(node.faults)) return 0;
    return droppedPacketsFromJson(await runCommand('ip', ['netns', 'exec', node.namespace, 'nft', '-j', 'list', 'table', 'inet', FAULT_TABLE]));
  }

  /**
   * Names of this run's namespaces, bridge and veths that exist right now
   * (empty after destroy()).
   */
  leftovers(): string[] {
    if (this.mode !== 'netns') return [];
    const mine = (name: string) => name.startsWith(`${this.prefix}${this.runId}-`);
    return [...listNamespaces().filter(mine), ...listLinks().filter(mine)];
  }

  /** Kills everything in the nodes and removes namespaces, veths, bridge and state. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroySync();
    // Let the event loop reap the killed children so the test process holds no handles.
    await Promise.all(
      this.nodes.flatMap((n) =>
        n.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))),
      ),
    );
  }

  /** Ties a process of the root namespace to this cluster: destroy() and the exit hooks kill it. */
  adoptHostProcess(child: ChildProcess): void {
    this.hostProcesses.push(child);
  }

  /** The same teardown without awaiting anything, for the process-exit hook. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveClusters.delete(this);
    if (this.mode === 'netns') {
      for (let round = 0; round < 250; round++) {
        const pids = this.nodes.flatMap((n) => namespacePids(n.namespace));
        if (pids.length === 0) break;
        for (const pid of pids) killQuietly(pid, 'SIGKILL');
        sleepSync(20);
      }
      // The host end takes its peer with it; deleting links first means no device outlives a lingering namespace.
      for (const n of this.nodes) runCommandSyncQuiet('ip', ['link', 'delete', n.vethName]);
      for (const n of this.nodes) runCommandSyncQuiet('ip', ['netns', 'delete', n.namespace]);
      runCommandSyncQuiet('ip', ['link', 'delete', this.bridgeName]);
      removeMarker(this.prefix, this.runId);
    } else {
      for (const n of this.nodes) for (const pid of n.pids()) killQuietly(pid, 'SIGKILL');
    }
    for (const child of this.hostProcesses) if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) killQuietly(child.pid, 'SIGKILL');
    if (this.ownsBaseDir && !process.env.HASUP_KEEP_CLUSTER_STATE) rmSync(this.baseDir, { recursive: true, force: true });
  }
}

/** A random 10.231.X (or 127.231.X) that no address on this host and no live run uses. */
function freeSubnet(base: string, prefix: string): string {
  const used = new Set(liveMarkers(prefix).map((m) => m.subnet));
  if (base.startsWith('10.')) {
    try {
      const out = runCommandSync('ip', ['-j', '-4', 'addr', 'show']);
      for (const link of JSON.parse(out) as Array<{ addr_info?: Array<{ local: string }> }>) {
        for (const a of link.addr_info ?? []) used.add(a.local.split('.').slice(0, 3).join('.'));
      }
    } catch {
      // No ip tool: the netns mode has already refused to run.
    }
  }
  for (let tries = 0; tries < 500; tries++) {
    const candidate = `${base}.${1 + Math.floor(Math.random() * 254)}`;
    if (!used.has(candidate)) return candidate;
  }
  throw new Error(`no free subnet under ${base}.0.0/16`);
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
