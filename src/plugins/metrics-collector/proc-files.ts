/**
 * Parsers for the kernel's text files the host sampler reads. Pure: each
 * takes the file's text, so the tests feed them recorded files.
 */

/** Cumulative CPU time in USER_HZ ticks, summed over every CPU (the `cpu` line of /proc/stat). */
export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  /** Every field but guest time, which user time already includes. */
  total: number;
  /** Number of `cpuN` lines. */
  cores: number;
}

export function parseCpuTimes(stat: string): CpuTimes {
  const lines = stat.split('\n');
  const fields = lines.find((l) => l.startsWith('cpu '))?.trim().split(/\s+/).slice(1).map(Number);
  if (!fields || fields.length < 4 || fields.some((f) => !Number.isFinite(f))) throw new Error('/proc/stat has no readable cpu line');
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  return {
    user,
    nice,
    system,
    idle,
    iowait,
    irq,
    softirq,
    steal,
    total: user + nice + system + idle + iowait + irq + softirq + steal,
    cores: Math.max(1, lines.filter((l) => /^cpu\d+ /.test(l)).length),
  };
}

export interface Meminfo {
  total: number;
  free: number;
  /** MemAvailable: what can be allocated without swapping (page cache included). */
  available: number;
  swapTotal: number;
  swapFree: number;
}

/** /proc/meminfo, in bytes. Kernels before 3.14 have no MemAvailable: free + buffers + cached stands in. */
export function parseMeminfo(text: string): Meminfo {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]) * 1024);
  }
  const total = kb.get('MemTotal');
  if (total === undefined) throw new Error('/proc/meminfo has no MemTotal');
  const free = kb.get('MemFree') ?? 0;
  return {
    total,
    free,
    available: kb.get('MemAvailable') ?? free + (kb.get('Buffers') ?? 0) + (kb.get('Cached') ?? 0),
    swapTotal: kb.get('SwapTotal') ?? 0,
    swapFree: kb.get('SwapFree') ?? 0,
  };
}

export interface Mount {
  device: string;
  mountPoint: string;
  type: string;
}

/** /proc/self/mounts; spaces and other bytes in paths are octal escapes there (\040). */
export function parseMounts(text: string): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const [device, mountPoint, type] = line.split(' ');
    if (device && mountPoint && type) out.push({ device: unescape(device), mountPoint: unescape(mountPoint), type });
  }
  return out;
}

/** Totals over the whole disks of /proc/diskstats. */
export interface DiskTotals {
  reads: number;
  writes: number;
  readBytes: number;
  writeBytes: number;
  readMs: number;
  writeMs: number;
  /** Time the devices were busy doing I/O. */
  ioMs: number;
}

/** Bytes per sector in /proc/diskstats, whatever the device's own sector size. */
const DISKSTATS_SECTOR_BYTES = 512;

/** Sums the rows of /proc/diskstats whose device is in `disks` (partitions would count their disk's I/O twice). */
export function diskTotals(text: string, disks: Set<string>): DiskTotals {
  const t: DiskTotals = { reads: 0, writes: 0, readBytes: 0, writeBytes: 0, readMs: 0, writeMs: 0, ioMs: 0 };
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 14 || !disks.has(f[2]!)) continue;
    const n = (i: number) => Number(f[i]) || 0;
    t.reads += n(3);
    t.readBytes += n(5) * DISKSTATS_SECTOR_BYTES;
    t.readMs += n(6);
    t.writes += n(7);
    t.writeBytes += n(9) * DISKSTATS_SECTOR_BYTES;
    t.writeMs += n(10);
    t.ioMs += n(12);
  }
  return t;
}

export interface NetCounters {
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

/** /proc/net/dev: two header lines, then `iface: 8 receive fields, 8 transmit fields`. */
export function parseNetDev(text: string): Map<string, NetCounters> {
  const out = new Map<string, NetCounters>();
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 16 || f.some((x) => !Number.isFinite(x))) continue;
    out.set(line.slice(0, colon).trim(), { rxBytes: f[0]!, rxPackets: f[1]!, rxErrors: f[2]!, rxDropped: f[3]!, txBytes: f[8]!, txPackets: f[9]!, txErrors: f[10]!, txDropped: f[11]! });
  }
  return out;
}
