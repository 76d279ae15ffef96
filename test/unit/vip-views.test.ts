/**
 * The leader VIP as the views show it: the VIP rumor's round trip, who
 * holds it in /cluster (live members only; warnings for two holders, a
 * refusal, different VIPs), the `hasup status` line, and the frontend
 * settings of gen-frontend-config --vip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberView, StoredRumor } from '../../src/gossip/index.js';
import { vipSummary } from '../../src/cli/census.js';
import { clusterVipView } from '../../src/plugins/http/cluster-view.js';
import { renderVipFrontendConfig } from '../../src/plugins/vip/frontend.js';
import { decodeVipReport, RUMOR_VIP, vipRumorFor, type VipReport } from '../../src/supervisor/rumors/vip.js';

const report = (state: VipReport['state'], address = '10.0.0.100/24', reason = ''): VipReport => ({ address, interface: 'eth0', state, reason, since: 1000 });
const member = (id: string, state: MemberView['state'] = 'alive') => ({ id, state }) as MemberView;

function input(reports: Record<string, VipReport>, dead: string[] = []) {
  const rumors = Object.entries(reports).map(([m, r]) => ({ ...vipRumorFor(m, 'postgresql.default', r, 1), originId: m }) as unknown as StoredRumor);
  return { members: Object.keys(reports).map((m) => member(m, dead.includes(m) ? 'dead' : 'alive')), rumors: (kind: string) => (kind === RUMOR_VIP ? rumors : []) };
}

test('the VIP rumor: round trip, and malformed payloads are undefined', () => {
  const r = report('held', '10.0.0.100/24', 'the PostgreSQL leader');
  assert.deepEqual(decodeVipReport(vipRumorFor('m1', 'postgresql.default', r, 1).payload), r);
  assert.equal(decodeVipReport(Buffer.from('{"address":"x","interface":"eth0","state":"mine","since":1}')), undefined);
  assert.equal(decodeVipReport(Buffer.from('not json')), undefined);
});

test('/cluster: the one live holder; a dead member that last said held does not count', () => {
  const v = clusterVipView(input({ m1: report('standby'), m2: report('held'), m3: report('held') }, ['m3']))!;
  assert.equal(v.holder, 'm2');
  assert.deepEqual(v.holders, ['m2']);
  assert.deepEqual(v.warnings, []);
  assert.equal(vipSummary(v, 'm1'), 'vip: 10.0.0.100/24 on m2');
  assert.equal(vipSummary(v, 'm2'), 'vip: 10.0.0.100/24 on m2 (self)');
  assert.equal(clusterVipView(input({})), undefined, 'no VIP configured anywhere: nothing to show');
});

test('/cluster: two holders, a refusal and different VIPs are warnings', () => {
  const v = clusterVipView(input({ m1: report('held'), m2: report('held'), m3: report('refused', '10.0.0.101/24', 'there is no network interface eth0 on this host') }))!;
  assert.equal(v.holder, null);
  assert.deepEqual(v.warnings, [
    '2 members say they hold the VIP: m1, m2',
    'members are configured with different VIPs: 10.0.0.100/24, 10.0.0.101/24',
    'member m3 refused the VIP: there is no network interface eth0 on this host',
  ]);
  assert.match(vipSummary(v, 'm1'), /^vip: 10\.0\.0\.100\/24 on m1 \(self\), m2; WARNING: 2 members say they hold the VIP/);
  assert.equal(vipSummary(clusterVipView(input({ m1: report('standby') }))!, 'm1'), 'vip: 10.0.0.100/24 held by no member');
});

test('gen-frontend-config --vip: the address without its prefix, the port, verify-full', () => {
  const text = renderVipFrontendConfig({ vip: '10.0.0.100/24', pgPort: 5432, source: 'test' });
  assert.match(text, /host=10\.0\.0\.100 port=5432 sslmode=verify-full/);
  assert.match(text, /postgresql\['vip'\] = '10\.0\.0\.100'/);
  assert.match(renderVipFrontendConfig({ vip: 'fd00::100', pgPort: 6432, source: 'test' }), /postgresql\['port'\] = 6432/);
});
