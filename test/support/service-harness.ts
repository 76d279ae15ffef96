/**
 * Runs one real service (PostgreSQL, etcd) the way the supervisor will:
 * the plan's default config merged with test overrides, templates rendered
 * with the driver's values into a temp state dir, the plan's run command
 * spawned in its own process group as the `hasup` user when we are root.
 * Used by the service driver integration tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Handlebars from 'handlebars';
import { pino } from 'pino';
import { mergeLayers, renderTemplates } from '../../src/supervisor/config-layers.js';
import type { DriverContext, ServiceDriver, ServicePaths, ServiceUser } from '../../src/supervisor/driver.js';
import { findPlan } from '../../src/supervisor/plan.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls, withClusterCa } from '../../src/supervisor/pki/provision.js';
import { installServiceTls } from '../../src/supervisor/pki/service-copy.js';
import { generateSecrets } from '../../src/supervisor/secrets.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';
import { eventually } from './eventually.js';

export const SERVICE_USER_NAME = 'hasup';

/** The `hasup` user when we run as root (services refuse root or should not get it); otherwise ourselves. */
export function serviceUser(): ServiceUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const out = spawnSync('getent', ['passwd', SERVICE_USER_NAME], { encoding: 'utf8' });
  const fields = out.stdout.trim().split(':');
  if (out.status !== 0 || fields.length < 4) throw new Error(`running as root needs a "${SERVICE_USER_NAME}" system user (npm run bootstrap)`);
  return { name: SERVICE_USER_NAME, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] ?? '/' };
}

/** A port nobody listens on right now on 127.0.0.1 (the kernel's pick, from the high ephemeral range). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Log lines the driver wrote, as text, so tests can check that no secret is in them. */
export function capturingLogger(): { log: DriverContext['log']; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

export interface Harness {
  /** The temp state dir; removed by cleanup(). */
  stateDir: string;
  ctx: DriverContext;
  driver: ServiceDriver;
  logLines: string[];
  cleanup(): void;
}

/** A temp state dir and a driver context for `planName` with `overrides` as the node's user config layer. */
export function createHarness(planName: string, driver: ServiceDriver, overrides: TomlTable): Harness {
  const plan = findPlan(planName, [shippedPlansDir()]);
  const stateDir = mkdtempSync(join(tmpdir(), `hasup-${planName}-`));
  // mkdtemp makes it 0700 root: the service user must be able to walk through it.
  chmodSync(stateDir, 0o755);
  const root = join(stateDir, 'svc', planName);
  mkdirSync(root, { recursive: true, mode: 0o755 });
  chmodSync(join(stateDir, 'svc'), 0o755);
  chmodSync(root, 0o755);
  const paths: ServicePaths = { root, data: join(root, 'data'), config: join(root, 'config'), run: join(root, 'run'), logs: join(root, 'logs') };
  const { log, lines } = capturingLogger();
  const ctx: DriverContext = {
    plan,
    paths,
    cfg: mergeLayers(plan.defaults, [{ name: 'test', data: overrides }]),
    memberId: 'a1b2c3d4e5f60718',
    ip: '127.0.0.1',
    user: serviceUser(),
    secrets: generateSecrets(),
    log,
  };
  return { stateDir, ctx, driver, logLines: lines, cleanup: () => rmSync(stateDir, { recursive: true, force: true }) };
}

/**
 * Gives the harness's member TLS as `hasup run` does (docs/tls.md): a
 * cluster CA in its secrets, STATE_DIR/tls issued for 127.0.0.1, and the
 * service's own copy owned by the service user in ctx.tls.
 */
export async function enableTls(h: Harness): Promise<void> {
  const secrets = await withClusterCa(h.ctx.secrets);
  const tls = await ensureMemberTls({ stateRoot: h.stateDir, memberId: h.ctx.memberId, addresses: [h.ctx.ip], secrets, secretsFile: join(h.stateDir, 'secrets.json'), settings: DEFAULT_TLS_SETTINGS });
  if (!tls.on) throw new Error(tls.reason);
  h.ctx.secrets = secrets;
  h.ctx.tls = installServiceTls(tls.files, h.ctx.paths.root, h.ctx.user);
}

function renderContext(ctx: DriverContext, driver: ServiceDriver) {
  return {
    cfg: ctx.cfg,
    svc: { data_dir: ctx.paths.data, config_dir: ctx.paths.config, run_dir: ctx.paths.run, logs_dir: ctx.paths.logs, ...(ctx.tls ? { tls: ctx.tls } : {}), ...driver.templateValues?.(ctx) },
    sys: { ip: ctx.ip, member_id: ctx.memberId },
  };
}

/** Renders the plan's templates for `ctx` (with `cfg` instead of ctx.cfg when given); nothing is written. */
export function render(h: Harness, cfg: TomlTable = h.ctx.cfg): Map<string, string> {
  const ctx = { ...h.ctx, cfg };
  return renderTemplates(ctx.plan, renderContext(ctx, h.driver));
}

/** Writes rendered files into the config dir, readable by the service user, as the supervisor does. */
export function installConfig(h: Harness, files: Map<string, string>): void {
  for (const [name, text] of files) {
    const file = join(h.ctx.paths.config, name);
    writeFileSync(file, text, { mode: 0o640 });
    chmodSync(file, 0o640);
    if (h.ctx.user) chownSync(file, 0, h.ctx.user.gid);
  }
}

export interface RunningService {
  child: ChildProcess;
  pid: number;
  output: string[];
  exited: Promise<void>;
  /** Sends `signal` to the process group and waits for the main process to exit; SIGKILL after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

/** Spawns the plan's run command (rendered like the supervisor does) in its own process group. */
export function startService(h: Harness): RunningService {
  const { plan, user } = h.ctx;
  const values = renderContext(h.ctx, h.driver);
  const expand = (s: string) => Handlebars.compile(s, { strict: true, noEscape: true })(values);
  const child = spawn(expand(plan.manifest.run.command), plan.manifest.run.args.map(expand), {
    cwd: h.ctx.paths.run,
    env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', ...(user ? { HOME: h.ctx.paths.run, USER: user.name } : {}) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  const output: string[] = [];
  const collect = (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  child.once('error', (err) => output.push(`spawn error: ${err.message}`));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${plan.manifest.run.command}`);
  return {
    child,
    pid,
    output,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      killGroup(pid, signal);
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          killGroup(pid, 'SIGKILL');
          resolve();
        }, timeoutMs);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      await exited;
    },
  };
}

/** Signals a whole process group; a group that is already gone is fine. */
export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Polls `probe` until it returns a value other than undefined, or fails with the last error after `timeoutMs`. */
export function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 100): Promise<T> {
  return eventually(probe, timeoutMs, what, intervalMs);
}

/** Until the service's own health check passes (its driver's health, as the supervisor runs it). */
export async function waitHealthy(h: Harness, timeoutMs = 30_000): Promise<void> {
  await waitFor(`${h.ctx.plan.manifest.name} to be healthy`, timeoutMs, async () => {
    const result = await h.driver.health(h.ctx, AbortSignal.timeout(2000));
    if (result.status !== 'ok') throw new Error(result.message);
    return true;
  }, 200);
}
