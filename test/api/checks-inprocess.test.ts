/**
 * The load-balancer checks, the event hub and validation on a real fastify
 * server in this process, for the states a single node cannot reach by
 * itself yet: a lease in doubt (the HA election's), a replica with a known
 * lag, a stalled event loop, and a client too slow for the event stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import WebSocket from 'ws';
import { checkRoutes, parseLag } from '../../src/plugins/http/checks.js';
import { EventHub, eventRoutes } from '../../src/plugins/http/events.js';
import { Heartbeat } from '../../src/plugins/http/liveness.js';
import { redactSecrets } from '../../src/plugins/http/redact.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { EventEmitter } from 'node:events';
import { StandaloneLeadership, type Leadership, type LeadershipState } from '../../src/supervisor/leadership.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';

const TOKEN = 'in-process-test-token';
const quietLog = pino({ level: 'silent' }, new Writable({ write: (_c, _e, done) => done() }));

/** A Leadership whose state the test sets, standing in for the election. */
class SettableLeadership implements Leadership {
  current: LeadershipState = {
    serviceGroup: 'postgresql.default',
    role: 'leader',
    holdsLease: true,
    leaseInDoubt: false,
    writable: true,
    replication: null,
    timeline: 1,
    leader: 'aaaaaaaaaaaaaaaa',
    since: Date.now(),
    reason: 'test',
  };
  state(): LeadershipState {
    return this.current;
  }
  onChange(): () => void {
    return () => {};
  }
  close(): void {}
}

const runningService = (health: ServiceStatus['health']): ServiceStatus => ({ name: 'postgresql', group: 'default', state: 'running', pid: 1, since: 0, restarts: 0, health, healthSince: 0, configVersion: 0 });

async function server(leadership: Leadership, services: ServiceStatus[], heartbeat = new Heartbeat(), livenessMaxAgeMs = 5000) {
  const app = await createHttpServer({
    log: quietLog,
    token: TOKEN,
    plugins: [{ plugin: checkRoutes, options: { memberId: 'aaaaaaaaaaaaaaaa', leadership, services: { list: () => services }, heartbeat, livenessMaxAgeMs } }],
  });
  await app.ready();
  return app;
}

test('parseLag reads bytes and PostgreSQL units', () => {
  assert.equal(parseLag('0'), 0);
  assert.equal(parseLag('1048576'), 1048576);
  assert.equal(parseLag('16MB'), 16 * 1024 * 1024);
  assert.equal(parseLag('512kB'), 512 * 1024);
  assert.equal(parseLag('1 GB'), 1024 ** 3);
  assert.throws(() => parseLag('16 parsecs'), /not a size/);
});

test('a lease in doubt turns /primary to 503 at once, whatever else holds', async () => {
  const leadership = new SettableLeadership();
  const app = await server(leadership, [runningService('ok')]);
  for (const url of ['/primary', '/read-write', '/leader', '/read-only', '/readiness']) {
    assert.equal((await app.inject({ url })).statusCode, 200, url);
  }
  leadership.current = { ...leadership.current, leaseInDoubt: true };
  for (const url of ['/primary', '/read-write', '/leader', '/read-only', '/readiness']) {
    const res = await app.inject({ url });
    assert.equal(res.statusCode, 503, url);
    assert.match(res.json<{ reason: string }>().reason, /doubts its leader lease/);
  }
  assert.equal((await app.inject({ url: '/health' })).statusCode, 200, '/health is about the services, not the lease');
  await app.close();
});

test('/replica honours ?lag= and ?replication_state= against the known lag', async () => {
  const leadership = new SettableLeadership();
  leadership.current = { ...leadership.current, role: 'replica', holdsLease: false, writable: false, replication: { state: 'streaming', lagBytes: 10 * 1024 * 1024 } };
  const app = await server(leadership, [runningService('ok')]);
  const code = async (url: string) => (await app.inject({ url })).statusCode;
  assert.equal(await code('/replica'), 200);
  assert.equal(await code('/replica?lag=16MB'), 200);
  assert.equal(await code('/replica?lag=1MB'), 503);
  assert.equal(await code('/replica?lag=10485760'), 200);
  assert.equal(await code('/replica?replication_state=streaming'), 200);
  assert.equal(await code('/replica?replication_state=in%20archive%20recovery'), 503);
  assert.equal(await code('/read-only?lag=1MB'), 503);
  assert.equal(await code('/read-only?lag=1GB'), 200);
  assert.equal(await code('/primary'), 503);
  leadership.current = { ...leadership.current, replication: { state: 'streaming', lagBytes: null } };
  assert.equal(await code('/replica?lag=1GB'), 503, 'an unknown lag never satisfies a bound');
  const bad = await app.inject({ url: '/replica?lag=lots' });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json<{ error: string }>().error, /querystring\/lag/);
  const unknown = await app.inject({ url: '/replica?lga=1' });
  assert.equal(unknown.statusCode, 400);
  assert.match(unknown.json<{ error: string }>().error, /unknown field "lga"/);
  await app.close();
});

