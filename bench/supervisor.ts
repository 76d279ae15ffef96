/**
 * Supervisor benchmark on one real node:
 *
 *   npm run bench:supervisor -- --json [--services postgresql,etcd,elasticsearch] [--idle 60]
 *
 * cold_start_ms:    `hasup run` spawned → every service healthy (first start: initdb included)
 * child_restart_ms: kill -9 of the postmaster → PostgreSQL healthy again (new pid)
 * idle_rss_mb, idle_cpu_pct: the supervisor process alone (children excluded) over --idle seconds;
 *   RSS is read every second and the median reported (one reading lands anywhere in
 *   the garbage collector's cycle), with the highest reading as idle_rss_mb_max
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient } from '../src/cli/api-client.js';
import type { ServiceStatus } from '../src/supervisor/service.js';
import { LocalRing, generateRingKey, randomPortBase } from '../test/support/member-procs.js';
import { freePort } from '../test/support/service-harness.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: 'postgresql,etcd,elasticsearch' },
    idle: { type: 'string', default: '60' },
    json: { type: 'boolean', default: false },
  },
});
const services = values.services.split(',').filter(Boolean);
const idleS = Number(values.idle);
const progress = (msg: string) => process.stderr.write(`[supervisor] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLK_TCK = 100;
const ADDR_INDEX = 51;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

async function main() {
  const base = mkdtempSync(join(tmpdir(), 'hasup-bench-sup-'));
  chmodSync(base, 0o755);
  const port = randomPortBase();
  const keyFile = join(base, 'ring.key');
  generateRingKey(keyFile);
  const configFile = join(base, 'hasup.toml');
  const ports: Record<string, string[]> = {
    postgresql: [`port = ${await freePort()}`],
    etcd: [`client_port = ${await freePort()}`, `peer_port = ${await freePort()}`],
    elasticsearch: [`http_port = ${await freePort()}`, `transport_port = ${await freePort()}`],
  };
  const lines = ['[services]', `load = ${JSON.stringify(services)}`];
  for (const name of services) lines.push(`[service.${name}]`, ...(ports[name] ?? []));
  writeFileSync(configFile, `${lines.join('\n')}\n`);
  const ring = new LocalRing({ baseDir: base, gossipPort: port, httpPort: port + 1, keyFile });
  const stateDir = join(base, `member-${ADDR_INDEX}`);
  try {
    const spawnedAt = Date.now();
    const node = ring.spawn(ADDR_INDEX, { extraArgs: ['--config', configFile] });
    await ring.ready([ADDR_INDEX], 60_000);
    const api = ApiClient.fromStateDir(stateDir);
    const list = async () => (await api.request<{ services: ServiceStatus[] }>('GET', '/services')).services;
    const allHealthy = async (what: string, timeoutMs: number, notPid?: number) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = await list();
        const pgPid = s.find((x) => x.name === 'postgresql')?.pid;
        if (s.length === services.length && s.every((x) => x.health === 'ok' && x.state === 'running') && (notPid === undefined || pgPid !== notPid)) return s;
        if (Date.now() > deadline) {
          const states = s.map((x) => `${x.name} ${x.state}/${x.health}${x.healthMessage ? ` (${x.healthMessage})` : ''}${x.lastError ? ` last error: ${x.lastError}` : ''}`);
          throw new Error(`${what}: not every service healthy after ${timeoutMs} ms: ${states.join('; ')}; logs under ${stateDir}`);
        }
        await sleep(50);
      }
    };
    await allHealthy('cold start', 300_000);
    const coldStartMs = Date.now() - spawnedAt;
    progress(`all of ${services.join(', ')} healthy after ${coldStartMs} ms`);

    let childRestartMs: number | null = null;
    if (services.includes('postgresql')) {
      await sleep(3000);
      const pg = (await list()).find((x) => x.name === 'postgresql')!;
      const killedAt = Date.now();
      process.kill(pg.pid!, 'SIGKILL');
      await allHealthy('PostgreSQL restart', 120_000, pg.pid);
      childRestartMs = Date.now() - killedAt;
      progress(`postgresql healthy again ${childRestartMs} ms after kill -9`);
    }

    progress(`idle for ${idleS} s`);
    await sleep(5000);
    const before = cpuTicks(node.pid);
    const t0 = Date.now();
    const rss: number[] = [];
    while (Date.now() - t0 < idleS * 1000) {
      await sleep(1000);
      rss.push(rssMb(node.pid));
    }
    rss.sort((a, b) => a - b);
    const idleCpuPct = ((cpuTicks(node.pid) - before) / CLK_TCK / ((Date.now() - t0) / 1000)) * 100;
    const result = {
      services,
      cold_start_ms: coldStartMs,
      child_restart_ms: childRestartMs,
      idle_rss_mb: Math.round(rss[Math.floor(rss.length / 2)]! * 10) / 10,
      idle_rss_mb_max: Math.round(rss[rss.length - 1]! * 10) / 10,
      idle_cpu_pct: Math.round(idleCpuPct * 100) / 100,
    };
    console.log(values.json ? JSON.stringify(result) : result);
  } finally {
    await ring.stopAll();
    rmSync(base, { recursive: true, force: true });
  }
}

await main();
