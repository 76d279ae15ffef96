import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberView } from '../../src/gossip/memberlist.js';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import { DepartRefused, type EtcdMembershipStatus, type RemovedVoter, type VotersSet } from '../../src/plugins/etcd/membership.js';
import { memberRoutes } from '../../src/plugins/http/members.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { createLogger } from '../../src/supervisor/log.js';
import { roleRumorOf, rumor } from '../support/census-fixtures.js';

const SELF = '0000000000000001';
const ALIVE = '00000000000000aa';
const DEAD = '00000000000000dd';
const DEAD_LEADER = '00000000000000de';
const TOKEN = 'test-token';

function fakeRing() {
  const states = new Map<string, MemberView['state']>([
    [SELF, 'alive'],
    [ALIVE, 'alive'],
    [DEAD, 'dead'],
    [DEAD_LEADER, 'dead'],
  ]);
  const view = (id: string): MemberView => ({ id, addr: '10.0.0.1', port: 9638, incarnation: 1, state: states.get(id)!, meta: new Uint8Array(), since: 0 });
  const pg = { state: 'running', health: 'ok', ports: { port: 5432 } };
  // SELF, ALIVE, DEAD and DEAD_LEADER run PostgreSQL; DEAD_LEADER was the leader and nobody has taken over yet.
  const rumors: StoredRumor[] = [rumor(SELF, 'postgresql', pg), rumor(ALIVE, 'postgresql', pg), rumor(DEAD, 'postgresql', pg), rumor(DEAD_LEADER, 'postgresql', pg), roleRumorOf(DEAD_LEADER, { role: 'leader' }), roleRumorOf(SELF, { role: 'replica' })];
  return {
    departed: [] as string[],
    states,
    rumorList: rumors,
    self: () => view(SELF),
    member: (id: string) => (states.has(id) ? view(id) : undefined),
    members: () => [...states.keys()].map(view),
    rumors: (kind?: string) => rumors.filter((r) => kind === undefined || r.kind === kind),
    depart(id: string) {
      this.departed.push(id);
      states.set(id, 'departed');
    },
  };
}

async function server(removeVoter: (id: string) => Promise<RemovedVoter>) {
  const ring = fakeRing();
  const removals: string[] = [];
  const votersSet: number[] = [];
  const status: EtcdMembershipStatus = { forming: true, founder: false, role: 'voter', voters_wanted: 3, attempts: 0, last_error: null, voters: [] };
  const app = await createHttpServer({
    log: createLogger({ level: 'silent' }),
    token: TOKEN,
    plugins: [{ plugin: memberRoutes, options: { ring, etcd: { status: () => status, removeVoter: (id: string) => (removals.push(id), removeVoter(id)), setVoters: async (n: number): Promise<VotersSet> => (votersSet.push(n), { voters: n, previous: 3, members: 3, note: 'ok' }) } } }],
  });
  const depart = (id: string, token: string | null = TOKEN) =>
    app.inject({ method: 'POST', url: `/members/${id}/depart`, headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { app, ring, removals, votersSet, depart };
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

test('depart refuses the PostgreSQL leader nobody has replaced yet, and the last PostgreSQL member; etcd is not touched', async () => {
  const { app, ring, removals, depart } = await server(async () => ({ was_voter: true, etcd_member_id: 'abc' }));
  const leader = await depart(DEAD_LEADER);
  assert.equal(leader.statusCode, 409);
  assert.match(leader.json().error, /is not departed: it was the PostgreSQL leader and no other member has taken over yet/);
  // Once another alive member says it leads, the old leader may go.
  ring.rumorList.push({ ...roleRumorOf(SELF, { role: 'leader' }), version: 2 });
  ring.rumorList.splice(ring.rumorList.findIndex((r) => r.kind === 'role' && r.key.startsWith(SELF) && r.version === 1), 1);
  assert.equal((await depart(DEAD_LEADER)).statusCode, 200);
  // With SELF and ALIVE dead, DEAD is the last PostgreSQL member anyone could start: refused.
  ring.states.set(ALIVE, 'dead');
  ring.self = () => ({ id: '0000000000000099', addr: '10.0.0.9', port: 9638, incarnation: 1, state: 'alive', meta: new Uint8Array(), since: 0 });
  ring.states.set(SELF, 'dead');
  const last = await depart(DEAD);
  assert.equal(last.statusCode, 409);
  assert.match(last.json().error, /it is the last PostgreSQL member \(no other alive member runs PostgreSQL\)/);
  assert.deepEqual(removals, [DEAD_LEADER]);
  assert.deepEqual(ring.departed, [DEAD_LEADER]);
  await app.close();
});

test('depart: a removal etcd could not take without losing its quorum is a 409 with the reason, and nothing is departed', async () => {
  const { app, ring, depart } = await server(async () => {
    throw new DepartRefused('etcd would be left with 2 voters, 1 of them healthy; a quorum of 2 needs 2');
  });
  const res = await depart(DEAD);
  assert.equal(res.statusCode, 409);
  assert.match(res.json().error, /member 00000000000000dd is not departed: etcd would be left with 2 voters, 1 of them healthy/);
  assert.deepEqual(ring.departed, []);
  await app.close();
});

test('POST /etcd/voters takes 3 or 5 with the token; anything else is a 400 and sets nothing', async () => {
  const { app, votersSet } = await server(async () => ({ was_voter: false }));
  const post = (body: unknown, token: string | null = TOKEN) => app.inject({ method: 'POST', url: '/etcd/voters', payload: body as object, headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal((await post({ voters: 5 }, null)).statusCode, 401);
  for (const bad of [{ voters: 4 }, { voters: '5' }, { voters: 7 }, {}, { voters: 5, extra: 1 }]) assert.equal((await post(bad)).statusCode, 400, JSON.stringify(bad));
  const ok = await post({ voters: 5 });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().voters, 5);
  assert.deepEqual(votersSet, [5]);
  await app.close();
});
