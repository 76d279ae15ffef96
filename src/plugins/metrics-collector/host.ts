/**
 * Host metrics in Metricbeat's system module layout (system.cpu,
 * system.load, system.memory, system.filesystem, system.diskio,
 * system.network), so dashboards and queries written for Metricbeat work on
 * hasup's documents unchanged.
 *
 * Everything is read from /proc, /sys and statfs(2) by the parsers in
 * proc-files.ts. A general-purpose system library was used before; it forks
 * `df`, `ip`, `lsblk` and `nmcli` every round and runs some of them with
 * execSync, which blocks the event loop that also renews the leader lease.
 * Reading the kernel's files costs a fraction of a millisecond and never
 * blocks.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { diskTotals, parseCpuTimes, parseMeminfo, parseMounts, parseNetDev, type CpuTimes, type DiskTotals, type NetCounters } from './proc-files.js';
import type { MetricSet } from './sample.js';

/** Filesystems that say nothing about the host's disks. */
const PSEUDO_FS = /^(tmpfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|devpts|mqueue|debugfs|tracefs|fusectl|configfs|securityfs|pstore|bpf|autofs|hugetlbfs|ramfs|binfmt_misc|efivarfs|rpc_pipefs|nfsd|fuse\..*)$/;

const round = (v: number, digits = 4) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : 0);
const ratio = (part: number, whole: number) => (whole > 0 ? round(part / whole) : 0);

interface Previous {
  time: number;
  cpu: CpuTimes;
  disks: DiskTotals | undefined;
  net: Map<string, NetCounters>;
}

/**
 * Samples the host; CPU shares and per-second rates come from the
 * difference to the previous sample (the first one reports CPU shares since
 * boot and no rates).
 */
export class HostSampler {
  private previous: Previous | undefined;

  constructor(private readonly root = '') {}

  async sample(time = Date.now()): Promise<MetricSet[]> {
    const [stat, meminfo, mounts, disks, net] = await Promise.all([
      readFile(`${this.root}/proc/stat`, 'utf8'),
      readFile(`${this.root}/proc/meminfo`, 'utf8'),
      readFile(`${this.root}/proc/self/mounts`, 'utf8').catch(() => ''),
      this.readDisks(),
      readFile(`${this.root}/proc/net/dev`, 'utf8').then(parseNetDev, () => new Map<string, NetCounters>()),
    ]);
    const cpu = parseCpuTimes(stat);
    const previous = this.previous;
    this.previous = { time, cpu, disks, net };
    const seconds = previous ? (time - previous.time) / 1000 : 0;
    const rate = (now: number, before: number | undefined) => (before !== undefined && seconds > 0 ? { per_sec: round(Math.max(0, now - before) / seconds, 2) } : {});
    const sets = [cpuSet(cpu, previous?.cpu), loadSet(cpu.cores), memorySet(parseMeminfo(meminfo)), ...(await filesystemSets(mounts))];
    if (disks) {
      const before = previous?.disks;
      sets.push({
        module: 'system',
        metricset: 'diskio',
        fields: {
          system: {
            diskio: {
              name: 'all',
              read: { count: disks.reads, time: disks.readMs, bytes: disks.readBytes, ...rate(disks.reads, before?.reads) },
              write: { count: disks.writes, time: disks.writeMs, bytes: disks.writeBytes, ...rate(disks.writes, before?.writes) },
              io: { count: disks.reads + disks.writes, time: disks.ioMs },
            },
          },
        },
      });
    }
    for (const [name, n] of net) {
      const before = previous?.net.get(name);
      const bytesPerSec = (now: number, then: number | undefined) => (then !== undefined && seconds > 0 ? { bytes_per_sec: round(Math.max(0, now - then) / seconds, 1) } : {});
      sets.push({
        module: 'system',
        metricset: 'network',
        fields: {
          system: {
            network: {
              name,
              in: { bytes: n.rxBytes, packets: n.rxPackets, errors: n.rxErrors, dropped: n.rxDropped, ...bytesPerSec(n.rxBytes, before?.rxBytes) },
              out: { bytes: n.txBytes, packets: n.txPackets, errors: n.txErrors, dropped: n.txDropped, ...bytesPerSec(n.txBytes, before?.txBytes) },
            },
          },
        },
      });
    }
    return sets;
  }

