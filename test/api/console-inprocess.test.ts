/**
 * The operator's console on the member API in this process
 * (test/support/console-fixture.ts): the page served without a token and
 * without secrets; login with the viewer and the operator token; the
 * cookie's flags (Secure under TLS); viewers read only; a session's
 * state-changing request needs its CSRF token and the same origin; sessions
 * expire; GET /ha-status and its events; charts and log search against a
 * fake Elasticsearch, and its errors said per panel.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { ChartData, LogPage } from '../../src/plugins/http/console/es-queries.js';
import type { HaStatus } from '../../src/plugins/http/ha-status.js';
import { SessionStore } from '../../src/plugins/http/sessions.js';
import { checkSecrets, generateSecrets } from '../../src/supervisor/secrets.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { consoleRoutes } from '../../src/plugins/http/console/routes.js';
import { consoleAssets } from '../../src/plugins/http/console/assets.js';
import { FakeConsoleEs, MEMBERS, OPERATOR_TOKEN, startConsoleServer, VIEWER_TOKEN, type ConsoleServer } from '../support/console-fixture.js';
import { pino } from 'pino';
import { Writable } from 'node:stream';

let server: ConsoleServer;
let es: FakeConsoleEs;

before(async () => {
  es = new FakeConsoleEs();
  await es.start();
  server = await startConsoleServer({ es });
});
after(async () => {
  await server.close();
  await es.close();
});

interface Answer {
  status: number;
  headers: Headers;
  json: <T>() => T;
  text: string;
}

async function call(path: string, init: { method?: string; cookie?: string; csrf?: string; bearer?: string; body?: unknown; origin?: string; gzip?: boolean } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (init.cookie) headers.cookie = init.cookie;
  if (init.csrf) headers['x-csrf-token'] = init.csrf;
  if (init.bearer) headers.authorization = `Bearer ${init.bearer}`;
  if (init.origin) headers.origin = init.origin;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.url}${path}`, { method: init.method ?? 'GET', headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
}

async function login(token: string): Promise<{ cookie: string; csrf: string; setCookie: string; body: Record<string, unknown> }> {
  const res = await call('/ui/login', { method: 'POST', body: { token } });
  assert.equal(res.status, 200, res.text);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const body = res.json<Record<string, unknown>>();
  return { cookie: setCookie.split(';')[0]!, csrf: body.csrf as string, setCookie, body };
}

test('the page and its scripts are served without a token, hold no secret, and forbid inline script and framing', async () => {
  const page = await call('/ui');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  const csp = page.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(page.text, /<script>(?!<)/, 'no inline script');
  assert.doesNotMatch(page.text, /https?:\/\//, 'nothing from another host');
  for (const secret of [OPERATOR_TOKEN, VIEWER_TOKEN]) assert.ok(!page.text.includes(secret));
  for (const asset of ['main.js', 'dom.js', 'api.js', 'live.js', 'charts-view.js', 'uplot.js', 'uplot.css', 'console.css']) {
    const res = await call(`/ui/assets/${asset}`);
    assert.equal(res.status, 200, asset);
    assert.ok(res.headers.get('etag'), `${asset} has an ETag`);
  }
  const raw = await fetch(`${server.url}/ui/assets/main.js`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(raw.headers.get('content-encoding'), 'gzip');
  assert.equal((await call('/ui/assets/nope.js')).status, 404);
  assert.equal((await call('/ui/assets/..%2Fsecrets.json')).status, 400, 'only plain asset names');
  // Data needs a session or a token.
  assert.equal((await call('/ha-status')).status, 401);
  assert.equal((await call('/ui/session')).status, 401);
});

test('login: a wrong token is refused; the viewer gets an HttpOnly, SameSite=Strict cookie (not Secure over plain HTTP) and reads only', async () => {
  const wrong = await call('/ui/login', { method: 'POST', body: { token: 'not-a-token' } });
  assert.equal(wrong.status, 403);
  assert.equal(wrong.headers.get('set-cookie'), null);
  assert.equal((await call('/ui/login', { method: 'POST', body: { token: 'x', extra: 1 } })).status, 400, 'bad input is an error naming the field');

  const viewer = await login(VIEWER_TOKEN);
  assert.match(viewer.setCookie, /^hasup_session=[\w-]{40,}; Path=\/; HttpOnly; SameSite=Strict$/);
  assert.equal(viewer.body.role, 'viewer');
  assert.ok(!JSON.stringify(viewer.body).includes(VIEWER_TOKEN) && !JSON.stringify(viewer.body).includes(OPERATOR_TOKEN), 'no token is sent back');
  const session = await call('/ui/session', { cookie: viewer.cookie });
  assert.equal(session.json<{ role: string }>().role, 'viewer');
  assert.equal((await call('/ha-status', { cookie: viewer.cookie })).status, 200);
  assert.equal((await call('/census', { cookie: viewer.cookie })).status, 200);
  const pause = await call('/pause', { method: 'POST', cookie: viewer.cookie, csrf: viewer.csrf, body: {} });
  assert.equal(pause.status, 403);
  assert.match(pause.json<{ error: string }>().error, /viewer may only read/);
  assert.equal(server.cluster.paused, false);

  // The viewer token as a bearer token: reading yes, operations no.
  assert.equal((await call('/cluster', { bearer: VIEWER_TOKEN })).status, 200);
  const byBearer = await call('/switchover', { method: 'POST', bearer: VIEWER_TOKEN, body: {} });
  assert.equal(byBearer.status, 403);
  assert.match(byBearer.json<{ error: string }>().error, /viewer token may only read/);
});

test('the operator session: a state-changing request without the CSRF token, with a wrong one, or from another origin is refused 403; with it, it runs', async () => {
  const op = await login(OPERATOR_TOKEN);
  assert.equal(op.body.role, 'operator');
  const noCsrf = await call('/pause', { method: 'POST', cookie: op.cookie, body: {} });
  assert.equal(noCsrf.status, 403);
  assert.match(noCsrf.json<{ error: string }>().error, /CSRF/);
  assert.equal((await call('/pause', { method: 'POST', cookie: op.cookie, csrf: 'guess', body: {} })).status, 403);
  assert.equal((await call('/pause', { method: 'POST', cookie: op.cookie, csrf: op.csrf, body: {}, origin: 'https://evil.example' })).status, 403);
  assert.equal(server.cluster.paused, false, 'nothing happened');
  assert.equal((await call('/pause', { method: 'POST', cookie: op.cookie, csrf: op.csrf, body: {}, origin: server.url })).status, 200);
  assert.equal(server.cluster.paused, true);
  await call('/resume', { method: 'POST', cookie: op.cookie, csrf: op.csrf, body: {} });
  const sw = await call('/switchover', { method: 'POST', cookie: op.cookie, csrf: op.csrf, body: { to: MEMBERS[1] } });
  assert.equal(sw.status, 200, sw.text);
  assert.equal(server.cluster.leader, MEMBERS[1]);
  await call('/switchover', { method: 'POST', cookie: op.cookie, csrf: op.csrf, body: { to: MEMBERS[0] } });
  assert.equal((await call('/services/postgresql/restart', { method: 'POST', cookie: op.cookie, csrf: op.csrf, body: {} })).status, 200);
  assert.deepEqual(server.cluster.restarts, ['postgresql']);

  // Logout needs the CSRF token too, and ends the session.
  assert.equal((await call('/ui/logout', { method: 'POST', cookie: op.cookie, body: {} })).status, 403);
  const out = await call('/ui/logout', { method: 'POST', cookie: op.cookie, csrf: op.csrf, body: {} });
  assert.equal(out.status, 200);
  assert.match(out.headers.get('set-cookie') ?? '', /hasup_session=; .*Max-Age=0/);
  assert.equal((await call('/ha-status', { cookie: op.cookie })).status, 401);
});

test('sessions end after the idle time and after the longest time, whatever the use', () => {
  let now = 0;
  const store = new SessionStore({ idleMs: 1000, maxMs: 5000 }, () => now);
  const a = store.open('viewer');
  now = 900;
  assert.ok(store.use(a.id), 'used within the idle time');
  now = 1800;
  assert.ok(store.use(a.id), 'idle counts from the last use');
  now = 2900;
  assert.equal(store.use(a.id), undefined, 'idle too long');
  const b = store.open('operator');
  for (now = 3000; now < 7900; now += 900) assert.ok(store.use(b.id));
  now = 8100;
  assert.equal(store.use(b.id), undefined, 'over the longest time');
  const many = new SessionStore({ maxSessions: 2 });
  const first = many.open('viewer');
  many.open('viewer');
  many.open('viewer');
  assert.equal(many.size, 2);
  assert.equal(many.use(first.id), undefined, 'the least recently used goes first');
});

test('an old secrets file without a viewer token: the viewer login is off, and the refusal says why and what to do', async () => {
  const old = await startConsoleServer({ viewerToken: null });
  try {
    const res = await fetch(`${old.url}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: VIEWER_TOKEN }) });
    assert.equal(res.status, 403);
    assert.match(((await res.json()) as { error: string }).error, /holds no viewer_token .* add "viewer_token"/);
  } finally {
    await old.close();
  }
});

test('under TLS the session cookie is Secure', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-console-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-subj', '/CN=127.0.0.1', '-days', '1'], { cwd: dir, stdio: 'ignore' });
    const quiet = pino({ level: 'silent' }, new Writable({ write: (_c, _e, done) => done() }));
    const sessions = new SessionStore();
    const app = await createHttpServer({ log: quiet, token: OPERATOR_TOKEN, sessions, tls: { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') }, plugins: [{ plugin: consoleRoutes, options: { memberId: MEMBERS[0], token: OPERATOR_TOKEN, viewerToken: VIEWER_TOKEN, sessions } }] });
    const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    const setCookie = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({ host: url.hostname, port: url.port, path: '/ui/login', method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(String(res.headers['set-cookie']?.[0] ?? ''));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ token: OPERATOR_TOKEN }));
    });
    assert.match(setCookie, /; HttpOnly; SameSite=Strict; Secure$/);
    await app.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GET /ha-status and its event: a member dying turns it DEGRADED within a second, naming it; back to OK when it returns', async () => {
  const op = await login(OPERATOR_TOKEN);
  const ok = await call('/ha-status', { cookie: op.cookie });
  assert.equal(ok.json<HaStatus>().status, 'OK', ok.text);
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/events`, { headers: { cookie: op.cookie } });
  const statuses: HaStatus[] = [];
  ws.on('message', (data: Buffer) => {
    const e = JSON.parse(data.toString()) as { type: string } & HaStatus;
    if (e.type === 'ha-status') statuses.push(e);
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const started = Date.now();
  server.cluster.setState(MEMBERS[2], 'dead');
  while (!statuses.some((s) => s.status === 'DEGRADED') && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 50));
  const degraded = statuses.find((s) => s.status === 'DEGRADED');
  assert.ok(degraded, 'an ha-status event came');
  assert.ok(Date.now() - started < 2000, 'within 2 s');
  assert.ok(degraded.reasons.some((r) => r.code === 'member_dead' && r.member === MEMBERS[2]));
  assert.equal((await call('/ha-status', { bearer: VIEWER_TOKEN })).json<HaStatus>().status, 'DEGRADED', 'the route says the same');
  server.cluster.setState(MEMBERS[2], 'alive');
  const back = Date.now();
  while (statuses[statuses.length - 1]!.status !== 'OK' && Date.now() - back < 3000) await new Promise((r) => setTimeout(r, 50));
  assert.equal(statuses[statuses.length - 1]!.status, 'OK');
  ws.close();
  // A session cookie from another origin does not open the stream.
  const foreign = new WebSocket(`${server.url.replace('http', 'ws')}/events`, { headers: { cookie: op.cookie, origin: 'https://evil.example' } });
  const refused = await new Promise<number>((resolve) => foreign.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
  assert.equal(refused, 403);
});

test('charts: one date histogram per chart, every member or one, bounded; a bad range is a 400; a refusal or an absent Elasticsearch is a sentence for the panel', async () => {
  const v = await login(VIEWER_TOKEN);
  const cpu = await call('/ui/charts?name=cpu&range=1h', { cookie: v.cookie });
  assert.equal(cpu.status, 200, cpu.text);
  const chart = cpu.json<ChartData>();
  assert.equal(chart.bucket_ms, 30_000);
  assert.deepEqual(chart.series.map((s) => s.member), [...MEMBERS]);
  assert.equal(chart.series[0]!.values.length, chart.times.length);
  assert.ok(chart.series[0]!.values.every((x) => x !== null && x > 0 && x <= 100), 'CPU in percent');
  const sent = es.searches[es.searches.length - 1]!;
  assert.match(sent.path, /^\/hasup-metrics-\d{4}\.\d\d\.\d\d(,hasup-metrics-[\d.]+)?\/_search\?ignore_unavailable=true&allow_no_indices=true$/);
  assert.equal(sent.body.timeout, '10s');

  const tps = (await call(`/ui/charts?name=pg_tps&range=7d&member=${MEMBERS[1]}`, { cookie: v.cookie })).json<ChartData>();
  assert.equal(tps.bucket_ms, 3_600_000);
  assert.deepEqual(tps.series.map((s) => s.member), [MEMBERS[1]]);
  assert.equal(tps.series[0]!.values[0], null, 'a rate needs a bucket before it');
  assert.equal(tps.series[0]!.values[1], 6, 'commits and rollbacks: the fake counters grow 3 a second each');
  assert.ok(es.searches[es.searches.length - 1]!.path.split(',').length >= 8, 'seven days touch eight daily indices');
  const marks = (await call('/ui/marks?range=1h', { cookie: v.cookie })).json<{ marks: { kind: string; member: string }[] }>();
  assert.deepEqual(marks.marks.map((m) => [m.kind, m.member]), [['failover', MEMBERS[1]]]);

  assert.equal((await call('/ui/charts?name=cpu&range=30d', { cookie: v.cookie })).status, 400);
  assert.equal((await call('/ui/charts?name=rm%20-rf', { cookie: v.cookie })).status, 400);
  es.mode = 'reject';
  const refused = await call('/ui/charts?name=cpu', { cookie: v.cookie });
  assert.equal(refused.status, 502);
  assert.match(refused.json<{ error: string }>().error, /^Elasticsearch refused the query \(400: parsing_exception: unknown query/);
  es.mode = 'unavailable';
  assert.equal((await call('/ui/logs', { cookie: v.cookie })).status, 503);
  es.mode = 'ok';
  const nobody = await startConsoleServer();
  try {
    const op = await fetch(`${nobody.url}/ui/charts?name=memory`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
    assert.equal(op.status, 503);
    assert.match(((await op.json()) as { error: string }).error, /^Elasticsearch cannot be reached: no Elasticsearch node answered/);
    assert.equal((await fetch(`${nobody.url}/ha-status`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } })).status, 200, 'the rest keeps working');
  } finally {
    await nobody.close();
  }
});

test('log search: text, member, service and level, newest first, bounded in size; after= gives only what is new (the live tail)', async () => {
  const v = await login(VIEWER_TOKEN);
  const all = (await call('/ui/logs?range=24h&size=500', { cookie: v.cookie })).json<LogPage>();
  assert.equal(all.lines.length, 120);
  assert.ok(all.lines.every((l, i) => i === 0 || l.time <= all.lines[i - 1]!.time), 'newest first');
  const q = `text=${encodeURIComponent('etcd checkpoint')}&member=${MEMBERS[1]}&service=etcd&level=warning&range=24h`;
  const some = (await call(`/ui/logs?${q}`, { cookie: v.cookie })).json<LogPage>();
  assert.ok(some.lines.length > 0);
  for (const l of some.lines) {
    assert.equal(l.member, MEMBERS[1]);
    assert.equal(l.service, 'etcd');
    assert.ok(['warning', 'error', 'critical', 'alert', 'emergency'].includes(l.level), l.level);
    assert.match(l.message, /^etcd .*checkpoint/);
  }
  const newest = all.lines[0]!.time;
  es.addLog({ time: newest + 1000, member: MEMBERS[0], service: 'postgresql', level: 'info', message: 'a line written just now' });
  const tail = (await call(`/ui/logs?range=1h&after=${newest}`, { cookie: v.cookie })).json<LogPage>();
  assert.deepEqual(tail.lines.map((l) => l.message), ['a line written just now']);
  assert.equal((await call('/ui/logs?size=5000', { cookie: v.cookie })).status, 400, 'at most 500 lines');
  assert.equal((await call(`/ui/logs?from=0&to=${Date.now()}`, { cookie: v.cookie })).status, 400, 'at most 7 days');
  assert.equal((await call(`/ui/logs?text=${'x'.repeat(600)}`, { cookie: v.cookie })).status, 400);
  const around = (await call(`/ui/logs?from=${newest - 60_000}&to=${newest + 120_000}`, { cookie: v.cookie })).json<LogPage>();
  assert.ok(around.lines.length >= 2 && around.lines.length <= 10, 'a window around a moment');
});

test('the page\'s script stays small: every module plus uPlot under 150 KB gzipped', () => {
  const total = consoleAssets().totalGzipBytes();
  assert.ok(total < 150 * 1024, `${total} bytes gzipped`);
});

test('new clusters get a viewer token beside the operator token; a malformed one is refused naming the field', () => {
  const s = generateSecrets();
  assert.ok(s.viewer_token && s.viewer_token.length >= 16 && s.viewer_token !== s.api_token);
  assert.throws(() => checkSecrets({ ...s, viewer_token: 'short' }, 'secrets.json'), /secrets.json: viewer_token must be a string of at least 16 characters, other than api_token/);
  assert.throws(() => checkSecrets({ ...s, viewer_token: s.api_token }, 'secrets.json'), /other than api_token/);
  const { viewer_token: _old, ...before } = s;
  assert.equal(checkSecrets(before, 'secrets.json').viewer_token, undefined, 'a file from before still loads');
});
