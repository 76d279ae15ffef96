/**
 * A PostgreSQL HA cluster for tests and the failover benchmark, formed the
 * way an operator forms one: `hasup cluster create` on node 1 and
 * `hasup cluster join` on every other node (each writes its own hasup.toml,
 * pg_hba included), then `hasup run --config` on each. The first three
 * members run etcd voting members, so killing a node takes its etcd member
 * down with it. HAProxy runs in the host namespace, configured by
 * `hasup gen-frontend-config --haproxy`, its writable listener checking
 * /primary on every member.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach } from 'node:test';
import pg from 'pg';
import type { HaView } from '../../src/ha/index.js';
import { esAccess, esRequestExtras } from '../../src/plugins/elasticsearch/access.js';
import { textRequest } from '../../src/plugins/http-json.js';
import { resolveServiceUser } from '../../src/supervisor/process-runner.js';
import { loadSecretsFile, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import { HASUP_BIN, type MemberProc } from './member-procs.js';
import { NetnsCluster, type ClusterNode } from './netns-cluster.js';
import { memberClientTls, tlsRequest } from './tls-request.js';
import type { WriteTarget } from './write-checker.js';

export const PG_PORT = 5432;
export const API_PORT = 9631;
/** plans/etcd's client port, on every voter's own address. */
export const ETCD_CLIENT_PORT = 2379;
/** plans/elasticsearch's HTTP port (HaClusterOptions.elasticsearch). */
export const ES_HTTP_PORT = 9200;

export interface HaClusterOptions {
  nodes: number;
  /** Extra lines for [service.postgresql.ha] (e.g. synchronous_mode = true). */
  ha?: string[];
  /** Extra lines for [service.etcd] (e.g. election_timeout_ms = 1000). */
  etcd?: string[];
  /**
   * Backups on: a repository directory every node shares (BASEDIR/backup-repo,
   * owned by the PostgreSQL service user `hasup`, as an operator would mount
   * one), named as [service.postgresql.backup] repo_path in each node's
   * hasup.toml, with these extra lines (e.g. cipher = true).
   */
  backup?: { settings?: string[]; repo?: string };
  /**
   * Elasticsearch on node 1 (the founder: `--service elasticsearch`, a 320 MiB
   * heap, disk watermarks off), reached over HTTP at node 1's address on
   * ES_HTTP_PORT. Its transport binds the namespace's loopback
   * ([extra] transport.host): bound to the node's address Elasticsearch would
   * enforce its bootstrap checks, whose 65535 open files the test machines
   * cannot give (docs/elasticsearch.md), so it is a cluster of one node.
   * `snapshots`: a snapshot repository (BASEDIR/es-snapshots, owned by the
   * service user) named as [service.elasticsearch.snapshot] repo_path.
   * `security`: written as `security = ...` in every node's
   * [service.elasticsearch] (the nodes without Elasticsearch ship into node
   * 1's and must agree with it); absent, the plan's default ("auto": on, as
   * these clusters have a CA: HTTPS with the cluster CA and hasup's users,
   * docs/elasticsearch.md). HaCluster.es() reaches it either way.
   */
  elasticsearch?: { snapshots?: boolean; settings?: string[]; security?: boolean };
  /**
   * A standby cluster (warm spare) of another: `cluster create --standby-of
   * ENDPOINT --primary-secrets FILE` (the primary cluster's HAProxy write
   * port and secrets file).
   */
  standbyOf?: { endpoint: string; primarySecrets: string };
  /**
   * A warm spare kept current from a copy of the primary cluster's
   * repository: `cluster create --standby-of-repo REPO --primary-secrets
   * FILE [--restore-schedule CRON]`.
   */
  standbyOfRepo?: { repo: string; primarySecrets: string; schedule?: string };
  /**
   * Node 1 prepared by `hasup restore --to-new-cluster --repo REPO
   * --source-secrets FILE TARGET...` instead of `cluster create` (the
   * others join it as usual).
   */
  restoreFrom?: { repo: string; sourceSecrets: string; target: string[] };
}

/** What etcd's maintenance/status says on one voter. */
export interface EtcdVoterStatus {
  /** etcd's own id of this voter. */
  memberId: string;
  /** etcd's id of the voter that leads raft ('' or '0' when none). */
  leaderId: string;
  raftTerm: number;
}

