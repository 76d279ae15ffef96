/**
 * Shipping with the real servers: one `hasup run` on 127.0.0.61 with
 * Elasticsearch, PostgreSQL, etcd and a chatty fixture service.
 *   - PostgreSQL's, etcd's and the supervisor's own lines are searchable
 *     with the right host.name, service.name and member id; metric samples
 *     with Metricbeat's names arrive and /metrics shows the same figures;
 *   - Elasticsearch stopped, 10k lines spooled, the supervisor killed -9,
 *     everything started again: all 10k arrive, each exactly once;
 *   - a document Elasticsearch rejects is counted and logged and does not
 *     hold up the documents behind it (the pipeline in-process, against the
 *     same real node);
 *   - a full spool drops the oldest events and counts them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { pino } from 'pino';
import { ApiClient } from '../../src/cli/api-client.js';
import { childLineDocument, type EventOrigin } from '../../src/plugins/shipper/ecs.js';
import { KIND_LOGS } from '../../src/plugins/shipper/indices.js';
import { ElasticsearchOutput } from '../../src/plugins/shipper/output.js';
import { Shipper } from '../../src/plugins/shipper/shipper.js';
import { Spool } from '../../src/plugins/shipper/spool.js';
import { installRoot } from '../../src/supervisor/install-paths.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { HASUP_BIN, LocalRing, generateRingKey, randomPortBase, type MemberProc } from '../support/member-procs.js';
import { freePort } from '../support/service-harness.js';
import { eventually } from '../support/eventually.js';

const FIXTURE_PLANS = join(installRoot(), 'test', 'fixtures', 'plans');
const ADDR_INDEX = 61;
const addr = LocalRing.addr(ADDR_INDEX);
const base = mkdtempSync(join(tmpdir(), 'hasup-ship-'));
chmodSync(base, 0o755);
const stateDir = join(base, `member-${ADDR_INDEX}`);
const keyFile = join(base, 'ring.key');
const configFile = join(base, 'hasup.toml');
const gossipPort = randomPortBase();
const LINES = 10_000;
const START_BUDGET_MS = 120_000;
let esPort = 0;
let ring: LocalRing;
let node: MemberProc;
let es: Client;
let memberId = '';

const api = () => ApiClient.fromStateDir(stateDir);
const services = async () => (await api().request<{ services: ServiceStatus[] }>('GET', '/services')).services;
const cli = (...args: string[]) => spawnSync(process.execPath, [HASUP_BIN, ...args, '--state-dir', stateDir], { encoding: 'utf8', timeout: 120_000 });


const esHealthy = () =>
  eventually(async () => {
    const s = (await services()).find((x) => x.name === 'elasticsearch');
    return s?.health === 'ok' ? s : undefined;
  }, START_BUDGET_MS, 'elasticsearch healthy');

interface LogDoc {
  message: string;
  host: { name: string; ip?: string };
  service: { name: string };
  log: { level: string };
  process?: { pid: number };
  event: { dataset: string };
  hasup: { member: { id: string; role: string } };
}

async function searchLogs(query: Record<string, unknown>, size = 20) {
  await es.indices.refresh({ index: 'hasup-logs-*' });
  return es.search<LogDoc>({ index: 'hasup-logs-*', query, size, track_total_hits: true });
}

/** Occurrences of `text` in the member's spool segments (what is on disk, acknowledged or not). */
function spooled(text: string): number {
  const dir = join(stateDir, 'spool', 'events');
  let count = 0;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.spool')) continue;
    const data = readFileSync(join(dir, name));
    for (let at = data.indexOf(text); at !== -1; at = data.indexOf(text, at + 1)) count++;
  }
  return count;
}

function startNode(): MemberProc {
  return ring.spawn(ADDR_INDEX, { extraArgs: ['--config', configFile] });
}

