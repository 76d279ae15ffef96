import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';
import { memberTlsFiles, writeMemberTls } from '../../src/supervisor/pki/member-files.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls, withClusterCa, type EnsureTlsOptions } from '../../src/supervisor/pki/provision.js';
import { installServiceTls } from '../../src/supervisor/pki/service-copy.js';
import { checkSecrets, generateSecrets, type ClusterSecrets } from '../../src/supervisor/secrets.js';

const DAY = 86_400_000;
const T0 = new Date('2030-01-01T00:00:00Z');
const MEMBER = '0123456789abcdef';
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

let secretsCache: ClusterSecrets | undefined;
async function secrets(): Promise<ClusterSecrets> {
  return (secretsCache ??= await withClusterCa(generateSecrets({ name: 'prod' }), { now: T0 }));
}

async function options(over: Partial<EnsureTlsOptions> = {}): Promise<EnsureTlsOptions> {
  const stateRoot = mkdtempSync(join(tmpdir(), 'hasup-tls-'));
  dirs.push(stateRoot);
  return { stateRoot, memberId: MEMBER, addresses: ['10.0.0.11'], secrets: await secrets(), secretsFile: '/etc/hasup/secrets.json', settings: DEFAULT_TLS_SETTINGS, now: T0, ...over };
}

test('withClusterCa adds a CA the secrets check accepts, and never replaces one', async () => {
  const s = await secrets();
  assert.equal(checkSecrets(JSON.parse(JSON.stringify(s)), 'secrets.json').tls?.ca_cert, s.tls!.ca_cert);
  await assert.rejects(withClusterCa(s), /already hold a CA/);
  assert.throws(() => checkSecrets({ ...s, tls: { ca_cert: 'x', ca_key: s.tls!.ca_key } }, '/s.json'), /\/s.json: tls must hold ca_cert \(a PEM certificate\) and ca_key/);
  assert.doesNotThrow(() => checkSecrets({ ...s, tls: undefined }, '/s.json'), 'files from before TLS still load');
});

test('a new member gets its files from the cluster CA; a second start keeps them', async () => {
  const o = await options();
  const first = await ensureMemberTls(o);
  assert.ok(first.on);
  assert.equal(first.source, 'cluster-ca');
  assert.match(first.issued ?? '', /issued a member certificate/);
  const files = memberTlsFiles(o.stateRoot);
  assert.equal(statSync(files.key).mode & 0o777, 0o600);
  assert.equal(readFileSync(files.ca, 'utf8'), new X509Certificate(o.secrets.tls!.ca_cert).toString());
  assert.ok(new X509Certificate(readFileSync(files.cert)).checkIP('10.0.0.11'));
  const second = await ensureMemberTls({ ...o, now: new Date(T0.getTime() + DAY) });
  assert.ok(second.on);
  assert.equal(second.issued, undefined);
  assert.equal(second.cert.fingerprint, first.cert.fingerprint);
});

test('issued anew when it expires within 30 days, has expired, or does not name the advertised address or an extra name', async () => {
  const o = await options();
  const first = await ensureMemberTls(o);
  assert.ok(first.on);
  const soon = await ensureMemberTls({ ...o, now: new Date(T0.getTime() + 340 * DAY) });
  assert.ok(soon.on);
  assert.match(soon.issued!, /the old one expires in 25 days/);
  assert.notEqual(soon.cert.fingerprint, first.cert.fingerprint);
  const moved = await ensureMemberTls({ ...o, addresses: ['10.0.0.99'], now: new Date(T0.getTime() + 341 * DAY) });
  assert.ok(moved.on);
  assert.match(moved.issued!, /does not name 10.0.0.99/);
  const named = await ensureMemberTls({ ...o, addresses: ['10.0.0.99'], settings: { ...DEFAULT_TLS_SETTINGS, extraSans: ['10.0.0.100', 'db.example.com'] }, now: new Date(T0.getTime() + 342 * DAY) });
  assert.ok(named.on);
  assert.match(named.issued!, /does not name 10.0.0.100, db.example.com/);
  const kept = await ensureMemberTls({ ...o, addresses: ['10.0.0.99'], settings: { ...DEFAULT_TLS_SETTINGS, extraSans: ['db.example.com'] }, now: new Date(T0.getTime() + 343 * DAY) });
  assert.ok(kept.on);
  assert.equal(kept.issued, undefined, 'a name it already carries asks for nothing');
  const late = await ensureMemberTls({ ...o, addresses: ['10.0.0.99'], now: new Date(T0.getTime() + 800 * DAY) });
  assert.ok(late.on);
  assert.match(late.issued!, /the old one expired on/);
});

