/**
 * One real node: `hasup run` with PostgreSQL and etcd under the supervisor,
 * driven through the CLI and the HTTP API as an operator would.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ApiClient } from '../../src/cli/api-client.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { HASUP_BIN, LocalRing, generateRingKey, randomPortBase, type MemberProc } from '../support/member-procs.js';
import { freePort } from '../support/service-harness.js';
import { installRoot } from '../../src/supervisor/install-paths.js';
import { eventually } from '../support/eventually.js';

const base = mkdtempSync(join(tmpdir(), 'hasup-node-'));
chmodSync(base, 0o755);
const port = randomPortBase();
const ADDR_INDEX = 21;
const addr = LocalRing.addr(ADDR_INDEX);
const stateDir = join(base, `member-${ADDR_INDEX}`);
const keyFile = join(base, 'ring.key');
const configFile = join(base, 'hasup.toml');
let pgPort = 0;
let etcdPort = 0;
let ring: LocalRing;
let node: MemberProc;

function cli(...args: string[]) {
  return spawnSync(process.execPath, [HASUP_BIN, ...args, '--state-dir', stateDir], { encoding: 'utf8', timeout: 120_000 });
}

const api = () => ApiClient.fromStateDir(stateDir);
const services = async () => (await api().request<{ services: ServiceStatus[] }>('GET', '/services')).services;
const service = async (name: string) => (await services()).find((s) => s.name === name)!;


const healthy = (name: string, notPid?: number) =>
  eventually(async () => {
    const s = await service(name);
    return s.health === 'ok' && s.state === 'running' && s.pid !== notPid ? s : undefined;
  }, 90_000, `${name} healthy`);

function pgClient(): pg.Client {
  const secrets = JSON.parse(readFileSync(join(stateDir, 'secrets.json'), 'utf8')) as { postgresql: { superuser_password: string } };
  return new pg.Client({ host: addr, port: pgPort, user: 'hasup', database: 'postgres', password: secrets.postgresql.superuser_password });
}

async function sql<T = Record<string, unknown>>(text: string): Promise<T[]> {
  const client = pgClient();
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

async function etcd(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${addr}:${etcdPort}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  return (await res.json()) as Record<string, unknown>;
}

/** Postmasters are the postgres processes whose command line still names the data directory (children rewrite theirs). */
function postmastersOf(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('/postgres') && argv.includes(dataDir)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

function startNode(): MemberProc {
  return ring.spawn(ADDR_INDEX, { extraArgs: ['--config', configFile] });
}

before(async () => {
  pgPort = await freePort();
  etcdPort = await freePort();
  generateRingKey(keyFile);
  writeFileSync(
    configFile,
    [
      '[services]',
      'load = ["postgresql", "etcd"]',
      `plan_path = ["${join(installRoot(), 'test', 'fixtures', 'plans')}"]`,
      '[service.postgresql]',
      `port = ${pgPort}`,
      '[service.etcd]',
      `client_port = ${etcdPort}`,
      `peer_port = ${await freePort()}`,
    ].join('\n'),
  );
  mkdirSync(stateDir, { recursive: true });
  ring = new LocalRing({ baseDir: base, gossipPort: port, httpPort: port + 1, keyFile });
  node = startNode();
  await ring.ready([ADDR_INDEX], 30_000);
});

after(async () => {
  await ring.stopAll();
  rmSync(base, { recursive: true, force: true });
});

test('a standalone node brings up PostgreSQL (SELECT 1 over TCP with a password) and etcd (put and get)', async () => {
  await healthy('postgresql');
  await healthy('etcd');
  assert.deepEqual(await sql('SELECT 1 AS one'), [{ one: 1 }]);
  await etcd('/v3/kv/put', { key: b64('hasup-test'), value: b64('hello') });
  const got = await etcd('/v3/kv/range', { key: b64('hasup-test') });
  assert.equal(Buffer.from((got.kvs as Array<{ value: string }>)[0]!.value, 'base64').toString(), 'hello');
  const status = cli('status');
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /postgresql\.default\s+running\s+\d+\s+\S+.*\s+ok/);
  assert.match(status.stdout, /etcd\.default\s+running/);
});

test('kill -9 of each child: restarted, healthy again, data intact', async () => {
  await sql('CREATE TABLE IF NOT EXISTS kept (v text); INSERT INTO kept VALUES (\'before-kill\')');
  for (const name of ['postgresql', 'etcd']) {
    const before = await healthy(name);
    process.kill(before.pid!, 'SIGKILL');
    const after = await healthy(name, before.pid);
    assert.notEqual(after.pid, before.pid);
    assert.ok(after.restarts >= 1, `${name} restart counted`);
  }
  assert.deepEqual(await sql('SELECT v FROM kept'), [{ v: 'before-kill' }]);
  const got = await etcd('/v3/kv/range', { key: b64('hasup-test') });
  assert.equal(Buffer.from((got.kvs as Array<{ value: string }>)[0]!.value, 'base64').toString(), 'hello');
});

