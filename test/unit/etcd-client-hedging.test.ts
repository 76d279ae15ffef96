/**
 * The etcd client's hedged calls against fake etcd gateways on loopback:
 * a slow endpoint is joined by the next one after the hedge delay and the
 * first answer wins; a refusal or an "unavailable" answer moves on at once;
 * an etcd error is final; the slow loser runs out and keeps its keep-alive
 * connection; transactions are never sent to a second member; and the
 * order endpoints are tried in (a local etcd first).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EtcdClient, EtcdError, EtcdUnavailable, isLocalHost, orderEndpoints } from '../../src/plugins/etcd/client.js';

interface FakeReply {
  delayMs: number;
  status: number;
  body: Record<string, unknown>;
}

/** A fake etcd gateway: answers every POST with `reply` after its delay, and counts. */
class FakeGateway {
  readonly requests: Array<{ path: string; at: number }> = [];
  connections = 0;
  /** Answers the client went away from before they were written. */
  abandoned = 0;
  answered = 0;
  reply: FakeReply;
  private readonly server: Server;

  private constructor(server: Server, reply: FakeReply) {
    this.server = server;
    this.reply = reply;
  }

  static async start(reply: Partial<FakeReply> & { body: Record<string, unknown> }): Promise<FakeGateway> {
    const server = createServer();
    const gw = new FakeGateway(server, { delayMs: 0, status: 200, ...reply });
    server.on('connection', () => gw.connections++);
    server.on('request', (req, res) => {
      gw.requests.push({ path: req.url ?? '', at: performance.now() });
      const { delayMs, status, body } = gw.reply;
      req.resume();
      const timer = setTimeout(() => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body), () => gw.answered++);
      }, delayMs);
      res.on('close', () => {
        if (!res.writableFinished) {
          clearTimeout(timer);
          gw.abandoned++;
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gw;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A loopback port nothing listens on: connections are refused. */
async function refusedUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return `http://127.0.0.1:${port}`;
}

const keepAlive = (ttl: number) => ({ result: { ID: '7', TTL: String(ttl) } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('etcd client: hedged calls', () => {
  const gateways: FakeGateway[] = [];
  const gateway = async (reply: Partial<FakeReply> & { body: Record<string, unknown> }) => {
    const gw = await FakeGateway.start(reply);
    gateways.push(gw);
    return gw;
  };

  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
  });

  test('a slow endpoint is joined by the next after the hedge delay; the first answer wins and the next call starts there', async () => {
    const slow = await gateway({ delayMs: 800, body: keepAlive(1) });
    const fast = await gateway({ body: keepAlive(2) });
    const client = new EtcdClient({ endpoints: () => [slow.url, fast.url], timeoutMs: 2000, hedgeDelayMs: 150 });
    const started = performance.now();
    assert.equal(await client.leaseKeepAliveOnce('7'), 2, 'the fast endpoint answered');
    const took = performance.now() - started;
    assert.ok(took >= 140 && took < 700, `answered after the hedge delay, long before the slow endpoint (${Math.round(took)} ms)`);
    assert.equal(slow.requests.length, 1);
    assert.equal(fast.requests.length, 1);
    assert.ok(fast.requests[0]!.at - started >= 140, 'the second endpoint was asked only after the hedge delay');

    await client.leaseKeepAliveOnce('7');
    assert.equal(fast.requests.length, 2, 'the endpoint that answered last is asked first');
    assert.ok(fast.requests[1]!.at < (slow.requests[1]?.at ?? Infinity), 'and before the slow one');
  });

  test('the losing attempt is not cut off: it runs out and its keep-alive connection is used again', async () => {
    const slow = await gateway({ delayMs: 400, body: keepAlive(1) });
    const fast = await gateway({ body: keepAlive(2) });
    const client = new EtcdClient({ endpoints: () => [slow.url, fast.url], timeoutMs: 2000, hedgeDelayMs: 100 });
    assert.equal(await client.leaseKeepAliveOnce('7'), 2);
    const deadline = performance.now() + 2000;
    while (slow.answered < 1 && performance.now() < deadline) await sleep(20);
    assert.equal(slow.answered, 1, 'the slow endpoint wrote its whole answer');
    assert.equal(slow.abandoned, 0, 'nobody hung up on it');
    await sleep(50); // the client reads the answer and puts the connection back in its pool
    slow.reply = { ...slow.reply, delayMs: 0 };
    const only = new EtcdClient({ endpoints: () => [slow.url], timeoutMs: 2000 });
    assert.equal(await only.leaseKeepAliveOnce('7'), 1);
    assert.equal(slow.connections, 1, 'the same TCP connection served the next request');
  });

  test('a refused connection moves on at once, without waiting for the hedge delay', async () => {
    const live = await gateway({ body: { kvs: [], header: { revision: '5' } } });
    const refused = await refusedUrl();
    const c = new EtcdClient({ endpoints: () => [refused, live.url], timeoutMs: 3000, hedgeDelayMs: 1000 });
    const started = performance.now();
    assert.equal((await c.range('/k')).revision, 5);
    const took = performance.now() - started;
    assert.ok(took < 500, `answered well before the 1000 ms hedge delay (${Math.round(took)} ms)`);
  });

  test('an "unavailable" answer (no leader) moves on at once; another etcd error is final and asks nobody else', async () => {
    const leaderless = await gateway({ status: 503, body: { code: 14, message: 'etcdserver: no leader' } });
    const live = await gateway({ body: keepAlive(3) });
    const c = new EtcdClient({ endpoints: () => [leaderless.url, live.url], timeoutMs: 3000, hedgeDelayMs: 1000 });
    const started = performance.now();
    assert.equal(await c.leaseKeepAliveOnce('7'), 3);
    assert.ok(performance.now() - started < 500, 'did not wait for the hedge delay');

    const streamedNoLeader = await gateway({ body: { error: { grpc_code: 14, http_code: 503, message: 'etcdserver: no leader' } } });
    const e = new EtcdClient({ endpoints: () => [streamedNoLeader.url, live.url], timeoutMs: 3000, hedgeDelayMs: 1000 });
    const again = performance.now();
    assert.equal(await e.leaseKeepAliveOnce('7'), 3, 'a keep-alive stream that reports "no leader" moves on too');
    assert.ok(performance.now() - again < 500, 'did not wait for the hedge delay');

    const refusing = await gateway({ status: 404, body: { code: 5, message: 'etcdserver: requested lease not found' } });
    const other = await gateway({ body: { TTL: '9' } });
    const d = new EtcdClient({ endpoints: () => [refusing.url, other.url], timeoutMs: 3000, hedgeDelayMs: 1000 });
    await assert.rejects(d.leaseTimeToLive('7'), (err: Error) => err instanceof EtcdError && /lease not found/.test(err.message));
    assert.equal(other.requests.length, 0, 'an answer from etcd is not asked again elsewhere');
  });

  test('no endpoint answers: EtcdUnavailable at the deadline, after every endpoint was asked', async () => {
    const hung = await Promise.all([1, 2, 3].map(() => gateway({ delayMs: 5000, body: keepAlive(1) })));
    const c = new EtcdClient({ endpoints: () => hung.map((g) => g.url), timeoutMs: 600 });
    const started = performance.now();
    await assert.rejects(c.leaseKeepAliveOnce('7'), (err: Error) => {
      assert.ok(err instanceof EtcdUnavailable, String(err));
      assert.match(err.message, /no answer within 600 ms/);
      for (const g of hung) assert.ok(err.message.includes(g.url), `names ${g.url}`);
      return true;
    });
    const took = performance.now() - started;
    assert.ok(took >= 590 && took < 1200, `gave up at the deadline (${Math.round(took)} ms)`);
    for (const g of hung) assert.equal(g.requests.length, 1, 'every endpoint was asked once');
  });

  test('a caller\'s abort ends a hedged call at once', async () => {
    const hung = await gateway({ delayMs: 5000, body: keepAlive(1) });
    const c = new EtcdClient({ endpoints: () => [hung.url], timeoutMs: 5000 });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    const started = performance.now();
    await assert.rejects(c.leaseKeepAliveOnce('7', { signal: stop.signal }), (err: Error) => err instanceof EtcdUnavailable && /cancelled/.test(err.message));
    assert.ok(performance.now() - started < 1000);
  });

  test('a transaction is never hedged: a slow member that may have it is not asked to run it again elsewhere', async () => {
    const slow = await gateway({ delayMs: 3000, body: { succeeded: true, header: { revision: '1' } } });
    const other = await gateway({ body: { succeeded: true, header: { revision: '2' } } });
    const c = new EtcdClient({ endpoints: () => [slow.url, other.url], timeoutMs: 600, hedgeDelayMs: 50 });
    await assert.rejects(c.txn({ compare: [], success: [{ put: { key: 'k', value: 'v' } }] }), EtcdUnavailable);
    assert.equal(slow.requests.length, 1);
    assert.equal(other.requests.length, 0);
  });
});

describe('etcd client: endpoint order', () => {
  const a = 'http://10.0.0.1:2379';
  const b = 'http://10.0.0.2:2379';
  const c = 'http://10.0.0.3:2379';

  test('the last endpoint that answered first, then round the list', () => {
    assert.deepEqual(orderEndpoints([a, b, c], undefined, () => false), [a, b, c]);
    assert.deepEqual(orderEndpoints([a, b, c], b, () => false), [b, c, a]);
    assert.deepEqual(orderEndpoints([a, b, c], 'http://gone:2379', () => false), [a, b, c]);
  });

  test('a local etcd goes before the one that answered last', () => {
    assert.deepEqual(orderEndpoints([a, b, c], b, (e) => e === c), [c, b, a]);
    assert.deepEqual(orderEndpoints([a, b, c], c, (e) => e === a || e === c), [c, a, b]);
  });

  test('local hosts: loopback names and addresses, and the host\'s own addresses', () => {
    const mine = () => new Set(['10.231.7.11']);
    for (const host of ['127.0.0.1', '127.0.0.3', 'localhost', '::1', '10.231.7.11']) assert.ok(isLocalHost(host, mine), host);
    for (const host of ['10.231.7.12', 'etcd.example']) assert.ok(!isLocalHost(host, mine), host);
  });
});