before(async () => {
  esPort = await freePort();
  generateRingKey(keyFile);
  writeFileSync(
    configFile,
    [
      '[services]',
      'load = ["elasticsearch", "postgresql", "etcd"]',
      `plan_path = [${JSON.stringify(FIXTURE_PLANS)}]`,
      '[service.elasticsearch]',
      'cluster_name = "hasup-ship-test"',
      `http_port = ${esPort}`,
      `transport_port = ${await freePort()}`,
      'disk_threshold_enabled = false',
      '[service.postgresql]',
      `port = ${await freePort()}`,
      '[service.etcd]',
      `client_port = ${await freePort()}`,
      `peer_port = ${await freePort()}`,
      'log_level = "info"',
      '[shipping]',
      'flush_interval_ms = 200',
      'metrics_interval_s = 2',
      'retry_max_s = 2',
    ].join('\n'),
  );
  mkdirSync(stateDir, { recursive: true });
  es = new Client({ node: `http://${addr}:${esPort}`, requestTimeout: 30_000 });
  ring = new LocalRing({ baseDir: base, gossipPort, httpPort: gossipPort + 1, keyFile });
});

after(async () => {
  await es?.close();
  await ring?.stopAll();
  rmSync(base, { recursive: true, force: true });
});

test('PostgreSQL, etcd and supervisor lines are searchable with host, service and member; metrics arrive and /metrics shows them', async (t) => {
  const started = Date.now();
  node = startNode();
  await ring.ready([ADDR_INDEX], 30_000);
  memberId = readFileSync(join(stateDir, 'member-id'), 'utf8').trim();
  await esHealthy();
  t.diagnostic(`node up, Elasticsearch healthy after ${Date.now() - started} ms`);

  for (const service of ['postgresql', 'etcd', 'hasup']) {
    const found = await eventually(async () => {
      const r = await searchLogs({ bool: { filter: [{ term: { 'service.name': service } }, { term: { 'hasup.member.id': memberId } }] } }, 5);
      return r.hits.hits.length > 0 ? r : undefined;
    }, 60_000, `${service} lines in Elasticsearch`).catch((err: unknown) => {
      const shipping = node.events.filter((e) => e.component === 'shipper' || e.event === 'shipping');
      throw new Error(`${(err as Error).message}; the shipper said: ${JSON.stringify(shipping.slice(-10))}`);
    });
    const doc = found.hits.hits[0]!._source!;
    assert.equal(doc.host.name, hostname());
    assert.equal(doc.host.ip, addr);
    assert.equal(doc.service.name, service);
    assert.equal(doc.event.dataset, `${service}.log`);
    assert.ok(doc.message.length > 0);
    assert.match(doc.log.level, /^(trace|debug|info|notice|warning|error|critical)$/);
    t.diagnostic(`${service}: ${found.hits.total && typeof found.hits.total === 'object' ? found.hits.total.value : '?'} lines, e.g. ${JSON.stringify(doc.message.slice(0, 100))}`);
  }
  // Polled: the line may be in a later bulk than the first PostgreSQL line, and searchable one refresh later.
  const ready = await eventually(async () => {
    const r = await searchLogs({ bool: { filter: [{ term: { 'service.name': 'postgresql' } }, { match_phrase: { message: 'ready to accept connections' } }] } });
    return r.hits.hits.length > 0 ? r : undefined;
  }, 30_000, "PostgreSQL's own startup line");
  assert.ok((ready.hits.hits[0]!._source!.process?.pid ?? 0) > 0);

  const cpu = await eventually(async () => {
    await es.indices.refresh({ index: 'hasup-metrics-*' });
    const r = await es.search<Record<string, unknown>>({ index: 'hasup-metrics-*', query: { bool: { filter: [{ term: { 'metricset.name': 'cpu' } }, { term: { 'hasup.member.id': memberId } }] } }, size: 1 });
    return r.hits.hits[0]?._source;
  }, 30_000, 'a CPU sample in Elasticsearch');
  const norm = (cpu as { system: { cpu: { total: { norm: { pct: number } } } } }).system.cpu.total.norm.pct;
  assert.ok(norm >= 0 && norm <= 1, `system.cpu.total.norm.pct ${norm}`);
  // The newest sample: one taken while the server JVM was still starting counts little more than the launcher.
  const processes = await eventually(async () => {
    await es.indices.refresh({ index: 'hasup-metrics-*' });
    const r = await es.search({ index: 'hasup-metrics-*', query: { bool: { filter: [{ term: { 'metricset.name': 'process' } }, { term: { 'service.name': 'elasticsearch' } }, { exists: { field: 'system.process.cpu.total.pct' } }] } }, sort: [{ '@timestamp': 'desc' }], size: 1 });
    const doc = r.hits.hits[0]?._source as { system: { process: { memory: { rss: { bytes: number } } } } } | undefined;
    return doc && doc.system.process.memory.rss.bytes > 200 * 1024 * 1024 ? doc : undefined;
  }, 30_000, 'Elasticsearch process metrics counting both JVMs (over 200 MB)');
  assert.ok(processes.system.process.memory.rss.bytes > 200 * 1024 * 1024, 'both JVMs counted');
  const pgSample = await eventually(async () => {
    const r = await es.search({ index: 'hasup-metrics-*', query: { term: { 'metricset.name': 'database' } }, size: 1 });
    return r.hits.hits[0]?._source as { postgresql: { activity: { connections: number }; database: { transactions: { commit: number } } } } | undefined;
  }, 30_000, 'PostgreSQL metrics');
  assert.ok(pgSample.postgresql.database.transactions.commit > 0);

  const metrics = await (await fetch(`http://${addr}:${gossipPort + 1}/metrics`)).text();
  assert.match(metrics, /^hasup_host_cpu_ratio\{mode="total"\} [\d.e-]+$/m);
  assert.match(metrics, /^hasup_service_process_rss_bytes\{service="elasticsearch"\} \d+/m);
  assert.match(metrics, /^hasup_elasticsearch_cluster_status\{status="(green|yellow)"\} 1$/m);
  assert.match(metrics, /^hasup_ship_events_total\{outcome="delivered"\} [1-9]\d*$/m);
  assert.match(metrics, /^hasup_postgresql_transactions\{outcome="commit"\} [1-9]\d*$/m);
});

