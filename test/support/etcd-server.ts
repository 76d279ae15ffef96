/**
 * One real etcd (Debian's binary) for tests that need a consensus store
 * without the supervisors forming one: listens on a given address, keeps
 * its data in its own directory, and is stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface EtcdServerOptions {
  /** Literal IP to listen on (the harness host address 10.231.X.1, or 127.0.0.1). */
  host: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  bin?: string;
}

export class EtcdServer {
  readonly url: string;
  private constructor(
    private readonly child: ChildProcess,
    readonly opts: EtcdServerOptions,
    readonly output: string[],
  ) {
    this.url = `http://${opts.host}:${opts.clientPort}`;
  }

  static async start(opts: EtcdServerOptions, readyTimeoutMs = 15_000): Promise<EtcdServer> {
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const client = `http://${opts.host}:${opts.clientPort}`;
    const peer = `http://${opts.host}:${opts.peerPort}`;
    const child = spawn(
      opts.bin ?? '/usr/bin/etcd',
      [
        '--name', 'test',
        '--data-dir', join(opts.dataDir, 'data'),
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `test=${peer}`,
        '--initial-cluster-state', 'new',
        '--heartbeat-interval', '100',
        '--election-timeout', '1000',
        '--log-level', 'warn',
        '--logger', 'zap',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const output: string[] = [];
    const keep = (d: Buffer) => {
      output.push(...d.toString('utf8').split('\n').filter(Boolean));
      if (output.length > 200) output.splice(0, output.length - 200);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const server = new EtcdServer(child, opts, output);
    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${output.slice(-5).join(' | ')}`);
      try {
        const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return server;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await server.stop();
    throw new Error(`etcd at ${client} not healthy within ${readyTimeoutMs} ms: ${output.slice(-5).join(' | ')}`);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** SIGTERM by PID, SIGKILL after 5 s; removes the data directory unless `keepData`. */
  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      process.kill(this.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
    if (!opts.keepData) rmSync(this.opts.dataDir, { recursive: true, force: true });
  }
}