test('partial, corrupt, mismatched or foreign files are refused naming the file, and left as they are', async () => {
  const o = await options();
  await ensureMemberTls(o);
  const files = memberTlsFiles(o.stateRoot);
  const key = readFileSync(files.key, 'utf8');
  rmSync(files.key);
  await assert.rejects(ensureMemberTls(o), new RegExp(`^Error: ${files.key}: missing beside ${files.ca} and ${files.cert}; remove all three`));
  assert.equal(existsSync(files.key), false, 'nothing issued over a partial set');
  writeFileSync(files.key, 'not a key', { mode: 0o600 });
  await assert.rejects(ensureMemberTls(o), new RegExp(`${files.key}: holds no PEM private key`));
  writeFileSync(files.key, key);
  writeFileSync(files.cert, 'garbage');
  await assert.rejects(ensureMemberTls(o), new RegExp(`${files.cert}: holds no PEM certificate`));
  // Files of another cluster's CA.
  const other = await createCa({ name: 'other', now: T0 });
  const m = await issueMemberCert({ ca: other, memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 });
  writeMemberTls(files, { ca: other.cert, cert: m.cert, key: m.key });
  await assert.rejects(ensureMemberTls(o), new RegExp(`${files.ca}: does not hold the cluster CA of /etc/hasup/secrets.json`));
  assert.equal(readFileSync(files.cert, 'utf8'), m.cert);
});

test('a secrets file whose CA key is not its certificate\'s, or whose CA expired, is refused', async () => {
  const other = await createCa({ name: 'other', now: T0 });
  const s = await secrets();
  await assert.rejects(ensureMemberTls(await options({ secrets: { ...s, tls: { ca_cert: s.tls!.ca_cert, ca_key: other.key } } })), /\/etc\/hasup\/secrets.json: tls.ca_key does not belong to tls.ca_cert/);
  await assert.rejects(ensureMemberTls(await options({ now: new Date(T0.getTime() + 3651 * DAY) })), /the cluster CA expired on/);
});

test('off: by hasup.toml, or a cluster from before TLS; operator files are checked and used as they are', async () => {
  const off = await ensureMemberTls(await options({ settings: { ...DEFAULT_TLS_SETTINGS, enabled: false } }));
  assert.deepEqual(off, { on: false, reason: '[tls] enabled = false in hasup.toml' });
  const old = await ensureMemberTls(await options({ secrets: generateSecrets() }));
  assert.equal(old.on, false);
  assert.match(!old.on ? old.reason : '', /hold no CA \(written before TLS, or by hasup run for a member of its own\); add one with `hasup cert init-ca --secrets \/etc\/hasup\/secrets.json`/);

  const o = await options();
  const own = await createCa({ name: 'corp', now: T0 });
  const m = await issueMemberCert({ ca: own, memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 });
  const operator = memberTlsFiles(join(o.stateRoot, 'corp'));
  writeMemberTls(operator, { ca: own.cert, cert: m.cert, key: m.key });
  const used = await ensureMemberTls({ ...o, settings: { ...DEFAULT_TLS_SETTINGS, operator } });
  assert.ok(used.on);
  assert.equal(used.source, 'operator');
  assert.equal(existsSync(memberTlsFiles(o.stateRoot).cert), false, 'nothing issued beside the operator\'s files');
  // Expired operator files are refused (never renewed: hasup holds no key of that CA).
  await assert.rejects(ensureMemberTls({ ...o, settings: { ...DEFAULT_TLS_SETTINGS, operator }, now: new Date(T0.getTime() + 400 * DAY) }), new RegExp(`${operator.cert}: certificate expired on`));
});

test('a service gets its own copy, key 0600, rewritten only when the member\'s files change', async () => {
  const o = await options();
  await ensureMemberTls(o);
  const member = memberTlsFiles(o.stateRoot);
  const root = join(o.stateRoot, 'svc', 'postgresql');
  const copy = installServiceTls(member, root);
  assert.equal(copy.key, join(root, 'tls', 'member.key'));
  assert.equal(readFileSync(copy.key, 'utf8'), readFileSync(member.key, 'utf8'));
  assert.equal(statSync(copy.key).mode & 0o777, 0o600);
  assert.equal(statSync(join(root, 'tls')).mode & 0o777, 0o700);
  const before = statSync(copy.cert).mtimeMs;
  installServiceTls(member, root);
  assert.equal(statSync(copy.cert).mtimeMs, before, 'unchanged files are not rewritten');
  await ensureMemberTls({ ...o, addresses: ['10.0.0.12'] });
  installServiceTls(member, root);
  assert.equal(readFileSync(copy.cert, 'utf8'), readFileSync(member.cert, 'utf8'));
});
