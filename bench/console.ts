/**
 * The console's benchmark (issue #14):
 *
 *   npm run bench:console -- --json [--es URL] [--rounds N] [--hours H]
 *
 *   js_kb_gzip          the page's modules and uPlot, gzipped as served (target <= 150)
 *   first_render_ms     Chromium (/usr/bin/chromium), cold: a fresh browser, logged in
 *                       (session cookie set), from navigation to the HA indicator on
 *                       screen; median of 3 (target < 1000)
 *   chart_query_ms_p95  GET /ui/charts over 24 h (--hours) of metrics of 3 members, every
 *                       chart in turn, --rounds each (target < 300)
 *   log_search_ms_p95   GET /ui/logs over the same 24 h: a word, a member, a level, newest
 *                       first, 100 lines, --rounds times
 *   event_to_screen_ms  a member declared dead (the ring's event) to the indicator
 *                       changing on the open page; median of 5 (target < 2000)
 *
 * The API is the member API in this process (test/support/console-fixture.ts),
 * over a three-member cluster the benchmark changes. The chart and log
 * figures come from a real Elasticsearch: the one at --es (it gets 24 h of
 * synthetic metrics and logs in its hasup-metrics-* and hasup-logs-* daily
 * indices: use a throwaway node), else one started here by `hasup run` on
 * 127.0.0.64 (the Maven-fetched distribution, as bench:ship does) and
 * removed afterwards. The documents have the shipper's fields and templates,
 * 10 s apart per member, as the collector's default interval writes them.
 *
 * The event figure is the page's and the API's share of the "a
 * member's death to the indicator": the ring's own detection time (probes,
 * suspicion) comes before it and is what bench:gossip measures; the
 * three-node browser test (test/cluster/console.test.ts) prints the whole
 * path from a kill -9.
 *
 * The last line printed is one JSON object.
 */
import { parseArgs } from 'node:util';
import { Client } from '@elastic/elasticsearch';
import { chromium, type Browser } from 'playwright-core';
import { consoleAssets } from '../src/plugins/http/console/assets.js';
import { CHARTS } from '../src/plugins/http/console/es-queries.js';
import { installTemplates } from '../src/plugins/shipper/index-admin.js';
import { dailyIndex } from '../src/plugins/shipper/indices.js';
import { MEMBERS, startConsoleServer, VIEWER_TOKEN, type ConsoleServer } from '../test/support/console-fixture.js';
import { startEsNode } from './support/es-node.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    es: { type: 'string' },
    rounds: { type: 'string', default: '20' },
    hours: { type: 'string', default: '24' },
  },
});
const ROUNDS = Number(values.rounds);
const HOURS = Number(values.hours);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
if (!(HOURS > 0 && HOURS <= 24 * 7)) throw new Error(`--hours must be more than 0 and at most 168, got ${values.hours}`);

const CHROMIUM = '/usr/bin/chromium';
const ADDR_INDEX = 64;
const SAMPLE_MS = 10_000;
const progress = (msg: string) => process.stderr.write(`[console] ${msg}\n`);

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const median = (xs: number[]) => percentile(xs, 50);
const round1 = (x: number) => Math.round(x * 10) / 10;

/** An Elasticsearch to query: the one given, or one node started by `hasup run` (stopped by the returned function). */
async function elasticsearch(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (values.es) return { url: values.es.replace(/\/$/, ''), stop: async () => {} };
  return startEsNode('console', ADDR_INDEX, progress);
}

/** The metric documents one member's collector writes at `t` (the datasets the charts read). */
function metricDocs(member: string, t: number, n: number): object[] {
  const wave = (Math.sin(t / 3_600_000 + n) + 1) / 2;
  const base = (dataset: string) => {
    const [module, metricset] = dataset.split('.') as [string, string];
    return { '@timestamp': new Date(t).toISOString(), host: { name: `bench-${n}` }, service: { name: module }, event: { module, dataset }, metricset: { name: metricset }, hasup: { member: { id: member, role: n === 0 ? 'leader' : 'replica' } } };
  };
  const net = (name: string) => ({ ...base('system.network'), system: { network: { name, in: { bytes_per_sec: 40_000 * wave }, out: { bytes_per_sec: 30_000 * wave } } } });
  return [
    { ...base('system.cpu'), system: { cpu: { cores: 2, total: { norm: { pct: 0.1 + 0.6 * wave } } } } },
    { ...base('system.memory'), system: { memory: { actual: { used: { pct: 0.4 + 0.2 * wave } } } } },
    { ...base('system.filesystem'), system: { filesystem: { mount_point: '/', used: { pct: 0.55 } } } },
    { ...base('system.diskio'), system: { diskio: { name: 'all', read: { per_sec: 20 * wave }, write: { per_sec: 80 * wave } } } },
    net('eth0'),
    net('lo'),
    { ...base('postgresql.database'), postgresql: { activity: { connections: Math.round(10 + 20 * wave) }, database: { transactions: { commit: Math.floor(t / 100), rollback: Math.floor(t / 10_000) } }, ...(n > 0 ? { replication: { replay_gap: { bytes: Math.round(65_536 * wave) } } } : {}) } },
    { ...base('elasticsearch.node_stats'), elasticsearch: { node: { stats: { indices: { indexing: { rate: 50 * wave } }, jvm: { mem: { heap: { used: { pct: 0.3 + 0.3 * wave } } } } } } } },
  ];
}

const WORDS = ['checkpoint', 'connection', 'replication', 'vacuum', 'timeout', 'leader', 'snapshot', 'merge'];

