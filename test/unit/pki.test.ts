import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { certificateInfo, daysLeft, parseCertificates, readCertificateFile, subjectAltNames, TlsFileError } from '../../src/supervisor/pki/inspect.js';
import { createCa, issueMemberCert, memberDnsName, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { checkMemberTls, memberTlsFiles, writeMemberTls } from '../../src/supervisor/pki/member-files.js';
import { checkKeyMatches, parsePrivateKey, readPrivateKeyFile, verifyChain } from '../../src/supervisor/pki/verify.js';

const DAY = 86_400_000;
const MEMBER = '0123456789abcdef';
const T0 = new Date('2030-01-01T00:00:00Z');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'hasup-pki-'));
  dirs.push(d);
  return d;
}

let caCache: KeyPairPem | undefined;
async function ca(): Promise<KeyPairPem> {
  return (caCache ??= await createCa({ name: 'prod', clusterId: '00112233aabbccdd', now: T0 }));
}

describe('cluster CA', () => {
  test('a self-signed P-256 CA valid ten years, that signs member certificates only', async () => {
    const c = new X509Certificate((await ca()).cert);
    assert.equal(c.ca, true);
    assert.match(c.subject, /CN=hasup cluster CA prod 00112233aabbccdd/);
    assert.equal(c.subject, c.issuer);
    assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(new Date(c.validTo).getTime() - new Date(c.validFrom).getTime(), 3650 * DAY);
    assert.ok(c.verify(c.publicKey), 'self-signed');
    assert.ok(c.checkPrivateKey(createPrivateKey((await ca()).key)), 'the key is its own');
    assert.match((await ca()).key, /^-----BEGIN PRIVATE KEY-----/);
  });

  test('validity is configurable and checked', async () => {
    const short = await createCa({ name: 'x', days: 30, now: T0 });
    assert.equal(new Date(new X509Certificate(short.cert).validTo).getTime(), T0.getTime() + 30 * DAY);
    await assert.rejects(createCa({ name: 'x', days: 0 }), /CA validity must be a whole number of days from 1 to 36500, got 0/);
    await assert.rejects(createCa({ name: 'x', days: 1.5 }), /got 1.5/);
  });
});

