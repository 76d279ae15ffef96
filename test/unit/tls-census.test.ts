import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterTlsLines, rotationPlan } from '../../src/cli/cert-commands.js';
import { buildCensus } from '../../src/plugins/http/cluster-view.js';
import { decodeTlsRumor, RUMOR_TLS, tlsRumorFor } from '../../src/supervisor/rumors/tls.js';
import { member, NO_LEADERSHIP } from '../support/census-fixtures.js';

const DAY = 86_400_000;
const NOW = Date.parse('2030-01-01T00:00:00Z');
const ISSUER = 'CN=hasup cluster CA prod 00112233aabbccdd, O=hasup';
const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const C = 'cccccccccccccccc';

test('the TLS rumor: public facts only, malformed payloads dropped, never a throw', () => {
  const r = tlsRumorFor(A, { on: true, source: 'cluster-ca', issuer: ISSUER, not_after: NOW + DAY, fingerprint: 'AB:CD' }, 7);
  assert.equal(r.kind, RUMOR_TLS);
  assert.equal(r.key, A);
  assert.deepEqual(decodeTlsRumor(r.payload), { on: true, source: 'cluster-ca', issuer: ISSUER, not_after: NOW + DAY, fingerprint: 'AB:CD' });
  assert.doesNotMatch(Buffer.from(r.payload).toString(), /PRIVATE KEY/);
  assert.equal(decodeTlsRumor(Buffer.from('not json')), undefined);
  assert.equal(decodeTlsRumor(Buffer.from('{"on":"yes"}')), undefined);
  assert.deepEqual(decodeTlsRumor(Buffer.from('{"on":true,"not_after":"soon","issuer":5}')), { on: true }, 'wrong types are left out');
  assert.equal(Buffer.from(tlsRumorFor(A, { on: false, reason: 'x'.repeat(1000) }, 1).payload).length < 400, true, 'a long reason is cut');
});

test('/cluster: each member\'s certificate from its rumor, days left; null without one', () => {
  const rumor = (id: string, payload: object) => ({ ...tlsRumorFor(id, payload as never, 1), originId: id });
  const census = buildCensus({
    memberId: A,
    members: [member(A, '10.0.0.1', 'alive'), member(B, '10.0.0.2', 'alive'), member(C, '10.0.0.3', 'dead')],
    rumors: (kind) => (kind === RUMOR_TLS ? [rumor(A, { on: true, issuer: ISSUER, not_after: NOW + 300 * DAY, fingerprint: 'F1' }), rumor(B, { on: false, reason: '[tls] enabled = false in hasup.toml' })] : []),
    localServices: [],
    leadership: NO_LEADERSHIP,
    now: NOW,
  });
  const byId = new Map(census.members.map((m) => [m.id, m.tls]));
  assert.deepEqual(byId.get(A), { on: true, issuer: ISSUER, not_after: '2030-10-28T00:00:00.000Z', days_left: 300, fingerprint: 'F1', reason: null });
  assert.deepEqual(byId.get(B), { on: false, issuer: null, not_after: null, days_left: null, fingerprint: null, reason: '[tls] enabled = false in hasup.toml' });
  assert.equal(byId.get(C), null);
});

test('cert status: a row per member, a WARNING within 30 days of the end or past it', () => {
  const tls = (days: number) => ({ on: true, issuer: ISSUER, not_after: new Date(NOW + days * DAY).toISOString(), days_left: days, fingerprint: 'F', reason: null });
  const lines = clusterTlsLines(
    [
      { id: A, state: 'alive', tls: tls(300) },
      { id: B, state: 'alive', tls: tls(12) },
      { id: C, state: 'dead', tls: tls(-2) },
      { id: 'dddddddddddddddd', state: 'alive', tls: { on: false, issuer: null, not_after: null, days_left: null, fingerprint: null, reason: 'no CA' } },
      { id: 'eeeeeeeeeeeeeeee', state: 'alive', tls: null },
    ],
    30,
  );
  assert.deepEqual(lines, [
    'cluster members (from the ring):',
    'MEMBER            STATE  EXPIRES     LEFT                                       ISSUER',
    `aaaaaaaaaaaaaaaa  alive  2030-10-28  300 days left                              ${ISSUER}`,
    `bbbbbbbbbbbbbbbb  alive  2030-01-13  12 days left                               ${ISSUER}`,
    `cccccccccccccccc  dead   2029-12-30  -2 days left                               ${ISSUER}`,
    'dddddddddddddddd  alive  OFF         clear text: no CA',
    'eeeeeeeeeeeeeeee  alive  ?           no TLS rumor (an older hasup, or not yet)',
    "WARNING: member bbbbbbbbbbbbbbbb's certificate expires in 12 days (2030-01-13T00:00:00.000Z)",
    "WARNING: member cccccccccccccccc's certificate expired on 2029-12-30T00:00:00.000Z",
  ]);
});

test('cert rotate: alive members whose API port the ring knows, one at a time, the leader last', () => {
  const service = (id: string, apiPort: number) => ({ kind: 'service', key: `${id}/postgresql.default`, payload: Buffer.from(JSON.stringify({ state: 'running', health: 'ok', api_port: apiPort })).toString('base64') });
  const ring = {
    self: { id: B, address: '10.0.0.2:9638', state: 'alive' },
    members: [
      { id: A, address: '10.0.0.1:9638', state: 'alive' },
      { id: B, address: '10.0.0.2:9638', state: 'alive' },
      { id: C, address: '10.0.0.3:9638', state: 'alive' },
      { id: 'dddddddddddddddd', address: '10.0.0.4:9638', state: 'dead' },
      { id: 'eeeeeeeeeeeeeeee', address: '10.0.0.5:9638', state: 'alive' },
      { id: 'ffffffffffffffff', address: '[fd00::6]:9638', state: 'alive' },
      { id: '0000000000000000', address: '10.0.0.7:9638', state: 'departed' },
    ],
    rumors: [service(A, 9631), service(C, 9700), service('ffffffffffffffff', 9631)],
  };
  const plan = rotationPlan(ring, A, 'https://10.0.0.2:9631');
  assert.deepEqual(plan.order, [
    { id: B, url: 'https://10.0.0.2:9631' },
    { id: C, url: 'https://10.0.0.3:9700' },
    { id: 'ffffffffffffffff', url: 'https://[fd00::6]:9631' },
    { id: A, url: 'https://10.0.0.1:9631' },
  ]);
  assert.deepEqual(plan.skipped.map((s) => s.id), ['dddddddddddddddd', 'eeeeeeeeeeeeeeee']);
  assert.match(plan.skipped[0]!.why, /^dead: it renews at its next start only if/);
  assert.equal(plan.skipped[1]!.why, 'its API port is not in the ring');
});
