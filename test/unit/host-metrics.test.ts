import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostSampler } from '../../src/plugins/metrics-collector/host.js';
import { diskTotals, parseCpuTimes, parseMeminfo, parseMounts, parseNetDev } from '../../src/plugins/metrics-collector/proc-files.js';
import { numberAt, type MetricSet } from '../../src/plugins/metrics-collector/sample.js';

const STAT = (user: number, idle: number) => `cpu  ${user} 0 100 ${idle} 50 0 10 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\nintr 1 2 3\n`;
const MEMINFO = 'MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\nBuffers:          10 kB\nSwapTotal:       100 kB\nSwapFree:         25 kB\n';
const DISKSTATS = [
  '   7       0 loop0 5 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0',
  ' 254       0 vda 100 0 800 40 50 0 1600 60 0 90 100 0 0 0 0 0 0',
  ' 254       1 vda1 90 0 700 30 40 0 1500 50 0 80 90 0 0 0 0 0 0',
].join('\n');
const NETDEV = [
  'Inter-|   Receive                                                |  Transmit',
  ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
  '    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0',
  '  eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0',
].join('\n');

test('/proc/stat: the summed cpu line and the number of CPUs', () => {
  const t = parseCpuTimes(STAT(400, 1000));
  assert.equal(t.cores, 2);
  assert.equal(t.user, 400);
  assert.equal(t.iowait, 50);
  assert.equal(t.total, 400 + 100 + 1000 + 50 + 10);
  assert.throws(() => parseCpuTimes('intr 1 2\n'), /no readable cpu line/);
});

test('/proc/meminfo in bytes, with a fallback for kernels without MemAvailable', () => {
  assert.deepEqual(parseMeminfo(MEMINFO), { total: 1_024_000, free: 204_800, available: 614_400, swapTotal: 102_400, swapFree: 25_600 });
  assert.equal(parseMeminfo('MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 25 kB\n').available, 175 * 1024);
  assert.throws(() => parseMeminfo('MemFree: 1 kB\n'), /no MemTotal/);
});

test('mount paths with octal escapes are decoded', () => {
  assert.deepEqual(parseMounts('/dev/vda1 / ext4 rw 0 0\n/dev/vdb /mnt/my\\040disk xfs rw 0 0\n'), [
    { device: '/dev/vda1', mountPoint: '/', type: 'ext4' },
    { device: '/dev/vdb', mountPoint: '/mnt/my disk', type: 'xfs' },
  ]);
});

test('disk totals count whole disks only, in 512-byte sectors', () => {
  const t = diskTotals(DISKSTATS, new Set(['vda']));
  assert.deepEqual(t, { reads: 100, writes: 50, readBytes: 800 * 512, writeBytes: 1600 * 512, readMs: 40, writeMs: 60, ioMs: 90 });
});

test('/proc/net/dev counters per interface', () => {
  const n = parseNetDev(NETDEV);
  assert.deepEqual([...n.keys()], ['lo', 'eth0']);
  assert.deepEqual(n.get('eth0'), { rxBytes: 5000, rxPackets: 50, rxErrors: 1, rxDropped: 2, txBytes: 7000, txPackets: 70, txErrors: 3, txDropped: 4 });
});

function fakeRoot(user: number, idle: number, rxBytes: number): string {
  const root = mkdtempSync(join(tmpdir(), 'hasup-proc-'));
  mkdirSync(join(root, 'proc', 'self'), { recursive: true });
  mkdirSync(join(root, 'proc', 'net'));
  mkdirSync(join(root, 'sys', 'block', 'vda'), { recursive: true });
  mkdirSync(join(root, 'sys', 'block', 'loop0'));
  writeFileSync(join(root, 'proc', 'stat'), STAT(user, idle));
  writeFileSync(join(root, 'proc', 'meminfo'), MEMINFO);
  writeFileSync(join(root, 'proc', 'self', 'mounts'), `/dev/root ${root} ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n`);
  writeFileSync(join(root, 'proc', 'diskstats'), DISKSTATS);
  writeFileSync(join(root, 'proc', 'net', 'dev'), NETDEV.replace('eth0: 5000', `eth0: ${rxBytes}`));
  return root;
}

const set = (sets: MetricSet[], name: string, key?: string) => sets.find((s) => s.metricset === name && (key === undefined || JSON.stringify(s.fields).includes(key)))!.fields;

test('the host sampler turns two readings into Metricbeat CPU shares and per-second rates', async () => {
  const root = fakeRoot(400, 1000, 5000);
  try {
    const sampler = new HostSampler(root);
    const first = await sampler.sample(10_000);
    assert.equal(numberAt(set(first, 'network', 'eth0'), 'system.network.in.bytes'), 5000);
    assert.equal(numberAt(set(first, 'network', 'eth0'), 'system.network.in.bytes_per_sec'), undefined, 'no rate from one reading');
    // 10 s later: 300 more user ticks and 100 more idle ticks, 20000 more bytes received.
    writeFileSync(join(root, 'proc', 'stat'), STAT(700, 1100));
    writeFileSync(join(root, 'proc', 'net', 'dev'), NETDEV.replace('eth0: 5000', 'eth0: 25000'));
    const second = await sampler.sample(20_000);
    const cpu = set(second, 'cpu');
    assert.equal(numberAt(cpu, 'system.cpu.user.norm.pct'), 0.75);
    assert.equal(numberAt(cpu, 'system.cpu.total.norm.pct'), 0.75);
    assert.equal(numberAt(cpu, 'system.cpu.total.pct'), 1.5, 'pct is scaled by the number of CPUs');
    assert.equal(numberAt(set(second, 'network', 'eth0'), 'system.network.in.bytes_per_sec'), 2000);
    const mem = set(second, 'memory');
    assert.equal(numberAt(mem, 'system.memory.actual.used.pct'), 0.4);
    assert.equal(numberAt(mem, 'system.memory.swap.used.bytes'), 75 * 1024);
    assert.equal(numberAt(set(second, 'diskio'), 'system.diskio.read.count'), 100);
    const filesystems = second.filter((s) => s.metricset === 'filesystem');
    assert.equal(filesystems.length, 1, 'tmpfs is not a disk');
    assert.ok((numberAt(filesystems[0]!.fields, 'system.filesystem.total') ?? 0) > 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