function logDoc(member: string, t: number, i: number): object {
  const service = ['postgresql', 'etcd', 'elasticsearch', 'hasup'][i % 4]!;
  return { '@timestamp': new Date(t).toISOString(), message: `${service} ${WORDS[i % WORDS.length]} ${WORDS[(i * 7) % WORDS.length]} line ${i}`, log: { level: ['info', 'info', 'warning', 'error'][i % 4] }, service: { name: service }, event: { dataset: `${service}.log` }, hasup: { member: { id: member } } };
}

/** 24 h (--hours) of metrics and logs of the three members, ending now, in the shipper's daily indices. */
async function load(es: Client, now: number): Promise<number> {
  await installTemplates(es, { retentionDays: 8 });
  const from = now - HOURS * 3_600_000;
  let docs = 0;
  let body: string[] = [];
  const flush = async () => {
    if (body.length === 0) return;
    const answer = await es.bulk({ body: `${body.join('\n')}\n` } as unknown as Parameters<Client['bulk']>[0]);
    if ((answer as { errors?: boolean }).errors) throw new Error('Elasticsearch refused some of the synthetic documents');
    body = [];
  };
  const add = async (stream: 'metrics' | 'logs', t: number, doc: object) => {
    body.push(JSON.stringify({ create: { _index: dailyIndex(stream, t) } }), JSON.stringify(doc));
    docs++;
    if (body.length >= 10_000) await flush();
  };
  for (let t = from; t <= now; t += SAMPLE_MS) {
    for (const [n, member] of MEMBERS.entries()) {
      for (const doc of metricDocs(member, t, n)) await add('metrics', t, doc);
      await add('logs', t, logDoc(member, t, Math.floor(t / SAMPLE_MS) + n));
    }
    if ((t - from) % 3_600_000 < SAMPLE_MS) progress(`loaded ${Math.round((t - from) / 3_600_000)} of ${HOURS} h (${docs} documents)`);
  }
  await flush();
  await es.indices.refresh({ index: 'hasup-*' });
  return docs;
}

async function timed(url: string): Promise<number> {
  const start = performance.now();
  const res = await fetch(url, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return performance.now() - start;
}

async function queries(server: ConsoleServer): Promise<{ chart: number[]; logs: number[] }> {
  const range = HOURS <= 24 ? '24h' : '7d';
  const chart: number[] = [];
  const logs: number[] = [];
  // One of each first, not counted: the first query of an index loads its structures.
  for (const name of Object.keys(CHARTS)) await timed(`${server.url}/ui/charts?name=${name}&range=${range}`);
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of Object.keys(CHARTS)) chart.push(await timed(`${server.url}/ui/charts?name=${name}&range=${range}`));
    const q = new URLSearchParams({ text: WORDS[r % WORDS.length]!, member: MEMBERS[r % 3], level: 'warning', range, size: '100' });
    logs.push(await timed(`${server.url}/ui/logs?${q}`));
  }
  return { chart, logs };
}

/** Logged in, cold: a fresh browser each time, the session cookie set before the page is opened. */
async function firstRender(server: ConsoleServer): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const login = await fetch(`${server.url}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: VIEWER_TOKEN }) });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const [name, value] = [cookie.slice(0, cookie.indexOf('=')), cookie.slice(cookie.indexOf('=') + 1)];
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.addCookies([{ name, value, url: server.url }]);
      const page = await context.newPage();
      const start = performance.now();
      await page.goto(`${server.url}/ui`, { waitUntil: 'commit' });
      await page.waitForSelector('.ha-word');
      times.push(performance.now() - start);
    } finally {
      await browser.close();
    }
  }
  return times;
}

async function eventToScreen(server: ConsoleServer, browser: Browser): Promise<number[]> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${server.url}/ui`);
  await page.fill('#token', VIEWER_TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#conn.live');
  await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'OK');
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    server.cluster.setState(MEMBERS[2], 'dead');
    await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'DEGRADED', undefined, { timeout: 10_000, polling: 'raf' });
    times.push(performance.now() - start);
    server.cluster.setState(MEMBERS[2], 'alive');
    await page.waitForFunction(() => document.querySelector('.ha-word')?.textContent === 'OK', undefined, { timeout: 10_000 });
  }
  await page.close();
  return times;
}

async function main(): Promise<void> {
  const js = consoleAssets().totalGzipBytes() / 1024;
  const es = await elasticsearch();
  const client = new Client({ node: es.url, requestTimeout: 120_000 });
  let server: ConsoleServer | undefined;
  let browser: Browser | undefined;
  try {
    progress(`loading ${HOURS} h of metrics and logs of ${MEMBERS.length} members into ${es.url}`);
    const docs = await load(client, Date.now());
    server = await startConsoleServer({ esUrl: es.url });
    progress(`querying: ${Object.keys(CHARTS).length} charts and a log search, ${ROUNDS} rounds`);
    const q = await queries(server);
    progress('first render, cold');
    const render = await firstRender(server);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
    progress('event to screen');
    const event = await eventToScreen(server, browser);
    const result = {
      js_kb_gzip: round1(js),
      first_render_ms: Math.round(median(render)),
      chart_query_ms_p95: Math.round(percentile(q.chart, 95)),
      log_search_ms_p95: Math.round(percentile(q.logs, 95)),
      event_to_screen_ms: Math.round(median(event)),
      first_render_ms_runs: render.map(Math.round),
      chart_query_ms_p50: Math.round(median(q.chart)),
      log_search_ms_p50: Math.round(median(q.logs)),
      event_to_screen_ms_max: Math.round(Math.max(...event)),
      documents: docs,
      hours: HOURS,
      rounds: ROUNDS,
      elasticsearch: values.es ? 'given' : 'started here',
    };
    console.log(values.json ? JSON.stringify(result) : result);
  } finally {
    await browser?.close();
    await server?.close();
    await client.close();
    await es.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
