/**
 * A PostgreSQL HA cluster for tests and the failover benchmark: N network
 * namespace nodes each running `hasup run` with PostgreSQL, one real etcd
 * on the harness host address (10.231.X.1) that every member uses through
 * [cluster] etcd_endpoints, and HAProxy in the host namespace configured by
 * `hasup gen-frontend-config --haproxy`, its writable listener checking
 * /primary on every member.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { HaView } from '../../src/supervisor/election/controller.js';
import { generateSecrets, writeSecretsFile, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import { EtcdServer } from './etcd-server.js';
import { generateRingKey, HASUP_BIN, type MemberProc } from './member-procs.js';
import { NetnsCluster } from './netns-cluster.js';
import { runCommand } from './netns/commands.js';
import type { WriteTarget } from './write-checker.js';

export const PG_PORT = 5432;
export const API_PORT = 9631;

export interface HaClusterOptions {
  nodes: number;
  /** Extra lines for [service.postgresql.ha] (e.g. synchronous_mode = true). */
  ha?: string[];
}

export class HaCluster {
  haproxy?: ChildProcess;
  haproxyPort = 0;
  private readonly etcdCut = new Set<number>();

  private constructor(
    readonly cluster: NetnsCluster,
    readonly etcd: EtcdServer,
    readonly secrets: ClusterSecrets,
    readonly secretsFile: string,
    readonly ringKey: string,
    readonly configFile: string,
  ) {}

  static async create(opts: HaClusterOptions): Promise<HaCluster> {
    const cluster = await NetnsCluster.create({ nodes: opts.nodes });
    let etcd: EtcdServer | undefined;
    try {
      const base = 20_000 + Math.floor(Math.random() * 20_000);
      etcd = await EtcdServer.start({ host: cluster.hostAddress, clientPort: base, peerPort: base + 1, dataDir: join(cluster.baseDir, 'etcd') });
      const ringKey = join(cluster.baseDir, 'ring.key');
      generateRingKey(ringKey);
      const secrets = generateSecrets();
      const secretsFile = join(cluster.baseDir, 'secrets.json');
      writeSecretsFile(secretsFile, secrets);
      const configFile = join(cluster.baseDir, 'hasup.toml');
      writeFileSync(
        configFile,
        [
          '[services]',
          'load = ["postgresql"]',
          '[cluster]',
          'etcd = false',
          `etcd_endpoints = ["${etcd.url}"]`,
          '[service.postgresql.hba]',
          `allowed_cidrs = ["${cluster.subnet}.0/24"]`,
          '[service.postgresql.ha]',
          ...(opts.ha ?? []),
          '',
        ].join('\n'),
      );
      return new HaCluster(cluster, etcd, secrets, secretsFile, ringKey, configFile);
    } catch (err) {
      await etcd?.stop();
      await cluster.destroy();
      throw err;
    }
  }

  get size(): number {
    return this.cluster.nodes.length;
  }

  address(i: number): string {
    return this.cluster.node(i).address;
  }

  member(i: number): MemberProc {
    const m = this.cluster.node(i).member;
    if (!m) throw new Error(`node ${i} has no member`);
    return m;
  }

  /** Starts (or restarts, after killNode) `hasup run` on node i. */
  startNode(i: number): MemberProc {
    const peers = this.cluster.nodes.map((n) => n.index).filter((x) => x !== i);
    return this.cluster.node(i).startMember({ ringKey: this.ringKey, secrets: this.secretsFile, peers, extraArgs: ['--config', this.configFile] });
  }

  async killNode(i: number): Promise<void> {
    await this.cluster.killNode(i);
  }

