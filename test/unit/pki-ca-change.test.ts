import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { caChangeFor, changeClusterCa, type MemberApi } from '../../src/cli/cert-commands.js';
import { applyCaChange, CaChangeRefused, clusterBundle, parseCaChange, planCaChange, waitHealthySince, type CaChange, type CaChangeDeps } from '../../src/supervisor/pki/ca-change.js';
import { parseCertificates } from '../../src/supervisor/pki/inspect.js';
import { createCa, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { memberTlsFiles } from '../../src/supervisor/pki/member-files.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls, withClusterCa } from '../../src/supervisor/pki/provision.js';
import { checkSecrets, generateSecrets, loadSecretsFile, writeSecretsFile, type ClusterSecrets } from '../../src/supervisor/secrets.js';

const MEMBER = '0123456789abcdef';
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'hasup-ca-change-'));
  dirs.push(d);
  return d;
};

let base: { secrets: ClusterSecrets; newCa: KeyPairPem; other: KeyPairPem } | undefined;
async function fixtures() {
  base ??= { secrets: await withClusterCa(generateSecrets({ name: 'prod' })), newCa: await createCa({ name: 'prod', label: 'from today' }), other: await createCa({ name: 'other' }) };
  return base;
}

/** A member's STATE_DIR/tls issued from `secrets`. */
async function member(secrets: ClusterSecrets, renew?: string) {
  const stateRoot = tmp();
  const tls = await ensureMemberTls({ stateRoot, memberId: MEMBER, addresses: ['10.0.0.11'], secrets, secretsFile: join(stateRoot, 'secrets.json'), settings: DEFAULT_TLS_SETTINGS, ...(renew ? { renew } : {}) });
  assert.ok(tls.on);
  return { stateRoot, files: memberTlsFiles(stateRoot) };
}

const fp = (pem: string) => parseCertificates(pem, 'test')[0]!.fingerprint256;

test('step 1: the new CA with its key, the old one trusted beside it; the bundle holds both, the new one first', async () => {
  const { secrets, newCa } = await fixtures();
  const m = await member(secrets);
  const change: CaChange = { ca_cert: newCa.cert, ca_key: newCa.key, trusted: [secrets.tls!.ca_cert] };
  const plan = planCaChange({ current: secrets.tls!, change, memberFiles: m.files, now: new Date() });
  assert.deepEqual(plan.fingerprints, [fp(newCa.cert), fp(secrets.tls!.ca_cert)]);
  assert.ok(plan.bundleChanged && plan.secretsChanged);
  assert.equal(plan.secretsTls.ca_key, newCa.key);
  assert.equal(plan.secretsTls.trusted?.length, 1);
  assert.equal(plan.bundle, clusterBundle(plan.secretsTls));
  // The secrets file's check takes the new section.
  assert.doesNotThrow(() => checkSecrets(JSON.parse(JSON.stringify({ ...secrets, tls: plan.secretsTls })), 's.json'));
  assert.throws(() => checkSecrets({ ...secrets, tls: { ...plan.secretsTls, trusted: ['not a cert'] } }, 's.json'), /tls.trusted must be a list of PEM CA certificates/);
});

