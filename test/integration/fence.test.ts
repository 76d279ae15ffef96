/**
 * The fence process (native/fence/hasup-fence.c) against a real PostgreSQL:
 * it must kill every PostgreSQL process when its deadline passes or its
 * supervisor goes away while armed, and never otherwise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { driverFor } from '../../src/node/drivers.js';
import { ensureServiceCgroup, removeServiceCgroup } from '../../src/plugins/fence/cgroup.js';
import { defaultFenceBinary, ProcessFence } from '../../src/plugins/fence/process-fence.js';
import { isProcessLive } from '../../src/supervisor/pidfile.js';
import { capturingLogger, createHarness, freePort, installConfig, render, startService, waitFor, type Harness, type RunningService } from '../support/service-harness.js';

const BIN_DIR = '/usr/lib/postgresql/15/bin';
const skip = !existsSync(join(BIN_DIR, 'postgres'))
  ? `PostgreSQL 15 is not installed in ${BIN_DIR} (npm run bootstrap)`
  : !existsSync(defaultFenceBinary())
    ? 'the fence is not built (npm run build)'
    : false;

const monoNs = () => process.hrtime.bigint();
const ms = (n: number) => BigInt(Math.round(n * 1e6));

/** The fence binary driven by hand, as a supervisor would. */
class RawFence {
  readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(args: string[]) {
    this.child = spawn(defaultFenceBinary(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.resume();
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  async next(timeoutMs = 3000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (Date.now() > deadline) throw new Error('no reply from the fence');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.lines.shift()!;
  }

  exited(): Promise<number | null> {
    if (this.child.exitCode !== null) return Promise.resolve(this.child.exitCode);
    return new Promise((r) => this.child.once('exit', (code) => r(code)));
  }
}

async function connect(h: Harness): Promise<pg.Client> {
  const client = new pg.Client({
    host: h.ctx.paths.run,
    port: Number(h.ctx.cfg.port),
    user: String(h.ctx.cfg.superuser),
    password: h.ctx.secrets.postgresql.superuser_password,
    database: 'postgres',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Every process whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}


describe('the fence against a real PostgreSQL', { skip }, () => {
  let h: Harness;
  let server: RunningService | undefined;
  let cgroup: string | undefined;
  const record = () => join(h.ctx.paths.root, 'fence-record.json');
  const pidFile = () => join(h.ctx.paths.data, 'postmaster.pid');
  const fenceArgs = () => ['--pidfile', pidFile(), '--record', record(), ...(cgroup ? ['--cgroup', cgroup] : [])];

  /** A running PostgreSQL with one open session; its postmaster pid and backend pids. */
  async function startPostgres(): Promise<{ postmaster: number; session: pg.Client }> {
    server = startService(h);
    // As the process runner does: into the cgroup before the postmaster forks.
    if (cgroup) writeFileSync(join(cgroup, 'cgroup.procs'), `${server.pid}\n`);
    const session = await waitFor('PostgreSQL to accept connections', 30_000, async () => connect(h).catch(() => undefined), 200);
    await session.query('CREATE TABLE IF NOT EXISTS t (id int)');
    return { postmaster: server.pid, session };
  }

  before(async () => {
    h = createHarness('postgresql', driverFor('postgresql'), { port: await freePort(), listen_addresses: '', shared_buffers: '16MB', max_connections: 20, extra: { fsync: 'off' } });
    cgroup = ensureServiceCgroup(`fence-test-${process.pid}`, 'postgresql');
    await h.driver.prepare(h.ctx);
    installConfig(h, render(h));
  });

  after(async () => {
    await server?.stop('SIGKILL');
    if (cgroup) removeServiceCgroup(cgroup);
    h?.cleanup();
  });

  test('kills every PostgreSQL process once the deadline passes without a new arm', async () => {
    rmSync(record(), { force: true });
    const { postmaster, session } = await startPostgres();
    const backends = childrenOf(postmaster);
    assert.ok(backends.length >= 4, `PostgreSQL runs its workers and the session's backend (${backends.length})`);
    const fence = new RawFence(fenceArgs());
    const deadline = monoNs() + ms(400);
    fence.send(`arm ${deadline} ${deadline} ${deadline + ms(1000)}`);
    assert.match(await fence.next(), /^armed watchdog=off$/);
    // Until the deadline PostgreSQL takes writes.
    await session.query('INSERT INTO t VALUES (1)');
    const reply = await fence.next(3000);
    const actedAfterMs = Number(monoNs() - deadline) / 1e6;
    assert.match(reply, /^fenced deadline \d+ 0$/);
    assert.ok(actedAfterMs < 500, `acted ${actedAfterMs.toFixed(0)} ms after the deadline`);
    assert.equal(isProcessLive(postmaster), false, 'the postmaster is dead');
    for (const pid of backends) assert.equal(isProcessLive(pid), false, `backend ${pid} is dead`);
    await assert.rejects(session.query('INSERT INTO t VALUES (2)'), 'the open session can no longer commit');
    const rec = JSON.parse(readFileSync(record(), 'utf8')) as { cause: string; postmaster: number; survivors: number; cgroup: boolean };
    assert.equal(rec.cause, 'deadline');
    assert.equal(rec.postmaster, postmaster);
    assert.equal(rec.survivors, 0);
    assert.equal(rec.cgroup, cgroup !== undefined);
    if (cgroup) assert.equal(readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').trim(), '', 'nothing is left in the cgroup');
    fence.child.stdin!.end();
    assert.equal(await fence.exited(), 0);
    await server!.exited;
  });

  test('past the freeze instant PostgreSQL is frozen (a commit waits, nothing is killed); a later arm thaws it and the commit completes', async () => {
    rmSync(record(), { force: true });
    const { postmaster, session } = await startPostgres();
    const backends = childrenOf(postmaster);
    const fence = new RawFence(fenceArgs());
    const freezeAt = monoNs() + ms(300);
    fence.send(`arm ${freezeAt} ${freezeAt + ms(60_000)} ${freezeAt + ms(1000)}`);
    assert.match(await fence.next(), /^armed/);
    assert.match(await fence.next(2000), /^frozen \d+$/);
    const frozenAfterMs = Number(monoNs() - freezeAt) / 1e6;
    assert.ok(frozenAfterMs < 400, `froze ${frozenAfterMs.toFixed(0)} ms after the instant (the walsender grace included)`);
    for (const pid of [postmaster, ...backends]) {
      const state = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.charAt(0);
      assert.equal(state, 'T', `process ${pid} is stopped`);
    }
    let committed = false;
    const commit = session.query('INSERT INTO t VALUES (10)').then(() => (committed = true));
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(committed, false, 'no commit while frozen');
    const far = monoNs() + ms(60_000);
    fence.send(`arm ${far} ${far} ${far + ms(1000)}`);
    assert.match(await fence.next(), /^armed/);
    await commit;
    assert.ok(committed, 'the waiting commit went through once thawed');
    assert.ok(isProcessLive(postmaster));
    assert.equal(existsSync(record()), false, 'nothing was killed, so no fence record');
    fence.send('disarm');
    assert.equal(await fence.next(), 'disarmed');
    fence.child.stdin!.end();
    assert.equal(await fence.exited(), 0);
    await session.end();
    await server!.stop('SIGINT');
  });

  test('frozen and not re-armed it kills PostgreSQL at the kill instant; a disarm while frozen kills at once', async () => {
    rmSync(record(), { force: true });
    let { postmaster } = await startPostgres();
    let fence = new RawFence(fenceArgs());
    let at = monoNs() + ms(200);
    fence.send(`arm ${at} ${at + ms(500)} ${at + ms(1000)}`);
    assert.match(await fence.next(), /^armed/);
    assert.match(await fence.next(2000), /^frozen/);
    assert.ok(isProcessLive(postmaster), 'frozen, not dead');
    assert.match(await fence.next(2000), /^fenced deadline \d+ 0$/);
    assert.ok(Number(monoNs() - at) / 1e6 >= 500, 'killed at the kill instant, not before');
    await server!.exited;
    assert.equal(isProcessLive(postmaster), false);
    fence.child.stdin!.end();
    await fence.exited();

    ({ postmaster } = await startPostgres());
    fence = new RawFence(fenceArgs());
    at = monoNs() + ms(200);
    fence.send(`arm ${at} ${at + ms(60_000)} ${at + ms(1000)}`);
    assert.match(await fence.next(), /^armed/);
    assert.match(await fence.next(2000), /^frozen/);
    fence.send('disarm');
    assert.match(await fence.next(), /^fenced disarmed-frozen \d+ 0$/, 'a frozen primary is never left for anyone to thaw');
    assert.equal(await fence.next(), 'disarmed');
    await server!.exited;
    assert.equal(isProcessLive(postmaster), false);
    fence.child.stdin!.end();
    assert.equal(await fence.exited(), 0);
  });

  test('re-armed in time it never acts, and once disarmed a closed stdin leaves PostgreSQL alone', async () => {
    const { postmaster, session } = await startPostgres();
    const fence = new RawFence(fenceArgs());
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      const d = monoNs() + ms(300);
      fence.send(`arm ${d} ${d} ${d + ms(500)}`);
      assert.match(await fence.next(), /^armed/);
      await new Promise((r) => setTimeout(r, 100));
    }
    fence.send('disarm');
    assert.equal(await fence.next(), 'disarmed');
    await new Promise((r) => setTimeout(r, 600));
    fence.child.stdin!.end();
    assert.equal(await fence.exited(), 0);
    assert.ok(isProcessLive(postmaster), 'PostgreSQL still runs');
    await session.query('INSERT INTO t VALUES (3)');
    await session.end();
    await server!.stop('SIGINT');
  });

  test('its supervisor gone while armed (stdin closed, as on kill -9), it kills PostgreSQL at once', async () => {
    rmSync(record(), { force: true });
    const { postmaster, session } = await startPostgres();
    const fence = new RawFence(fenceArgs());
    const far = monoNs() + ms(60_000);
    fence.send(`arm ${far} ${far} ${far + ms(1000)}`);
    assert.match(await fence.next(), /^armed/);
    const closedAt = Date.now();
    fence.child.stdin!.destroy();
    assert.equal(await fence.exited(), 0);
    await server!.exited;
    assert.ok(Date.now() - closedAt < 1000, `PostgreSQL gone ${Date.now() - closedAt} ms after the supervisor`);
    assert.equal(isProcessLive(postmaster), false);
    await assert.rejects(session.query('SELECT 1'));
    assert.equal((JSON.parse(readFileSync(record(), 'utf8')) as { cause: string }).cause, 'supervisor-gone');
  });

  test('malformed commands are refused and change nothing', async () => {
    const fence = new RawFence(fenceArgs());
    for (const bad of ['arm', 'arm 5', 'arm 1 2', 'arm 10 5 20', 'arm -1 3 4', 'arm 1 2 0', 'arm 1 2 3 4', 'ARM 1 2 3', 'x'.repeat(300), '']) {
      fence.send(bad);
      assert.match(await fence.next(), /^error/, `refused: ${JSON.stringify(bad.slice(0, 20))}`);
    }
    fence.send('ping');
    assert.equal(await fence.next(), 'pong disarmed');
    fence.child.stdin!.end();
    assert.equal(await fence.exited(), 0);
  });

  test('feeds a (fake) kernel watchdog only while a reboot would beat the lease, and closes it with the magic V', async () => {
    const device = join(h.stateDir, 'fake-watchdog');
    writeFileSync(device, '');
    const fence = new RawFence([...fenceArgs(), '--watchdog', device, '--watchdog-timeout', '1']);
    // Lease far from expiry: fed about every 100 ms.
    let d = monoNs() + ms(5000);
    fence.send(`arm ${d} ${d} ${d + ms(1000)}`);
    assert.equal(await fence.next(), 'armed watchdog=active');
    await new Promise((r) => setTimeout(r, 600));
    const fed = readFileSync(device, 'utf8').length;
    assert.ok(fed >= 3, `fed ${fed} times in 600 ms`);
    // Expiry closer than one watchdog timeout: no more keepalives, so a stalled machine reboots in time.
    d = monoNs() + ms(700);
    fence.send(`arm ${d} ${d} ${d + ms(100)}`);
    assert.match(await fence.next(), /^armed/);
    const before = readFileSync(device, 'utf8').length;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(readFileSync(device, 'utf8').length, before, 'no keepalive once a reboot would come too late');
    fence.send('disarm');
    assert.equal(await fence.next(), 'disarmed');
    assert.match(readFileSync(device, 'utf8'), /V$/, 'closed with the magic character');
    fence.child.stdin!.end();
    await fence.exited();
  });

  test('ProcessFence restarts a killed fence and re-arms it', async () => {
    const { log, lines } = capturingLogger();
    const fence = new ProcessFence({ pidFile: pidFile(), recordFile: record(), watchdog: () => undefined, log });
    fence.start();
    assert.equal(fence.status().pid, null, 'no process before it is needed');
    const now = performance.now();
    await fence.arm({ freeze: now + 60_000, kill: now + 60_000, expiry: now + 61_000 });
    const first = fence.status().pid!;
    assert.ok(fence.armed());
    process.kill(first, 'SIGKILL');
    await waitFor('the fence to be back and armed', 5000, async () => {
      const s = fence.status();
      return s.pid !== null && s.pid !== first && s.armed ? true : undefined;
    });
    assert.ok(lines.some((l) => l.includes('fence_died')), 'the death is logged');
    assert.ok((fence.status().rss_kb ?? Infinity) < 4096, `the fence is small (${fence.status().rss_kb} kB)`);
    await fence.disarm();
    await fence.close();
  });
});
