/**
 * CPU and memory of each supervised child, as Metricbeat's system.process
 * set. A service is its whole process tree (Elasticsearch is a launcher JVM
 * and its server JVM; PostgreSQL a postmaster and its backends), so the
 * figures are summed over the supervised pid and all its descendants, read
 * from /proc (Linux; elsewhere the set is simply absent).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { MetricSet } from './sample.js';

/** USER_HZ: what /proc/PID/stat counts CPU time in; 100 on every Linux architecture hasup runs on. */
const CLOCK_TICKS = 100;
const PAGE_BYTES = 4096;

interface ProcStat {
  pid: number;
  ppid: number;
  ticks: number;
  rssBytes: number;
}

/** Parses /proc/PID/stat; the command name is in parentheses and may itself contain spaces or ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number(text.slice(0, text.indexOf(' ')));
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15, rss 24.
  const ppid = Number(rest[1]);
  const ticks = Number(rest[11]) + Number(rest[12]);
  const rssPages = Number(rest[21]);
  if (![pid, ppid, ticks, rssPages].every(Number.isFinite)) return undefined;
  return { pid, ppid, ticks, rssBytes: rssPages * PAGE_BYTES };
}

function readAllStats(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    try {
      const stat = parseProcStat(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (stat) out.set(stat.pid, stat);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Sums a process tree: the root and every descendant. */
export function treeTotals(root: number, stats: Map<number, ProcStat>): { ticks: number; rssBytes: number; processes: number } | undefined {
  if (!stats.has(root)) return undefined;
  const children = new Map<number, number[]>();
  for (const s of stats.values()) {
    const list = children.get(s.ppid);
    if (list) list.push(s.pid);
    else children.set(s.ppid, [s.pid]);
  }
  let ticks = 0;
  let rssBytes = 0;
  let processes = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    const s = stats.get(pid);
    if (!s) continue;
    ticks += s.ticks;
    rssBytes += s.rssBytes;
    processes++;
    stack.push(...(children.get(pid) ?? []));
  }
  return { ticks, rssBytes, processes };
}

export interface ServiceProcess {
  service: string;
  pid: number;
}

/** Keeps the previous CPU reading of each service to turn tick totals into a share of the interval. */
export class ProcessSampler {
  private readonly previous = new Map<string, { pid: number; ticks: number; at: number }>();

  sample(services: ServiceProcess[], now = Date.now()): MetricSet[] {
    if (services.length === 0) return [];
    const stats = readAllStats();
    const cores = Math.max(1, cpus().length);
    const sets: MetricSet[] = [];
    for (const { service, pid } of services) {
      const totals = treeTotals(pid, stats);
      if (!totals) continue;
      const prev = this.previous.get(service);
      this.previous.set(service, { pid, ticks: totals.ticks, at: now });
      const cpu: Record<string, unknown> = { total: { value: totals.ticks * (1000 / CLOCK_TICKS) } };
      if (prev && prev.pid === pid && now > prev.at && totals.ticks >= prev.ticks) {
        // Share of one core (Metricbeat's total.pct) and of the whole host (norm.pct).
        const share = ((totals.ticks - prev.ticks) / CLOCK_TICKS) / ((now - prev.at) / 1000);
        Object.assign(cpu.total as object, { pct: round(share), norm: { pct: round(share / cores) } });
      }
      sets.push({
        module: 'system',
        metricset: 'process',
        service,
        fields: {
          process: { pid, name: service },
          system: { process: { cpu, memory: { rss: { bytes: totals.rssBytes } }, num_processes: totals.processes } },
        },
      });
    }
    for (const name of [...this.previous.keys()]) if (!services.some((s) => s.service === name)) this.previous.delete(name);
    return sets;
  }
}

function round(v: number): number {
  return Math.round(v * 10_000) / 10_000;
}