test('refused, nothing planned: a new CA without its key or with another key, a CA that is none, a corrupt one, a bad body', async () => {
  const { secrets, newCa, other } = await fixtures();
  const m = await member(secrets);
  const plan = (change: CaChange) => planCaChange({ current: secrets.tls!, change, memberFiles: m.files, now: new Date() });
  const refused = (re: RegExp, status = 400) => (err: unknown) => err instanceof CaChangeRefused && err.statusCode === status && re.test(err.message);
  assert.throws(() => plan({ ca_cert: newCa.cert, trusted: [secrets.tls!.ca_cert] }), refused(/its key \(ca_key\) must come with it/));
  assert.throws(() => plan({ ca_cert: newCa.cert, ca_key: other.key, trusted: [secrets.tls!.ca_cert] }), refused(/ca_key does not belong to ca_cert/));
  assert.throws(() => plan({ ca_cert: newCa.cert, ca_key: 'garbage', trusted: [] }), refused(/ca_key is corrupt/));
  assert.throws(() => plan({ ca_cert: secrets.tls!.ca_cert, ca_key: other.key, trusted: [] }), refused(/not the key of this member's cluster CA/));
  const leaf = (await member(secrets)).files.cert;
  assert.throws(() => plan({ ca_cert: readFileSync(leaf, 'utf8'), trusted: [] }), refused(/ca_cert is not a CA certificate/));
  assert.throws(() => plan({ ca_cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', trusted: [] }), refused(/corrupt/));
  assert.throws(() => parseCaChange({ ca_cert: 'x' }), refused(/trusted must be a list/));
  assert.throws(() => parseCaChange({ trusted: [] }), refused(/ca_cert must be/));
  // No key in any message.
  try {
    plan({ ca_cert: newCa.cert, ca_key: other.key, trusted: [] });
  } catch (err) {
    assert.ok(!(err as Error).message.includes('PRIVATE KEY'));
  }
});

test("the old CA is dropped only once the member's certificate is of the new one", async () => {
  const { secrets, newCa } = await fixtures();
  const during = { ...secrets, tls: { ca_cert: newCa.cert, ca_key: newCa.key, trusted: [secrets.tls!.ca_cert] } };
  const oldMember = await member(secrets);
  const drop: CaChange = { ca_cert: newCa.cert, trusted: [] };
  assert.throws(
    () => planCaChange({ current: during.tls, change: drop, memberFiles: oldMember.files, now: new Date() }),
    (err: unknown) => err instanceof CaChangeRefused && err.statusCode === 409 && /give it a certificate of the new CA first/.test(err.message),
  );
  // A member issued while the change is under way (cert rotate): a certificate of the new CA, a bundle of both.
  const moved = await member(during, 'cert rotate');
  assert.deepEqual(parseCertificates(readFileSync(moved.files.ca, 'utf8'), 'b').map((c) => c.fingerprint256), [fp(newCa.cert), fp(secrets.tls!.ca_cert)]);
  const plan = planCaChange({ current: during.tls, change: drop, memberFiles: moved.files, now: new Date() });
  assert.deepEqual(plan.fingerprints, [fp(newCa.cert)]);
  assert.equal(plan.secretsTls.trusted, undefined);
  assert.equal(plan.secretsTls.ca_key, newCa.key, 'the key kept from the secrets file: the drop sends none');
});

function fakeDeps(restartNeeded: string[] = ['etcd']) {
  const calls: string[] = [];
  const deps: CaChangeDeps = {
    writeSecrets: () => void calls.push('secrets'),
    writeBundle: () => void calls.push('bundle'),
    refreshServices: () => {
      calls.push('refresh');
      return Promise.resolve();
    },
    restartNeeded: () => restartNeeded,
    restartAndWait: (s) => {
      calls.push(`restart ${s}`);
      return Promise.resolve();
    },
    log: () => undefined,
  };
  return { deps, calls };
}

test('applying: the secrets file, then the bundle, then the services, then one restart after another; a change already made restarts nothing', async () => {
  const { secrets, newCa } = await fixtures();
  const m = await member(secrets);
  const plan = planCaChange({ current: secrets.tls!, change: { ca_cert: newCa.cert, ca_key: newCa.key, trusted: [secrets.tls!.ca_cert] }, memberFiles: m.files, now: new Date() });
  const first = fakeDeps(['etcd', 'other']);
  assert.deepEqual(await applyCaChange(plan, first.deps), { changed: true, trusted: plan.fingerprints, restarted: ['etcd', 'other'] });
  assert.deepEqual(first.calls, ['secrets', 'bundle', 'refresh', 'restart etcd', 'restart other']);
  const second = fakeDeps();
  assert.deepEqual(await applyCaChange({ ...plan, bundleChanged: false, secretsChanged: false }, second.deps), { changed: false, trusted: plan.fingerprints, restarted: [] });
  assert.deepEqual(second.calls, []);
  const failing = fakeDeps();
  failing.deps.restartAndWait = () => Promise.reject(new Error('etcd is not healthy'));
  await assert.rejects(applyCaChange(plan, failing.deps), /etcd is not healthy/);
});

test('waiting for a restarted service: healthy since the restart, in virtual time; a timeout says its state', async () => {
  let t = 1000;
  const sleep = (ms: number) => {
    t += ms;
    return Promise.resolve();
  };
  const states = [
    { state: 'running', health: 'ok', healthSince: 500 },
    { state: 'stopping', health: 'critical', healthSince: 1200 },
    { state: 'running', health: 'critical', healthSince: 1200 },
    { state: 'running', health: 'ok', healthSince: 2100 },
  ];
  let i = 0;
  await waitHealthySince(() => states[Math.min(i++, states.length - 1)], { name: 'etcd', since: 1000, timeoutMs: 10_000, now: () => t, sleep });
  assert.equal(i, 4, 'an ok from before the restart does not count');
  await assert.rejects(
    waitHealthySince(() => ({ state: 'backoff', health: 'critical', healthSince: 0, healthMessage: 'exited 1' }), { name: 'etcd', since: t, timeoutMs: 5000, now: () => t, sleep }),
    /etcd was restarted to take up the new CA bundle but is not healthy after 5 s \(backoff, critical: exited 1\)/,
  );
});

test('caChangeFor: a new CA named apart from the old; the same again while a change is under way; drop sends no key and needs a change', async () => {
  const { secrets } = await fixtures();
  const made = await caChangeFor(secrets.tls!, 'new', { name: 'prod', caDays: 30 });
  assert.ok(made.made);
  const info = parseCertificates(made.change.ca_cert, 'new')[0]!;
  assert.match(info.subject, /hasup cluster CA prod from \d{4}-\d\d-\d\d/);
  assert.deepEqual(made.change.trusted, [secrets.tls!.ca_cert]);
  const under = { ca_cert: made.change.ca_cert, ca_key: made.change.ca_key!, trusted: made.change.trusted };
  const again = await caChangeFor(under, 'new', { name: 'prod', caDays: 30 });
  assert.equal(again.made, false);
  assert.equal(again.change.ca_cert, made.change.ca_cert);
  const drop = await caChangeFor(under, 'drop', { name: 'prod', caDays: 30 });
  assert.deepEqual(drop.change, { ca_cert: made.change.ca_cert, trusted: [] });
  await assert.rejects(caChangeFor(secrets.tls!, 'drop', { name: 'prod', caDays: 30 }), /no old CA to drop; nothing changed/);
});

/** Members answering POST /tls/ca as `answer` says; every call recorded. */
function fakeApi(answer: (url: string, body: CaChange) => unknown) {
  const calls: Array<{ url: string; check: boolean; key: boolean }> = [];
  const api: MemberApi = {
    at: (url) => ({
      request: <T>(_m: string, _p: string, body?: unknown) => {
        const b = body as CaChange;
        calls.push({ url, check: b.check_only === true, key: b.ca_key !== undefined });
        try {
          return Promise.resolve(answer(url, b) as T);
        } catch (err) {
          return Promise.reject(err as Error);
        }
      },
    }),
  };
  return { api, calls };
}

const ok = (b: CaChange) => ({ certificates: [], on: true, clear_text: [], ca_change: { changed: !b.check_only, trusted: ['a', 'b'], restarted: b.check_only ? [] : ['etcd'] } });
const order = [
  { id: 'b', url: 'https://10.0.0.2:1' },
  { id: 'a', url: 'https://10.0.0.1:1' },
];

test('cert rotate --new-ca: every member checked before any changes, then one at a time in order; the new CA kept in the local file first', async () => {
  const { secrets } = await fixtures();
  const file = join(tmp(), 'secrets.json');
  writeSecretsFile(file, secrets);
  const { api, calls } = fakeApi((_u, b) => ok(b));
  const lines: string[] = [];
  await changeClusterCa({ api, plan: { order, skipped: [] }, secretsFile: file, step: 'new', caDays: 365, print: (l) => lines.push(l) });
  assert.deepEqual(
    calls.map((c) => `${c.url} ${c.check ? 'check' : 'apply'}`),
    ['https://10.0.0.2:1 check', 'https://10.0.0.1:1 check', 'https://10.0.0.2:1 apply', 'https://10.0.0.1:1 apply'],
  );
  const after = loadSecretsFile(file);
  assert.equal(after.tls!.trusted?.[0], secrets.tls!.ca_cert);
  assert.notEqual(after.tls!.ca_cert, secrets.tls!.ca_cert);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.ok(lines.some((l) => /member b: trusts 2 CAs; restarted etcd \(healthy again\)/.test(l)));
  assert.ok(!lines.join('\n').includes('PRIVATE KEY'), 'no key printed');

  // --drop-old-ca with a member still on the old CA: refused at the check, nothing applied anywhere.
  const refusing = fakeApi((url, b) => {
    if (url.includes('10.0.0.1')) throw new Error("409: this member's certificate would not be trusted by the new CA bundle");
    return ok(b);
  });
  await assert.rejects(
    changeClusterCa({ api: refusing.api, plan: { order, skipped: [] }, secretsFile: file, step: 'drop', caDays: 365, print: () => undefined }),
    /member a \(https:\/\/10.0.0.1:1\) would not take the change: .*nothing changed on any member/,
  );
  assert.ok(refusing.calls.every((c) => c.check && !c.key), 'only checks, and no key sent for a drop');
  assert.equal(loadSecretsFile(file).tls!.trusted?.length, 1, 'the local file still trusts both');

  // Then dropped everywhere; the local file trusts the new CA only.
  const dropping = fakeApi((_u, b) => ok(b));
  await changeClusterCa({ api: dropping.api, plan: { order, skipped: [] }, secretsFile: file, step: 'drop', caDays: 365, print: () => undefined });
  assert.equal(dropping.calls.length, 4);
  assert.equal(loadSecretsFile(file).tls!.trusted, undefined);
});

test('a CA change is refused while a member is down; a member failing midway stops the change and says who took it', async () => {
  const { secrets } = await fixtures();
  const file = join(tmp(), 'secrets.json');
  writeSecretsFile(file, secrets);
  const { api, calls } = fakeApi((_u, b) => ok(b));
  await assert.rejects(
    changeClusterCa({ api, plan: { order, skipped: [{ id: 'c', why: 'suspect' }] }, secretsFile: file, step: 'new', caDays: 365, print: () => undefined }),
    /every member must be alive and reachable for a CA change \(one left out would not trust the others' new certificates\); c: suspect; nothing changed/,
  );
  assert.equal(calls.length, 0);
  const lines: string[] = [];
  const allowed = fakeApi((_u, b) => ok(b));
  await changeClusterCa({ api: allowed.api, plan: { order, skipped: [{ id: 'c', why: 'suspect: x' }] }, secretsFile: file, step: 'new', caDays: 365, allowDown: true, print: (l) => lines.push(l) });
  assert.equal(allowed.calls.length, 4);
  assert.ok(lines.some((l) => /member c: left out \(suspect\); before it starts again, give it a copy of/.test(l)));
  writeSecretsFile(file, secrets, { force: true });
  assert.equal(loadSecretsFile(file).tls!.trusted, undefined);
  const failing = fakeApi((url, b) => {
    if (!b.check_only && url.includes('10.0.0.1')) throw new Error('etcd is not healthy');
    return ok(b);
  });
  await assert.rejects(
    changeClusterCa({ api: failing.api, plan: { order, skipped: [] }, secretsFile: file, step: 'new', caDays: 365, print: () => undefined }),
    /member a \(https:\/\/10.0.0.1:1\): etcd is not healthy; 1 member before it took the change, the others not yet \(run the same command again\)/,
  );
  // Run again: the same CA, not another one.
  const firstCa = loadSecretsFile(file).tls!.ca_cert;
  const again = fakeApi((_u, b) => ok(b));
  await changeClusterCa({ api: again.api, plan: { order, skipped: [] }, secretsFile: file, step: 'new', caDays: 365, print: () => undefined });
  assert.equal(loadSecretsFile(file).tls!.ca_cert, firstCa);
});
