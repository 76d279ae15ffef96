import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import type { MemberView } from '../../src/gossip/memberlist.js';
import type { EtcdMember } from '../../src/plugins/etcd/client.js';
import { decideJoin } from '../../src/plugins/etcd/membership.js';
import {
  decideSeat,
  decodeEtcdRoleRumor,
  etcdClients,
  etcdRoleRumor,
  parseStoredVoters,
  postgresDepartRefusal,
  PROMOTE_STAGGER_MS,
  quorumOf,
  voterRemovalRefusal,
} from '../../src/plugins/etcd/seats.js';
import { member, roleRumorOf, rumor } from '../support/census-fixtures.js';

const started = (id: string, name: string, n: number): EtcdMember => ({ id, name, peerUrls: [`http://10.0.0.${n}:2380`], clientUrls: [`http://10.0.0.${n}:2379`], isLearner: false });
const unstarted = (id: string, n: number): EtcdMember => ({ id, name: '', peerUrls: [`http://10.0.0.${n}:2380`], clientUrls: [], isLearner: false });
const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const C = 'cccccccccccccccc';
const D = 'dddddddddddddddd';
const E = 'eeeeeeeeeeeeeeee';
const SELF_URL = 'http://10.0.0.14:2380';

function ring(views: MemberView[], rumors: StoredRumor[]) {
  return { members: () => views, rumors: (kind?: string) => rumors.filter((r) => kind === undefined || r.kind === kind) };
}
const roleOf = (id: string, role: 'voter' | 'client', version = 1): StoredRumor => ({ ...etcdRoleRumor(id, role, 0, version), originId: id });

test('decideSeat: a client takes a free seat only when it is first in line, nobody else is half added, and a seat is wanted', () => {
  const three = [started('1', A, 11), started('2', B, 12), started('3', C, 13)];
  const two = three.slice(0, 2);
  const base = { selfPeerUrl: SELF_URL, clients: [D, E], selfId: D, freeForMs: 0 };
  assert.deepEqual(decideSeat({ ...base, members: three, wanted: 3 }), { kind: 'wait', reason: 'etcd has 3 voters, 3 wanted' });
  assert.deepEqual(decideSeat({ ...base, members: two, wanted: 3 }), { kind: 'add' }, 'a voter departed: the first client takes the seat');
  assert.deepEqual(decideSeat({ ...base, members: three, wanted: 5 }), { kind: 'add' }, 'etcd_voters raised to 5');
  assert.equal(decideSeat({ ...base, members: [...two, unstarted('9', 20)], wanted: 5 }).kind, 'wait', 'another add is under way: one at a time');
  // The second client waits for the first, then (the seat still free after the stagger) goes itself.
  const second = { ...base, selfId: E, members: two, wanted: 3 };
  assert.deepEqual(decideSeat(second), { kind: 'wait', reason: `client ${D} goes first` });
  assert.equal(decideSeat({ ...second, freeForMs: PROMOTE_STAGGER_MS - 1 }).kind, 'wait');
  assert.equal(decideSeat({ ...second, freeForMs: PROMOTE_STAGGER_MS }).kind, 'add');
  // A client the ring does not list yet queues behind every listed one.
  assert.equal(decideSeat({ ...base, selfId: 'ffffffffffffffff', members: two, wanted: 3, freeForMs: PROMOTE_STAGGER_MS }).kind, 'wait');
  assert.equal(decideSeat({ ...base, selfId: 'ffffffffffffffff', members: two, wanted: 3, freeForMs: 2 * PROMOTE_STAGGER_MS }).kind, 'add');
  // Its own add went through (before a restart, say): start, whatever the count.
  const mine = [...three, unstarted('7', 14)];
  assert.deepEqual(decideSeat({ ...base, members: mine, wanted: 3 }), { kind: 'start', members: mine });
});

/**
 * Clients against an in-memory etcd with the strict reconfiguration check
 * (an add is refused unless the started members are a quorum of the grown
 * cluster), in random interleavings, each client's read of the member
 * list and its add separate steps: after a voter is removed from a full
 * cluster, exactly one client is promoted and the cluster is back at its
 * count (a client whose add overshot withdraws it).
 */
test('promotion simulation: one free seat, three clients, any interleaving: exactly one promoted, the cluster back at its count', () => {
  for (const wanted of [3, 5]) {
    for (let seed = 1; seed <= 200; seed++) {
      let state = seed;
      const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const members: EtcdMember[] = Array.from({ length: wanted - 1 }, (_, i) => started(String(i + 1), `v${i}`, 11 + i));
      const clients = [C, D, E].map((id, i) => ({ id, url: `http://10.0.0.${30 + i}:2380`, promoted: false, startsIn: -1, view: undefined as EtcdMember[] | undefined }));
      const order = clients.map((c) => c.id);
      let nextId = 100;
      let t = 0;
      const canAdd = () => members.filter((m) => m.name !== '').length >= quorumOf(members.length + 1);
      for (let step = 0; step < 5000; step++) {
        t += 1000 * random();
        const c = clients[Math.floor(random() * clients.length)]!;
        if (c.startsIn >= 0) {
          if (c.startsIn-- === 0) members.find((m) => m.peerUrls.includes(c.url))!.name = c.id;
          continue;
        }
        if (c.promoted) continue;
        if (!c.view) {
          c.view = members.map((m) => ({ ...m }));
          continue;
        }
        // Its add (if it decides on one) reaches etcd later than its read: others may have acted.
        const seat = decideSeat({ members: c.view, selfPeerUrl: c.url, wanted, clients: order.filter((id) => !clients.find((x) => x.id === id)!.promoted), selfId: c.id, freeForMs: t });
        c.view = undefined;
        if (seat.kind === 'add' && canAdd()) {
          members.push(unstarted(String(nextId++), 0));
          members[members.length - 1]!.peerUrls = [c.url];
          const after = decideJoin(members, c.url, wanted);
          if (after.kind === 'withdraw') members.splice(members.findIndex((m) => m.id === after.id), 1);
          else {
            c.promoted = true;
            c.startsIn = Math.floor(random() * 3);
          }
        }
      }
      const promoted = clients.filter((c) => c.promoted);
      assert.equal(promoted.length, 1, `seed ${seed}: ${promoted.length} promoted`);
      assert.equal(members.length, wanted, `seed ${seed}`);
    }
  }
});

