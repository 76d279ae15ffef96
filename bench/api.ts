/**
 * HTTP API benchmark: one real `hasup run` with PostgreSQL under it (a
 * healthy standalone leader), then
 *
 *   1. autocannon, 10 s, as fast as it goes, on GET /primary → primary_rps
 *   2. autocannon, 10 s, as fast as it goes, on GET /cluster (with the token) → cluster_rps
 *   3. a fixed 1000 requests/s, 10 s, on GET /primary → primary_p50_ms, primary_p99_ms
 *   4. a fixed 1000 requests/s, 10 s, on GET /cluster → cluster_p99_ms
 *
 * Each fixed-rate run is preceded by --warmup seconds (2) at the same rate,
 * not counted, in which the client opens its connections.
 *
 * The fixed-rate runs use an open-loop client of our own that times each
 * request with hrtime (autocannon's histogram keeps whole milliseconds,
 * too coarse for a 2 ms target). rss_mb is the daemon's resident memory
 * after the runs.
 *
 * --tls runs the member with a cluster CA, as `cluster create` makes it
 * (docs/tls.md): the API serves HTTPS with the member certificate, every
 * client verifies it against the cluster CA, and the JSON says tls: true.
 * How the fixed-rate client reuses what a handshake costs (`reuse` in the JSON):
 *
 *   --reuse keepalive   (default) kept-alive connections, each request on an
 *                       open one: HAProxy's traffic with http-reuse, and a
 *                       check client that keeps its connection
 *   --reuse session     a new TCP connection per request, its TLS session
 *                       resumed from the client's session cache (an abbreviated
 *                       handshake): what HAProxy's checks do, a connection per
 *                       check reusing the server's TLS session; `resumed` says
 *                       how many handshakes were resumed
 *
 *   npm run bench:api -- --json [--tls] [--reuse keepalive|session]   (last line: one JSON object)
 */
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { ApiNode, eventually } from '../test/api/api-node.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '10' },
    tls: { type: 'boolean', default: false },
    reuse: { type: 'string', default: 'keepalive' },
    warmup: { type: 'string', default: '2' },
  },
});
if (values.reuse !== 'keepalive' && values.reuse !== 'session') throw new Error(`--reuse takes keepalive or session, got ${values.reuse}`);
const reuse = values.reuse;
const warmup = Number(values.warmup);
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const say = (text: string) => {
  if (!values.json) console.error(text);
};

async function saturate(url: string, headers: Record<string, string>) {
  const result = await autocannon({ url, headers, connections: Number(values.connections), duration: seconds });
  return { rps: Math.round(result.requests.average), p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}

/**
 * Sends `rps` requests per second for `warm` + `secs` seconds whatever the
 * answers' pace, and times each one of the last `secs` seconds: the first
 * `warm` seconds open the client's connections (a load balancer's are open
 * long before a measurement), and are not counted.
 */
async function fixedRate(url: string, headers: Record<string, string>, rps: number, secs: number, ca?: string, warm = warmup) {
  const https = url.startsWith('https:');
  // keepalive: open connections are reused; session: a connection per request, the https agent's
  // session cache (maxCachedSessions) offering the last TLS session of the server for resumption.
  const keepAlive = reuse === 'keepalive';
  const agent = https ? new HttpsAgent({ keepAlive, maxSockets: 64, maxCachedSessions: 100, ca }) : new Agent({ keepAlive, maxSockets: 64 });
  const send = https ? httpsRequest : request;
  const { hostname, port, pathname } = new URL(url);
  const total = rps * (warm + secs);
  const counted = rps * warm;
  const latencies: number[] = [];
  let sent = 0;
  let done = 0;
  let failed = 0;
  let handshakes = 0;
  let resumed = 0;
  const seen = new WeakSet<object>();
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const finish = () => {
      done++;
      if (done === total) resolve();
    };
    const fire = (index: number) => {
      const measured = index >= counted;
      const t0 = process.hrtime.bigint();
      const req = send({ agent, host: hostname, port, path: pathname, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) failed++;
          else if (measured) latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          finish();
        });
      });
      req.on('socket', (socket) => {
        // A kept-alive socket comes back for many requests: count its handshake once.
        if (seen.has(socket)) return;
        seen.add(socket);
        socket.once('secureConnect', () => {
          if (!measured) return;
          handshakes++;
          if ((socket as TLSSocket).isSessionReused()) resumed++;
        });
      });
      req.on('error', () => {
        failed++;
        finish();
      });
      req.end();
    };
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rps) / 1000));
      while (sent < due) {
        fire(sent++);
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return { achieved_rps: Math.round(total / ((performance.now() - start) / 1000)), measured: latencies.length, p50: round(pct(50)), p99: round(pct(99)), max: round(latencies.at(-1) ?? NaN), failed, handshakes, resumed };
}