test('Elasticsearch down, 10k lines, supervisor kill -9, everything restarted: all 10k arrive exactly once', async (t) => {
  const stopped = cli('svc', 'stop', 'elasticsearch');
  assert.equal(stopped.status, 0, stopped.stderr);
  const loaded = cli('svc', 'load', 'chatter');
  assert.equal(loaded.status, 0, loaded.stderr);
  const t0 = Date.now();
  await eventually(async () => (spooled('chatter-line-') >= LINES ? true : undefined), 60_000, '10k lines in the spool');
  t.diagnostic(`10k lines spooled in ${Date.now() - t0} ms`);
  node.kill9();
  await node.exited;

  node = startNode();
  await ring.ready([ADDR_INDEX], 30_000);
  const started = cli('svc', 'start', 'elasticsearch');
  assert.equal(started.status, 0, started.stderr);
  await esHealthy();
  const t1 = Date.now();
  await eventually(async () => {
    const r = await searchLogs({ bool: { filter: [{ term: { 'service.name': 'chatter' } }, { match_phrase: { message: 'of the shipping test' } }] } }, 0);
    const total = typeof r.hits.total === 'object' ? r.hits.total.value : r.hits.total;
    return total !== undefined && total >= LINES ? r : undefined;
  }, 90_000, '10k lines in Elasticsearch');
  t.diagnostic(`all lines searchable ${Date.now() - t1} ms after Elasticsearch was healthy again`);
  // Let anything late (a duplicate would be) arrive before counting.
  await new Promise((r) => setTimeout(r, 3000));
  // 10000 is also Elasticsearch's largest result window: one page holds them all when there are exactly that many.
  const final = await searchLogs({ bool: { filter: [{ term: { 'service.name': 'chatter' } }, { match_phrase: { message: 'of the shipping test' } }] } }, LINES);
  const total = typeof final.hits.total === 'object' ? final.hits.total.value : final.hits.total;
  assert.equal(total, LINES, 'exactly 10k documents');
  const ids = new Set(final.hits.hits.map((h) => h._id));
  const lines = new Set(final.hits.hits.map((h) => h._source!.message));
  assert.equal(ids.size, LINES, 'each line once by id');
  assert.equal(lines.size, LINES, 'and no line twice under two ids');
  for (let i = 0; i < LINES; i += 997) assert.ok(lines.has(`chatter-line-${i} of the shipping test`), `line ${i}`);
  assert.ok(final.hits.hits.every((h) => /^[0-9a-f]+-[0-9a-f]{8}-[0-9a-z]{11}$/.test(h._id!) && h._id!.startsWith(`${memberId}-`)), 'ids are member id + spool generation + sequence');
});

