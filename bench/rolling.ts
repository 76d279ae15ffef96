/**
 * Rolling-restart benchmark (docs/maintenance.md): a 3-node cluster in
 * network namespaces behind HAProxy, formed with `cluster create` and two
 * `cluster join`s, synchronous mode on (the default), writes every 20 ms
 * through HAProxy (three connections, as an application's pool) and straight
 * at every node. Each round runs `hasup rolling-restart SERVICE` on a
 * follower's hasup and times it.
 *
 *   npm run bench:rolling -- --json [--rounds 3] [--service postgresql]
 *
 * restart_total_s: the rollout, command start to exit (the slowest round).
 * longest_write_pause_ms: the longest stretch, during a rollout, without an
 * acknowledged write through HAProxy (target: at most 2000 ms, a
 * switchover). failed_writes: writes through HAProxy that failed (a
 * connection cut by the switchover, then reconnected). lost_acked_writes:
 * acknowledged ids missing from the table at the end (target 0).
 * leader_changes: changes of the server that acknowledged writes through
 * HAProxy, per round (target: 1 for postgresql, the switchover; 0 for
 * another service). split_brain_overlaps: two nodes taking writes at once.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { HaCluster } from '../test/support/ha-cluster.js';
import { hasupCli } from '../test/support/hasup-cli.js';
import { netnsUnavailableReason } from '../test/support/netns-cluster.js';
import { WriteChecker } from '../test/support/write-checker.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    service: { type: 'string', default: 'postgresql' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const service = values.service;
const progress = (msg: string) => process.stderr.write(`[rolling] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load1 = () => Math.round(loadavg()[0]! * 100) / 100;

interface Round {
  round: number;
  restart_s: number;
  longest_write_pause_ms: number;
  failed_writes: number;
  acked_writes: number;
  lost_acked_writes: number;
  leader_changes: number;
  split_brain_overlaps: number;
}

async function main(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) throw new Error(`the rolling benchmark needs network namespaces: ${why}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const ha = await HaCluster.create({ nodes: 3 });
  const results: Round[] = [];
  try {
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.startHaproxy();
    await ha.whole(180_000);
    progress('cluster up (cluster create + 2 joins), synchronous mode');
    const password = ha.secrets.postgresql.superuser_password;
    await new WriteChecker({ user: 'hasup', password }).setup(ha.haproxyTarget);
    for (let r = 1; r <= rounds; r++) {
      const leader = await ha.whole(120_000);
      const w = new WriteChecker({ user: 'hasup', password, intervalMs: 20, timeoutMs: 1500 });
      w.start([{ ...ha.haproxyTarget, connections: 3 }, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
      await sleep(2000);
      const started = Date.now();
      const out = await hasupCli(ha, leader === 1 ? 2 : 1, ['rolling-restart', service]);
      const ended = Date.now();
      await sleep(2000);
      await w.stop();
      if (out.code !== 0) throw new Error(`rolling-restart ${service} failed (exit ${out.code}):\n${out.stdout}\n${out.stderr}`);
      const next = await ha.soleLeader(30_000);
      const servers = w.acks.filter((a) => a.writer === 'haproxy').sort((a, b) => a.ackedAt - b.ackedAt).map((a) => a.server);
      const failed = [...w.failures].filter(([k]) => k.startsWith('haproxy: ')).reduce((n, [, c]) => n + c, 0);
      const round: Round = {
        round: r,
        restart_s: Math.round((ended - started) / 100) / 10,
        longest_write_pause_ms: w.longestGap('haproxy', started, ended),
        failed_writes: failed,
        acked_writes: w.acks.length,
        lost_acked_writes: (await w.missing(ha.nodeTarget(next))).length,
        leader_changes: servers.filter((s, i) => i > 0 && s !== servers[i - 1]).length,
        split_brain_overlaps: w.overlaps().length,
      };
      results.push(round);
      progress(
        `round ${r}: rolling-restart ${service} took ${round.restart_s} s; longest pause through HAProxy ${round.longest_write_pause_ms} ms; ` +
          `${round.failed_writes} failed, ${round.acked_writes} acknowledged, ${round.lost_acked_writes} lost; ${round.leader_changes} leader change(s); load ${load1()}`,
      );
    }
  } finally {
    await ha.destroy();
  }
  const max = (f: (r: Round) => number) => Math.max(...results.map(f));
  const sum = (f: (r: Round) => number) => results.reduce((n, r) => n + f(r), 0);
  const result = {
    service,
    rounds,
    members: 3,
    tls: ha.secrets.tls !== undefined,
    restart_total_s: max((r) => r.restart_s),
    longest_write_pause_ms: max((r) => r.longest_write_pause_ms),
    failed_writes: sum((r) => r.failed_writes),
    lost_acked_writes: sum((r) => r.lost_acked_writes),
    leader_changes: results.map((r) => r.leader_changes),
    split_brain_overlaps: sum((r) => r.split_brain_overlaps),
    per_round: results,
  };
  console.log(values.json ? JSON.stringify(result) : result);
}

main().catch((err: unknown) => {
  console.error(`rolling benchmark: ${(err as Error).message}`);
  process.exit(1);
});
