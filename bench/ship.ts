/**
 * Shipping benchmark into one real Elasticsearch node (started by `hasup run`
 * on 127.0.0.63, shipping of its own off, so only the measured pipeline
 * writes):
 *
 *   npm run bench:ship -- --events 200000 --json [--no-rsyslog] [--rounds N] [--tls]
 *
 * --tls: Elasticsearch's security on (docs/elasticsearch.md): the node serves
 * HTTPS only, the shipper verifies it against the cluster CA and writes as
 * hasup_shipper, as a member with security = true does; the JSON says
 * "tls": true. rsyslog is left out then (rsyslog_events_per_s null).
 *
 * hasup: child lines go through the same path a supervised child's lines take
 * (ChildLinesInput → ECS document → disk spool → bulk create, gzip) as fast
 * as the pipeline takes them; the clock stops when Elasticsearch has
 * acknowledged the last one. Then every document is counted in Elasticsearch:
 *   lost       = events − documents found
 *   duplicates = documents found − events (ids make a duplicate impossible by
 *                construction; the count and the sum of line numbers check it)
 *   spool_peak_mb, rss_mb (peak), cpu_pct (of one core): the benchmark process,
 *                which is the pipeline and the generator
 *
 * rsyslog (Debian rsyslog-elasticsearch), in the same run, after hasup: the
 * same lines written to a file, read by imfile, sent by omelasticsearch in
 * bulk mode into an index with the same mappings; its clock runs from
 * rsyslogd's start until Elasticsearch counts every line. Without rsyslogd on
 * the machine, rsyslog_events_per_s is null.
 *
 * With --rounds N the two alternate N times on the same node (a shared
 * machine's load changes by the minute) and the best round of each is
 * reported; lost and duplicates are summed over all rounds.
 *
 * The last line printed is one JSON object.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@elastic/elasticsearch';
import { esClientOptions, type EsAccess, type EsUser } from '../src/plugins/elasticsearch/access.js';
import { pino } from 'pino';
import type { EventOrigin } from '../src/plugins/shipper/ecs.js';
import { dailyIndex, indexTemplate } from '../src/plugins/shipper/indices.js';
import { ChildLinesInput } from '../src/plugins/shipper/inputs.js';
import { ElasticsearchOutput } from '../src/plugins/shipper/output.js';
import { Shipper } from '../src/plugins/shipper/shipper.js';
import { Spool } from '../src/plugins/shipper/spool.js';
import { LocalRing } from '../test/support/member-procs.js';
import { startEsNode } from './support/es-node.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    json: { type: 'boolean', default: false },
    rsyslog: { type: 'boolean', default: true },
    'no-rsyslog': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    tls: { type: 'boolean', default: false },
  },
});
const ROUNDS = Math.max(1, Number(values.rounds));
const EVENTS = Number(values.events);
const TLS = values.tls === true;
const withRsyslog = values.rsyslog && !values['no-rsyslog'] && !TLS;
const progress = (msg: string) => process.stderr.write(`[ship] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ADDR_INDEX = 63;
const WARMUP_DOCS = 400_000;
const addr = LocalRing.addr(ADDR_INDEX);
const CLK_TCK = 100;
/** What a busy service prints: a timestamped line of ~120 bytes. */
const line = (n: number) => `2024-06-01 12:00:00.000 UTC [4242] LOG:  bench line ${n}: checkpoint complete: wrote 1234 buffers (7.5%); 0 WAL file(s) added`;

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** The JVMs of the node: the launcher and its children. */
function esPids(launcher: number): number[] {
  const out = [launcher];
  for (const child of spawnSync('pgrep', ['-P', String(launcher)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) out.push(Number(child));
  return out;
}

async function countAndSum(es: Client, index: string, field: string, query?: Record<string, unknown>): Promise<{ count: number; sum: number }> {
  await es.indices.refresh({ index });
  const r = await es.search({ index, size: 0, track_total_hits: true, ...(query ? { query } : {}), aggs: { s: { sum: { field } } } });
  const total = typeof r.hits.total === 'object' ? r.hits.total.value : (r.hits.total ?? 0);
  return { count: total, sum: (r.aggregations?.s as { value?: number } | undefined)?.value ?? 0 };
}

/**
 * A freshly started JVM indexes at a third of its warm speed until the JIT
 * has compiled the indexing path (measured: 9k/s cold, 25k/s warm for the
 * same pipeline): both contenders get the warm node.
 */
async function warmUp(es: Client): Promise<void> {
  const index = 'hasup-bench-warmup';
  const template = indexTemplate('logs', { retentionDays: 1 }).template as { settings: Record<string, unknown>; mappings: Record<string, unknown> };
  await es.indices.create({ index, settings: template.settings, mappings: template.mappings });
  progress(`warming Elasticsearch up with ${WARMUP_DOCS} documents`);
  let next = 0;
  // The same operation (create with an id, two requests at a time) the measured runs use.
  const worker = async () => {
    while (next < WARMUP_DOCS) {
      const start = next;
      next += 5000;
      let body = '';
      for (let n = start; n < start + 5000; n++) body += `{"create":{"_index":"${index}","_id":"w-${n}"}}\n${JSON.stringify({ '@timestamp': new Date().toISOString(), message: line(n), log: { level: 'info', offset: n }, service: { name: 'warmup' } })}\n`;
      await es.bulk({ body } as unknown as Parameters<Client['bulk']>[0]);
    }
  };
  await Promise.all([worker(), worker()]);
  await es.indices.delete({ index });
}

interface Node {
  base: string;
  addr: string;
  esPort: number;
  /** http(s)://ADDR:PORT of the node. */
  url: string;
  access: (user: EsUser) => EsAccess;
  es: Client;
  jvms: number[];
}

/** One hasup round: its own spool (so its own id generation) and its own service.name to count by. */
async function hasupRound(node: Node, round: number): Promise<Record<string, unknown>> {
  const service = `bench-r${round}`;
  // A fresh daily index each round, as rsyslog gets a fresh index of its own (lookups of ids grow with the index).
  await node.es.indices.delete({ index: dailyIndex('logs', Date.now()), ignore_unavailable: true });
  const spool = Spool.open({ dir: join(node.base, `spool-${round}`), maxBytes: 1024 * 1024 * 1024 });
  const shipper = new Shipper({ spool, output: new ElasticsearchOutput({ urls: () => [node.url], access: node.access }), memberId: 'bench', log: pino({ level: 'warn' }, process.stderr) });
  const origin: EventOrigin = { memberId: 'bench', hostName: 'bench-host', hostIp: node.addr, role: () => 'leader' };
  // The line number rides along in log.offset, for the lost/duplicate check in Elasticsearch.
  let lineNumber = 0;
  const input = new ChildLinesInput({ push: (kind, time, doc) => shipper.push(kind, time, { ...doc, log: { ...(doc as { log: object }).log, offset: lineNumber } }) }, origin);
  shipper.start();
  // Templates first, so their installation is not part of the clock.
  for (let i = 0; i < 200 && !shipper.stats().templatesInstalled; i++) await sleep(50);
  let spoolPeak = 0;
  let rssPeak = 0;
  const sampler = setInterval(() => {
    spoolPeak = Math.max(spoolPeak, spool.stats().bytes);
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 100);
  const esTicks0 = node.jvms.reduce((sum, p) => sum + cpuTicks(p), 0);
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  progress(`hasup round ${round}: ${EVENTS} events into the pipeline`);
  for (let n = 0; n < EVENTS; n++) {
    lineNumber = n;
    input.write({ service, stream: 'stdout', line: line(n), pid: 4242, time: Date.now() });
    // As fast as it takes them: let the spool's writer catch up every few thousand.
    if (n % 5000 === 4999) await spool.flush();
  }
  const generatedMs = Date.now() - t0;
  await shipper.whenDelivered();
  const elapsedMs = Date.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const esTicks = node.jvms.reduce((sum, p) => sum + cpuTicks(p), 0) - esTicks0;
  clearInterval(sampler);
  spoolPeak = Math.max(spoolPeak, spool.stats().bytes);
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  const stats = shipper.stats();
  await shipper.stop();
  const found = await countAndSum(node.es, 'hasup-logs-*', 'log.offset', { term: { 'service.name': service } });
  return {
    events: EVENTS,
    events_per_s: Math.round(EVENTS / (elapsedMs / 1000)),
    lost: Math.max(0, EVENTS - found.count),
    duplicates: Math.max(0, found.count - EVENTS),
    sum_check: found.sum === (EVENTS * (EVENTS - 1)) / 2,
    spool_peak_mb: Math.round((spoolPeak / 1048576) * 10) / 10,
    rss_mb: Math.round(rssPeak / 1048576),
    cpu_pct: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 100),
    es_cpu_pct: Math.round((((esTicks / CLK_TCK) * 1000) / elapsedMs) * 100),
    elapsed_s: Math.round(elapsedMs / 100) / 10,
    generate_s: Math.round(generatedMs / 100) / 10,
    bulk_requests: stats.requests,
    rejected: stats.rejected,
    conflicts: stats.conflicts,
    load: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
  };
}

/** One rsyslog round: the same lines in a file, imfile → omelasticsearch into an index with the same mappings. */
async function rsyslogRound(node: Node, round: number, children: Set<ChildProcess>): Promise<Record<string, unknown>> {
  const dir = join(node.base, `rsyslog-${round}`);
  mkdirSync(join(dir, 'work'), { recursive: true });
  const file = join(dir, 'lines.log');
  const out = createWriteStream(file);
  for (let n = 0; n < EVENTS; n++) if (!out.write(`${line(n)}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
  await new Promise<void>((r) => out.end(r));
  const index = `hasup-rsyslog-bench-r${round}`;
  const template = indexTemplate('logs', { retentionDays: 1 }).template as { settings: Record<string, unknown>; mappings: Record<string, unknown> };
  await node.es.indices.create({ index, settings: template.settings, mappings: template.mappings });
  const conf = join(dir, 'rsyslog.conf');
  writeFileSync(
    conf,
    [
      `global(workDirectory="${join(dir, 'work')}" maxMessageSize="64k")`,
      'module(load="imfile")',
      'module(load="omelasticsearch")',
      // The same ECS fields hasup sends, including the line number for the lost/duplicate check.
      'template(name="ecs" type="list" option.jsonf="on") {',
      '  property(outname="@timestamp" name="timegenerated" dateFormat="rfc3339" format="jsonf")',
      '  property(outname="message" name="msg" format="jsonf")',
      '  constant(outname="host.name" value="bench-host" format="jsonf")',
      '  constant(outname="service.name" value="bench" format="jsonf")',
      '  constant(outname="event.dataset" value="bench.log" format="jsonf")',
      '  constant(outname="log.level" value="info" format="jsonf")',
      '  property(outname="log.offset" name="msg" format="jsonf" datatype="number" regex.expression="bench line ([0-9]+)" regex.submatch="1" regex.type="ERE")',
      '}',
      `input(type="imfile" file="${file}" tag="bench" ruleset="es" readMode="0")`,
      'ruleset(name="es" queue.type="linkedlist" queue.size="200000" queue.dequeueBatchSize="5000") {',
      `  action(type="omelasticsearch" server="${node.addr}" serverport="${node.esPort}" template="ecs" searchIndex="${index}" bulkmode="on" maxbytes="5m" esVersion.major="8"`,
      '         action.resumeRetryCount="-1" queue.type="linkedlist" queue.size="200000" queue.dequeueBatchSize="5000"',
      `         errorFile="${join(dir, 'errors.json')}")`,
      '}',
      '',
    ].join('\n'),
  );
  const check = spawnSync('/usr/sbin/rsyslogd', ['-N1', '-f', conf], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`rsyslog config refused: ${check.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  progress(`rsyslog round ${round}: ${EVENTS} lines through imfile → omelasticsearch`);
  const r0 = Date.now();
  const rsyslogd = spawn('/usr/sbin/rsyslogd', ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(rsyslogd);
  rsyslogd.stderr!.on('data', (d: Buffer) => progress(`rsyslogd: ${d.toString().trim().slice(0, 300)}`));
  try {
    let done = { count: 0, sum: 0 };
    let doneMs = 0;
    // Counting needs a refresh; every 500 ms keeps the clock's error small without loading Elasticsearch much.
    for (const deadline = Date.now() + 600_000; Date.now() < deadline; await sleep(500)) {
      done = await countAndSum(node.es, index, 'log.offset');
      if (done.count >= EVENTS) {
        doneMs = Date.now() - r0;
        break;
      }
    }
    const ticks = cpuTicks(rsyslogd.pid!);
    if (doneMs === 0) return { rsyslog_found: done.count };
    // Let late duplicates (a retried bulk) land before the final count.
    await sleep(2000);
    done = await countAndSum(node.es, index, 'log.offset');
    return {
      rsyslog_events_per_s: Math.round(EVENTS / (doneMs / 1000)),
      rsyslog_lost: Math.max(0, EVENTS - done.count),
      rsyslog_duplicates: Math.max(0, done.count - EVENTS),
      rsyslog_cpu_pct: Math.round((((ticks / CLK_TCK) * 1000) / doneMs) * 100),
      load: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    };
  } finally {
    rsyslogd.kill('SIGTERM');
    if (rsyslogd.exitCode === null) await new Promise((r) => rsyslogd.once('exit', r));
    children.delete(rsyslogd);
  }
}

async function main(): Promise<void> {
  const started = await startEsNode('ship', ADDR_INDEX, progress, { security: TLS });
  const { base, esPort } = started;
  const children = new Set<ChildProcess>();
  const es = new Client({ node: started.url, requestTimeout: 60_000, ...esClientOptions(started.access('admin')) });
  try {
    const node: Node = { base, addr, esPort, url: started.url, access: started.access, es, jvms: esPids(started.pid) };
    await warmUp(es);

    const rsyslogHere = withRsyslog && existsSync('/usr/sbin/rsyslogd') && existsSync('/usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so');
    const hasupRounds: Array<Record<string, unknown>> = [];
    const rsyslogRounds: Array<Record<string, unknown>> = [];
    // Rounds alternate, so a change of load on a shared machine hits both contenders alike.
    for (let round = 1; round <= ROUNDS; round++) {
      const h = await hasupRound(node, round);
      progress(`hasup round ${round}: ${JSON.stringify(h)}`);
      hasupRounds.push(h);
      if (rsyslogHere) {
        const r = await rsyslogRound(node, round, children);
        progress(`rsyslog round ${round}: ${JSON.stringify(r)}`);
        rsyslogRounds.push(r);
      }
    }
    const rate = (r: Record<string, unknown>, key: string) => (typeof r[key] === 'number' ? (r[key] as number) : 0);
    const best = hasupRounds.reduce((a, b) => (rate(b, 'events_per_s') > rate(a, 'events_per_s') ? b : a));
    const bestRsyslog = rsyslogRounds.length > 0 ? rsyslogRounds.reduce((a, b) => (rate(b, 'rsyslog_events_per_s') > rate(a, 'rsyslog_events_per_s') ? b : a)) : undefined;
    const result: Record<string, unknown> = {
      ...best,
      // Over all rounds: nothing may be lost or duplicated in any of them.
      lost: hasupRounds.reduce((sum, r) => sum + rate(r, 'lost'), 0),
      duplicates: hasupRounds.reduce((sum, r) => sum + rate(r, 'duplicates'), 0),
      rounds: ROUNDS,
      tls: TLS,
      ...(ROUNDS > 1 ? { events_per_s_rounds: hasupRounds.map((r) => r.events_per_s) } : {}),
      rsyslog_events_per_s: bestRsyslog ? (bestRsyslog.rsyslog_events_per_s ?? null) : null,
      ...(bestRsyslog ? { rsyslog_lost: rsyslogRounds.reduce((sum, r) => sum + rate(r, 'rsyslog_lost'), 0), rsyslog_duplicates: rsyslogRounds.reduce((sum, r) => sum + rate(r, 'rsyslog_duplicates'), 0), rsyslog_cpu_pct: bestRsyslog.rsyslog_cpu_pct } : {}),
      ...(ROUNDS > 1 && bestRsyslog ? { rsyslog_events_per_s_rounds: rsyslogRounds.map((r) => r.rsyslog_events_per_s ?? null) } : {}),
    };
    delete result.load;
    console.log(values.json ? JSON.stringify(result) : result);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await es.close();
    await started.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