// ---- the pipeline in-process, against the same real node --------------------------

const origin: EventOrigin = { memberId: 'inprocess', hostName: 'test-host', role: () => 'unknown' };
const lineDoc = (i: number, tag: string) => childLineDocument({ service: tag, stream: 'stdout', line: `${tag} ${i}`, pid: 1, time: Date.now() }, origin);

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

test('a document Elasticsearch rejects is dropped, counted and logged with the reason; the ones behind it are delivered', async () => {
  const dir = mkdtempSync(join(base, 'reject-'));
  const { log, lines } = capturingLogger();
  const shipper = new Shipper({ spool: Spool.open({ dir }), output: new ElasticsearchOutput({ urls: () => [`http://${addr}:${esPort}`] }), memberId: 'inprocess', log, flushIntervalMs: 50, batchMaxEvents: 100 });
  shipper.start();
  for (let i = 0; i < 50; i++) shipper.push(KIND_LOGS, Date.now(), lineDoc(i, 'rejecttest'));
  // process.pid is mapped long: Elasticsearch refuses this one document.
  shipper.push(KIND_LOGS, Date.now(), { ...lineDoc(-1, 'rejecttest'), process: { pid: 'not-a-number' } });
  for (let i = 50; i < 300; i++) shipper.push(KIND_LOGS, Date.now(), lineDoc(i, 'rejecttest'));
  await shipper.whenDelivered();
  const stats = shipper.stats();
  await shipper.stop();
  assert.equal(stats.rejected, 1);
  assert.equal(stats.delivered, 300);
  assert.deepEqual(Object.keys(stats.rejectedByType), ['document_parsing_exception']);
  const warning = lines.find((l) => l.event === 'ship_rejected');
  assert.ok(warning, 'a warning is logged');
  assert.equal(warning.level, 40);
  assert.match(String(warning.reason), /process\.pid/);
  const found = await searchLogs({ term: { 'service.name': 'rejecttest' } }, 0);
  assert.equal(typeof found.hits.total === 'object' ? found.hits.total.value : found.hits.total, 300);
});

test('Elasticsearch unreachable: a full spool drops the oldest events and counts them; the rest ship once it is back', async () => {
  const dir = mkdtempSync(join(base, 'cap-'));
  let urls = [`http://${addr}:${await freePort()}`];
  const { log } = capturingLogger();
  const spool = Spool.open({ dir, maxBytes: 256 * 1024, segmentBytes: 32 * 1024 });
  const shipper = new Shipper({ spool, output: new ElasticsearchOutput({ urls: () => urls }), memberId: 'inprocess', log, flushIntervalMs: 50, retryBaseMs: 50, retryMaxMs: 200 });
  shipper.start();
  const total = 5000;
  for (let i = 0; i < total; i++) {
    shipper.push(KIND_LOGS, Date.now(), lineDoc(i, 'captest'));
    if (i % 500 === 499) await spool.flush();
  }
  await spool.flush();
  const dropped = shipper.stats().spool.droppedCapacity;
  assert.ok(dropped > 0, 'the spool hit its cap');
  assert.ok(shipper.stats().spool.bytes <= 256 * 1024 + 32 * 1024);
  urls = [`http://${addr}:${esPort}`];
  await shipper.whenDelivered();
  const stats = shipper.stats();
  await shipper.stop();
  assert.equal(stats.delivered, total - dropped, 'every event not dropped is delivered');
  const newest = await searchLogs({ bool: { filter: [{ term: { 'service.name': 'captest' } }, { match_phrase: { message: `captest ${total - 1}` } }] } }, 1);
  assert.equal(newest.hits.hits.length, 1, 'the newest event is kept');
  const oldest = await searchLogs({ bool: { filter: [{ term: { 'service.name': 'captest' } }, { match_phrase: { message: 'captest 0' } }] } }, 1);
  assert.equal(oldest.hits.hits.length, 0, 'the oldest is what was dropped');
});