describe('member certificates', () => {
  test('SANs: the addresses, loopback, <id>.member.hasup and extra names; serverAuth and clientAuth; one year', async () => {
    const m = await issueMemberCert({ ca: await ca(), memberId: MEMBER, clusterName: 'prod', addresses: ['10.0.0.11', 'fd00::11'], extraSans: ['10.0.0.100', 'db.example.com'], now: T0 });
    const c = new X509Certificate(m.cert);
    assert.deepEqual(subjectAltNames(c), { ip: ['10.0.0.11', 'FD00:0:0:0:0:0:0:11', '127.0.0.1', '0:0:0:0:0:0:0:1', '10.0.0.100'], dns: [memberDnsName(MEMBER), 'db.example.com'], uri: [] });
    assert.ok(c.checkIP('10.0.0.11') && c.checkIP('fd00::11') && c.checkIP('127.0.0.1'));
    assert.equal(c.checkIP('10.0.0.12'), undefined);
    assert.equal(c.checkHost(`${MEMBER}.member.hasup`), `${MEMBER}.member.hasup`);
    assert.deepEqual(c.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(c.ca, false);
    assert.match(c.subject, new RegExp(`CN=${MEMBER}`));
    const caCert = new X509Certificate((await ca()).cert);
    assert.ok(c.checkIssued(caCert) && c.verify(caCert.publicKey), 'signed by the cluster CA');
    assert.ok(c.checkPrivateKey(createPrivateKey(m.key)));
    // Backdated 5 minutes for clock skew between members; 365 days from issue.
    assert.equal(new Date(c.validFrom).getTime(), T0.getTime() - 5 * 60_000);
    assert.equal(new Date(c.validTo).getTime(), T0.getTime() + 365 * DAY);
  });

  test('never outlives its CA', async () => {
    const m = await issueMemberCert({ ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'], now: new Date(T0.getTime() + 3600 * DAY) });
    assert.equal(new X509Certificate(m.cert).validTo, new X509Certificate((await ca()).cert).validTo);
  });

  test('bad requests are refused with the reason', async () => {
    const base = { ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'] };
    await assert.rejects(issueMemberCert({ ...base, memberId: 'node1' }), /member id must be 16 hex digits, got "node1"/);
    await assert.rejects(issueMemberCert({ ...base, addresses: [] }), /needs at least one address/);
    await assert.rejects(issueMemberCert({ ...base, addresses: ['node1.example'] }), /"node1.example" is not an IP address/);
    await assert.rejects(issueMemberCert({ ...base, extraSans: ['bad name!'] }), /"bad name!" is neither an IP address nor a DNS name/);
    await assert.rejects(issueMemberCert({ ...base, days: -1 }), /member certificate validity must be/);
    await assert.rejects(issueMemberCert({ ...base, ca: { cert: base.ca.cert, key: 'garbage' }, caSource: '/s/secrets.json' }), /\/s\/secrets.json: the cluster CA key is not PEM/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await assert.rejects(issueMemberCert({ ...base, ca: { cert: base.ca.cert, key: rsa }, caSource: '/s/secrets.json' }), /not an ECDSA P-256 private key/);
    await assert.rejects(issueMemberCert({ ...base, ca: { cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', key: base.ca.key }, caSource: '/s/secrets.json' }), /\/s\/secrets.json: the cluster CA certificate is corrupt/);
  });
});

describe('inspecting', () => {
  test('issuer, subject, SANs, dates, fingerprint, days left', async () => {
    const m = await issueMemberCert({ ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 });
    const info = certificateInfo(new X509Certificate(m.cert));
    assert.match(info.issuer, /CN=hasup cluster CA prod/);
    assert.match(info.subject, /CN=0123456789abcdef, O=hasup/);
    assert.deepEqual(info.sans.dns, [memberDnsName(MEMBER)]);
    assert.match(info.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(info.isCa, false);
    assert.equal(daysLeft(info, T0), 365);
    assert.equal(daysLeft(info, new Date(T0.getTime() + 366 * DAY)), -1);
  });

  test('a bundle of several; no PEM; a corrupt block', async () => {
    const other = await createCa({ name: 'other', now: T0 });
    assert.equal(parseCertificates((await ca()).cert + other.cert, 'bundle.pem').length, 2);
    assert.throws(() => parseCertificates('hello', '/x/ca.pem'), (e: Error) => e instanceof TlsFileError && e.message === '/x/ca.pem: holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
    const corrupt = `${(await ca()).cert}-----BEGIN CERTIFICATE-----\nMIIBBROKEN\n-----END CERTIFICATE-----\n`;
    assert.throws(() => parseCertificates(corrupt, '/x/ca.pem'), /\/x\/ca.pem: certificate 2 of 2 is corrupt/);
    assert.throws(() => readCertificateFile('/nonexistent/member.pem'), /\/nonexistent\/member.pem: certificate file does not exist/);
  });

  test('SAN text with quoted values', () => {
    const fake = { subjectAltName: 'DNS:a.example, DNS:"b,c.example", URI:spiffe://x/y, IP Address:10.0.0.1' } as X509Certificate;
    assert.deepEqual(subjectAltNames(fake), { ip: ['10.0.0.1'], dns: ['a.example', 'b,c.example'], uri: ['spiffe://x/y'] });
  });
});

describe('checking', () => {
  test('a chain to a trusted CA; another CA, expiry and not-yet-valid are refused naming the file', async () => {
    const m = new X509Certificate((await issueMemberCert({ ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 })).cert);
    const trusted = [new X509Certificate((await ca()).cert)];
    const o = { trusted, file: '/t/member.pem', trustedFile: '/t/ca.pem', now: new Date(T0.getTime() + DAY) };
    verifyChain(m, o);
    const foreign = [new X509Certificate((await createCa({ name: 'evil', now: T0 })).cert)];
    assert.throws(() => verifyChain(m, { ...o, trusted: foreign }), /^Error: \/t\/member.pem: certificate \(issuer "CN=hasup cluster CA prod 00112233aabbccdd, O=hasup"\) is not signed by any CA in \/t\/ca.pem$/);
    assert.throws(() => verifyChain(m, { ...o, now: new Date(T0.getTime() + 400 * DAY) }), /\/t\/member.pem: certificate expired on 2031-01-01T00:00:00.000Z/);
    assert.throws(() => verifyChain(m, { ...o, now: new Date(T0.getTime() - DAY) }), /\/t\/member.pem: certificate is not valid before/);
    // A member certificate is no CA: it cannot vouch for another.
    const m2 = new X509Certificate((await issueMemberCert({ ca: await ca(), memberId: 'fedcba9876543210', addresses: ['10.0.0.12'], now: T0 })).cert);
    assert.throws(() => verifyChain(m2, { ...o, trusted: [m] }), /is not signed by any CA/);
  });

  test('key matches certificate; a mismatch, another type, corrupt, encrypted and world-readable keys are refused', async () => {
    const a = await issueMemberCert({ ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 });
    const b = await issueMemberCert({ ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 });
    const cert = new X509Certificate(a.cert);
    checkKeyMatches(cert, parsePrivateKey(a.key, 'a.key'), 'a.key', 'a.pem');
    assert.throws(() => checkKeyMatches(cert, parsePrivateKey(b.key, '/t/b.key'), '/t/b.key', '/t/a.pem'), /^Error: \/t\/b.key: private key does not belong to the certificate in \/t\/a.pem$/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    assert.throws(() => checkKeyMatches(cert, rsa, '/t/rsa.key', '/t/a.pem'), /does not belong/);
    assert.throws(() => parsePrivateKey('nope', '/t/x.key'), /\/t\/x.key: holds no PEM private key/);
    assert.throws(() => parsePrivateKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', '/t/x.key'), /\/t\/x.key: private key is corrupt/);
    const enc = generateKeyPairSync('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    assert.throws(() => parsePrivateKey(enc, '/t/x.key'), /encrypted with a passphrase/);
    const d = tmp();
    writeFileSync(join(d, 'k.key'), a.key, { mode: 0o644 });
    chmodSync(join(d, 'k.key'), 0o644);
    assert.throws(() => readPrivateKeyFile(join(d, 'k.key')), /k.key: private key is readable by every user \(mode 644\); run: chmod 600/);
    assert.throws(() => readPrivateKeyFile(join(d, 'none.key')), /none.key: private key file does not exist/);
  });

  test('checkMemberTls: the files as written pass; each bad file is named', async () => {
    const d = tmp();
    const files = memberTlsFiles(d);
    const m = await issueMemberCert({ ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 });
    writeMemberTls(files, { ca: (await ca()).cert, cert: m.cert, key: m.key });
    assert.equal(statSync(files.key).mode & 0o777, 0o600);
    assert.equal(statSync(files.cert).mode & 0o777, 0o644);
    const checked = checkMemberTls(files, new Date(T0.getTime() + DAY));
    assert.match(checked.cert.subject, /CN=0123456789abcdef/);
    assert.equal(checked.cas.length, 1);

    const other = await issueMemberCert({ ca: await ca(), memberId: MEMBER, addresses: ['10.0.0.11'], now: T0 });
    writeFileSync(files.key, other.key, { mode: 0o600 });
    assert.throws(() => checkMemberTls(files, T0), new RegExp(`^Error: ${files.key}: private key does not belong to the certificate in ${files.cert}$`));
    writeFileSync(files.key, m.key);
    writeFileSync(files.cert, 'corrupt');
    assert.throws(() => checkMemberTls(files, T0), new RegExp(`${files.cert}: holds no PEM certificate`));
    writeFileSync(files.cert, m.cert);
    writeFileSync(files.ca, (await createCa({ name: 'other', now: T0 })).cert);
    assert.throws(() => checkMemberTls(files, T0), new RegExp(`${files.cert}: .* is not signed by any CA in ${files.ca}`));
    rmSync(files.ca);
    assert.throws(() => checkMemberTls(files, T0), new RegExp(`${files.ca}: CA bundle file does not exist`));
    assert.equal(readFileSync(files.cert, 'utf8'), m.cert, 'a failed check changes nothing');
  });
});