/** hasup_http_request_duration_seconds buckets of one route, cumulative counts by upper bound (s). */
async function serverBuckets(node: ApiNode, route: string): Promise<Map<number, number>> {
  const text = (await node.call('/metrics')).text;
  const out = new Map<number, number>();
  const re = new RegExp(`^hasup_http_request_duration_seconds_bucket\\{le="([^"]+)",method="GET",route="${route.replaceAll('/', '\\/')}",status="200"\\} (\\d+)$`);
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (m) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), (out.get(m[1] === '+Inf' ? Infinity : Number(m[1])) ?? 0) + Number(m[2]));
  }
  return out;
}

/** The smallest bucket bound (ms) holding 99% of the requests counted between two scrapes: time spent inside the server. */
function serverP99Ms(before: Map<number, number>, after: Map<number, number>): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  for (const le of bounds) if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= 0.99 * total) return le * 1000;
  return NaN;
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Math.round(Number(line?.split(/\s+/)[1] ?? 0) / 102.4) / 10;
}

const node = new ApiNode({ index: 36, postgresql: true, tls: values.tls });
try {
  say('starting hasup run with PostgreSQL ...');
  const proc = await node.start();
  await eventually(async () => ((await node.status('/primary')) === 200 ? true : undefined), 120_000, '/primary 200');
  const auth = { authorization: `Bearer ${node.token}` };

  say(`GET /primary, ${seconds} s, ${values.connections} connections, as fast as possible ...`);
  const primaryMax = await saturate(`${node.url}/primary`, {});
  say(JSON.stringify(primaryMax));
  say(`GET /cluster, ${seconds} s, as fast as possible ...`);
  const clusterMax = await saturate(`${node.url}/cluster`, auth);
  say(JSON.stringify(clusterMax));
  say(`GET /primary at ${rate}/s for ${seconds} s ...`);
  const bucketsBefore = await serverBuckets(node, '/primary');
  const ca = node.ca();
  const primaryFixed = await fixedRate(`${node.url}/primary`, {}, rate, seconds, ca);
  const primaryServerP99 = serverP99Ms(bucketsBefore, await serverBuckets(node, '/primary'));
  say(JSON.stringify(primaryFixed));
  say(`GET /cluster at ${rate}/s for ${seconds} s ...`);
  const clusterFixed = await fixedRate(`${node.url}/cluster`, auth, rate, seconds, ca);
  say(JSON.stringify(clusterFixed));
  const rss = rssMb(proc.pid);
  if (primaryMax.non2xx > 0 || primaryFixed.failed > 0) throw new Error(`/primary did not answer 200 throughout (non-2xx ${primaryMax.non2xx}, failed ${primaryFixed.failed})`);

  console.log(
    JSON.stringify({
      tls: values.tls,
      reuse,
      primary_rps: primaryMax.rps,
      primary_p50_ms: primaryFixed.p50,
      primary_p99_ms: primaryFixed.p99,
      cluster_p99_ms: clusterFixed.p99,
      rss_mb: rss,
      fixed_rate_rps: rate,
      warmup_s: warmup,
      primary_max_ms: primaryFixed.max,
      primary_server_p99_le_ms: primaryServerP99,
      primary_saturated_p99_ms: primaryMax.p99,
      cluster_rps: clusterMax.rps,
      cluster_p50_ms: clusterFixed.p50,
      primary_handshakes: primaryFixed.handshakes,
      primary_resumed: primaryFixed.resumed,
    }),
  );
} finally {
  await node.stop();
}