  /** HAProxy in the host namespace, configured by gen-frontend-config with every member. */
  async startHaproxy(): Promise<void> {
    this.haproxyPort = 20_000 + Math.floor(Math.random() * 20_000);
    const host = this.cluster.hostAddress;
    const members = this.cluster.nodes.map((n) => `${n.address}:${API_PORT}`).join(',');
    const gen = spawnSync(process.execPath, [HASUP_BIN, 'gen-frontend-config', '--haproxy', '--members', members, '--pg-port', String(PG_PORT), '--listen', `${host}:${this.haproxyPort}`, '--replica-listen', `${host}:${this.haproxyPort + 1}`], {
      encoding: 'utf8',
    });
    if (gen.status !== 0) throw new Error(`gen-frontend-config failed: ${gen.stderr}`);
    const file = join(this.cluster.baseDir, 'haproxy.cfg');
    writeFileSync(file, gen.stdout);
    this.haproxy = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'ignore'] });
  }

  get haproxyTarget(): WriteTarget {
    return { name: 'haproxy', host: this.cluster.hostAddress, port: this.haproxyPort };
  }

  nodeTarget(i: number): WriteTarget {
    return { name: `node${i}`, host: this.address(i), port: PG_PORT };
  }

  /** Status code of a load-balancer check on node i (0 when unreachable). */
  async check(i: number, path: string, timeoutMs = 1000): Promise<number> {
    try {
      const res = await fetch(`http://${this.address(i)}:${API_PORT}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  }

  /** Nodes whose /primary answers 200 right now. */
  async primaries(): Promise<number[]> {
    const codes = await Promise.all(this.cluster.nodes.map(async (n) => [n.index, await this.check(n.index, '/primary')] as const));
    return codes.filter(([, c]) => c === 200).map(([i]) => i);
  }

  async view(i: number): Promise<HaView> {
    return this.member(i).api<HaView>('/ha');
  }

  async sql<T extends pg.QueryResultRow = Record<string, unknown>>(i: number, text: string, params: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ host: this.address(i), port: PG_PORT, user: 'hasup', password: this.secrets.postgresql.superuser_password, database: 'postgres', connectionTimeoutMillis: 3000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<T>(text, params)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** The one node whose /primary answers 200 (none or several: keeps waiting). */
  async soleLeader(timeoutMs: number, not?: number): Promise<number> {
    return (
      await eventually(
        async () => {
          const p = await this.primaries();
          return p.length === 1 && p[0] !== not ? p[0] : undefined;
        },
        timeoutMs,
        `one writable leader${not ? ` other than node ${not}` : ''}`,
      )
    ).value;
  }

  /** Restarts any node whose member is down, then waits for one leader and every other node streaming from it. */
  async whole(timeoutMs = 120_000): Promise<number> {
    for (const n of this.cluster.nodes) {
      const m = n.member;
      if (!m || m.child.exitCode !== null || m.child.signalCode !== null) this.startNode(n.index);
    }
    const leader = await this.soleLeader(timeoutMs);
    const others = this.cluster.nodes.map((n) => n.index).filter((i) => i !== leader);
    await eventually(
      async () => {
        const rows = await this.sql<{ n: number }>(leader, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
        if (rows[0]!.n < others.length) return undefined;
        const codes = await Promise.all(others.map((i) => this.check(i, '/replica')));
        return codes.every((c) => c === 200) || undefined;
      },
      timeoutMs,
      `every follower streaming from node ${leader}`,
      250,
    );
    return leader;
  }

  /** Member id of node i (from its API). */
  async memberId(i: number): Promise<string> {
    return (await this.member(i).butterfly()).self.id;
  }

  /**
   * Cuts node i off from etcd (drops its packets to and from etcd's client
   * port) while everything else still reaches it: with the harness's
   * partition, this is a leader on the minority side of a split.
   */
  async cutFromEtcd(i: number): Promise<void> {
    const node = this.cluster.node(i);
    const rules = [
      'table inet hasup_etcd_cut {',
      `  chain out { type filter hook output priority 0; ip daddr ${this.cluster.hostAddress} tcp dport ${this.etcd.opts.clientPort} drop; }`,
      `  chain in { type filter hook input priority 0; ip saddr ${this.cluster.hostAddress} tcp sport ${this.etcd.opts.clientPort} drop; }`,
      '}',
    ].join('\n');
    await runCommand('ip', ['netns', 'exec', node.namespace, 'nft', '-f', '-'], rules);
    this.etcdCut.add(i);
  }

  async restoreEtcd(i: number): Promise<void> {
    if (!this.etcdCut.delete(i)) return;
    await runCommand('ip', ['netns', 'exec', this.cluster.node(i).namespace, 'nft', 'delete', 'table', 'inet', 'hasup_etcd_cut']);
  }

  async destroy(): Promise<void> {
    this.haproxy?.kill('SIGKILL');
    await this.cluster.destroy();
    await this.etcd.stop();
  }
}

export async function eventually<T>(check: () => Promise<T | undefined | false | null>, timeoutMs: number, what: string, everyMs = 100): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  let last = '';
  while (Date.now() - start < timeoutMs) {
    try {
      const value = await check();
      if (value !== undefined && value !== false && value !== null) return { value, ms: Date.now() - start };
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
}
