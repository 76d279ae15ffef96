import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberView } from '../../src/gossip/memberlist.js';
import type { EtcdMembershipStatus, RemovedVoter } from '../../src/plugins/etcd/membership.js';
import { memberRoutes } from '../../src/plugins/http/members.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { createLogger } from '../../src/supervisor/log.js';

const SELF = '0000000000000001';
const ALIVE = '00000000000000aa';
const DEAD = '00000000000000dd';
const TOKEN = 'test-token';

function fakeRing() {
  const states = new Map<string, MemberView['state']>([
    [SELF, 'alive'],
    [ALIVE, 'alive'],
    [DEAD, 'dead'],
  ]);
  const view = (id: string): MemberView => ({ id, addr: '10.0.0.1', port: 9638, incarnation: 1, state: states.get(id)!, meta: new Uint8Array(), since: 0 });
  return {
    departed: [] as string[],
    self: () => view(SELF),
    member: (id: string) => (states.has(id) ? view(id) : undefined),
    depart(id: string) {
      this.departed.push(id);
      states.set(id, 'departed');
    },
  };
}

async function server(removeVoter: (id: string) => Promise<RemovedVoter>) {
  const ring = fakeRing();
  const removals: string[] = [];
  const status: EtcdMembershipStatus = { forming: true, founder: false, role: 'voter', voters_wanted: 3, attempts: 0, last_error: null, voters: [] };
  const app = await createHttpServer({
    log: createLogger({ level: 'silent' }),
    token: TOKEN,
    plugins: [{ plugin: memberRoutes, options: { ring, etcd: { status: () => status, removeVoter: (id: string) => (removals.push(id), removeVoter(id)) } } }],
  });
  const depart = (id: string, token: string | null = TOKEN) =>
    app.inject({ method: 'POST', url: `/members/${id}/depart`, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { app, ring, removals, depart };
}

test('depart: a dead voter is removed from etcd first, then departed in the ring', async () => {
  const { app, ring, removals, depart } = await server(async () => ({ was_voter: true, etcd_member_id: 'abc' }));
  const res = await depart(DEAD);
  assert.equal(res.statusCode, 200, res.body);
  assert.deepEqual(res.json(), { member: DEAD, departed: true, etcd: { was_voter: true, etcd_member_id: 'abc' } });
  assert.deepEqual(removals, [DEAD]);
  assert.deepEqual(ring.departed, [DEAD]);
  await app.close();
});

test('depart refuses: no token, malformed id, unknown, self, alive; nothing is removed or departed', async () => {
  const { app, ring, removals, depart } = await server(async () => ({ was_voter: false }));
  assert.equal((await depart(DEAD, null)).statusCode, 401);
  assert.equal((await depart('not-an-id')).statusCode, 400);
  assert.match((await depart('00000000000000ff')).body, /no member 00000000000000ff/);
  const self = await depart(SELF);
  assert.equal(self.statusCode, 409);
  assert.match(self.body, /is this member/);
  const alive = await depart(ALIVE);
  assert.equal(alive.statusCode, 409);
  assert.match(alive.body, /is alive; only a dead or left member can be departed/);
  assert.deepEqual(removals, []);
  assert.deepEqual(ring.departed, []);
  await app.close();
});

test('depart: when etcd cannot be told, the member is not departed (503, retry later)', async () => {
  const { app, ring, depart } = await server(async () => {
    throw new Error('no etcd member answered');
  });
  const res = await depart(DEAD);
  assert.equal(res.statusCode, 503);
  assert.match(res.body, /could not remove member .* from etcd \(no etcd member answered\); it was not departed/);
  assert.deepEqual(ring.departed, []);
  await app.close();
});

test('GET /etcd shows the formation status and needs the token', async () => {
  const { app } = await server(async () => ({ was_voter: false }));
  assert.equal((await app.inject({ method: 'GET', url: '/etcd' })).statusCode, 401);
  const res = await app.inject({ method: 'GET', url: '/etcd', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json().role, 'voter');
  await app.close();
});
