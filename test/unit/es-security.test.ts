/**
 * Elasticsearch's security feature (docs/elasticsearch.md, "Security"): the
 * rendered settings, hasup's file-realm users and their passwords, and the
 * one place every client takes its scheme, CA and user from (access.ts),
 * checked against an HTTPS server with a certificate from a cluster CA.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { accessKey, elasticsearchConfigHere, esAccess, esClientOptions, esRequestExtras, esScheme, MemberEsAccess, securityOn } from '../../src/plugins/elasticsearch/access.js';
import { ElasticsearchDriver } from '../../src/plugins/elasticsearch/driver.js';
import { firstAnswer } from '../../src/plugins/elasticsearch/es-http.js';
import { httpJson } from '../../src/plugins/http-json.js';
import { ES_USERNAMES, esPasswords, esPasswordSource, pbkdf2Hash, pbkdf2Matches, rolesYml, usersFile, usersRolesFile, writeSecurityFiles } from '../../src/plugins/elasticsearch/users.js';
import { elasticsearchPeerUrls } from '../../src/plugins/shipper/census.js';
import { ElasticsearchOutput } from '../../src/plugins/shipper/output.js';
import { mergeLayers } from '../../src/supervisor/config-layers.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import { createCa, issueMemberCert, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { installServiceTls } from '../../src/supervisor/pki/service-copy.js';
import { checkSecrets, generateSecrets, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';
import { esDriverContext, esPlan as plan, renderEsYml as renderYml } from '../support/es-driver-context.js';

const dir = mkdtempSync(join(tmpdir(), 'hasup-es-security-'));
const secrets = generateSecrets();
let ca: KeyPairPem;
let otherCa: KeyPairPem;
let server: Server;
let url = '';
const caFile = join(dir, 'ca.pem');
const otherCaFile = join(dir, 'other-ca.pem');
/** What the HTTPS server saw: path and the user of its Basic authorization. */
const seen: Array<{ path: string; user: string | undefined; password: string | undefined }> = [];