test('voterRemovalRefusal: the voters left must be a healthy quorum of the smaller cluster', () => {
  const [a, b, c, d, e] = [started('1', A, 11), started('2', B, 12), started('3', C, 13), started('4', D, 14), started('5', E, 15)];
  // 3 voters, C dead: A and B are 2 of 2.
  assert.equal(voterRemovalRefusal([a!, b!, c!], '3', new Set([A, B])), undefined);
  // 3 voters, C dead and B down too: 1 healthy of 2 left, a quorum needs 2.
  assert.match(voterRemovalRefusal([a!, b!, c!], '3', new Set([A]))!, /etcd would be left with 2 voters, 1 of them healthy; a quorum of 2 needs 2/);
  // 5 voters, D and E dead: removing E leaves 3 healthy of 4 (quorum 3); then D leaves 3 of 3.
  assert.equal(voterRemovalRefusal([a!, b!, c!, d!, e!], '5', new Set([A, B, C])), undefined);
  assert.equal(voterRemovalRefusal([a!, b!, c!, d!], '4', new Set([A, B, C])), undefined);
  // 5 voters, three down: no removal keeps a quorum.
  assert.ok(voterRemovalRefusal([a!, b!, c!, d!, e!], '5', new Set([A, B])));
  // An added member that never started is no help to the quorum.
  assert.ok(voterRemovalRefusal([a!, b!, unstarted('9', 20)], '2', new Set([A, B])));
  assert.match(voterRemovalRefusal([a!], '1', new Set())!, /only etcd voter/);
});

test('postgresDepartRefusal: the last PostgreSQL member and an unreplaced leader stay; a follower or a non-PostgreSQL member may go', () => {
  const pg = { state: 'running', health: 'ok', ports: { port: 5432 } };
  const views = [member(A, '10.0.0.11', 'alive'), member(B, '10.0.0.12', 'dead'), member(C, '10.0.0.13', 'dead'), member(D, '10.0.0.14', 'dead')];
  const rumors = [rumor(A, 'postgresql', pg), rumor(B, 'postgresql', pg), rumor(C, 'postgresql', pg), roleRumorOf(A, { role: 'replica' }), roleRumorOf(C, { role: 'leader' })];
  assert.equal(postgresDepartRefusal(ring(views, rumors), B), undefined, 'a dead follower');
  assert.equal(postgresDepartRefusal(ring(views, rumors), D), undefined, 'runs no PostgreSQL');
  assert.match(postgresDepartRefusal(ring(views, rumors), C)!, /was the PostgreSQL leader and no other member has taken over yet/);
  const takenOver = [...rumors.filter((r) => !(r.kind === 'role' && r.key.startsWith(A))), roleRumorOf(A, { role: 'leader' })];
  assert.equal(postgresDepartRefusal(ring(views, takenOver), C), undefined, 'A leads now');
  // A is the only alive one: B (dead) may go while A runs, but with A dead too, nobody may.
  const allDead = views.map((v) => ({ ...v, state: 'dead' as const }));
  assert.match(postgresDepartRefusal(ring(allDead, takenOver), B)!, /last PostgreSQL member/);
  // A member stopped with systemctl stop (left the ring) still holds its data: the last one stays too.
  const stopped = [member(A, '10.0.0.11', 'left'), member(B, '10.0.0.12', 'dead')];
  assert.match(postgresDepartRefusal(ring(stopped, [rumor(A, 'postgresql', pg), rumor(B, 'postgresql', pg)]), A)!, /last PostgreSQL member/);
  // A departed member's rumor does not count as a copy of the database.
  const aDeparted = [member(A, '10.0.0.11', 'departed'), member(B, '10.0.0.12', 'alive')];
  assert.match(postgresDepartRefusal(ring(aDeparted, [rumor(A, 'postgresql', pg), rumor(B, 'postgresql', pg)]), B)!, /last PostgreSQL member/);
});

test('etcdClients: alive members whose etcd_role rumor says client, by id; etcd_role rumors decode strictly', () => {
  const views = [member(E, '10.0.0.15', 'alive'), member(D, '10.0.0.14', 'alive'), member(C, '10.0.0.13', 'dead'), member(A, '10.0.0.11', 'alive')];
  const rumors = [roleOf(E, 'client'), roleOf(D, 'client'), roleOf(C, 'client'), roleOf(A, 'voter')];
  assert.deepEqual(etcdClients(ring(views, rumors)), [D, E]);
  assert.deepEqual(decodeEtcdRoleRumor(Buffer.from('{"role":"client","since":5}')), { role: 'client', since: 5 });
  for (const bad of ['{"role":"boss"}', '[]', 'not json', '{}']) assert.equal(decodeEtcdRoleRumor(Buffer.from(bad)), undefined, bad);
});

test('parseStoredVoters: 3 or 5, anything else is ignored (the member falls back to its config)', () => {
  assert.equal(parseStoredVoters('5'), 5);
  assert.equal(parseStoredVoters(' 3\n'), 3);
  for (const bad of [undefined, '', '4', '7', 'five', '5x']) assert.equal(parseStoredVoters(bad), undefined, String(bad));
});
