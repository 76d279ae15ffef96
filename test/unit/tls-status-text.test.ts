import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { reportFromFiles } from '../../src/cli/cert-commands.js';
import { memberTlsFiles } from '../../src/supervisor/pki/member-files.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls, withClusterCa } from '../../src/supervisor/pki/provision.js';
import { tlsStatusLines, tlsSummaryLines, tlsWarnings, type TlsReport } from '../../src/supervisor/pki/report.js';
import { installServiceTls } from '../../src/supervisor/pki/service-copy.js';
import { generateSecrets } from '../../src/supervisor/secrets.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const ISSUER = 'CN=hasup cluster CA prod 00112233aabbccdd, O=hasup';
const cert = (what: string, days: number, notAfter: string) => ({ what, file: `/s/${what}.pem`, issuer: ISSUER, subject: 'CN=x', not_after: notAfter, days_left: days, fingerprint: 'AA', sans: [] });
const report = (over: Partial<TlsReport> = {}): TlsReport => ({
  on: true,
  source: 'cluster-ca',
  certificates: [cert('member', 200, '2031-01-01T00:00:00.000Z'), cert('postgresql', 200, '2031-01-01T00:00:00.000Z'), cert('CA', 3000, '2040-01-01T00:00:00.000Z')],
  clear_text: [],
  ...over,
});

test('cert status: a row per certificate with expiry, days left and issuer', () => {
  assert.deepEqual(tlsStatusLines(report()), [
    'TLS on, certificates from the cluster CA',
    'WHAT        EXPIRES     LEFT            ISSUER',
    `member      2031-01-01  200 days left   ${ISSUER}`,
    `postgresql  2031-01-01  200 days left   ${ISSUER}`,
    `CA          2040-01-01  3000 days left  ${ISSUER}`,
  ]);
});

test('a WARNING within 30 days of the end, once expired, and for a file that cannot be read', () => {
  const r = report({
    certificates: [cert('member', 29, '2031-01-01T00:00:00.000Z'), cert('etcd', 30, '2031-01-02T00:00:00.000Z'), cert('CA', -1, '2030-12-01T00:00:00.000Z'), { what: 'postgresql', file: '/s/svc/postgresql/tls/member.pem', error: '/s/svc/postgresql/tls/member.pem: certificate file does not exist' }],
  });
  assert.deepEqual(tlsWarnings(r), [
    'WARNING: member certificate /s/member.pem expires in 29 days (2031-01-01T00:00:00.000Z)',
    'WARNING: CA certificate /s/CA.pem expired on 2030-12-01T00:00:00.000Z',
    'WARNING: postgresql certificate /s/svc/postgresql/tls/member.pem: /s/svc/postgresql/tls/member.pem: certificate file does not exist',
  ]);
  const lines = tlsStatusLines(r);
  assert.ok(lines.includes('postgresql  ERROR       /s/svc/postgresql/tls/member.pem: certificate file does not exist'), lines.join('\n'));
  assert.equal(lines.filter((l) => l.startsWith('WARNING')).length, 3);
});

test('hasup status: one tls line, its warnings, and every link in clear text said', () => {
  assert.deepEqual(tlsSummaryLines(report()), ['tls: on (cluster CA), member certificate until 2031-01-01 (200 days)']);
  assert.deepEqual(tlsSummaryLines(report({ source: 'operator', clear_text: ['Elasticsearch (transport and HTTP)'] })), ["tls: on (operator's CA), member certificate until 2031-01-01 (200 days); clear text: Elasticsearch (transport and HTTP)"]);
  assert.deepEqual(tlsSummaryLines({ on: false, reason: '[tls] enabled = false in hasup.toml', certificates: [], clear_text: [] }), ['tls: OFF, every link in clear text ([tls] enabled = false in hasup.toml)']);
  assert.deepEqual(tlsStatusLines({ on: false, reason: 'x', certificates: [], clear_text: [] }, 'ab'), ['member ab: TLS is OFF: every link in clear text (x)']);
  const soon = report({ certificates: [cert('member', 3, '2031-01-01T00:00:00.000Z')] });
  assert.deepEqual(tlsSummaryLines(soon), ['tls: on (cluster CA), member certificate until 2031-01-01 (3 days)', 'WARNING: member certificate /s/member.pem expires in 3 days (2031-01-01T00:00:00.000Z)']);
});

test('cert status without a daemon: the state directory\'s files, a service copy, a corrupt CA bundle said', async () => {
  const stateRoot = mkdtempSync(join(tmpdir(), 'hasup-certstatus-'));
  dirs.push(stateRoot);
  assert.match(reportFromFiles(stateRoot, new Date()).reason!, /no member certificate in/);
  const secrets = await withClusterCa(generateSecrets({ name: 'prod' }));
  await ensureMemberTls({ stateRoot, memberId: '0123456789abcdef', addresses: ['10.0.0.1'], secrets, secretsFile: 's.json', settings: DEFAULT_TLS_SETTINGS });
  installServiceTls(memberTlsFiles(stateRoot), join(stateRoot, 'svc', 'postgresql'));
  const r = reportFromFiles(stateRoot, new Date());
  assert.deepEqual(r.certificates.map((c) => [c.what, c.days_left]), [['member', 364], ['postgresql', 364], ['CA', 3649]]);
  writeFileSync(memberTlsFiles(stateRoot).ca, 'broken');
  assert.match(reportFromFiles(stateRoot, new Date()).certificates.at(-1)!.error!, /ca.pem: holds no PEM certificate/);
});