before(async () => {
  ca = await createCa({ name: 'test' });
  otherCa = await createCa({ name: 'other' });
  const member = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.2'] });
  writeFileSync(caFile, ca.cert);
  writeFileSync(otherCaFile, otherCa.cert);
  server = createServer({ cert: member.cert, key: member.key }, (req, res) => {
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, password] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':') : [undefined, undefined];
    seen.push({ path: req.url ?? '', user, password });
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-elastic-product', 'Elasticsearch');
      if (req.url?.startsWith('/_bulk')) res.end(JSON.stringify({ errors: false, took: 1, items: [] }));
      else res.end(JSON.stringify({ cluster_name: 'hasup', status: 'green' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.2', r));
  url = `https://127.0.0.2:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const context = (layer: TomlTable, opts: { tls?: boolean; root?: string } = {}): DriverContext => esDriverContext(layer, { ...opts, secrets });

test('security = false: elasticsearch.yml says so and every URL is http, TLS on the member or not', () => {
  // On wherever the member has TLS (docs/elasticsearch.md).
  assert.equal(plan.defaults.security, 'auto', 'the plan default (change this line with the default)');
  const ctx = context({ security: false }, { tls: true });
  const yml = renderYml(ctx);
  assert.match(yml, /^xpack\.security\.enabled: false$/m);
  assert.doesNotMatch(yml, /ssl/);
  assert.equal(esScheme(ctx.cfg), 'http');
  assert.deepEqual(esAccess({ cfg: ctx.cfg, secrets, caFile }, 'admin'), { scheme: 'http' });
  assert.deepEqual(esRequestExtras(esAccess({ cfg: ctx.cfg, secrets, caFile }, 'admin')), {});
});

test('security = true: TLS on transport and HTTP with the copy under the config dir, the file realm, nothing absolute', () => {
  const yml = renderYml(context({ security: true }, { tls: true }));
  for (const line of [
    'xpack.security.enabled: true',
    'xpack.security.transport.ssl.enabled: true',
    'xpack.security.transport.ssl.verification_mode: "full"',
    'xpack.security.transport.ssl.client_authentication: "required"',
    'xpack.security.transport.ssl.key: "tls/member.key"',
    'xpack.security.transport.ssl.certificate: "tls/member.pem"',
    'xpack.security.transport.ssl.certificate_authorities: ["tls/ca.pem"]',
    'xpack.security.http.ssl.enabled: true',
    'xpack.security.http.ssl.key: "tls/member.key"',
    'xpack.security.http.ssl.certificate: "tls/member.pem"',
    'xpack.security.authc.realms.file.hasup.order: 0',
    'xpack.security.authc.reserved_realm.enabled: false',
  ]) {
    assert.ok(yml.split('\n').includes(line), `${line} in\n${yml}`);
  }
  assert.doesNotMatch(yml, /xpack\.security\.enabled: false/);
  assert.equal(yml.match(/^xpack\.security\.enabled:/gm)?.length, 1, 'written once');
});

test('security = true without TLS on the member is refused at render time; so are security settings in [extra] and a non-boolean', () => {
  assert.throws(() => renderYml(context({ security: true })), /security = true needs TLS, and TLS is off on this member/);
  assert.throws(() => renderYml(context({ extra: { xpack: { security: { http: { ssl: { enabled: false } } } } } }, { tls: true })), /extra\.xpack\.security\.http\.ssl\.enabled is written by hasup/);
  assert.throws(() => mergeLayers(plan.defaults, [{ name: 'apply', data: { security: 'yes' } }]), /security/);
  assert.throws(() => securityOn({ security: 'yes' }), /security must be true, false or "auto"/);
});

test('passwords: stored ones are used; a secrets file from before gets derived ones, the same every time, distinct, none of them the token', () => {
  assert.equal(esPasswordSource(secrets), 'stored');
  assert.deepEqual(esPasswords(secrets), { admin: secrets.elasticsearch!.admin_password, shipper: secrets.elasticsearch!.shipper_password, reader: secrets.elasticsearch!.reader_password });

  const { elasticsearch: _es, ...old } = generateSecrets();
  const before = checkSecrets(JSON.parse(JSON.stringify(old)), 'old.json');
  assert.equal(esPasswordSource(before), 'derived');
  const derived = esPasswords(before);
  assert.deepEqual(esPasswords(checkSecrets(JSON.parse(JSON.stringify(old)), 'again.json')), derived, 'every member holding the file derives the same');
  const values = Object.values(derived);
  assert.equal(new Set(values).size, 3);
  for (const v of values) {
    assert.ok(v.length >= 32 && !v.includes(before.api_token) && v !== before.postgresql.superuser_password);
  }
  assert.notDeepEqual(esPasswords({ ...before, api_token: 'another-token-of-this-cluster' }), derived);
  assert.notDeepEqual(esPasswords({ ...before, cluster_id: '0000000000000001' }), derived);
});

test('secrets: a bad elasticsearch table is refused naming the field, never a value', () => {
  const bad = { ...JSON.parse(JSON.stringify(secrets)), elasticsearch: { admin_password: 'short', shipper_password: 'x'.repeat(20), reader_password: 'y'.repeat(20) } } as ClusterSecrets;
  assert.throws(() => checkSecrets(bad, 's.json'), (e: Error) => /s\.json: elasticsearch\.admin_password must be a string of at least 16 characters/.test(e.message) && !e.message.includes('short'));
  assert.throws(() => checkSecrets({ ...bad, elasticsearch: { ...bad.elasticsearch!, admin_password: 'z'.repeat(20), reader_password: undefined } }, 's.json'), /elasticsearch\.reader_password/);
});

test("PBKDF2 hashes in Elasticsearch's format: they hold their password and no other", () => {
  const hash = pbkdf2Hash('correct horse battery');
  assert.match(hash, /^\{PBKDF2\}10000\$[A-Za-z0-9+/]{43}=\$[A-Za-z0-9+/]{43}=$/);
  assert.ok(pbkdf2Matches('correct horse battery', hash));
  assert.ok(!pbkdf2Matches('correct horse battery!', hash));
  assert.ok(!pbkdf2Matches('correct horse battery', hash.replace('{PBKDF2}10000', '{PBKDF2}10001')));
  assert.ok(!pbkdf2Matches('x', '$2a$10$abcdefghijklmnopqrstuu'), 'another format is not ours to verify');
  assert.notEqual(pbkdf2Hash('same'), pbkdf2Hash('same'), 'a fresh salt each time');
  // A known vector: the same salt and cost give the same key as before (the format must not drift).
  assert.equal(pbkdf2Hash('hasup', Buffer.alloc(32, 1), 1), pbkdf2Hash('hasup', Buffer.alloc(32, 1), 1));
});

test('roles: the shipper may only create documents in the log and metric indices, the reader only read them; the admin is a superuser', () => {
  const roles = rolesYml();
  assert.match(roles, /^hasup_shipper:\n {2}cluster: \[\]\n {2}indices:\n {4}- names: \["hasup-logs-\*","hasup-metrics-\*"\]\n {6}privileges: \["create_doc", "create_index", "auto_configure"\]$/m);
  assert.match(roles, /^hasup_reader:\n {2}cluster: \[\]\n {2}indices:\n {4}- names: \["hasup-logs-\*","hasup-metrics-\*"\]\n {6}privileges: \["read", "view_index_metadata"\]$/m);
  assert.doesNotMatch(roles, /"(write|index|delete|all|manage)"/);
  assert.equal(usersRolesFile(), 'superuser:hasup_admin\nhasup_shipper:hasup_shipper\nhasup_reader:hasup_reader\n');
});

test('the users file: one hash per user, kept while it holds the password, replaced when the password changed', () => {
  const passwords = esPasswords(secrets);
  const first = usersFile(passwords);
  const lines = first.trim().split('\n');
  assert.deepEqual(lines.map((l) => l.split(':')[0]), ['hasup_admin', 'hasup_shipper', 'hasup_reader']);
  lines.forEach((line, i) => assert.ok(pbkdf2Matches(Object.values(passwords)[i]!, line.slice(line.indexOf(':') + 1))));
  assert.ok(!first.includes(passwords.admin), 'no password in clear');
  assert.equal(usersFile(passwords, first), first, 'unchanged: the same file, no reload');
  const changed = usersFile({ ...passwords, reader: 'a-new-reader-password' }, first);
  assert.equal(changed.split('\n')[0], lines[0]);
  assert.notEqual(changed.split('\n')[2], lines[2]);
  assert.ok(pbkdf2Matches('a-new-reader-password', changed.split('\n')[2]!.split(':')[1]!));
});

test('the driver writes the users files and a TLS copy into the config dir, mode 0600 for keys and users, and rewrites nothing unchanged', async () => {
  const config = join(dir, 'svc-config');
  const member = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.2'] });
  // The service's copy (SVC_ROOT/tls) copied again under config/, where Elasticsearch reads SSL files.
  const copy = installServiceTls({ ca: caFile, cert: writeTemp('m.pem', member.cert), key: writeTemp('m.key', member.key, 0o600) }, config);
  assert.equal(copy.key, join(config, 'tls', 'member.key'));
  assert.equal(statSync(copy.key).mode & 0o777, 0o600);
  assert.equal(readFileSync(copy.ca, 'utf8'), ca.cert);

  assert.deepEqual((await writeSecurityFiles(config, secrets)).sort(), ['roles.yml', 'users', 'users_roles']);
  assert.equal(statSync(join(config, 'users')).mode & 0o777, 0o600);
  assert.deepEqual(await writeSecurityFiles(config, secrets), [], 'a restart with the same secrets changes nothing');
  const users = readFileSync(join(config, 'users'), 'utf8');
  for (const p of Object.values(esPasswords(secrets))) assert.ok(!users.includes(p));
});

function writeTemp(name: string, content: string, mode = 0o644): string {
  const file = join(dir, name);
  writeFileSync(file, content, { mode });
  return file;
}

test('access: https with the CA and the user asked for; security on without a CA is an error naming no secret', () => {
  const cfg = { security: true };
  const admin = esAccess({ cfg, secrets, caFile }, 'admin');
  assert.equal(admin.scheme, 'https');
  assert.equal(admin.ca, ca.cert);
  assert.deepEqual(admin.auth, { username: 'hasup_admin', password: secrets.elasticsearch!.admin_password });
  assert.equal(esAccess({ cfg, secrets, caFile }, 'shipper').auth?.username, ES_USERNAMES.shipper);
  const opts = esClientOptions(esAccess({ cfg, secrets, caFile }, 'reader'));
  assert.deepEqual(opts, { tls: { ca: ca.cert, rejectUnauthorized: true }, auth: { username: 'hasup_reader', password: secrets.elasticsearch!.reader_password } });
  const extras = esRequestExtras(admin);
  assert.equal(extras.headers?.authorization, `Basic ${Buffer.from(`hasup_admin:${secrets.elasticsearch!.admin_password}`).toString('base64')}`);
  assert.notEqual(accessKey(admin), accessKey(esAccess({ cfg, secrets, caFile: otherCaFile }, 'admin')), 'another CA: another client');
  assert.throws(
    () => esAccess({ cfg, secrets, caFile: undefined }, 'admin'),
    (e: Error) => /security = true needs TLS/.test(e.message) && !e.message.includes(secrets.elasticsearch!.admin_password),
  );
  const member = new MemberEsAccess({ config: () => ({ security: true }), secrets, caFile: () => caFile });
  assert.equal(member.scheme(), 'https');
  assert.equal(member.as('reader').auth?.username, 'hasup_reader');
  assert.equal(new MemberEsAccess({ config: () => undefined, secrets, caFile: () => caFile }).scheme(), 'http', 'a member told nothing: the default, off');
});

test('peer URLs take the scheme of the access', () => {
  const ring = {
    self: () => ({ id: 'a' }),
    members: () => [
      { id: 'a', addr: '10.0.0.1', state: 'alive' },
      { id: 'b', addr: '10.0.0.2', state: 'alive' },
    ],
    rumors: () => [{ kind: 'service', key: 'b/elasticsearch.default', payload: Buffer.from(JSON.stringify({ state: 'running', health: 'ok', ports: { http_port: 9200 } })) }],
  } as unknown as Parameters<typeof elasticsearchPeerUrls>[0];
  assert.deepEqual(elasticsearchPeerUrls(ring, 'https'), ['https://10.0.0.2:9200']);
  assert.deepEqual(elasticsearchPeerUrls(ring), ['http://10.0.0.2:9200']);
});

test('hasup JSON requests (health, membership, snapshots, console) verify the server and send the user; another CA is refused before anything is sent', async () => {
  seen.length = 0;
  const access = esAccess({ cfg: { security: true }, secrets, caFile }, 'reader');
  const answer = await firstAnswer([url], 'GET', '/_cluster/health', 5000, undefined, access);
  assert.equal(answer.status, 200);
  assert.deepEqual(seen, [{ path: '/_cluster/health', user: 'hasup_reader', password: secrets.elasticsearch!.reader_password }]);
  const wrong = esAccess({ cfg: { security: true }, secrets, caFile: otherCaFile }, 'reader');
  await assert.rejects(firstAnswer([url], 'GET', '/_cluster/health', 5000, undefined, wrong), /no Elasticsearch node answered .*(certificate|SELF_SIGNED|UNABLE_TO_VERIFY)/i);
  assert.equal(seen.length, 1, 'nothing reached the server through an untrusted handshake');
});

test('the shipper output: bulk as the shipper user, index administration as admin, the server verified; http URLs refused under security', async () => {
  seen.length = 0;
  let caNow = caFile;
  const member = new MemberEsAccess({ config: () => ({ security: true }), secrets, caFile: () => caNow });
  const output = new ElasticsearchOutput({ urls: () => [url], access: (user) => member.as(user), compression: false });
  try {
    await output.bulk('{"create":{"_index":"hasup-logs-2026.12.07"}}\n{"message":"x"}\n');
    await output.request((client) => client.cluster.health());
    assert.deepEqual(
      seen.map((s) => [s.path.split('?')[0], s.user, s.password]),
      [
        ['/_bulk', 'hasup_shipper', secrets.elasticsearch!.shipper_password],
        ['/_cluster/health', 'hasup_admin', secrets.elasticsearch!.admin_password],
      ],
    );
    caNow = otherCaFile;
    await assert.rejects(output.bulk('{"create":{"_index":"hasup-logs-2026.12.07"}}\n{"message":"x"}\n'), /certificate|self.signed|unable to verify/i);
    assert.equal(seen.length, 2, 'a server the CA does not vouch for gets no request');
  } finally {
    await output.close();
  }
  const plain = new ElasticsearchOutput({ urls: () => ['http://127.0.0.2:9'], access: (user) => member.as(user) });
  try {
    await assert.rejects(plain.bulk('{}\n'), /Elasticsearch security is on, so its URLs must be https:\/\//);
  } finally {
    await plain.close();
  }
});

test('every client refuses a server whose certificate of the cluster CA has expired, before anything is sent, saying it expired', async () => {
  // Valid for one day, forty days ago: signed by the cluster CA, naming 127.0.0.2, expired today.
  const expired = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.2'], now: new Date(Date.now() - 40 * 86_400_000), days: 1 });
  const stale = createServer({ cert: expired.cert, key: expired.key }, (req, res) => {
    seen.push({ path: req.url ?? '', user: undefined, password: undefined });
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-elastic-product', 'Elasticsearch');
    res.end(JSON.stringify({ cluster_name: 'hasup', status: 'green' }));
  });
  await new Promise<void>((r) => stale.listen(0, '127.0.0.2', r));
  const port = (stale.address() as AddressInfo).port;
  const staleUrl = `https://127.0.0.2:${port}`;
  seen.length = 0;
  try {
    // hasup's JSON requests: health, membership, snapshots, the console (firstAnswer), and the metrics collector (httpJson).
    const reader = esAccess({ cfg: { security: true }, secrets, caFile }, 'reader');
    await assert.rejects(firstAnswer([staleUrl], 'GET', '/_cluster/health', 5000, undefined, reader), /no Elasticsearch node answered \(https:\/\/127\.0\.0\.2:\d+: certificate has expired\)/);
    await assert.rejects(httpJson(`${staleUrl}/_nodes/_local/stats`, AbortSignal.timeout(5000), undefined, esRequestExtras(reader)), /certificate has expired/);
    // The driver's health check, as the supervisor runs it on the member whose node this is.
    const ctx = { ...context({ security: true, http_port: port }, { tls: true }), ip: '127.0.0.2', tls: { ca: caFile, cert: join(dir, 'unused.pem'), key: join(dir, 'unused.key') } };
    const health = await new ElasticsearchDriver().health(ctx, AbortSignal.timeout(5000));
    assert.equal(health.status, 'critical');
    assert.match(health.message ?? '', new RegExp(`^Elasticsearch at ${staleUrl.replace(/\./g, '\\.')}: certificate has expired$`));
    // The shipper's client: bulk as the shipper, index administration as admin.
    const member = new MemberEsAccess({ config: () => ({ security: true }), secrets, caFile: () => caFile });
    const output = new ElasticsearchOutput({ urls: () => [staleUrl], access: (user) => member.as(user), compression: false });
    try {
      await assert.rejects(output.bulk('{"create":{"_index":"hasup-logs-2026.12.07"}}\n{"message":"x"}\n'), /certificate has expired/);
      await assert.rejects(output.request((client) => client.cluster.health()), /certificate has expired/);
    } finally {
      await output.close();
    }
    assert.deepEqual(seen, [], 'no request reached the server, and so no password left a client');
  } finally {
    stale.close();
  }
});

test('cert rotate: reloadTls brings the copy under config/tls up to date (Elasticsearch reloads it by itself); with security off it writes nothing', async () => {
  const root = join(dir, 'svc-reload');
  const svcTls = join(root, 'tls');
  const first = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.2'] });
  installServiceTls({ ca: caFile, cert: writeTemp('r1.pem', first.cert), key: writeTemp('r1.key', first.key, 0o600) }, root);
  const driver = new ElasticsearchDriver();
  const on = context({ security: true }, { tls: true, root });
  assert.equal(on.tls?.ca, join(svcTls, 'ca.pem'));
  await driver.reloadTls(on);
  assert.equal(readFileSync(join(root, 'config', 'tls', 'member.pem'), 'utf8'), first.cert);
  const second = await issueMemberCert({ ca, memberId: '0123456789abcdef', addresses: ['127.0.0.2'] });
  installServiceTls({ ca: caFile, cert: writeTemp('r2.pem', second.cert), key: writeTemp('r2.key', second.key, 0o600) }, root);
  await driver.reloadTls(on);
  assert.equal(readFileSync(join(root, 'config', 'tls', 'member.pem'), 'utf8'), second.cert);
  assert.equal(readFileSync(join(root, 'config', 'tls', 'member.key'), 'utf8'), second.key);

  const offRoot = join(dir, 'svc-off');
  installServiceTls({ ca: caFile, cert: join(dir, 'r2.pem'), key: join(dir, 'r2.key') }, offRoot);
  await driver.reloadTls(context({ security: false }, { tls: true, root: offRoot }));
  assert.equal(existsSync(join(offRoot, 'config', 'tls')), false);
});

test("a member's Elasticsearch setting: the service's config where it runs, else hasup.toml's layer over the plan's defaults", () => {
  assert.equal(securityOn(elasticsearchConfigHere({ security: true }, { security: false }, plan.defaults)), true, 'the config in force wins');
  assert.equal(securityOn(elasticsearchConfigHere(undefined, { security: true }, plan.defaults)), true, 'a member that only ships, told in hasup.toml');
  assert.equal(securityOn(elasticsearchConfigHere(undefined, undefined, plan.defaults)), false, 'told nothing: the plan default');
  assert.equal(securityOn(elasticsearchConfigHere(undefined, undefined, { ...plan.defaults, security: true })), true, 'a default of true reaches members that only ship');
  assert.equal(elasticsearchConfigHere(undefined, undefined), undefined);
});

test('security = "auto" (the default to come): on where the member has TLS, off without it, never a render error', () => {
  const autoDefaults = { ...plan.defaults, security: 'auto' };
  const cfg = (layer: TomlTable) => mergeLayers(autoDefaults, [{ name: 'test', data: layer }]);
  const withTls = { ...context({}, { tls: true }), cfg: cfg({}) };
  const without = { ...context({}), cfg: cfg({}) };
  assert.match(renderYml(withTls), /^xpack\.security\.enabled: true$/m);
  assert.match(renderYml(without), /^xpack\.security\.enabled: false$/m, 'a member in clear text runs Elasticsearch in clear text, as before');
  assert.equal(cfg({ security: false }).security, false, 'an operator may still say no');
  assert.throws(() => renderYml({ ...context({}), cfg: cfg({ security: true }) }), /needs TLS/, 'true means true');
  assert.throws(() => cfg({ security: 'yes' }), /security/);
  assert.equal(esAccess({ cfg: { security: 'auto' }, secrets, caFile }, 'shipper').scheme, 'https');
  assert.deepEqual(esAccess({ cfg: { security: 'auto' }, secrets, caFile: undefined }, 'shipper'), { scheme: 'http' });
  assert.equal(new MemberEsAccess({ config: () => ({ security: 'auto' }), secrets, caFile: () => caFile }).scheme(), 'https');
  assert.equal(new MemberEsAccess({ config: () => ({ security: 'auto' }), secrets, caFile: () => undefined }).scheme(), 'http');
});
