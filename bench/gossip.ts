/**
 * Simulated gossip benchmark: N real Memberlists (LAN profile, real
 * encryption) on an in-memory network in virtual time.
 *
 *   npm run bench:gossip -- --members 1000 --json
 *
 * join_converge_ms: every member joins through member 0 at the same moment;
 *   time until every member sees all N alive.
 * bytes_per_member_per_s: UDP + TCP bytes sent (sealed envelopes) per member
 *   per second over a quiet window at least one push-pull period long.
 * detect_*: over --kills kill -9s, time from the kill until the first member,
 *   and until every member, holds the victim dead (p50 and p99 of those).
 * false_deaths_at_5pct_loss / _10pct_: member-level "dead" verdicts about
 *   live members during --loss-minutes of 5% then 10% datagram loss.
 * wall_ms: real time the whole run took.
 *
 * Progress goes to stderr; with --json the last stdout line is the result.
 */
import { parseArgs } from 'node:util';
import { resolveGossipConfig } from '../src/gossip/config.js';
import { pushPullInterval } from '../src/gossip/memberlist.js';
import { SimRing, type SimMember } from '../src/gossip/sim/sim-ring.js';
import { seededRandom } from '../src/gossip/sim/seeded-random.js';

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    /** Default: 5, or fewer in a ring too small to lose 5 and still have two watchers. */
    kills: { type: 'string' },
    'loss-minutes': { type: 'string', default: '3' },
    /** Override a LAN setting for tuning experiments, e.g. --gossip probeIntervalMs=400 (repeatable). */
    gossip: { type: 'string', multiple: true, default: [] },
    json: { type: 'boolean', default: false },
  },
});

const n = Number(values.members);
const seed = Number(values.seed);
const kills = values.kills === undefined ? Math.max(1, Math.min(5, n - 2)) : Number(values.kills);
const lossMinutes = Number(values['loss-minutes']);
if (!Number.isInteger(n) || n < 3) throw new Error('--members must be an integer >= 3');
if (!Number.isInteger(kills) || kills < 1 || kills > n - 2) throw new Error('--kills must be from 1 to members-2');
if (!(lossMinutes >= 0)) throw new Error('--loss-minutes must be >= 0');
const overrides: Record<string, unknown> = {};
for (const pair of values.gossip) {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new Error(`--gossip expects key=value, got "${pair}"`);
  overrides[pair.slice(0, eq)] = Number(pair.slice(eq + 1));
}
const config = resolveGossipConfig('lan', overrides);

const wallStart = Date.now();
const progress = (msg: string) => process.stderr.write(`[gossip-sim ${n}] ${((Date.now() - wallStart) / 1000).toFixed(1)}s ${msg}\n`);

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main() {
  const ring = new SimRing({ seed, config });
  const random = seededRandom(seed * 7919 + 1);
  const { clock } = ring;

  progress('starting members');
  ring.add(n);
  ring.joinAll([0], 0);
  const joinStart = clock.now();
  if (!(await clock.runUntil(() => ring.converged(), 300_000, 10))) throw new Error('join did not converge in 300 s of virtual time');
  const joinConvergeMs = clock.now() - joinStart;
  progress(`join converged in ${joinConvergeMs} virtual ms`);

  // Let the join rumors run out, and every member's first push-pull (at a
  // random moment of the first base interval) happen, before measuring the
  // quiet cost of the ring. Any window one scaled push-pull period long then
  // holds exactly one push-pull started by each member.
  await clock.runUntil(() => ring.members.every((m) => m.ml.stats().queued === 0), 120_000, 100);
  await clock.advance(Math.max(5000, ring.config.pushPullIntervalMs - clock.now()));
  const windowMs = Math.max(60_000, pushPullInterval(ring.config.pushPullIntervalMs, n));
  const bytesBefore = ring.bytesSent();
  await clock.advance(windowMs);
  const bytesPerMemberPerS = (ring.bytesSent() - bytesBefore) / n / (windowMs / 1000);
  progress(`steady state: ${bytesPerMemberPerS.toFixed(1)} bytes/member/s over ${windowMs / 1000} s`);

  const detectFirst: number[] = [];
  const detectAll: number[] = [];
  const killed = new Set<string>();
  for (let k = 0; k < kills; k++) {
    // A random moment relative to everyone's probe schedule.
    await clock.advance(random() * ring.config.probeIntervalMs * 2);
    const candidates = ring.running().filter((m) => m.index !== 0);
    const victim: SimMember = candidates[Math.floor(random() * candidates.length)]!;
    killed.add(victim.id);
    let first: number | undefined;
    const listener = (_o: SimMember, m: { id: string; state: string }) => {
      if (m.id === victim.id && m.state === 'dead' && first === undefined) first = clock.now();
    };
    ring.onMemberEvent(listener);
    const killedAt = clock.now();
    ring.kill(victim);
    if (!(await clock.runUntil(() => ring.allSee(victim.id, 'dead'), 120_000, 1))) throw new Error('a killed member was not seen dead by all');
    ring.offMemberEvent(listener);
    detectFirst.push(first! - killedAt);
    detectAll.push(clock.now() - killedAt);
    progress(`kill ${k + 1}/${kills}: first saw it dead after ${Math.round(first! - killedAt)} ms, all after ${clock.now() - killedAt} ms`);
    await clock.advance(10_000);
  }

  const falseDeaths = { 5: 0, 10: 0 };
  let lossLevel: 5 | 10 = 5;
  ring.onMemberEvent((_o, m) => {
    if (m.state === 'dead' && !killed.has(m.id)) falseDeaths[lossLevel]++;
  });
  for (const level of [5, 10] as const) {
    if (lossMinutes === 0) break;
    lossLevel = level;
    ring.net.setLoss(level / 100);
    for (let minute = 0; minute < lossMinutes; minute++) {
      await clock.advance(60_000);
      progress(`${level}% loss, minute ${minute + 1}/${lossMinutes}: ${falseDeaths[level]} false deaths`);
    }
    ring.net.setLoss(0);
    await clock.advance(20_000);
  }

  const result = {
    members: n,
    join_converge_ms: Math.round(joinConvergeMs),
    detect_first_ms_p50: Math.round(percentile(detectFirst, 50)),
    detect_all_ms_p50: Math.round(percentile(detectAll, 50)),
    detect_all_ms_p99: Math.round(percentile(detectAll, 99)),
    false_deaths_at_5pct_loss: falseDeaths[5],
    false_deaths_at_10pct_loss: falseDeaths[10],
    bytes_per_member_per_s: Math.round(bytesPerMemberPerS * 10) / 10,
    loss_minutes: lossMinutes,
    kills,
    seed,
    ...(values.gossip.length > 0 ? { overrides } : {}),
    wall_ms: Date.now() - wallStart,
  };
  if (values.json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(`gossip simulation, ${n} members (seed ${seed})`);
    console.log(`  join convergence            ${result.join_converge_ms} ms`);
    console.log(`  failure detection, first    ${result.detect_first_ms_p50} ms (p50 of ${kills})`);
    console.log(`  failure detection, all      ${result.detect_all_ms_p50} ms p50, ${result.detect_all_ms_p99} ms p99`);
    console.log(`  false deaths, 5% loss       ${result.false_deaths_at_5pct_loss} in ${lossMinutes} min`);
    console.log(`  false deaths, 10% loss      ${result.false_deaths_at_10pct_loss} in ${lossMinutes} min`);
    console.log(`  steady-state traffic        ${result.bytes_per_member_per_s} bytes/member/s`);
    console.log(`  wall time                   ${(result.wall_ms / 1000).toFixed(1)} s`);
  }
}

await main();
