/**
 * `hasup rolling-restart postgresql` on three namespace nodes behind HAProxy
 * under write load (docs/maintenance.md): every member's PostgreSQL is
 * restarted once (a new postmaster pid on each), followers first; exactly
 * one leader change (the switchover before the old leader's restart); no
 * two nodes take writes at once; no acknowledged write is lost; the
 * longest pause in writes through HAProxy is printed (the target:
 * at most 2 s). Then --dry-run changes nothing, and a rollout with a
 * member down is refused before anything is restarted. Then `hasup upgrade
 * postgresql --to DIR` onto another bin directory (links to Debian's
 * programs, as a second install of the same build would be): every member
 * runs from it, one leader change, 0 lost; and onto a build that does not
 * start: the first member goes back to its previous program, the rollout
 * stops, no other member is touched. Last `hasup upgrade hasup --to
 * VERSION`: every member's hasup is a new process, each of its services
 * the same one (adopted), the PostgreSQL leader's last after a switchover,
 * 0 lost writes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { API_PORT, destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
import { WriteChecker } from '../support/write-checker.js';
import { hasupCli } from '../support/hasup-cli.js';
import { WebSocket } from 'ws';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PG_BIN = '/usr/lib/postgresql/15/bin';

/**
 * A bin directory every node sees (the namespaces share the file system): links to Debian's programs, and a
 * `postgres` that is either a link too or, `broken`, a script that answers --version and config checks (-C) like
 * the real one but exits at once when started as a server.
 */
const madeDirs: string[] = [];
function binDir(broken: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), broken ? 'hasup-pg-broken-' : 'hasup-pg-build-'));
  madeDirs.push(dir);
  chmodSync(dir, 0o755);
  const bin = join(dir, 'bin');
  mkdirSync(bin, { mode: 0o755 });
  for (const name of readdirSync(PG_BIN)) if (!(broken && name === 'postgres')) symlinkSync(join(PG_BIN, name), join(bin, name));
  if (broken) {
    writeFileSync(join(bin, 'postgres'), `#!/bin/sh\ncase " $* " in *" --version "*|*" -C "*) exec ${PG_BIN}/postgres "$@";; esac\necho "this build does not start" >&2\nexit 1\n`);
    chmodSync(join(bin, 'postgres'), 0o755);
  }
  return bin;
}

