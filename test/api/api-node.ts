/**
 * One real `hasup run` for the API tests and the API benchmark: its own
 * 127.0.0.N address, random ports, optionally PostgreSQL under it, and
 * small helpers to call its API as a load balancer or an operator would.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HASUP_BIN, LocalRing, generateRingKey, randomPortBase, type MemberProc } from '../support/member-procs.js';
import { freePort } from '../support/service-harness.js';
import { eventually } from '../support/eventually.js';
import { tlsRequest } from '../support/tls-request.js';
import { withClusterCa } from '../../src/supervisor/pki/provision.js';
import { generateSecrets, writeSecretsFile } from '../../src/supervisor/secrets.js';
export { eventually };

export interface ApiNodeOptions {
  /** Last octet of 127.0.0.N. */
  index: number;
  postgresql?: boolean;
  /** Extra hasup.toml text (e.g. an [http] table). */
  extraConfig?: string;
  /** Join this member's ring, sharing its ring key and cluster secrets. */
  joins?: ApiNode;
  /**
   * A cluster CA in the member's secrets (as cluster create makes), so its
   * API, PostgreSQL and etcd run TLS (docs/tls.md); without it the member
   * makes its own secrets, with no CA, and runs in clear text.
   */
  tls?: boolean;
}

export class ApiNode {
  readonly base: string;
  readonly addr: string;
  readonly stateDir: string;
  readonly httpPort: number;
  readonly gossipPort: number;
  pgPort = 0;
  private ring: LocalRing;
  node?: MemberProc;

  constructor(private readonly opts: ApiNodeOptions) {
    this.base = mkdtempSync(join(tmpdir(), 'hasup-api-'));
    chmodSync(this.base, 0o755);
    this.addr = LocalRing.addr(opts.index);
    this.stateDir = join(this.base, `member-${opts.index}`);
    const port = randomPortBase();
    this.gossipPort = port;
    this.httpPort = port + 1;
    this.ring = new LocalRing({ baseDir: this.base, gossipPort: port, httpPort: this.httpPort, keyFile: join(this.base, 'ring.key') });
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://${this.addr}:${this.httpPort}`;
  }

  /** The member's TLS is on (its own option, or that of the member it joins, whose secrets it shares). */
  get tls(): boolean {
    return this.opts.tls ?? this.opts.joins?.tls ?? false;
  }

  /** The cluster CA (PEM) the member's certificate comes from, when its TLS is on. */
  ca(): string | undefined {
    return this.tls ? (JSON.parse(readFileSync(this.secretsFile, 'utf8')) as { tls?: { ca_cert: string } }).tls?.ca_cert : undefined;
  }

  get keyFile(): string {
    return join(this.base, 'ring.key');
  }

  get configFile(): string {
    return join(this.base, 'hasup.toml');
  }

  get secretsFile(): string {
    return this.opts.joins ? this.opts.joins.secretsFile : join(this.stateDir, 'secrets.json');
  }

  secrets(): { api_token: string; postgresql: { superuser_password: string; replication_password: string } } {
    return JSON.parse(readFileSync(this.secretsFile, 'utf8')) as never;
  }

  get token(): string {
    return this.secrets().api_token;
  }

  async start(): Promise<MemberProc> {
    if (this.opts.joins) copyFileSync(this.opts.joins.keyFile, this.keyFile);
    else generateRingKey(this.keyFile);
    const lines: string[] = [];
    if (this.opts.postgresql) {
      this.pgPort = await freePort();
      lines.push('[services]', 'load = ["postgresql"]', '[service.postgresql]', `port = ${this.pgPort}`);
    }
    if (this.opts.extraConfig) lines.push(this.opts.extraConfig);
    writeFileSync(this.configFile, `${lines.join('\n')}\n`);
    mkdirSync(this.stateDir, { recursive: true });
    if (this.opts.tls && !this.opts.joins) writeSecretsFile(this.secretsFile, await withClusterCa(generateSecrets({ ringKey: false })));
    const join = this.opts.joins ? ['--peer', `${this.opts.joins.addr}:${this.opts.joins.gossipPort}`, '--secrets', this.secretsFile] : [];
    this.node = this.ring.spawn(this.opts.index, { extraArgs: ['--config', this.configFile, ...join] });
    await this.ring.ready([this.opts.index], 30_000);
    return this.node;
  }

  /** GET (or another method) with the token unless told otherwise. */
  async call(path: string, init: { method?: string; token?: string | null; body?: unknown } = {}): Promise<{ status: number; text: string; json: () => unknown }> {
    const token = init.token === undefined ? this.token : init.token;
    if (this.tls) {
      // fetch takes no CA in Node 20: node:https with the cluster CA (a string body is sent as JSON text, as fetch would).
      const body = typeof init.body === 'string' ? (JSON.parse(init.body) as unknown) : init.body;
      const res = await tlsRequest(`${this.url}${path}`, { method: (init.method ?? 'GET') as 'GET' | 'POST', body, tls: { ca: this.ca()! }, ...(token ? { token } : {}) });
      return { status: res.status, text: res.text, json: () => JSON.parse(res.text) };
    }
    const res = await fetch(`${this.url}${path}`, {
      method: init.method ?? 'GET',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) };
  }

  async status(path: string): Promise<number> {
    return (await this.call(path, { token: null })).status;
  }

  cli(...args: string[]) {
    return spawnSync(process.execPath, [HASUP_BIN, ...args, '--state-dir', this.stateDir], { encoding: 'utf8', timeout: 120_000 });
  }

  async stop(): Promise<void> {
    await this.node?.stop();
    rmSync(this.base, { recursive: true, force: true });
  }
}


/** HAProxy from Debian in the foreground, with a config in a temp dir; stopped by its PID. */
export class Haproxy {
  private child?: ChildProcess;
  readonly stderr: string[] = [];

  constructor(
    private readonly dir: string,
    readonly frontAddr: string,
    readonly frontPort: number,
  ) {}

  start(backend: { addr: string; port: number; checkPort: number; checkPath: string }): void {
    const cfg = join(this.dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '  maxconn 100',
        'defaults',
        '  mode tcp',
        '  timeout connect 1s',
        '  timeout client 30s',
        '  timeout server 30s',
        '  timeout check 1s',
        'frontend postgresql',
        `  bind ${this.frontAddr}:${this.frontPort}`,
        '  default_backend primary',
        'backend primary',
        `  option httpchk GET ${backend.checkPath}`,
        '  http-check expect status 200',
        '  default-server inter 200ms fall 1 rise 1 on-marked-down shutdown-sessions',
        `  server member ${backend.addr}:${backend.port} check port ${backend.checkPort}`,
        '',
      ].join('\n'),
    );
    const check = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy config invalid: ${check.stderr}${check.stdout}`);
    this.child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (d: Buffer) => this.stderr.push(d.toString()));
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(child.pid!, 'SIGTERM');
    await exited;
  }
}
