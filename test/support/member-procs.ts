/**
 * Runs real `hasup run` processes on 127.0.0.N loopback addresses (Linux
 * routes all of 127/8 to lo, so no setup is needed) and watches their JSON
 * logs. Used by the multi-process tests and the process benchmark.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { shebangNodeArgs } from '../../src/cli/shebang.js';
import { loadSecretsFile } from '../../src/supervisor/secrets.js';
import { tlsRequest } from './tls-request.js';

export const HASUP_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

/** Node flags the `hasup` executable runs with (its shebang line): daemons spawned in tests get the same. */
export const HASUP_NODE_ARGS = shebangNodeArgs(HASUP_BIN);

export interface LogEvent {
  time: number;
  level: number;
  msg: string;
  event?: string;
  member?: string;
  peer?: string;
  state?: string;
  [key: string]: unknown;
}

export function generateRingKey(file: string): void {
  const result = spawnSync(process.execPath, [HASUP_BIN, 'ring-key', 'generate', file], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ring-key generate failed: ${result.stderr}`);
}

export class MemberProc {
  readonly events: LogEvent[] = [];
  readonly stderr: string[] = [];
  memberId?: string;
  exited: Promise<number | null>;
  private waiters: Array<{ pred: (e: LogEvent) => boolean; resolve: (e: LogEvent) => void }> = [];

  constructor(
    readonly index: number,
    readonly addr: string,
    readonly httpPort: number,
    readonly child: ChildProcess,
    /** The member's cluster secrets (created on its first start): the API token comes from here. */
    readonly secretsFile?: string,
  ) {
    // HASUP_TEST_LOG_DIR keeps every member's log lines in a file, for reading after a failed run.
    const dir = process.env.HASUP_TEST_LOG_DIR;
    const file = dir ? createWriteStream(join(dir, `member-${index}-${child.pid}.log`), { flags: 'a' }) : undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      file?.write(`${line}\n`);
      this.onLine(line);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      file?.write(`${line}\n`);
      this.stderr.push(line);
    });
    child.once('exit', () => file?.end());
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onLine(line: string): void {
    let event: LogEvent;
    try {
      event = JSON.parse(line) as LogEvent;
    } catch {
      this.stderr.push(line);
      return;
    }
    if (event.member && !this.memberId) this.memberId = event.member;
    this.events.push(event);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(event)) return true;
      w.resolve(event);
      return false;
    });
  }

  /** Resolves with the first past or future log event matching `pred`. */
  waitForEvent(pred: (e: LogEvent) => boolean, timeoutMs: number, what = 'event'): Promise<LogEvent> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`member ${this.index} (${this.addr}): no ${what} within ${timeoutMs} ms; stderr: ${this.stderr.slice(-5).join(' | ')}`));
      }, timeoutMs);
      const done = (e: LogEvent) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** The API's URL as the member logged it (https under TLS, docs/tls.md); before that, by whether it logged TLS on. */
  get apiUrl(): string {
    const logged = this.events.find((e) => e.event === 'http' && typeof e.url === 'string');
    if (logged) return logged.url as string;
    return `${this.tlsCa() ? 'https' : 'http'}://${this.addr}:${this.httpPort}`;
  }

  /** The CA bundle (PEM) the member's certificate chains to, once it logged TLS on; undefined while its TLS is off. */
  tlsCa(): string | undefined {
    const tls = this.events.find((e) => e.event === 'tls' && typeof e.ca === 'string');
    if (!tls) return undefined;
    try {
      return readFileSync(tls.ca as string, 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Status code of a request without the token (a load-balancer check); 0 when unreachable. */
  async checkStatus(path: string, timeoutMs = 1000): Promise<number> {
    const ca = this.tlsCa();
    try {
      return (await tlsRequest(`${this.apiUrl}${path}`, { timeoutMs, ...(ca ? { tls: { ca } } : {}) })).status;
    } catch {
      return 0;
    }
  }

  /** The API token, or undefined while the member has not yet created its secrets file. */
  apiToken(): string | undefined {
    if (!this.secretsFile) return undefined;
    try {
      return loadSecretsFile(this.secretsFile).api_token;
    } catch {
      return undefined;
    }
  }

  /** An authenticated request to this member's HTTP API; throws on a non-2xx answer. */
  async api<T>(path: string, init: { method?: 'GET' | 'POST'; body?: unknown; timeoutMs?: number } = {}): Promise<T> {
    const token = this.apiToken();
    const ca = this.tlsCa();
    const res = await tlsRequest(`${this.apiUrl}${path}`, { method: init.method ?? 'GET', body: init.body, timeoutMs: init.timeoutMs ?? 2000, ...(token ? { token } : {}), ...(ca ? { tls: { ca } } : {}) });
    const text = res.text;
    if (res.status < 200 || res.status > 299) throw new Error(`${init.method ?? 'GET'} ${path} on ${this.addr}: ${res.status} ${text.slice(0, 200)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  butterfly(): Promise<Butterfly> {
    return this.api<Butterfly>('/butterfly');
  }

  kill9(): void {
    this.child.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface ButterflyMember {
  id: string;
  address: string;
  state: string;
  incarnation: number;
}

export interface Butterfly {
  self: ButterflyMember;
  members: ButterflyMember[];
  stats: { bytesOut: number; bytesIn: number; packetsOut: number; packetsIn: number; dropped: Record<string, number> };
}

export interface LocalRingOptions {
  baseDir: string;
  gossipPort: number;
  httpPort: number;
  keyFile: string;
  extraArgs?: string[];
}

export class LocalRing {
  readonly members = new Map<number, MemberProc>();

  constructor(readonly opts: LocalRingOptions) {}

  static addr(index: number): string {
    return `127.0.0.${index}`;
  }

  spawn(index: number, o: { peers?: number[]; keyFile?: string; extraArgs?: string[] } = {}): MemberProc {
    const addr = LocalRing.addr(index);
    const stateDir = join(this.opts.baseDir, `member-${index}`);
    mkdirSync(stateDir, { recursive: true });
    const args = [
      ...HASUP_NODE_ARGS,
      HASUP_BIN,
      'run',
      '--advertise', `${addr}:${this.opts.gossipPort}`,
      '--ring-key', o.keyFile ?? this.opts.keyFile,
      '--state-dir', stateDir,
      '--listen-http', `${addr}:${this.opts.httpPort}`,
      ...(o.peers ?? []).flatMap((p) => ['--peer', `${LocalRing.addr(p)}:${this.opts.gossipPort}`]),
      ...(this.opts.extraArgs ?? []),
      ...(o.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const member = new MemberProc(index, addr, this.opts.httpPort, child, join(stateDir, 'secrets.json'));
    this.members.set(index, member);
    return member;
  }

  /** Waits until every listed member's log says it is listening. */
  async ready(indexes: number[], timeoutMs = 15_000): Promise<void> {
    await Promise.all(indexes.map((i) => this.members.get(i)!.waitForEvent((e) => e.event === 'http', timeoutMs, 'HTTP listening')));
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.stop()));
  }
}

/** A free-ish port range per run so parallel or leftover runs do not collide. */
export function randomPortBase(): number {
  return 20_000 + Math.floor(Math.random() * 20_000);
}
