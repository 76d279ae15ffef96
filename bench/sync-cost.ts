/**
 * What synchronous replication costs: pgbench (TPC-B-like, the default
 * script) through HAProxy against the 3-node namespace cluster, with the
 * leader committing asynchronously and then synchronously (ANY 1 of the two
 * followers), alternating for --rounds rounds on the same cluster.
 *
 *   npm run bench:sync-cost -- --seconds 20 --clients 4 --rounds 3 --json   (after a --warmup 15 s run)
 *
 * Per mode: transactions per second and commit latency (mean, p50, p99, from
 * pgbench's per-transaction log), summed over the rounds.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { HASUP_BIN } from '../test/support/member-procs.js';
import { eventually, HaCluster } from '../test/support/ha-cluster.js';
import { netnsUnavailableReason } from '../test/support/netns-cluster.js';

const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    clients: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    scale: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '15' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const clients = Number(values.clients);
const rounds = Number(values.rounds);
const scale = Number(values.scale);
const progress = (msg: string) => process.stderr.write(`[sync-cost] ${msg}\n`);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('close', (code) => resolve({ code, out }));
  });
}

interface Sample {
  transactions: number;
  seconds: number;
  latenciesUs: number[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summarize(samples: Sample[]) {
  const lat = samples.flatMap((s) => s.latenciesUs).sort((a, b) => a - b);
  const tx = samples.reduce((a, s) => a + s.transactions, 0);
  const secs = samples.reduce((a, s) => a + s.seconds, 0);
  const mean = lat.reduce((a, x) => a + x, 0) / Math.max(1, lat.length);
  const ms = (us: number) => Math.round(us / 10) / 100;
  return { tps: Math.round((tx / secs) * 10) / 10, latency_ms_mean: ms(mean), latency_ms_p50: ms(percentile(lat, 50)), latency_ms_p99: ms(percentile(lat, 99)), transactions: tx };
}

async function main(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) throw new Error(`the benchmark needs network namespaces: ${why}`);
  for (const [name, v] of Object.entries({ seconds, clients, rounds, scale })) if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  const ha = await HaCluster.create({ nodes: 3 });
  const work = mkdtempSync(join(tmpdir(), 'hasup-sync-cost-'));
  const out: Record<'async' | 'sync', Sample[]> = { async: [], sync: [] };
  try {
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.startHaproxy();
    const leader = await ha.whole();
    progress(`cluster up, leader node ${leader}`);
    const target = ha.haproxyTarget;
    const pgEnv = { PGPASSWORD: ha.secrets.postgresql.superuser_password, PGHOST: target.host, PGPORT: String(target.port), PGUSER: 'hasup', PGDATABASE: 'postgres' };
    const init = await run(PGBENCH, ['-i', '-q', '-s', String(scale)], pgEnv);
    if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.out}`);
    progress(`pgbench tables at scale ${scale}`);
    // The load of the tables leaves a checkpoint and cold caches behind: neither belongs to the first mode measured.
    await ha.sql(leader, 'CHECKPOINT');
    const warm = await run(PGBENCH, ['-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(Number(values.warmup))], pgEnv);
    if (warm.code !== 0) throw new Error(`pgbench warm-up failed: ${warm.out}`);
    progress(`warmed up for ${values.warmup} s`);
    let version = 100;
    const setMode = async (sync: boolean) => {
      const patch = join(work, 'mode.toml');
      writeFileSync(patch, `[ha]\nsynchronous_mode = ${sync}\n`);
      const r = await run(process.execPath, [HASUP_BIN, 'config', 'apply', 'postgresql.default', String(++version), patch, '--state-dir', ha.cluster.node(leader).stateDir]);
      if (r.code !== 0) throw new Error(`config apply failed: ${r.out}`);
      await eventually(
        async () => {
          const lead = await ha.soleLeader(10_000);
          const rows = await ha.sql<{ s: string }>(lead, "SELECT current_setting('synchronous_standby_names') AS s");
          return sync ? /^ANY 1 \(/.test(rows[0]!.s) : rows[0]!.s === '';
        },
        30_000,
        `the leader ${sync ? 'synchronous' : 'asynchronous'}`,
      );
    };
    for (let r = 1; r <= rounds; r++) {
      for (const mode of ['async', 'sync'] as const) {
        await setMode(mode === 'sync');
        const dir = join(work, `${mode}-${r}`);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir);
        const res = await run(PGBENCH, ['-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-l'], pgEnv, dir);
        if (res.code !== 0) throw new Error(`pgbench failed: ${res.out}`);
        const latenciesUs: number[] = [];
        for (const f of readdirSync(dir).filter((n) => n.startsWith('pgbench_log'))) {
          for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
            const us = Number(line.split(' ')[2]);
            if (Number.isFinite(us) && line) latenciesUs.push(us);
          }
        }
        const tx = Number(/number of transactions actually processed: (\d+)/.exec(res.out)?.[1] ?? latenciesUs.length);
        out[mode].push({ transactions: tx, seconds, latenciesUs });
        const s = summarize([out[mode].at(-1)!]);
        progress(`round ${r} ${mode}: ${s.tps} tps, latency mean ${s.latency_ms_mean} ms, p99 ${s.latency_ms_p99} ms`);
      }
    }
  } finally {
    await ha.destroy();
    rmSync(work, { recursive: true, force: true });
  }
  const a = summarize(out.async);
  const s = summarize(out.sync);
  const result = {
    seconds,
    clients,
    rounds,
    scale,
    async: a,
    sync: s,
    sync_tps_ratio: Math.round((s.tps / a.tps) * 1000) / 1000,
    sync_latency_added_ms_mean: Math.round((s.latency_ms_mean - a.latency_ms_mean) * 100) / 100,
    load1: Math.round(loadavg()[0]! * 100) / 100,
  };
  if (!values.json) {
    console.log(`async: ${a.tps} tps, commit latency mean ${a.latency_ms_mean} ms, p50 ${a.latency_ms_p50} ms, p99 ${a.latency_ms_p99} ms`);
    console.log(`sync:  ${s.tps} tps, commit latency mean ${s.latency_ms_mean} ms, p50 ${s.latency_ms_p50} ms, p99 ${s.latency_ms_p99} ms`);
  }
  console.log(JSON.stringify(result));
}

main().catch((err: unknown) => {
  console.error(`sync-cost: ${(err as Error).message}`);
  process.exit(1);
});
