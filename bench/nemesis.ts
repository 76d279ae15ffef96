/**
 * The fault campaign: a 3-node cluster in network namespaces behind HAProxy
 * (formed by cluster create/join, an etcd voter per node), writes through
 * HAProxy and straight at every member the whole time, and faults drawn at
 * random until --minutes have passed (see test/support/nemesis.ts for the
 * faults and what is measured).
 *
 *   npm run bench:nemesis -- --minutes 10 --json [--mode auto|sync|async] [--seed N] [--kinds stop-hasup,kill-hasup]
 *
 * The last line is JSON: minutes, mode, faults (by kind), acked, lost_acked
 * (and by kind), overlap_ms_max, overlap_acks (and by kind),
 * unavailable_ms_max (by kind), false_failovers, fences (by cause),
 * freezes_by_kind (leaders frozen by their fence for overdue renewals), the
 * fence process's RSS.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { seededRandom } from '../src/gossip/sim/seeded-random.js';
import { HaCluster } from '../test/support/ha-cluster.js';
import { campaignTargets, FAULT_KINDS, Nemesis, type FaultKind } from '../test/support/nemesis.js';
import { netnsUnavailableReason } from '../test/support/netns-cluster.js';
import { WriteChecker } from '../test/support/write-checker.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    mode: { type: 'string', default: 'auto' },
    seed: { type: 'string' },
    kinds: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const progress = (msg: string) => process.stderr.write(`[nemesis] ${new Date().toISOString().slice(11, 19)} ${msg}\n`);

function maxBy<T>(xs: T[], key: (x: T) => string, value: (x: T) => number, fold: (a: number, b: number) => number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = fold(out[key(x)] ?? 0, value(x));
  return out;
}

async function main(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) throw new Error(`the fault campaign needs network namespaces: ${why}`);
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error('--minutes must be a positive number');
  const mode = values.mode!;
  if (!['auto', 'sync', 'async'].includes(mode)) throw new Error('--mode must be auto, sync or async');
  const kinds = (values.kinds?.split(',') ?? [...FAULT_KINDS]) as FaultKind[];
  for (const k of kinds) if (!FAULT_KINDS.includes(k)) throw new Error(`unknown fault kind ${k} (known: ${FAULT_KINDS.join(', ')})`);
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
  progress(`seed ${seed}, mode ${mode}, ${minutes} min, faults: ${kinds.join(', ')}`);

  const haLines = mode === 'auto' ? [] : [`synchronous_mode = ${mode === 'sync'}`];
  const ha = await HaCluster.create({ nodes: 3, ha: haLines });
  const checker = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
  const nemesis = new Nemesis({ ha, checker, random: seededRandom(seed), holdMs: [5000, 15000], lossMs: 60_000, pauseMs: 3000, progress });
  let ok = false;
  let result: Record<string, unknown> = {};
  try {
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.startHaproxy();
    await ha.whole(300_000);
    await checker.setup(ha.haproxyTarget);
    checker.start(campaignTargets(ha));
    const began = Date.now();
    const random = seededRandom(seed ^ 0x5bd1e995);
    while (Date.now() - began < minutes * 60_000) await nemesis.run(kinds[Math.floor(random() * kinds.length)]!);
    await checker.stop();
    const finalLeader = await ha.whole(180_000);
    const lost = await nemesis.countLost(finalLeader);
    const fenceView = (await ha.view(finalLeader)) as unknown as { fence?: { rss_kb: number | null } };
    const r = nemesis.results;
    result = {
      minutes: Math.round(((Date.now() - began) / 60_000) * 10) / 10,
      mode,
      seed,
      faults: maxBy(r, (x) => x.kind, () => 1, (a, b) => a + b),
      acked: checker.acks.length,
      lost_acked: lost,
      lost_acked_by_kind: maxBy(r, (x) => x.kind, (x) => x.lost_acked, (a, b) => a + b),
      overlap_ms_max: Math.max(0, ...r.map((x) => x.overlap_ms)),
      overlap_acks: r.reduce((a, x) => a + x.overlap_acks, 0),
      overlap_acks_by_kind: maxBy(r, (x) => x.kind, (x) => x.overlap_acks, (a, b) => a + b),
      unavailable_ms_max: maxBy(r, (x) => x.kind, (x) => x.unavailable_ms, Math.max),
      false_failovers: r.filter((x) => x.false_failover).length,
      fences_by_kind: maxBy(r, (x) => x.kind, (x) => x.fences, (a, b) => a + b),
      fences: nemesis.fences(began),
      freezes_by_kind: maxBy(r, (x) => x.kind, (x) => x.freezes, (a, b) => a + b),
      fence_rss_kb: fenceView.fence?.rss_kb ?? null,
      load1: Math.round(loadavg()[0]! * 100) / 100,
    };
    ok = true;
  } finally {
    await checker.stop().catch(() => undefined);
    if (!ok || process.env.HASUP_NEMESIS_LOGS) {
      const dir = mkdtempSync(join(tmpdir(), 'hasup-nemesis-logs-'));
      ha.saveMemberLogs(dir);
      writeFileSync(join(dir, 'faults.json'), JSON.stringify(nemesis.results, null, 2));
      progress(`member logs and faults in ${dir}`);
    }
    await ha.destroy();
  }
  if (!values.json) for (const x of nemesis.results) console.log(`${x.kind.padEnd(16)} node ${x.victim} ${x.detail}: unavailable ${x.unavailable_ms} ms, lost ${x.lost_acked}, overlap ${x.overlap_acks}`);
  console.log(JSON.stringify(result));
}

main().catch((err: unknown) => {
  console.error(`nemesis: ${(err as Error).stack ?? (err as Error).message}`);
  process.exit(1);
});