describe('rolling restart of PostgreSQL: three nodes under write load', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  destroyAfterSuite('rolling', () => [[ha, 'rolling']]);
  after(() => {
    for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
  });

  /** `hasup ARGS` against node i, without blocking the event loop (the writers keep writing). */
  const cli = (i: number, args: string[]) => hasupCli(ha, i, args);


  /** Node i's services: their pids, and whether this hasup adopted them, as its status says. */
  async function serviceProcs(i: number): Promise<Record<string, { pid: number | null; adopted: boolean }>> {
    const r = await cli(i, ['status', '--json']);
    const services = (JSON.parse(r.stdout) as { services: Array<{ name: string; pid: number | null; adopted?: boolean }> }).services;
    return Object.fromEntries(services.map((s) => [s.name, { pid: s.pid, adopted: s.adopted === true }]));
  }

  /** Node i's PostgreSQL service as its status says. */
  async function pgService(i: number): Promise<{ pid: number | null; version?: string }> {
    const r = await cli(i, ['status', '--json']);
    const services = (JSON.parse(r.stdout) as { services: Array<{ name: string; pid: number | null; version?: string }> }).services;
    return services.find((s) => s.name === 'postgresql') ?? { pid: null };
  }

  /** The postmaster pid of node i. */
  const pgPid = async (i: number): Promise<number | null> => (await pgService(i)).pid;

  /** The program node i's postmaster runs (/proc/PID/exe, the link resolved: the bin directory's name is in cmdline). */
  async function pgCommand(i: number): Promise<string> {
    const pid = await pgPid(i);
    return pid ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]! : '';
  }

  before(async () => {
    ha = await HaCluster.create({ nodes: 3 });
    // As under the systemd unit: a hasup that exits by itself is started again (hasup upgrade hasup).
    for (const i of [1, 2, 3]) ha.restartOnExit(i);
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
    await ha.startHaproxy();
    await ha.whole(180_000);
  });

  test('--dry-run prints the plan, followers first and the leader last, and restarts nothing', async () => {
    const leader = await ha.soleLeader(30_000);
    const before = await Promise.all([1, 2, 3].map(pgPid));
    const r = await cli(1, ['rolling-restart', 'postgresql', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    const id = await ha.memberId(leader);
    const lines = r.stdout.split('\n');
    assert.match(lines.at(-3) ?? lines.join('\n'), new RegExp(`switch the PostgreSQL leader over from ${id}`));
    assert.match(lines.at(-2) ?? '', new RegExp(`restart postgresql on ${id}`));
    assert.deepEqual(await Promise.all([1, 2, 3].map(pgPid)), before, 'nothing restarted');
  });

  test('under writes through HAProxy: every PostgreSQL restarted once, exactly one leader change, 0 lost acknowledged writes', async () => {
    const leader = await ha.soleLeader(30_000);
    const pidsBefore = await Promise.all([1, 2, 3].map(pgPid));
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    const target = { ...ha.haproxyTarget, connections: 3 };
    w.start([target, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(2000);
    // Progress as another member's /events shows it (the command posts it to its own member, which gossips it).
    const watcher = leader === 1 ? 3 : leader;
    const ws = new WebSocket(`wss://${ha.address(watcher)}:${API_PORT}/events`, { headers: { authorization: `Bearer ${ha.secrets.api_token}` }, ca: ha.secrets.tls?.ca_cert });
    const rollout: Array<{ state: string; line: string; by: string }> = [];
    ws.on('message', (data: Buffer) => {
      const e = JSON.parse(data.toString()) as { type: string; state: string; line: string; by: string };
      if (e.type === 'rollout') rollout.push(e);
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const started = Date.now();
    const r = await cli(leader === 1 ? 2 : 1, ['rolling-restart', 'postgresql']);
    const took = Date.now() - started;
    await eventually(async () => rollout.some((e) => e.state === 'done') || undefined, 10_000, 'the rollout done on /events of another member');
    ws.close();
    assert.equal(rollout[0]?.by, await ha.memberId(leader === 1 ? 2 : 1), 'by the member the command ran on');
    // The rumor holds a member's latest line: a line superseded before it reached the watcher is not shown there.
    const steps = new Set(rollout.filter((e) => e.state === 'running' && /^\[\d\/4\]/.test(e.line)).map((e) => e.line));
    assert.ok(steps.size >= 4, `the steps followed on /events: ${[...steps].join(' | ')}`);
    await sleep(2000);
    await w.stop();
    console.log(`# rolling-restart (${took} ms):\n${r.stdout.replace(/^/gm, '#   ')}`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const next = await ha.soleLeader(30_000);
    assert.notEqual(next, leader, 'the leader moved once, by the switchover');
    // Leader changes as writes saw them: runs of one server in ack order through HAProxy.
    const servers = w.acks.filter((a) => a.writer === 'haproxy').sort((a, b) => a.ackedAt - b.ackedAt).map((a) => a.server);
    const changes = servers.filter((s, i) => i > 0 && s !== servers[i - 1]).length;
    assert.equal(changes, 1, `exactly one leader change through HAProxy (${changes})`);
    const pidsAfter = await Promise.all([1, 2, 3].map(pgPid));
    for (const [i, p] of pidsAfter.entries()) assert.notEqual(p, pidsBefore[i], `node ${i + 1}'s PostgreSQL was restarted`);
    assert.deepEqual(w.overlaps(), [], 'never two nodes taking writes');
    const missing = await w.missing(ha.nodeTarget(next));
    assert.deepEqual(missing, [], 'no acknowledged write lost');
    const pause = w.longestGap('haproxy', started, started + took);
    console.log(`# ${w.acks.length} writes acknowledged, longest pause through HAProxy ${pause} ms (target: at most 2000 ms)`);
  });

  test('a member down refuses the rollout before anything is restarted, saying which', async () => {
    const leader = await ha.soleLeader(30_000);
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    const other = [1, 2, 3].find((i) => i !== leader && i !== follower)!;
    const followerId = await ha.memberId(follower);
    // The whole node: a PostgreSQL stopped with `svc stop` is started again by the HA loop within a turn.
    await ha.killNode(follower);
    await eventually(
      async () => {
        const census = await ha.member(leader).api<{ members: Array<{ id: string; state: string }> }>('/census');
        return census.members.find((m) => m.id === followerId)?.state === 'dead' || undefined;
      },
      30_000,
      `node ${follower} seen dead by the leader`,
    );
    const pids = await Promise.all([leader, other].map(pgPid));
    const r = await cli(leader, ['rolling-restart', 'postgresql']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`refused: not every member is healthy \\(${followerId}: member not alive`));
    assert.deepEqual(await Promise.all([leader, other].map(pgPid)), pids, 'nothing restarted');
    await ha.whole(120_000);
  });


  test('upgrade postgresql --to another bin directory under writes: every member runs from it, one leader change, 0 lost', async () => {
    const leader = await ha.whole(120_000);
    const bin = binDir(false);
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    w.start([{ ...ha.haproxyTarget, connections: 3 }, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const r = await cli(leader === 1 ? 2 : 1, ['upgrade', 'postgresql', '--to', bin]);
    await sleep(1000);
    await w.stop();
    console.log(`# upgrade:\n${r.stdout.replace(/^/gm, '#   ')}`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /every member has it: .*15\.\d+/);
    for (const i of [1, 2, 3]) {
      assert.equal(await pgCommand(i), join(bin, 'postgres'), `node ${i}'s postmaster runs from the new directory`);
      assert.match((await pgService(i)).version ?? '', /^15\.\d+$/, `node ${i}'s status gives the version it runs`);
    }
    const next = await ha.soleLeader(30_000);
    assert.notEqual(next, leader, 'the leader moved once, by the switchover');
    assert.deepEqual(w.overlaps(), [], 'never two nodes taking writes');
    assert.deepEqual(await w.missing(ha.nodeTarget(next)), [], 'no acknowledged write lost');
  });

  test('upgrade to a build that does not start: the first member goes back to its previous program; no other member is touched', async () => {
    const leader = await ha.whole(120_000);
    const before = await Promise.all([1, 2, 3].map(pgCommand));
    const bad = binDir(true);
    const missing = await cli(1, ['upgrade', 'postgresql', '--to', '/nowhere/bin']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /upgrade of postgresql.default to \/nowhere\/bin refused: .*\/nowhere\/bin\/postgres does not exist on this member.*nothing was changed/);
    const r = await cli(leader, ['upgrade', 'postgresql', '--to', bad, '--timeout', '20']);
    console.log(`# upgrade to a broken build:\n${r.stdout.replace(/^/gm, '#   ')}\n${r.stderr.replace(/^/gm, '#   ')}`);
    assert.equal(r.code, 1, r.stdout);
    const first = (r.stdout.match(/\[1\/4\] switching to .* and restarting postgresql on (\S+)/) ?? [])[1];
    assert.ok(first, r.stdout);
    assert.match(r.stderr, new RegExp(`stopped at step 1 .*${first} did not come back within 20 s.*; ${first} is back on its previous program and healthy; upgraded: none`));
    await ha.whole(60_000);
    assert.deepEqual(await Promise.all([1, 2, 3].map(pgCommand)), before, 'every member runs the program it ran before');
    assert.equal(await ha.soleLeader(10_000), leader, 'no switchover was made');
  });

  test('upgrade hasup: every member\'s hasup restarted onto the installed version, its services adopted (same pids), the leader\'s last; 0 lost', async () => {
    const leader = await ha.whole(120_000);
    const version = (JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')) as { version: string }).version;
    const wrong = await cli(1, ['upgrade', 'hasup', '--to', '99.0.0']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /upgrade of hasup.default to 99\.0\.0 refused: .*hasup 99\.0\.0 is not installed on this member \(installed: /);
    const hasupPids = [1, 2, 3].map((i) => ha.member(i).pid);
    const services = await Promise.all([1, 2, 3].map(serviceProcs));
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    w.start([{ ...ha.haproxyTarget, connections: 3 }, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const r = await cli(leader === 1 ? 2 : 1, ['upgrade', 'hasup', '--to', version]);
    await sleep(1000);
    await w.stop();
    console.log(`# upgrade hasup:\n${r.stdout.replace(/^/gm, '#   ')}\n${r.stderr.replace(/^/gm, '#   ')}`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.split('\n');
    const leaderId = await ha.memberId(leader);
    assert.ok(lines.findIndex((l) => l.includes(`switchover ${leaderId} ->`)) < lines.findIndex((l) => l.includes(`restarting hasup on ${leaderId}`)), 'the leader\'s hasup last, after the switchover');
    for (const [k, i] of [1, 2, 3].entries()) {
      assert.notEqual(ha.member(i).pid, hasupPids[k], `node ${i}'s hasup is a new process`);
      const now = await serviceProcs(i);
      for (const [name, proc] of Object.entries(now)) {
        assert.ok(proc.adopted, `node ${i}'s ${name} was adopted by the new hasup, not started by it`);
        // The old leader's PostgreSQL was restarted once before its hasup, as a standby, by the switchover.
        if (!(i === leader && name === 'postgresql')) assert.equal(proc.pid, services[k]![name]?.pid, `node ${i}'s ${name} is the same process`);
      }
    }
    const next = await ha.soleLeader(30_000);
    assert.notEqual(next, leader, 'the leader moved once, by the switchover');
    assert.deepEqual(w.overlaps(), [], 'never two nodes taking writes');
    assert.deepEqual(await w.missing(ha.nodeTarget(next)), [], 'no acknowledged write lost');
  });
});
