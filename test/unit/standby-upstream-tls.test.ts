/**
 * A standby cluster's upstream over TLS: with the primary cluster's CA
 * ([ha] standby_of_ca) libpq checks the chain (verify-ca, the CA written
 * where sslrootcert points); without, require; this cluster's own members
 * always verify-full. The CA reaches hasup.toml from the primary's secrets
 * at create, and bad PEM is refused as a setting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haGroupSummary } from '../../src/cli/census.js';
import { renderNodeConfig } from '../../src/cli/node-config-template.js';
import { checkHaSettings, haSettingsFrom, PRIMARY_CLUSTER } from '../../src/ha/index.js';
import { conninfo, upstreamCaPath, writeUpstreamCa } from '../../src/plugins/postgresql/standby-config.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import { parseNodeConfig } from '../../src/supervisor/config-file.js';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';

function context(run: string): DriverContext {
  return { paths: { run, root: run, data: join(run, 'data'), config: run }, tls: { ca: '/own/ca.pem', cert: '/own/member.pem', key: '/own/member.key' }, cfg: { replication_user: 'replicator' }, memberId: '0123456789abcdef' } as unknown as DriverContext;
}

test('libpq: verify-ca against the primary cluster\'s CA when given, require without it, verify-full to a member of this cluster', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-upstream-ca-'));
  try {
    const ctx = context(dir);
    const ca = (await createCa({ name: 'primary' })).cert;
    const withCa = conninfo(ctx, { member: PRIMARY_CLUSTER, host: '10.0.9.1', port: 5432, ca }, 'replicator');
    assert.match(withCa, new RegExp(`sslmode=verify-ca sslrootcert=${upstreamCaPath(ctx).replace(/[/.]/g, '\\$&')}`));
    await writeUpstreamCa(ctx, { ca });
    assert.equal(readFileSync(upstreamCaPath(ctx), 'utf8'), ca, 'the CA is where sslrootcert points');
    assert.match(conninfo(ctx, { member: PRIMARY_CLUSTER, host: '10.0.9.1', port: 5432 }, 'replicator'), /sslmode=require/);
    assert.doesNotMatch(conninfo(ctx, { member: PRIMARY_CLUSTER, host: '10.0.9.1', port: 5432 }, 'replicator'), /sslrootcert/);
    assert.match(conninfo(ctx, { member: 'fedcba9876543210', host: '10.0.0.2', port: 5432, ca }, 'replicator'), /sslmode=verify-full sslrootcert=\/own\/ca\.pem/, "a member of this cluster: this cluster's CA, whatever the endpoint carries");
    const clear = { ...ctx, tls: undefined } as DriverContext;
    assert.doesNotMatch(conninfo(clear, { member: PRIMARY_CLUSTER, host: '10.0.9.1', port: 5432, ca }, 'replicator'), /ssl/, 'TLS off: no ssl parameters');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('[ha] standby_of_ca: CA certificates go with standby_of; text that is no certificate, or a certificate that is no CA, is refused', async () => {
  const ca = await createCa({ name: 'primary' });
  const ok = haSettingsFrom({ ha: { standby_of: '10.0.9.1:5432', standby_of_ca: ca.cert } });
  assert.equal(checkHaSettings(ok), undefined);
  assert.deepEqual(ok.standbyOf, { host: '10.0.9.1', port: 5432, ca: ca.cert });
  assert.deepEqual(haSettingsFrom({ ha: { standby_of: '10.0.9.1:5432' } }).standbyOf, { host: '10.0.9.1', port: 5432 });
  const garbage = haSettingsFrom({ ha: { standby_of: '10.0.9.1:5432', standby_of_ca: 'not a certificate' } });
  assert.match(checkHaSettings(garbage) ?? '', /standby_of_ca.*holds no PEM certificate/);
  const leaf = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['10.0.0.1'] });
  const notCa = haSettingsFrom({ ha: { standby_of: '10.0.9.1:5432', standby_of_ca: leaf.cert } });
  assert.match(checkHaSettings(notCa) ?? '', /standby_of_ca.*certificate 1 .* is not a CA certificate/);
  assert.equal(notCa.standbyOf?.ca, undefined, 'a refused CA is never used');
});

test("hasup.toml of a standby cluster's member carries the primary's CA, and reads back as the same PEM", async () => {
  const ca = (await createCa({ name: 'primary' })).cert;
  const toml = renderNodeConfig({ clusterName: 'spare', advertise: '10.0.1.11', peers: [], stateDir: '/var/lib/hasup', secrets: '/s.json', etcdVoters: 3, services: ['postgresql'], standbyOf: '10.0.9.1:5432', standbyOfCa: ca, writtenBy: 'create' });
  const parsed = parseNodeConfig(toml, 'hasup.toml');
  const ha = parsed.service!.postgresql!.ha as Record<string, unknown>;
  assert.equal(ha.standby_of, '10.0.9.1:5432');
  assert.equal((ha.standby_of_ca as string).trim(), ca.trim());
});

test('hasup status says when a standby cluster does not verify its upstream', () => {
  const base = { standby_of: '10.0.9.1:5432', leader: null, members: [], restore: null };
  assert.ok(haGroupSummary({ ...base, standby_of_ca: false }).some((l) => /certificates are not verified: no \[ha\] standby_of_ca/.test(l)));
  assert.ok(!haGroupSummary({ ...base, standby_of_ca: true }).some((l) => /not verified/.test(l)));
});
