/**
 * Host metrics from systeminformation, in Metricbeat's system module layout
 * (system.cpu, system.load, system.memory, system.filesystem,
 * system.diskio, system.network), so dashboards and queries written for
 * Metricbeat work on hasup's documents unchanged.
 */
import { loadavg } from 'node:os';
import si from 'systeminformation';
import type { MetricSet } from './sample.js';

/** Filesystems that say nothing about the host's disks. */
const PSEUDO_FS = /^(tmpfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|devpts|mqueue|debugfs|tracefs|fusectl|configfs|securityfs|pstore|bpf|autofs|hugetlbfs|ramfs)$/;

const round = (v: number, digits = 4) => (Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : 0);
const ratio = (part: number, whole: number) => (whole > 0 ? round(part / whole) : 0);

export async function hostMetricSets(): Promise<MetricSet[]> {
  const [load, mem, filesystems, diskio, network] = await Promise.all([
    si.currentLoad(),
    si.mem(),
    si.fsSize().catch(() => []),
    si.disksIO().catch(() => null),
    si.networkStats('*').catch(() => []),
  ]);
  const cores = Math.max(1, load.cpus.length);
  const pct = (v: number) => round(v / 100);
  const cpuPart = (v: number) => ({ pct: round((v / 100) * cores), norm: { pct: pct(v) } });
  const [l1, l5, l15] = loadavg() as [number, number, number];
  const actualUsed = mem.total - mem.available;
  const sets: MetricSet[] = [
    {
      module: 'system',
      metricset: 'cpu',
      fields: {
        system: {
          cpu: {
            cores,
            total: cpuPart(load.currentLoad),
            user: cpuPart(load.currentLoadUser),
            system: cpuPart(load.currentLoadSystem),
            nice: cpuPart(load.currentLoadNice),
            idle: cpuPart(load.currentLoadIdle),
            irq: cpuPart(load.currentLoadIrq),
            steal: cpuPart(load.currentLoadSteal),
          },
        },
      },
    },
    {
      module: 'system',
      metricset: 'load',
      fields: { system: { load: { 1: round(l1), 5: round(l5), 15: round(l15), cores, norm: { 1: ratio(l1, cores), 5: ratio(l5, cores), 15: ratio(l15, cores) } } } },
    },
    {
      module: 'system',
      metricset: 'memory',
      fields: {
        system: {
          memory: {
            total: mem.total,
            free: mem.free,
            used: { bytes: mem.used, pct: ratio(mem.used, mem.total) },
            actual: { free: mem.available, used: { bytes: actualUsed, pct: ratio(actualUsed, mem.total) } },
            swap: { total: mem.swaptotal, free: mem.swapfree, used: { bytes: mem.swapused, pct: ratio(mem.swapused, mem.swaptotal) } },
          },
        },
      },
    },
  ];
  for (const fs of filesystems) {
    if (PSEUDO_FS.test(fs.type) || fs.size <= 0) continue;
    sets.push({
      module: 'system',
      metricset: 'filesystem',
      fields: {
        system: {
          filesystem: {
            device_name: fs.fs,
            mount_point: fs.mount,
            type: fs.type,
            total: fs.size,
            available: fs.available,
            free: fs.size - fs.used,
            used: { bytes: fs.used, pct: ratio(fs.used, fs.size) },
          },
        },
      },
    });
  }
  if (diskio) {
    sets.push({
      module: 'system',
      metricset: 'diskio',
      fields: {
        system: {
          diskio: {
            name: 'all',
            read: { count: diskio.rIO, time: diskio.rWaitTime, ...(diskio.rIO_sec !== null ? { per_sec: round(diskio.rIO_sec, 2) } : {}) },
            write: { count: diskio.wIO, time: diskio.wWaitTime, ...(diskio.wIO_sec !== null ? { per_sec: round(diskio.wIO_sec, 2) } : {}) },
            io: { count: diskio.tIO, time: diskio.tWaitTime },
          },
        },
      },
    });
  }
  for (const n of network) {
    sets.push({
      module: 'system',
      metricset: 'network',
      fields: {
        system: {
          network: {
            name: n.iface,
            in: { bytes: n.rx_bytes, errors: n.rx_errors, dropped: n.rx_dropped, ...(n.rx_sec !== null ? { bytes_per_sec: round(n.rx_sec, 1) } : {}) },
            out: { bytes: n.tx_bytes, errors: n.tx_errors, dropped: n.tx_dropped, ...(n.tx_sec !== null ? { bytes_per_sec: round(n.tx_sec, 1) } : {}) },
          },
        },
      },
    });
  }
  return sets;
}