test('HEAD and OPTIONS answer the same status as GET, without a body', async () => {
  const leadership = new SettableLeadership();
  const app = await server(leadership, [runningService('critical')]);
  for (const method of ['HEAD', 'OPTIONS'] as const) {
    const primary = await app.inject({ method, url: '/primary' });
    assert.equal(primary.statusCode, 200, `${method} /primary`);
    assert.equal(primary.body, '');
    const health = await app.inject({ method, url: '/health' });
    assert.equal(health.statusCode, 503, `${method} /health with a critical service`);
  }
  await app.close();
});

test('/liveness turns 503 after the event loop was blocked, and 200 once it turns again', async () => {
  const app = await server(new SettableLeadership(), [], new Heartbeat(50), 300);
  assert.equal((await app.inject({ url: '/liveness' })).statusCode, 200);
  const pending = app.inject({ url: '/liveness' });
  const until = Date.now() + 600;
  while (Date.now() < until) {
    // a handler that hogs the loop, as a stuck supervisor would
  }
  const stalled = await pending;
  assert.equal(stalled.statusCode, 503);
  assert.match(stalled.json<{ reason: string }>().reason, /stalled/);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal((await app.inject({ url: '/liveness' })).statusCode, 200);
  await app.close();
});

test('a slow /events client is dropped once its backlog passes the bound; a fast one keeps every event', async () => {
  let dropped = 0;
  const hub = new EventHub({ maxBufferedBytes: 256 * 1024, onDropped: () => dropped++ });
  const app = await createHttpServer({ log: quietLog, token: TOKEN, plugins: [{ plugin: eventRoutes, options: { hub, memberId: 'aaaaaaaaaaaaaaaa' } }] });
  await app.listen({ host: '127.0.0.39', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const url = `ws://127.0.0.39:${port}/events`;

  const refused = new WebSocket(url);
  const refusal = await new Promise<number>((resolve) =>
    refused.on('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    }),
  );
  assert.equal(refusal, 401, 'no token, no stream');

  const open = async () => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return ws;
  };
  const fast = await open();
  let fastCount = 0;
  fast.on('message', (data: Buffer) => {
    if ((JSON.parse(data.toString()) as { type: string }).type === 'service') fastCount++;
  });
  const slow = await open();
  const slowClosed = new Promise((resolve) => slow.once('close', resolve));
  // A client that stops reading: its socket is paused, so the server's backlog grows.
  slow.pause();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(hub.size, 2);

  const filler = 'x'.repeat(2000);
  const batches = 400;
  const perBatch = 50;
  for (let b = 0; b < batches; b++) {
    for (let i = 0; i < perBatch; i++) hub.publish({ type: 'service', time: Date.now(), filler });
    await new Promise((r) => setImmediate(r));
    if (b % 20 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(dropped, 1, 'the paused client was dropped');
  assert.equal(hub.size, 1, 'the fast client stays');
  slow.resume();
  await slowClosed;
  const expected = batches * perBatch;
  const deadline = Date.now() + 10_000;
  while (fastCount < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(fastCount, expected, 'the fast client received every event');
  fast.close();
  await app.close();
});

test('redactSecrets hides values under secret-looking keys at any depth', () => {
  const out = redactSecrets({ port: 5432, password: 'p', extra: { ssl_key_file: 'k', api_token: 't', work_mem: '4MB' }, list: [{ secret: 's' }] });
  assert.deepEqual(out, { port: 5432, password: '[redacted]', extra: { ssl_key_file: '[redacted]', api_token: '[redacted]', work_mem: '4MB' }, list: [{ secret: '[redacted]' }] });
});

test('StandaloneLeadership: leader while healthy and not in recovery; never on a health answer about an earlier postmaster', () => {
  const services = new EventEmitter<{ status: [ServiceStatus] }>();
  let current: ServiceStatus | undefined;
  const source = { get: (name: string) => (name === 'postgresql' && current ? { status: () => current! } : undefined), on: services.on.bind(services), off: services.off.bind(services) };
  const leadership = new StandaloneLeadership(source, 'aaaaaaaaaaaaaaaa');
  const changes: string[] = [];
  leadership.onChange((s) => changes.push(s.role));
  const set = (s: Partial<ServiceStatus>) => {
    current = { ...runningService('ok'), ...current, ...s };
    services.emit('status', current);
  };
  assert.equal(leadership.state().serviceGroup, null);

  set({ state: 'starting', pid: undefined, health: 'unknown', details: undefined });
  assert.equal(leadership.state().role, 'unknown');
  set({ state: 'running', pid: 100 });
  set({ health: 'ok', details: { in_recovery: false } });
  assert.deepEqual([leadership.state().role, leadership.state().writable, leadership.state().holdsLease], ['leader', true, true]);

  // A new postmaster appears while the last answer (about pid 100) still says ok.
  set({ pid: 200 });
  assert.equal(leadership.state().role, 'unknown');
  assert.match(leadership.state().reason, /first health check of postgresql pid 200/);
  set({ details: { in_recovery: true } });
  assert.equal(leadership.state().role, 'replica');
  assert.equal(leadership.state().replication?.state, 'unknown');

  set({ health: 'critical', details: undefined });
  assert.equal(leadership.state().role, 'unknown');
  assert.deepEqual(changes, ['unknown', 'leader', 'unknown', 'replica', 'unknown']);
  leadership.close();
});
