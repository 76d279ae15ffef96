import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EtcdMember } from '../../src/plugins/etcd/client.js';
import { movePeerUrlsToTls, peerUrlsToMove } from '../../src/plugins/etcd/membership.js';

const member = (name: string, peerUrls: string[], id = `${name}-id`): EtcdMember => ({ id, name, peerUrls, clientUrls: [], isLearner: false }) as EtcdMember;

test("peerUrlsToMove: only this member's clear-text peer URLs, only when its etcd serves TLS", () => {
  const members = [member('a', ['http://10.0.0.1:2380']), member('b', ['https://10.0.0.2:2380'])];
  assert.deepEqual(peerUrlsToMove(members, 'a', 'https://10.0.0.1:2380'), { id: 'a-id', from: ['http://10.0.0.1:2380'] });
  assert.equal(peerUrlsToMove(members, 'b', 'https://10.0.0.2:2380'), undefined, 'already https');
  assert.equal(peerUrlsToMove(members, 'a', 'http://10.0.0.1:2380'), undefined, 'TLS off here: nothing to move');
  assert.equal(peerUrlsToMove(members, 'c', 'https://10.0.0.3:2380'), undefined, 'not a member (yet)');
  assert.deepEqual(peerUrlsToMove([member('a', ['https://10.0.0.1:2380', 'http://10.0.0.1:2380'])], 'a', 'https://10.0.0.1:2380')?.from, ['https://10.0.0.1:2380', 'http://10.0.0.1:2380']);
});

test('movePeerUrlsToTls updates the member once, to its https peer URL alone', async () => {
  const updates: Array<[string, string[]]> = [];
  let members = [member('a', ['http://10.0.0.1:2380']), member('b', ['http://10.0.0.2:2380'])];
  const etcd = {
    memberList: () => Promise.resolve(members),
    memberUpdate: (id: string, urls: string[]) => {
      updates.push([id, urls]);
      members = members.map((m) => (m.id === id ? { ...m, peerUrls: urls } : m));
      return Promise.resolve(members);
    },
  };
  assert.deepEqual(await movePeerUrlsToTls(etcd, 'a', 'https://10.0.0.1:2380'), { id: 'a-id', from: ['http://10.0.0.1:2380'], to: ['https://10.0.0.1:2380'] });
  assert.equal(await movePeerUrlsToTls(etcd, 'a', 'https://10.0.0.1:2380'), undefined);
  assert.deepEqual(updates, [['a-id', ['https://10.0.0.1:2380']]]);
  assert.deepEqual(members[1]!.peerUrls, ['http://10.0.0.2:2380'], "another member's URLs are its own to move");
});