/** A command run to completion inside a node, its output collected. */
export function runIn(node: ClusterNode, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = node.exec(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A `hasup` command run to completion inside a node. */
export function hasupIn(node: ClusterNode, args: string[]): ReturnType<typeof runIn> {
  return runIn(node, process.execPath, [HASUP_BIN, ...args]);
}

export class HaCluster {
  haproxy?: ChildProcess;
  haproxyPort = 0;
  /** [service.elasticsearch] security as the nodes have it (HaClusterOptions.elasticsearch). */
  esSecurity: boolean | 'auto' = 'auto';

  /**
   * A request to node 1's Elasticsearch as hasup's admin user: over HTTPS
   * verified against the cluster CA when its security is on (the default),
   * in clear text when the cluster asked for it off. Throws on a non-2xx
   * answer, naming it.
   */
  async es<T>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const caFile = this.secrets.tls ? join(this.cluster.node(1).stateDir, 'tls', 'ca.pem') : undefined;
    const how = esAccess({ cfg: { security: this.esSecurity }, secrets: this.secrets, caFile }, 'admin');
    const r = await textRequest(method, `${how.scheme}://${this.address(1)}:${ES_HTTP_PORT}${path}`, AbortSignal.timeout(10_000), body, esRequestExtras(how));
    if (r.status < 200 || r.status >= 300) throw new Error(`Elasticsearch ${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
    return JSON.parse(r.text) as T;
  }

  /** The leader VIP, once enableVip() set it. */
  vip: string | undefined;

  private constructor(
    readonly cluster: NetnsCluster,
    readonly secrets: ClusterSecrets,
    readonly secretsFile: string,
    /** The shared backup repository (HaClusterOptions.backup), if any. */
    readonly backupRepo?: string,
    /** The Elasticsearch snapshot repository (HaClusterOptions.elasticsearch.snapshots), if any. */
    readonly esSnapshotRepo?: string,
  ) {}

  static async create(opts: HaClusterOptions): Promise<HaCluster> {
    const cluster = await NetnsCluster.create({ nodes: opts.nodes });
    try {
      /** A directory every node shares, owned by the service user, as an operator would mount one. */
      const sharedDir = async (name: string) => {
        const dir = join(cluster.baseDir, name);
        mkdirSync(dir, { mode: 0o750 });
        const user = await resolveServiceUser('hasup');
        chownSync(dir, user.uid, user.gid);
        return dir;
      };
      let repo: string | undefined;
      if (opts.backup?.repo) repo = opts.backup.repo;
      else if (opts.backup) repo = await sharedDir('backup-repo');
      const esSnapshots = opts.elasticsearch?.snapshots ? await sharedDir('es-snapshots') : undefined;
      const configOf = (i: number) => join(cluster.node(i).stateDir, 'hasup.toml');
      const prepare = async (i: number, args: string[]) => {
        const node = cluster.node(i);
        const es = opts.elasticsearch && i === 1;
        const r = await hasupIn(node, [...args, '--advertise', node.address, '--state-dir', node.stateDir, '--config', configOf(i), '--service', 'postgresql', ...(es ? ['--service', 'elasticsearch'] : [])]);
        if (r.code !== 0) throw new Error(`node ${i}: hasup ${args.slice(0, 2).join(' ')} failed: ${r.stderr}`);
        const extra = [
          ...(opts.ha?.length ? ['[service.postgresql.ha]', ...opts.ha] : []),
          ...(repo ? ['[service.postgresql.backup]', `repo_path = ${JSON.stringify(repo)}`, ...(opts.backup?.settings ?? [])] : []),
          ...(opts.etcd?.length ? ['[service.etcd]', ...opts.etcd] : []),
          ...(es
            ? [
                '[service.elasticsearch]',
                'heap = "320m"',
                'disk_threshold_enabled = false',
                ...(opts.elasticsearch?.security !== undefined ? [`security = ${opts.elasticsearch.security}`] : []),
                ...(opts.elasticsearch?.settings ?? []),
                '[service.elasticsearch.extra]',
                '"transport.host" = "127.0.0.1"',
                ...(esSnapshots ? ['[service.elasticsearch.snapshot]', `repo_path = ${JSON.stringify(esSnapshots)}`] : []),
              ]
            : opts.elasticsearch?.security !== undefined
              ? ['[service.elasticsearch]', `security = ${opts.elasticsearch.security}`]
              : []),
        ];
        if (extra.length > 0) appendFileSync(configOf(i), `\n${extra.join('\n')}\n`);
      };
      const spare = opts.standbyOfRepo;
      await prepare(
        1,
        opts.restoreFrom
          ? ['restore', '--to-new-cluster', '--repo', opts.restoreFrom.repo, '--source-secrets', opts.restoreFrom.sourceSecrets, ...opts.restoreFrom.target]
          : [
              'cluster',
              'create',
              ...(opts.standbyOf ? ['--standby-of', opts.standbyOf.endpoint, '--primary-secrets', opts.standbyOf.primarySecrets] : []),
              ...(spare ? ['--standby-of-repo', spare.repo, '--primary-secrets', spare.primarySecrets, ...(spare.schedule ? ['--restore-schedule', spare.schedule] : [])] : []),
            ],
      );
      const secretsFile = join(cluster.node(1).stateDir, 'secrets.json');
      // Joins may run in parallel, as the operator's may.
      const others = cluster.nodes.map((n) => n.index).filter((i) => i !== 1);
      await Promise.all(others.map((i) => prepare(i, ['cluster', 'join', cluster.node(1).address, '--secrets', secretsFile])));
      const ha = new HaCluster(cluster, loadSecretsFile(secretsFile), secretsFile, repo, esSnapshots);
      ha.esSecurity = opts.elasticsearch?.security ?? 'auto';
      return ha;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  /** The hasup.toml `cluster create|join` wrote for node i. */
  configFile(i: number): string {
    return join(this.cluster.node(i).stateDir, 'hasup.toml');
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

  /** Starts (or restarts, after killNode) `hasup run --config` on node i, as its systemd unit would. */
  startNode(i: number): MemberProc {
    if (this.restartingNodes.has(i)) return this.startRestarting(i);
    return this.cluster.node(i).spawnHasup(['run', '--config', this.configFile(i)]);
  }

  /** Nodes whose hasup is started again when it exits by itself with 0 (restartOnExit). */
  private readonly restartingNodes = new Set<number>();

  /**
   * From now on node i's hasup runs as under its systemd unit's
   * Restart=always: with HASUP_RESTARTED_BY set (so `hasup upgrade hasup`
   * may restart it) and started again one second after it exits with 0 by
   * itself (not after killNode, whose SIGKILL gives no exit code).
   */
  restartOnExit(i: number): void {
    this.restartingNodes.add(i);
  }

  private startRestarting(i: number): MemberProc {
    const member = this.cluster.node(i).spawnHasup(['run', '--config', this.configFile(i)], { env: { HASUP_RESTARTED_BY: 'the test harness' } });
    void member.exited.then(async (code) => {
      if (code !== 0 || this.destroying) return;
      await new Promise((r) => setTimeout(r, 1000));
      if (!this.destroying) this.startRestarting(i);
    });
    return member;
  }

  private destroying = false;

  async killNode(i: number): Promise<void> {
    await this.cluster.killNode(i);
  }

  /** HAProxy in the host namespace, configured by gen-frontend-config with every member. */
  async startHaproxy(): Promise<void> {
    this.haproxyPort = 20_000 + Math.floor(Math.random() * 20_000);
    const host = this.cluster.hostAddress;
    const members = this.cluster.nodes.map((n) => `${n.address}:${API_PORT}`).join(',');
    // The checks verify each member's API certificate against the cluster CA (docs/tls.md).
    const tls = this.secrets.tls ? ['--check-ca', join(this.cluster.node(1).stateDir, 'tls', 'ca.pem')] : ['--no-check-ssl'];
    const gen = spawnSync(process.execPath, [HASUP_BIN, 'gen-frontend-config', '--haproxy', '--members', members, '--pg-port', String(PG_PORT), '--listen', `${host}:${this.haproxyPort}`, '--replica-listen', `${host}:${this.haproxyPort + 1}`, ...tls], {
      encoding: 'utf8',
    });
    if (gen.status !== 0) throw new Error(`gen-frontend-config failed: ${gen.stderr}`);
    const file = join(this.cluster.baseDir, 'haproxy.cfg');
    writeFileSync(file, gen.stdout);
    this.haproxy = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'ignore'] });
    this.cluster.adoptHostProcess(this.haproxy);
  }

  /**
   * Gives every node's hasup.toml the leader VIP (docs/vip.md): address .100
   * of the bridge's /24 on each node's eth0. Before the nodes start. Returns
   * the VIP (no prefix).
   */
  enableVip(): string {
    const vip = `${this.cluster.hostAddress.split('.').slice(0, 3).join('.')}.100`;
    for (const n of this.cluster.nodes) {
      // The [cluster] table cluster create/join wrote gets the VIP (a second [cluster] table would be a TOML error).
      const file = this.configFile(n.index);
      writeFileSync(file, readFileSync(file, 'utf8').replace(/^\[cluster\]\n/m, `[cluster]\nvip = "${vip}/24"\nvip_interface = "eth0"\n`));
    }
    this.vip = vip;
    return vip;
  }

  /** Writes through the leader VIP (after enableVip), with TLS as through HAProxy (no member certificate names the VIP). */
  get vipTarget(): WriteTarget {
    if (this.vip === undefined) throw new Error('enableVip() first');
    return { name: 'vip', host: this.vip, port: PG_PORT, movingAddress: true, ...(this.secrets.tls ? { ca: this.secrets.tls.ca_cert, verifyHost: false } : {}) };
  }

  /**
   * Node i "loses power": every process killed, then its link taken down, as
   * a dead machine's goes (the namespace's kernel would otherwise go on
   * answering ARP for an address left on eth0, the VIP among them).
   */
  async powerOff(i: number): Promise<void> {
    await this.killNode(i);
    spawnSync('ip', ['-n', this.cluster.node(i).namespace, 'link', 'set', 'eth0', 'down']);
  }

  /** Node i back on after powerOff: its link up, without the addresses a reboot would not keep (the VIP). */
  powerOn(i: number): void {
    const ns = this.cluster.node(i).namespace;
    if (this.vip !== undefined) spawnSync('ip', ['-n', ns, 'addr', 'del', `${this.vip}/24`, 'dev', 'eth0']);
    spawnSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  }

  get haproxyTarget(): WriteTarget {
    // Sessions pass through HAProxy to the leader with TLS end to end; no member certificate names HAProxy's address.
    return { name: 'haproxy', host: this.cluster.hostAddress, port: this.haproxyPort, ...(this.secrets.tls ? { ca: this.secrets.tls.ca_cert, verifyHost: false } : {}) };
  }

  nodeTarget(i: number): WriteTarget {
    return { name: `node${i}`, host: this.address(i), port: PG_PORT, ...(this.secrets.tls ? { ca: this.secrets.tls.ca_cert } : {}) };
  }

  /** Status code of a load-balancer check on node i (0 when unreachable). */
  async check(i: number, path: string, timeoutMs = 1000): Promise<number> {
    try {
      return (await tlsRequest(`${this.apiScheme}://${this.address(i)}:${API_PORT}${path}`, { timeoutMs, ...this.caOption })).status;
    } catch {
      return 0;
    }
  }

  /** The members' API and etcd serve TLS when the cluster has a CA (every cluster made by cluster create; docs/tls.md). */
  get apiScheme(): 'http' | 'https' {
    return this.secrets.tls ? 'https' : 'http';
  }

  /** The cluster CA for a client that only verifies the server (the API, PostgreSQL). */
  private get caOption(): { tls?: { ca: string } } {
    return this.secrets.tls ? { tls: { ca: this.secrets.tls.ca_cert } } : {};
  }

  /** An etcd request to node i's voter, presenting node i's member certificate (etcd asks for one under TLS). */
  private etcdRequest(i: number, path: string, body: unknown, timeoutMs: number) {
    const tls = this.secrets.tls ? memberClientTls(this.cluster.node(i).stateDir) : undefined;
    return tlsRequest(`${this.apiScheme}://${this.address(i)}:${ETCD_CLIENT_PORT}${path}`, { method: 'POST', body, timeoutMs, ...(tls ? { tls } : {}) });
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
    // pg_hba takes remote sessions over TLS only; the server's certificate names its address.
    const ssl = this.secrets.tls ? { ca: this.secrets.tls.ca_cert } : false;
    const c = new pg.Client({ host: this.address(i), port: PG_PORT, user: 'hasup', password: this.secrets.postgresql.superuser_password, database: 'postgres', connectionTimeoutMillis: 3000, ssl });
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

  /**
   * A standby cluster's leader node, once it streams from the primary
   * cluster (role standby_leader) and every other node streams from it.
   */
  async standbyWhole(timeoutMs: number): Promise<number> {
    const nodes = this.cluster.nodes.map((n) => n.index);
    return (
      await eventually(
        async () => {
          const views = await Promise.all(nodes.map((i) => this.view(i).catch(() => undefined)));
          const v = views.find((x) => x?.leader);
          if (!v) return undefined;
          const leader = v.members.find((m) => m.member === v.leader);
          if (leader?.role !== 'standby_leader' || leader.replication_state !== 'streaming') return undefined;
          const followers = v.members.filter((m) => m.member !== v.leader);
          if (followers.length !== nodes.length - 1 || !followers.every((m) => m.role === 'replica' && m.replication_state === 'streaming' && m.upstream === v.leader)) return undefined;
          return nodes.find((_, k) => views[k]?.member_id === v.leader);
        },
        timeoutMs,
        'a standby leader streaming from the primary cluster, every other member streaming from it',
        500,
      )
    ).value;
  }

  /** Every member's log (its events and stderr, every run of it) into DIR/PREFIX-node<i>-<pid>.log. */
  saveMemberLogs(dir: string, prefix = ''): void {
    for (const n of this.cluster.nodes) {
      for (const m of n.members) writeFileSync(join(dir, `${prefix}node${n.index}-${m.pid}.log`), [...m.events.map((e) => JSON.stringify(e)), ...m.stderr].join('\n'));
    }
  }

  /** Restarts any node whose member is down, then waits for one leader and every other node streaming from it. */
  async whole(timeoutMs = 120_000): Promise<number> {
    for (const n of this.cluster.nodes) {
      const m = n.member;
      if (!m || m.child.exitCode !== null || m.child.signalCode !== null) this.startNode(n.index);
    }
    // The leader is looked up on every poll: the one seen first may lose its key before the followers stream from it.
    const { value: leader } = await eventually(
      async () => {
        const p = await this.primaries();
        if (p.length !== 1) return undefined;
        const leader = p[0]!;
        const others = this.cluster.nodes.map((n) => n.index).filter((i) => i !== leader);
        const rows = await this.sql<{ n: number }>(leader, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
        if (rows[0]!.n < others.length) return undefined;
        const codes = await Promise.all(others.map((i) => this.check(i, '/replica')));
        return codes.every((c) => c === 200) ? leader : undefined;
      },
      timeoutMs,
      'one writable leader and every follower streaming from it',
      250,
    );
    await this.etcdWhole(timeoutMs);
    return leader;
  }

  /**
   * Waits until every node runs its etcd voter and all agree on one raft
   * leader. PostgreSQL can be up before the last voter has been added
   * (etcd refuses an add until its members have been connected for a few
   * seconds), and a scenario that kills a node of a two-voter etcd tests
   * a lost quorum, not a lost node.
   */
  async etcdWhole(timeoutMs = 60_000): Promise<void> {
    await eventually(
      async () => {
        const answers = await Promise.all(this.cluster.nodes.map((n) => this.etcdStatus(n.index).catch(() => undefined)));
        const leaders = new Set(answers.map((a) => a?.leaderId));
        return (answers.every((a) => a !== undefined) && leaders.size === 1 && !leaders.has('') && !leaders.has('0')) || undefined;
      },
      timeoutMs,
      'an etcd voter on every node, all agreeing on one raft leader',
      250,
    ).catch(async (err: unknown) => {
      // What each member says of its etcd (role, attempts, last error): the reason is in there.
      const seen = await Promise.all(
        this.cluster.nodes.map(async (n) => {
          const status = await this.etcdStatus(n.index).then(
            (a) => `raft leader ${a.leaderId}`,
            (e: Error) => `no status (${e.message})`,
          );
          const etcd = await this.member(n.index)
            .api<Record<string, unknown>>('/etcd')
            .then((v) => JSON.stringify({ role: v.role, attempts: v.attempts, last_error: v.last_error, voters: Array.isArray(v.voters) ? v.voters.length : v.voters }))
            .catch((e: Error) => e.message);
          return `node ${n.index}: ${status}; /etcd ${etcd}`;
        }),
      );
      throw new Error(`${(err as Error).message}\n${seen.join('\n')}`);
    });
  }

  /** Member id of node i (from its API). */
  async memberId(i: number): Promise<string> {
    return (await this.member(i).butterfly()).self.id;
  }

  /** etcd's status on node i's voter (its own id, the raft leader's, the term). */
  async etcdStatus(i: number, timeoutMs = 1000): Promise<EtcdVoterStatus> {
    const res = await this.etcdRequest(i, '/v3/maintenance/status', {}, timeoutMs);
    const body = res.json<{ header?: { member_id?: string }; leader?: string; raftTerm?: string }>();
    if (!body.header?.member_id) throw new Error(`node ${i}: etcd status without a member id`);
    return { memberId: body.header.member_id, leaderId: body.leader ?? '', raftTerm: Number(body.raftTerm ?? 0) };
  }

  /** The node whose etcd voter leads raft right now, as the voters that answer agree; undefined when none does. */
  async etcdLeader(timeoutMs = 1000): Promise<number | undefined> {
    const answers = await Promise.all(this.cluster.nodes.map(async (n) => [n.index, await this.etcdStatus(n.index, timeoutMs).catch(() => undefined)] as const));
    const leaderIds = new Set(answers.map(([, st]) => st?.leaderId).filter((id) => id && id !== '0'));
    if (leaderIds.size !== 1) return undefined;
    const [id] = [...leaderIds];
    return answers.find(([, st]) => st?.memberId === id)?.[0];
  }

  /** Asks etcd's current leader to hand raft leadership to node `to`'s voter; waits until it has. */
  async moveEtcdLeader(to: number, timeoutMs = 10_000): Promise<void> {
    const target = (await this.etcdStatus(to)).memberId;
    await eventually(
      async () => {
        const from = await this.etcdLeader();
        if (from === to) return true;
        if (from === undefined) return undefined;
        await this.etcdRequest(from, '/v3/maintenance/transfer-leadership', { targetID: target }, 3000);
        return (await this.etcdLeader()) === to || undefined;
      },
      timeoutMs,
      `etcd led from node ${to}`,
      50,
    );
  }

  async destroy(): Promise<void> {
    this.destroying = true;
    const haproxy = this.haproxy;
    if (haproxy && haproxy.exitCode === null && haproxy.signalCode === null) {
      const gone = new Promise((r) => haproxy.once('exit', r));
      haproxy.kill('SIGKILL');
      await gone;
    }
    await this.cluster.destroy();
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

/**
 * A suite's clean-up: every cluster destroyed after the last test, and, when
 * a test failed, or none passed (a failed before()), or HASUP_HA_LOGS is set, every member's log saved first
 * into a temporary directory named after the suite, printed for the reader.
 * `clusters` is read at the end: each one with the prefix of its files.
 */
export function destroyAfterSuite(name: string, clusters: () => Array<[HaCluster | undefined, string]>): void {
  let failed = false;
  let passed = 0;
  afterEach((t) => {
    if ((t as unknown as { passed?: boolean }).passed === false) failed = true;
    else passed++;
  });
  after(async () => {
    const all = clusters();
    // No test passed: the suite's before() failed (its tests are cancelled without an afterEach), keep the logs too.
    if (failed || passed === 0 || process.env.HASUP_HA_LOGS) {
      const dir = mkdtempSync(join(tmpdir(), `hasup-${name}-logs-`));
      for (const [c, prefix] of all) c?.saveMemberLogs(dir, prefix);
      console.log(`# member logs in ${dir}`);
    }
    for (const [c] of all) await c?.destroy();
  });
}

