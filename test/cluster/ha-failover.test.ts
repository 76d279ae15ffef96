/**
 * PostgreSQL HA on three namespace nodes behind HAProxy, formed by
 * `hasup cluster create` and two `hasup cluster join`s, so every node runs
 * its own etcd voter: bootstrap (one leader, two streaming followers), a
 * follower killed, the leader node killed with its etcd member (failover,
 * the old leader rejoins), the leader cut off from the others (its etcd
 * member is then a minority: it fences itself within the TTL, the majority
 * elects), 10% packet loss everywhere (no failover), a switchover under
 * writes, pause/resume, and synchronous mode with the leader killed. A write checker runs through
 * HAProxy and straight at every node: no acknowledged write may go missing
 * where the scenario promises it, and no two nodes may accept writes at once.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { eventually, HaCluster } from '../support/ha-cluster.js';
import { WriteChecker } from '../support/write-checker.js';
import { hasupCli } from '../support/hasup-cli.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

const TTL_MS = 3000;
/** How long the fence holds a frozen PostgreSQL before it kills it (2 TTLs). */
const HOLD_MS = 2 * TTL_MS;

describe('PostgreSQL HA: three nodes, etcd lease, HAProxy in front', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  const ids = new Map<number, string>();

  const checker = () => new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });

  async function streamingFollowers(leader: number, expect: number[], timeoutMs: number): Promise<void> {
    const want = expect.map((i) => ids.get(i)!).sort();
    await eventually(
      async () => {
        const rows = await ha.sql<{ application_name: string; state: string }>(leader, "SELECT application_name, state FROM pg_stat_replication WHERE state = 'streaming'");
        const names = rows.map((r) => r.application_name).sort();
        return want.every((w) => names.includes(w)) ? names : undefined;
      },
      timeoutMs,
      `nodes ${expect.join(', ')} streaming from node ${leader}`,
      250,
    );
    for (const i of expect) await eventually(async () => (await ha.check(i, '/replica')) === 200, 15_000, `node ${i} /replica 200`);
  }

  /** `hasup ARGS` against node i, without blocking the event loop (the writers keep writing). */
  const cli = (i: number, args: string[]) => hasupCli(ha, i, args);


  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  function assertNoOverlap(w: WriteChecker, what: string): void {
    const overlaps = w.overlaps();
    assert.deepEqual(overlaps, [], `${what}: two nodes accepted writes at the same time: ${JSON.stringify(overlaps)}`);
  }

  function summary(w: WriteChecker): string {
    return w.windows().map((x) => `${x.server} ${x.writes} writes ${new Date(x.from).toISOString().slice(17, 23)}-${new Date(x.to).toISOString().slice(17, 23)}`).join('; ');
  }

  before(async () => {
    ha = await HaCluster.create({ nodes: 3 });
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) {
      await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
      ids.set(i, await ha.memberId(i));
    }
    await ha.startHaproxy();
  });

  let failed = false;
  afterEach((t) => {
    if ((t as unknown as { passed?: boolean }).passed === false) failed = true;
  });

  after(async () => {
    if (failed || process.env.HASUP_HA_LOGS) {
      // Every member's full log to files, the HA events of each on the console.
      const dir = mkdtempSync(join(tmpdir(), 'hasup-ha-logs-'));
      ha?.saveMemberLogs(dir);
      for (const n of ha?.cluster.nodes ?? []) {
        for (const m of n.members) {
          let previous = '';
          console.log(`# ---- node ${n.index} (pid ${m.pid}) ----`);
          for (const e of m.events) {
            if (!(e.level >= 40 || /^(ha_|pg_|clone|rewind|slot|diverged|data_)/.test(String(e.event ?? '')))) continue;
            const line = `${e.event ?? ''} ${e.msg}${e.reason ? ` (${String(e.reason)})` : ''}`.slice(0, 300);
            if (line !== previous) console.log(`# ${new Date(e.time).toISOString().slice(11, 23)} ${line}`);
            previous = line;
          }
        }
      }
      console.log(`# member logs in ${dir}`);
    }
    await ha?.destroy();
  });

  test('bootstrap: one leader, two followers streaming from it (pg_stat_replication), writes through HAProxy', async () => {
    const started = Date.now();
    const leader = await ha.soleLeader(180_000);
    const followers = [1, 2, 3].filter((i) => i !== leader);
    await streamingFollowers(leader, followers, 120_000);
    console.log(`# bootstrap: leader node ${leader}, both followers streaming after ${Date.now() - started} ms`);
    await ha.etcdWhole(120_000);
    console.log(`# etcd: a voter on every node after ${Date.now() - started} ms`);
    for (const f of followers) assert.equal(await ha.check(f, '/primary'), 503, `follower node ${f} is not /primary`);
    const w = checker();
    await w.setup(ha.haproxyTarget);
    w.start([ha.haproxyTarget]);
    await new Promise((r) => setTimeout(r, 1000));
    await w.stop();
    assert.ok(w.acks.length > 10, `writes through HAProxy are acknowledged (${w.acks.length})`);
    assert.ok(w.acks.every((a) => a.server === ha.address(leader)), 'every write landed on the leader');
    assert.deepEqual(await w.missing(ha.nodeTarget(leader)), []);
    const view = await ha.view(followers[0]!);
    assert.equal(view.leader, ids.get(leader));
    assert.equal(view.members.filter((m) => m.role === 'replica' && m.replication_state === 'streaming').length, 2);
    // synchronous_mode = "auto" (the default): three members replicate synchronously.
    await eventually(async () => (await ha.view(leader)).sync_members.length === 2, 20_000, 'both followers in the synchronous set by default');
    assert.equal((await ha.view(leader)).synchronous_mode, true);
    const shown = await cli(followers[0]!, ['ha']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`leader ${ids.get(leader)}, timeline \\d+`));
    assert.equal(shown.stdout.split('\n').filter((l) => / replica +streaming /.test(l)).length, 2, shown.stdout);
  });
  test('a follower killed, the one whose etcd voter leads raft: the leader keeps serving writes; the follower comes back streaming', async () => {
    const leader = await ha.whole(90_000);
    // The leader hands etcd's raft leadership to a follower's voter; killing that follower is the hard case (etcd must elect first).
    const etcdLeader = await ha.etcdLeader();
    const victim = etcdLeader !== undefined && etcdLeader !== leader ? etcdLeader : [1, 2, 3].find((i) => i !== leader)!;
    const w = checker();
    w.start([ha.haproxyTarget]);
    await sleep(500);
    const cut = Date.now();
    await ha.killNode(victim);
    await sleep(4000);
    await w.stop();
    const after = w.acks.filter((a) => a.sentAt >= cut);
    assert.ok(after.length > 50, `writes went on after the follower died (${after.length})`);
    assert.ok(after.every((a) => a.server === ha.address(leader)), 'on the same leader');
    const gap = w.longestGap('haproxy', cut);
    console.log(`# follower node ${victim} killed (etcd raft leader: node ${etcdLeader ?? '?'}): ${after.length} writes in 4 s after, longest pause ${gap} ms`);
    assert.ok(gap < 1500, `no write stall longer than 1.5 s (was ${gap} ms)`);
    assert.deepEqual(await ha.primaries(), [leader]);
    ha.startNode(victim);
    await streamingFollowers(leader, [victim], 60_000);
  });

  test('the leader node killed: a follower takes over within seconds, no two writers at once; the old leader returns as a follower on a newer timeline', async () => {
    const leader = await ha.whole(90_000);
    const before = await ha.view(leader);
    const etcdLeader = await ha.etcdLeader();
    const w = checker();
    w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const killed = Date.now();
    await ha.killNode(leader);
    const next = await ha.soleLeader(30_000, leader);
    await eventually(async () => w.firstAckAfter(killed, 'haproxy', ha.address(next)), 15_000, 'a write through HAProxy on the new leader');
    await sleep(500);
    await w.stop();
    const first = w.firstAckAfter(killed, 'haproxy', ha.address(next))!;
    console.log(`# leader killed (etcd raft leader was node ${etcdLeader ?? '?'}): node ${next} took over; first write through HAProxy acknowledged ${first.ackedAt - killed} ms after the kill; ${summary(w)}`);
    assert.equal(first.server, ha.address(next));
    assertNoOverlap(w, 'kill');
    assert.ok(first.ackedAt - killed < 10_000, `failover within 10 s (took ${first.ackedAt - killed} ms)`);

    ha.startNode(leader);
    await streamingFollowers(next, [1, 2, 3].filter((i) => i !== next), 90_000);
    const { value: old } = await eventually(
      async () => (await ha.view(next)).members.find((m) => m.member === ids.get(leader) && m.role === 'replica' && m.replication_state === 'streaming'),
      15_000,
      'the old leader reported as a streaming replica',
    );
    assert.ok(old.timeline! > before.timeline!, `the old leader follows a newer timeline (${before.timeline} -> ${old.timeline})`);
  });

  /** What the fence of node i last did, from its record in the node's state dir. */
  function fenceRecord(i: number): { cause: string; at_ms: number; survivors: number } | null {
    try {
      return JSON.parse(readFileSync(join(ha.cluster.node(i).stateDir, 'svc', 'postgresql', 'fence-record.json'), 'utf8')) as { cause: string; at_ms: number; survivors: number };
    } catch {
      return null;
    }
  }

  /**
   * A supervisor-only fault on the leader (PostgreSQL left running): a
   * follower takes over, the old primary acknowledges nothing after the new
   * leader's first write on any client path, and no acknowledged write is
   * lost (asynchronous mode: the fence leaves the walsenders a moment to
   * hand over what was flushed). Returns the old leader and the new one.
   */
  async function supervisorFault(what: string, fault: (pid: number) => void, cause: RegExp, heal: (leader: number) => void): Promise<{ leader: number; next: number }> {
    const leader = await ha.whole(90_000);
    const w = checker();
    w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const at = Date.now();
    fault(ha.member(leader).pid);
    let next: number;
    try {
      next = await ha.soleLeader(30_000, leader);
      await eventually(async () => w.firstAckAfter(at, 'haproxy', ha.address(next)), 15_000, 'a write through HAProxy on the new leader');
      await sleep(1000);
    } finally {
      await w.stop();
      heal(leader);
    }
    const first = w.firstAckAfter(at, 'haproxy', ha.address(next))!;
    const lastOnOld = Math.max(...w.acks.filter((a) => a.server === ha.address(leader)).map((a) => a.ackedAt));
    // After SIGCONT the resumed supervisor has the fence kill its frozen
    // PostgreSQL (when that comes before the end of the hold): a moment later.
    const rec = await eventually(async () => { const r = fenceRecord(leader); return r && r.at_ms >= at ? r : null; }, HOLD_MS, 'the fence record').then((r) => r.value, () => null);
    const missing = await w.missing(ha.nodeTarget(next));
    console.log(
      `# ${what}: last write on the old leader ${lastOnOld - at} ms after the fault, fence ${rec?.cause ?? 'none'} at ${rec ? rec.at_ms - at : '?'} ms; ` +
        `node ${next} first write through HAProxy at ${first.ackedAt - at} ms; ${w.acks.length} acknowledged, ${missing.length} missing; ${summary(w)}`,
    );
    assert.match(rec?.cause ?? 'none', cause, 'the fence stopped PostgreSQL');
    assert.ok(rec!.at_ms >= at && rec!.survivors === 0, 'during this fault, leaving no PostgreSQL process');
    assertNoOverlap(w, what);
    assert.ok(lastOnOld < first.ackedAt, 'the old primary acknowledged nothing after the new leader\'s first write');
    assert.deepEqual(missing, [], 'no acknowledged write lost');
    return { leader, next };
  }

  test('the leader\'s hasup frozen (SIGSTOP) with PostgreSQL running: the fence freezes PostgreSQL before the lease can expire and kills it; after SIGCONT the old leader follows', async () => {
    let stopped = 0;
    const { leader, next } = await supervisorFault(
      'hasup SIGSTOP',
      (pid) => {
        stopped = pid;
        process.kill(pid, 'SIGSTOP');
      },
      // Killed at the end of the hold, or by the resumed supervisor when that comes first.
      /^(deadline|supervisor)$/,
      () => process.kill(stopped, 'SIGCONT'),
    );
    await streamingFollowers(next, [leader], 90_000);
    assert.ok(ha.member(leader).events.some((e) => e.event === 'fence_acted'), 'the resumed supervisor reports what its fence did');
  });

  test('the leader\'s hasup killed -9 with PostgreSQL running: the fence stops PostgreSQL at once; a restarted hasup rejoins as a follower', async () => {
    const { leader, next } = await supervisorFault('hasup kill -9', (pid) => process.kill(pid, 'SIGKILL'), /^supervisor-gone$/, () => undefined);
    await ha.member(leader).exited;
    ha.startNode(leader);
    await streamingFollowers(next, [leader], 90_000);
    assert.ok(ha.member(leader).events.some((e) => e.event === 'fence_record'), 'the restarted supervisor logs what the fence did');
  });

  test('the leader cut off from the others (and so from etcd\'s majority): its /primary turns 503 and it stops taking writes within the TTL; the majority elects a new leader', async () => {
    const leader = await ha.whole(90_000);
    const others = [1, 2, 3].filter((i) => i !== leader);
    const w = checker();
    w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const cut = Date.now();
    let next: number;
    let to503: number;
    try {
      await ha.cluster.partition([leader], others);
      to503 = (await eventually(async () => (await ha.check(leader, '/primary', 300)) === 503, TTL_MS + 2000, 'the cut-off leader answering 503 on /primary', 25)).ms;
      next = await ha.soleLeader(30_000, leader);
      await eventually(async () => w.acks.some((a) => a.writer === 'haproxy' && a.server === ha.address(next) && a.sentAt >= cut), 15_000, 'writes through HAProxy on the new leader');
      await sleep(500);
    } finally {
      await w.stop();
      await ha.cluster.clearFaults();
    }
    const lastOnOld = Math.max(...w.acks.filter((a) => a.server === ha.address(leader)).map((a) => a.ackedAt));
    const firstOnNew = Math.min(...w.acks.filter((a) => a.server === ha.address(next) && a.sentAt >= cut).map((a) => a.ackedAt));
    console.log(`# partition: /primary 503 after ${to503} ms, last write on the old leader ${lastOnOld - cut} ms after the cut, first on node ${next} after ${firstOnNew - cut} ms; ${summary(w)}`);
    assert.ok(to503 < TTL_MS, `/primary turned 503 within the TTL (${to503} ms)`);
    assert.ok(lastOnOld - cut < TTL_MS, `the old leader took its last write within the TTL (${lastOnOld - cut} ms)`);
    assertNoOverlap(w, 'partition');
    await streamingFollowers(next, [leader], 90_000);
  });

  test('10% packet loss on every node for 20 s: the leader key never moves to another member and never two writers at once', async () => {
    const leader = await ha.whole(90_000);
    const w = checker();
    w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const start = Date.now();
    try {
      for (const i of [1, 2, 3]) await ha.cluster.loss(i, 10);
      await sleep(20_000);
      for (const i of [1, 2, 3]) assert.ok((await ha.cluster.droppedPackets(i)) > 0, `node ${i} really lost packets`);
    } finally {
      await ha.cluster.clearFaults();
    }
    const after = await ha.soleLeader(30_000);
    await sleep(500);
    await w.stop();
    const since = (i: number, event: string) => ha.member(i).events.filter((e) => e.time >= start && e.event === event).length;
    const fenced = since(leader, 'ha_fenced');
    const frozen = since(leader, 'ha_suspended');
    console.log(`# 10% loss for 20 s: leader node ${leader} kept the key; it fenced itself ${fenced} time(s), was frozen ${frozen} time(s) (renewals cut off by the loss); ${w.acks.length} writes acknowledged; longest pause through HAProxy ${w.longestGap('haproxy', start)} ms`);
    assert.equal(after, leader, 'the same node leads after the loss');
    for (const i of [1, 2, 3].filter((x) => x !== leader)) assert.equal(since(i, 'ha_leader'), 0, `node ${i} never took the leader key`);
    assertNoOverlap(w, 'packet loss');
  });

  test('switchover with writes running: the leader moves to the chosen member and no acknowledged write is lost', async () => {
    const leader = await ha.whole(90_000);
    const target = [1, 2, 3].find((i) => i !== leader)!;
    const w = checker();
    w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const started = Date.now();
    const r = await cli(leader === 1 ? 2 : 1, ['switchover', '--to', ids.get(target)!]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`to ${ids.get(target)}`));
    await eventually(async () => w.acks.some((a) => a.writer === 'haproxy' && a.server === ha.address(target)), 15_000, 'writes through HAProxy on the new leader');
    await sleep(500);
    await w.stop();
    assert.deepEqual(await ha.primaries(), [target]);
    const missing = await w.missing(ha.nodeTarget(target));
    const pause = w.longestGap('haproxy', started - 1000);
    console.log(`# switchover: ${r.stdout.trim()}; ${w.acks.length} writes acknowledged, ${missing.length} missing; longest write pause through HAProxy ${pause} ms`);
    assert.deepEqual(missing, [], 'no acknowledged write lost');
    assertNoOverlap(w, 'switchover');
    await streamingFollowers(target, [1, 2, 3].filter((i) => i !== target), 60_000);
  });

  test('pause: with the leader killed nobody takes over; resume: a follower does', async () => {
    const leader = await ha.whole(90_000);
    const witness = [1, 2, 3].find((i) => i !== leader)!;
    const paused = await cli(witness, ['pause']);
    assert.equal(paused.code, 0, paused.stderr);
    await eventually(async () => (await ha.view(witness)).paused, 5000, 'the pause to show');
    await ha.killNode(leader);
    await sleep(TTL_MS + 3000);
    assert.deepEqual(await ha.primaries(), [], 'no leader while paused');
    assert.equal((await ha.view(witness)).leader, null, 'the leader key expired and nobody took it');
    const resumed = await cli(witness, ['resume']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const resumedAt = Date.now();
    const next = await ha.soleLeader(15_000, leader);
    console.log(`# resume -> node ${next} leads after ${Date.now() - resumedAt} ms`);
    ha.startNode(leader);
    await streamingFollowers(next, [1, 2, 3].filter((i) => i !== next), 90_000);
  });

  test('synchronous mode: ANY 1 of the followers, recorded in etcd; the leader killed under writes loses no acknowledged write', async () => {
    let leader = await ha.whole(90_000);
    const patch = join(ha.cluster.baseDir, 'sync.toml');
    writeFileSync(patch, '[ha]\nsynchronous_mode = true\n');
    const applied = await cli(leader, ['config', 'apply', 'postgresql.default', '1', patch]);
    assert.equal(applied.code, 0, applied.stderr);
    const followers = () => [1, 2, 3].filter((i) => i !== leader);
    await eventually(
      async () => {
        const v = await ha.view(leader);
        return v.synchronous_mode && v.sync_members.length === 2 && v.members.filter((m) => m.sync_role === 'sync').length === 2;
      },
      20_000,
      'both followers in the synchronous set',
    );
    // The recorded set grows before the database's does (S ⊆ E, docs/ha.md): the setting follows within a turn.
    const { value: setting } = await eventually(
      async () => {
        const s = (await ha.sql<{ s: string }>(leader, "SELECT current_setting('synchronous_standby_names') AS s"))[0]!.s;
        return followers().every((f) => s.includes(ids.get(f)!)) ? s : undefined;
      },
      10_000,
      'synchronous_standby_names naming both followers',
    );
    assert.match(setting, /^ANY 1 \(/);
    const w = checker();
    w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1500);
    const killed = Date.now();
    await ha.killNode(leader);
    const next = await ha.soleLeader(30_000, leader);
    await eventually(async () => w.acks.some((a) => a.writer === 'haproxy' && a.server === ha.address(next)), 20_000, 'writes on the new leader');
    await sleep(500);
    await w.stop();
    const missing = await w.missing(ha.nodeTarget(next));
    const first = w.firstAckAfter(killed, 'haproxy', ha.address(next));
    console.log(`# sync mode: leader killed, node ${next} took over, first write ${first ? first.ackedAt - killed : '?'} ms after; ${w.acks.length} acknowledged, ${missing.length} missing`);
    assert.deepEqual(missing, [], 'no acknowledged write lost in synchronous mode');
    assertNoOverlap(w, 'sync kill');
    ha.startNode(leader);
    leader = next;
    await streamingFollowers(next, followers(), 90_000);
  });

  test('a rogue primary (the leader\'s hasup and its fence both frozen, asynchronous mode): the others report it as critical and fence it over SQL; resumed, it rejoins as a follower with the SQL fence removed', async () => {
    const leader = await ha.whole(90_000);
    const patch = join(ha.cluster.baseDir, 'async.toml');
    writeFileSync(patch, '[ha]\nsynchronous_mode = false\n');
    const applied = await cli(leader, ['config', 'apply', 'postgresql.default', '2', patch]);
    assert.equal(applied.code, 0, applied.stderr);
    await eventually(async () => (await ha.sql<{ s: string }>(leader, "SELECT current_setting('synchronous_standby_names') AS s"))[0]!.s === '', 20_000, 'the leader asynchronous');
    const fencePid = ((await ha.view(leader)) as unknown as { fence: { pid: number } }).fence.pid;
    const hasupPid = ha.member(leader).pid;
    const w = checker();
    w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(1000);
    const at = Date.now();
    process.kill(fencePid, 'SIGSTOP');
    process.kill(hasupPid, 'SIGSTOP');
    let next = 0;
    let seenAt = 0;
    let critical: string[] = [];
    try {
      next = await ha.soleLeader(30_000, leader);
      ({ value: critical } = await eventually(
        async () => {
          const view = await ha.member(next).api<{ service_groups: { service_group: string; critical: string[] }[] }>('/cluster');
          const c = view.service_groups.find((g) => g.service_group === 'postgresql.default')?.critical ?? [];
          return c.some((x) => x.includes(ids.get(leader)!) && x.includes('fenced over SQL')) ? c : undefined;
        },
        20_000,
        'the rogue primary reported and fenced on the new leader',
      ));
      seenAt = Date.now();
      const status = await cli(next, ['status']);
      assert.match(status.stdout, new RegExp(`CRITICAL: member ${ids.get(leader)}'s PostgreSQL takes writes without the leader lease`));
      await sleep(2000);
    } finally {
      await w.stop();
      process.kill(hasupPid, 'SIGCONT');
      process.kill(fencePid, 'SIGCONT');
    }
    const first = w.firstAckAfter(at, 'haproxy', ha.address(next));
    const onOld = w.acks.filter((a) => a.server === ha.address(leader));
    const afterNew = first ? onOld.filter((a) => a.ackedAt > first.ackedAt).length : 0;
    const afterFence = onOld.filter((a) => a.ackedAt > seenAt).length;
    console.log(`# rogue primary: node ${next} leads; reported ${seenAt - at} ms after the freeze: ${critical.join(' | ')}; the rogue acknowledged ${afterNew} writes after the new leader's first, ${afterFence} after it was seen fenced`);
    assert.equal(afterFence, 0, 'the rogue acknowledges nothing once fenced');
    await streamingFollowers(next, [leader], 90_000);
    const settings = await ha.sql<{ ro: string; sync: string }>(leader, "SELECT current_setting('default_transaction_read_only') AS ro, current_setting('synchronous_standby_names') AS sync");
    assert.deepEqual(settings[0], { ro: 'off', sync: '' }, 'the SQL fence is gone from the rejoined member');
    assert.ok(ha.member(leader).events.some((e) => e.event === 'peer_fence_cleared'), 'the rejoining member said it removed the SQL fence');
    await eventually(async () => {
      const view = await ha.member(next).api<{ service_groups: { service_group: string; critical: string[] }[] }>('/cluster');
      return (view.service_groups.find((g) => g.service_group === 'postgresql.default')?.critical ?? []).length === 0;
    }, 15_000, 'the critical reason cleared once the rogue is a standby');
  });
});
