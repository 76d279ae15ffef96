import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { driverFor } from '../../src/node/drivers.js';
import { httpJson } from '../../src/plugins/http-json.js';
import { createHarness, freePort, installConfig, killGroup, render, startService, waitFor, type Harness, type RunningService } from '../support/service-harness.js';

const ETCD = '/usr/bin/etcd';
const skip = existsSync(ETCD) ? false : `etcd is not installed at ${ETCD} (npm run bootstrap)`;

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function waitHealthy(h: Harness): Promise<void> {
  await waitFor('etcd to be healthy', 20_000, async () => {
    const result = await h.driver.health(h.ctx, AbortSignal.timeout(1500));
    if (result.status !== 'ok') throw new Error(result.message);
    return true;
  }, 100);
}

function clientBase(h: Harness): string {
  return `http://127.0.0.1:${Number(h.ctx.cfg.client_port)}`;
}

async function get(h: Harness, key: string): Promise<string | undefined> {
  const answer = await httpJson(`${clientBase(h)}/v3/kv/range`, AbortSignal.timeout(3000), { key: b64(key) });
  const kvs = (answer.json as { kvs?: Array<{ value: string }> }).kvs;
  return kvs?.[0] ? Buffer.from(kvs[0].value, 'base64').toString('utf8') : undefined;
}

describe('etcd driver against a real server', { skip }, () => {
  let h: Harness;
  let server: RunningService | undefined;
  const started: RunningService[] = [];
  const start = () => {
    installConfig(h, render(h));
    server = startService(h);
    started.push(server);
    return server;
  };

  before(async () => {
    h = createHarness('etcd', driverFor('etcd'), { client_port: await freePort(), peer_port: await freePort(), listen_address: '' });
  });

  after(async () => {
    for (const s of started) {
      killGroup(s.pid, 'SIGKILL');
      await s.exited;
    }
    h?.cleanup();
  });

  test('prepare() makes a private data dir for the service user; a new member renders a one-member cluster', async () => {
    await h.driver.prepare(h.ctx);
    const st = statSync(h.ctx.paths.data);
    assert.equal(st.mode & 0o777, 0o700);
    if (h.ctx.user) assert.equal(st.uid, h.ctx.user.uid);
    const values = h.driver.templateValues!(h.ctx);
    assert.deepEqual(values, {
      etcd_initial_cluster: `${h.ctx.memberId}=http://127.0.0.1:${h.ctx.cfg.peer_port}`,
      etcd_initial_cluster_state: 'new',
      etcd_cluster_token: `hasup-${h.ctx.memberId}`,
    });
    assert.match(render(h).get('etcd.yml')!, new RegExp(`^initial-cluster: '${h.ctx.memberId}=http://127\\.0\\.0\\.1:${h.ctx.cfg.peer_port}'$`, 'm'));
  });

  test('etcd starts from the rendered config and health is ok with raft details', async () => {
    start();
    await waitHealthy(h);
    const result = await h.driver.health(h.ctx, AbortSignal.timeout(1500));
    assert.equal(result.status, 'ok', result.message);
    assert.ok(result.details, `no raft details: ${result.message}; etcd said: ${server!.output.slice(-5).join(' | ')}`);
    assert.match(String(result.details?.version), /^3\.\d+\.\d+$/);
    assert.match(String(result.details?.member_id), /^[0-9a-f]+$/);
    assert.equal(result.details?.is_leader, true, 'a one-member cluster leads itself');
    assert.ok(Number(result.details?.raft_term) >= 1);
    assert.ok(Number(result.details?.raft_index) >= 1);
  });

  test('keys put through the v3 HTTP gateway read back', async () => {
    const put = await httpJson(`${clientBase(h)}/v3/kv/put`, AbortSignal.timeout(3000), { key: b64('hasup/test'), value: b64('hello from the driver test') });
    assert.equal(put.status, 200);
    assert.equal(await get(h, 'hasup/test'), 'hello from the driver test');
    assert.equal(await get(h, 'hasup/absent'), undefined);
  });

  test('after a stop health is critical; a restart joins its own existing cluster and keeps the data', async () => {
    await server!.stop('SIGTERM');
    const down = await h.driver.health(h.ctx, AbortSignal.timeout(1500));
    assert.equal(down.status, 'critical');
    assert.match(down.message ?? '', /etcd at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);

    await h.driver.prepare(h.ctx);
    assert.equal(h.driver.templateValues!(h.ctx).etcd_initial_cluster_state, 'existing');
    start();
    await waitHealthy(h);
    assert.equal(await get(h, 'hasup/test'), 'hello from the driver test');
    await server!.stop('SIGTERM');
    assert.notEqual(server!.child.exitCode ?? server!.child.signalCode, null);
  });
});

describe('etcd driver health against fake endpoints', () => {
  let fake: Server;
  let port: number;
  let answer: (url: string) => { status: number; body: string } | undefined;
  const h = createHarness('etcd', driverFor('etcd'), {});

  before(async () => {
    fake = createServer((req, res) => {
      const a = answer(req.url ?? '');
      if (!a) return; // say nothing: the client must give up on its own
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    port = (fake.address() as { port: number }).port;
  });

  after(() => {
    fake.closeAllConnections();
    fake.close();
    h.cleanup();
  });

  const ctx = () => ({ ...h.ctx, cfg: { ...h.ctx.cfg, client_port: port } });

  test('an etcd that reports itself unhealthy is critical, with its reason', async () => {
    answer = (url) => (url === '/health' ? { status: 503, body: '{"health":"false","reason":"RAFT NO LEADER"}' } : undefined);
    const result = await h.driver.health(ctx(), AbortSignal.timeout(1000));
    assert.equal(result.status, 'critical');
    assert.match(result.message ?? '', /reports itself unhealthy: RAFT NO LEADER/);
  });

  test('health gives up when its signal aborts and closes its connection', async () => {
    answer = () => undefined;
    const t0 = Date.now();
    const result = await h.driver.health(ctx(), AbortSignal.timeout(300));
    const took = Date.now() - t0;
    assert.equal(result.status, 'critical');
    assert.match(result.message ?? '', /did not answer in time/);
    assert.ok(took < 1500, `gave up after ${took} ms`);
    await waitFor('the connection to close', 2000, async () => {
      const open = await new Promise<number>((r) => fake.getConnections((_e, n) => r(n)));
      return open === 0 ? true : undefined;
    }, 20);
  });

  test('a healthy etcd whose status call fails is still ok', async () => {
    answer = (url) => (url === '/health' ? { status: 200, body: '{"health":"true"}' } : { status: 500, body: 'not json' });
    const result = await h.driver.health(ctx(), AbortSignal.timeout(1000));
    assert.equal(result.status, 'ok');
    assert.equal(result.details, undefined);
  });

});
