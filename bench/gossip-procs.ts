/**
 * Real-process gossip benchmark: N `hasup run` members on 127.0.0.1..N with
 * real UDP/TCP, the LAN profile and encryption.
 *
 *   npm run bench:gossip-procs -- --members 20 --json
 *
 * join_converge_ms: from the moment the last member starts its join until
 *   every member sees every other member alive (from the members' own logs).
 * detect_all_ms: median over --kills kill -9s of the time until every
 *   remaining member has logged the victim dead.
 * rss_mb_per_member, cpu_pct_per_member, bytes_per_member_per_s: averaged over
 *   a steady-state window (--window seconds) after convergence; bytes are what
 *   each member sent (UDP + TCP, encrypted), from its own counters.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalRing, generateRingKey, randomPortBase, type MemberProc } from '../test/support/member-procs.js';

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '20' },
    kills: { type: 'string', default: '3' },
    window: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const n = Number(values.members);
const kills = Number(values.kills);
const windowS = Number(values.window);
if (!Number.isInteger(n) || n < 3 || n > 250) throw new Error('--members must be an integer from 3 to 250');
if (!Number.isInteger(kills) || kills < 1 || kills > n - 2) throw new Error('--kills must be from 1 to members-2');

const progress = (msg: string) => process.stderr.write(`[gossip-procs] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const CLK_TCK = 100;

function procTimes(pid: number): { cpuTicks: number; rssKb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuTicks, rssKb };
}

async function main() {
  const base = mkdtempSync(join(tmpdir(), 'hasup-bench-procs-'));
  const port = randomPortBase();
  const keyFile = join(base, 'ring.key');
  generateRingKey(keyFile);
  const ring = new LocalRing({ baseDir: base, gossipPort: port, httpPort: port + 1, keyFile });
  try {
    progress(`starting ${n} members on 127.0.0.1-${n}`);
    ring.spawn(1);
    await ring.ready([1]);
    const others = Array.from({ length: n - 1 }, (_, i) => i + 2);
    for (const i of others) ring.spawn(i, { peers: [1] });
    await ring.ready(others, 60_000);
    const all = [...ring.members.values()];
    const joinStarts = await Promise.all(others.map((i) => ring.members.get(i)!.waitForEvent((e) => e.event === 'joining', 30_000, 'joining')));
    const lastJoinStart = Math.max(...joinStarts.map((e) => e.time));
    const ids = new Map<MemberProc, string>();
    for (const m of all) ids.set(m, (await m.butterfly()).self.id);
    const everyId = [...ids.values()];
    // Each member's convergence time is when it logged the last of the others alive.
    const converged = await Promise.all(
      all.map(async (m) => {
        const times = await Promise.all(
          everyId
            .filter((id) => id !== ids.get(m))
            .map((id) => m.waitForEvent((e) => e.event === 'member' && e.peer === id && e.state === 'alive', 60_000, `alive ${id}`)),
        );
        return Math.max(...times.map((e) => e.time));
      }),
    );
    const joinConvergeMs = Math.max(0, Math.max(...converged) - lastJoinStart);
    progress(`converged: ${joinConvergeMs} ms after the last join started`);

    await sleep(3000);
    progress(`measuring steady state for ${windowS} s`);
    const before = await Promise.all(all.map(async (m) => ({ stats: (await m.butterfly()).stats, proc: procTimes(m.pid) })));
    const t0 = Date.now();
    await sleep(windowS * 1000);
    const after = await Promise.all(all.map(async (m) => ({ stats: (await m.butterfly()).stats, proc: procTimes(m.pid) })));
    const elapsedS = (Date.now() - t0) / 1000;
    const bytesPerMemberPerS = after.reduce((sum, a, i) => sum + (a.stats.bytesOut - before[i]!.stats.bytesOut), 0) / n / elapsedS;
    const cpuPct = (after.reduce((sum, a, i) => sum + (a.proc.cpuTicks - before[i]!.proc.cpuTicks), 0) / CLK_TCK / n / elapsedS) * 100;
    const rssMb = after.reduce((sum, a) => sum + a.proc.rssKb, 0) / n / 1024;

    const detections: number[] = [];
    const victims = all.slice(-kills);
    for (const victim of victims) {
      const victimId = ids.get(victim)!;
      victim.kill9();
      const killedAt = Date.now();
      await victim.exited;
      ring.members.delete(victim.index);
      const watchers = [...ring.members.values()];
      const seen = await Promise.all(
        watchers.map((m) => m.waitForEvent((e) => e.event === 'member' && e.peer === victimId && e.state === 'dead', 60_000, 'victim dead')),
      );
      const ms = Math.max(...seen.map((e) => e.time)) - killedAt;
      detections.push(ms);
      progress(`kill -9 of member ${victim.index}: seen dead by all ${watchers.length} others in ${ms} ms`);
      await sleep(2000);
    }

    const result = {
      members: n,
      join_converge_ms: joinConvergeMs,
      detect_all_ms: median(detections),
      detect_all_ms_each: detections,
      rss_mb_per_member: round(rssMb, 1),
      cpu_pct_per_member: round(cpuPct, 2),
      bytes_per_member_per_s: round(bytesPerMemberPerS, 1),
    };
    if (values.json) console.log(JSON.stringify(result));
    else console.log(result);
  } finally {
    await ring.stopAll();
    rmSync(base, { recursive: true, force: true });
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

await main();