test('config apply of work_mem reaches SHOW work_mem by reload; an invalid value is refused and the old value stays', async () => {
  const pgBefore = await healthy('postgresql');
  const good = join(base, 'good.toml');
  writeFileSync(good, 'work_mem = "12MB"\n');
  const applied = cli('config', 'apply', 'postgresql.default', '2', good);
  assert.equal(applied.status, 0, applied.stderr);
  assert.match(applied.stdout, /reloaded/);
  assert.deepEqual(await sql('SHOW work_mem'), [{ work_mem: '12MB' }]);
  assert.equal((await service('postgresql')).pid, pgBefore.pid, 'no restart for a reloadable setting');

  const bad = join(base, 'bad.toml');
  writeFileSync(bad, 'work_mem = "lots"\n');
  const refused = cli('config', 'apply', 'postgresql.default', '3', bad);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /work_mem/);
  const stale = cli('config', 'apply', 'postgresql.default', '2', good);
  assert.notEqual(stale.status, 0);
  assert.match(stale.stderr, /not newer/);
  assert.deepEqual(await sql('SHOW work_mem'), [{ work_mem: '12MB' }]);
});

test('SIGKILL of the supervisor, then a restart: children adopted, no second postmaster', async () => {
  const pgBefore = await healthy('postgresql');
  const etcdBefore = await healthy('etcd');
  node.kill9();
  await node.exited;
  node = startNode();
  await ring.ready([ADDR_INDEX], 30_000);
  const pgAfter = await healthy('postgresql');
  const etcdAfter = await healthy('etcd');
  assert.equal(pgAfter.pid, pgBefore.pid, 'the running postmaster is adopted, not started twice');
  assert.equal(etcdAfter.pid, etcdBefore.pid);
  // The adopted etcd's stderr pipe died with the old supervisor: it logs to a file now, so a log line
  // (a put naming a lease that does not exist makes etcd warn) no longer kills it with SIGPIPE.
  await etcd('/v3/kv/put', { key: Buffer.from('adopted').toString('base64'), value: 'eA==', lease: '12345' }).catch(() => undefined);
  await eventually(
    async () => readFileSync(join(stateDir, 'logs', 'services.log'), 'utf8').split('\n').some((l) => l.includes('"service":"etcd"') && l.includes('failed to apply request')) || undefined,
    10_000,
    "etcd's warning, read from its log file, in the services log",
  );
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await healthy('etcd')).pid, etcdBefore.pid, 'the adopted etcd survived its own log line');
  assert.deepEqual(postmastersOf(join(stateDir, 'svc', 'postgresql', 'data')), [pgBefore.pid], 'exactly one postmaster for the data directory');
  assert.deepEqual(await sql('SHOW work_mem'), [{ work_mem: '12MB' }], 'the gossiped config survives a supervisor restart');
});

test('svc stop/start/unload/load change the running set and are remembered', async () => {
  const stopped = cli('svc', 'stop', 'etcd');
  assert.equal(stopped.status, 0, stopped.stderr);
  assert.equal((await service('etcd')).state, 'stopped');
  const remembered = JSON.parse(readFileSync(join(stateDir, 'services.json'), 'utf8')) as { services: Array<{ name: string; wanted: string }> };
  assert.deepEqual(remembered.services.find((s) => s.name === 'etcd')?.wanted, 'down');
  const started = cli('svc', 'start', 'etcd');
  assert.equal(started.status, 0, started.stderr);
  await healthy('etcd');
  const missing = cli('svc', 'load', 'no-such-plan');
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /no plan named "no-such-plan"/);
});

test('a bad hasup.toml stops hasup run with file, line and reason', () => {
  const cases: Array<[string, RegExp]> = [
    ['[member]\nadvertise = "127.0.0.1"\nfrobnicate = 1\n', /bad\.toml:3: unknown key "member\.frobnicate"/],
    ['[http]\nenabled = 1\n', /bad\.toml:2: "http\.enabled" must be true or false/],
    ['[services]\nload = ["no-such-plan"]\n', /no plan named "no-such-plan"/],
  ];
  for (const [text, expected] of cases) {
    const file = join(base, 'bad.toml');
    writeFileSync(file, text);
    const dir = mkdtempSync(join(base, 'bad-'));
    const run = spawnSync(
      process.execPath,
      [HASUP_BIN, 'run', '--config', file, '--advertise', `127.0.0.1:${port + 7}`, '--ring-key', keyFile, '--state-dir', dir, '--no-http'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.notEqual(run.status, 0, `exit status for ${text}`);
    assert.match(run.stderr, expected);
  }
});

test('a child that exits at once every time ends up flapping with its last error, without spinning', async () => {
  const loaded = cli('svc', 'load', 'crashloop');
  assert.equal(loaded.status, 0, loaded.stderr);
  const flapping = await eventually(async () => {
    const s = await service('crashloop');
    return s.state === 'flapping' ? s : undefined;
  }, 60_000, 'crashloop flapping');
  assert.match(flapping.lastError ?? '', /broken on purpose|exit|3/);
  assert.equal(flapping.health, 'critical');
  const restartsThen = (await service('crashloop')).restarts;
  await new Promise((r) => setTimeout(r, 3000));
  const restartsLater = (await service('crashloop')).restarts;
  assert.ok(restartsLater - restartsThen <= 2, `backoff is capped, not spinning (${restartsLater - restartsThen} restarts in 3 s)`);
  const unloaded = cli('svc', 'unload', 'crashloop');
  assert.equal(unloaded.status, 0, unloaded.stderr);
});