  /** Whole disks are the entries of /sys/block; loop and RAM devices are not disks. */
  private async readDisks(): Promise<DiskTotals | undefined> {
    try {
      const [text, devices] = await Promise.all([readFile(`${this.root}/proc/diskstats`, 'utf8'), readdir(`${this.root}/sys/block`)]);
      return diskTotals(text, new Set(devices.filter((d) => !/^(loop|ram|zram)\d/.test(d))));
    } catch {
      return undefined;
    }
  }
}

function cpuSet(now: CpuTimes, before: CpuTimes | undefined): MetricSet {
  const delta = (key: keyof Omit<CpuTimes, 'cores'>) => now[key] - (before?.[key] ?? 0);
  const total = delta('total');
  const share = (ticks: number) => ({ pct: round(ratio(ticks, total) * now.cores), norm: { pct: ratio(ticks, total) } });
  return {
    module: 'system',
    metricset: 'cpu',
    fields: {
      system: {
        cpu: {
          cores: now.cores,
          total: share(total - delta('idle') - delta('iowait')),
          user: share(delta('user')),
          system: share(delta('system')),
          nice: share(delta('nice')),
          idle: share(delta('idle')),
          iowait: share(delta('iowait')),
          irq: share(delta('irq') + delta('softirq')),
          steal: share(delta('steal')),
        },
      },
    },
  };
}

function loadSet(cores: number): MetricSet {
  const [l1, l5, l15] = loadavg() as [number, number, number];
  return {
    module: 'system',
    metricset: 'load',
    fields: { system: { load: { 1: round(l1), 5: round(l5), 15: round(l15), cores, norm: { 1: ratio(l1, cores), 5: ratio(l5, cores), 15: ratio(l15, cores) } } } },
  };
}

function memorySet(mem: ReturnType<typeof parseMeminfo>): MetricSet {
  const used = mem.total - mem.free;
  const actualUsed = mem.total - mem.available;
  const swapUsed = mem.swapTotal - mem.swapFree;
  return {
    module: 'system',
    metricset: 'memory',
    fields: {
      system: {
        memory: {
          total: mem.total,
          free: mem.free,
          used: { bytes: used, pct: ratio(used, mem.total) },
          actual: { free: mem.available, used: { bytes: actualUsed, pct: ratio(actualUsed, mem.total) } },
          swap: { total: mem.swapTotal, free: mem.swapFree, used: { bytes: swapUsed, pct: ratio(swapUsed, mem.swapTotal) } },
        },
      },
    },
  };
}

/** One set per mounted block-device filesystem (each device once: bind mounts repeat it). */
async function filesystemSets(mountsText: string): Promise<MetricSet[]> {
  const seen = new Set<string>();
  const mounts = parseMounts(mountsText).filter((m) => !PSEUDO_FS.test(m.type) && m.device.startsWith('/') && !seen.has(m.device) && seen.add(m.device));
  const stats = await Promise.all(mounts.map((m) => statfs(m.mountPoint).catch(() => undefined)));
  const sets: MetricSet[] = [];
  mounts.forEach((m, i) => {
    const s = stats[i];
    if (!s || s.blocks <= 0) return;
    const total = s.blocks * s.bsize;
    const free = s.bfree * s.bsize;
    sets.push({
      module: 'system',
      metricset: 'filesystem',
      fields: {
        system: {
          filesystem: {
            device_name: m.device,
            mount_point: m.mountPoint,
            type: m.type,
            total,
            available: s.bavail * s.bsize,
            free,
            files: s.files,
            free_files: s.ffree,
            used: { bytes: total - free, pct: ratio(total - free, total) },
          },
        },
      },
    });
  });
  return sets;
}
