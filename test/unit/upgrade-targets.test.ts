/**
 * What `hasup upgrade postgresql|etcd --to TO` resolves to on a member, and
 * what it refuses, checked with the real programs Debian installs (and
 * small scripts that stand for other builds: their --version is all that is
 * read here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UpgradeRefused, type DriverContext } from '../../src/supervisor/driver.js';
import { elasticsearchUpgradeTarget, etcdUpgradeTarget, parseEtcdVersion, parsePostgresVersion, postgresqlUpgradeTarget } from '../../src/plugins/upgrade-targets.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';
const skipPg = existsSync(join(PG_BIN, 'postgres')) ? false : 'PostgreSQL 15 is not installed';
const skipEtcd = existsSync('/usr/bin/etcd') ? false : 'etcd is not installed';
const signal = () => AbortSignal.timeout(20_000);

function context(root: string, cfg: Record<string, unknown>, pgVersion?: string): DriverContext {
  const data = join(root, 'data');
  mkdirSync(data, { recursive: true });
  if (pgVersion) writeFileSync(join(data, 'PG_VERSION'), `${pgVersion}\n`);
  return { cfg, paths: { root, data, config: join(root, 'config'), run: join(root, 'run'), logs: join(root, 'logs') } } as unknown as DriverContext;
}

/** An executable that prints `line` for --version. */
function program(path: string, line: string): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `#!/bin/sh\n[ "$1" = --version ] && echo '${line}' && exit 0\nexit 1\n`);
  chmodSync(path, 0o755);
  return path;
}

const refused = (re: RegExp) => (err: unknown) => err instanceof UpgradeRefused && re.test(err.message);

test('version lines', () => {
  assert.deepEqual(parsePostgresVersion('postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'), { version: '15.18', major: '15' });
  assert.deepEqual(parsePostgresVersion('postgres (PostgreSQL) 17beta2'), { version: '17beta2', major: '17' });
  assert.equal(parsePostgresVersion('etcd Version: 3.4.23'), undefined);
  assert.deepEqual(parseEtcdVersion('etcd Version: 3.4.23'), [3, 4, 23]);
  assert.equal(parseEtcdVersion('postgres (PostgreSQL) 15.18'), undefined);
});

test('postgresql: a major version, the exact installed version, or a bin directory of the same major', { skip: skipPg }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-upgrade-'));
  try {
    const ctx = context(dir, { bin_dir: PG_BIN }, '15');
    const byMajor = await postgresqlUpgradeTarget(ctx, '15', signal());
    assert.deepEqual(byMajor.cfg, { bin_dir: PG_BIN });
    assert.match(byMajor.version, /^15\.\d+$/);
    assert.deepEqual(await postgresqlUpgradeTarget(ctx, byMajor.version, signal()), byMajor);
    assert.deepEqual((await postgresqlUpgradeTarget(ctx, `${PG_BIN}/postgres`, signal())).cfg, { bin_dir: PG_BIN }, 'the program itself names its directory');
    program(join(dir, 'other', 'postgres'), 'postgres (PostgreSQL) 15.99 (a build of its own)');
    assert.deepEqual(await postgresqlUpgradeTarget(ctx, join(dir, 'other'), signal()), { cfg: { bin_dir: join(dir, 'other') }, version: '15.99' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('postgresql: refused, naming why: not installed, another major than the data, not PostgreSQL, not a version or path', { skip: skipPg }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-upgrade-'));
  try {
    const ctx = context(dir, { bin_dir: PG_BIN }, '15');
    await assert.rejects(postgresqlUpgradeTarget(ctx, '15.0', signal()), refused(/PostgreSQL 15\.0 is not installed on this member \(\/usr\/lib\/postgresql\/15\/bin\/postgres is 15\.\d+\)/));
    await assert.rejects(postgresqlUpgradeTarget(ctx, '99', signal()), refused(/\/usr\/lib\/postgresql\/99\/bin\/postgres does not exist on this member/));
    program(join(dir, 'pg16', 'postgres'), 'postgres (PostgreSQL) 16.4');
    await assert.rejects(postgresqlUpgradeTarget(ctx, join(dir, 'pg16'), signal()), refused(/is PostgreSQL 16\.4, and this member's data directory is PostgreSQL 15: a new major version needs pg_upgrade/));
    program(join(dir, 'liar', 'postgres'), 'hello');
    await assert.rejects(postgresqlUpgradeTarget(ctx, join(dir, 'liar'), signal()), refused(/printed "hello", not a PostgreSQL version/));
    await assert.rejects(postgresqlUpgradeTarget(ctx, 'bin', signal()), refused(/--to must be a PostgreSQL version \(15, 15\.14\) or the absolute path of a bin directory, got "bin"/));
    await assert.rejects(postgresqlUpgradeTarget(ctx, '/nowhere', signal()), refused(/\/nowhere\/postgres does not exist/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('etcd: a binary by path or its version; an older minor refused', { skip: skipEtcd }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-upgrade-'));
  try {
    const ctx = context(dir, { bin: '/usr/bin/etcd' });
    const same = await etcdUpgradeTarget(ctx, '/usr/bin/etcd', signal());
    assert.deepEqual(same.cfg, { bin: '/usr/bin/etcd' });
    assert.match(same.version, /^3\.\d+\.\d+$/);
    assert.deepEqual(await etcdUpgradeTarget(ctx, same.version, signal()), same);
    await assert.rejects(etcdUpgradeTarget(ctx, '9.9.9', signal()), refused(/etcd 9\.9\.9 is not installed on this member \(\/usr\/bin\/etcd is 3\.\d+\.\d+\): give the path of its binary/));
    program(join(dir, 'new', 'etcd'), 'etcd Version: 3.5.17');
    assert.deepEqual(await etcdUpgradeTarget(ctx, join(dir, 'new'), signal()), { cfg: { bin: join(dir, 'new', 'etcd') }, version: '3.5.17' });
    program(join(dir, 'old', 'etcd'), 'etcd Version: 3.3.27');
    await assert.rejects(etcdUpgradeTarget(ctx, join(dir, 'old', 'etcd'), signal()), refused(/is etcd 3\.3\.27, older than the 3\.\d+\.\d+ running: etcd does not go back to an older minor version/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A folder shaped like an Elasticsearch home of `version` (what the check reads: bin/elasticsearch, lib/elasticsearch-VERSION.jar). */
function esHome(path: string, version: string): string {
  mkdirSync(join(path, 'bin'), { recursive: true });
  mkdirSync(join(path, 'lib'), { recursive: true });
  writeFileSync(join(path, 'bin', 'elasticsearch'), '#!/bin/sh\n');
  writeFileSync(join(path, 'lib', `elasticsearch-${version}.jar`), '');
  writeFileSync(join(path, 'lib', 'elasticsearch-x-content-8.0.0.jar'), '');
  return path;
}

test('elasticsearch: another home of the same major, not older; refused otherwise, naming why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-upgrade-'));
  try {
    const current = esHome(join(dir, 'es-8.14.3'), '8.14.3');
    const next = esHome(join(dir, 'es-8.15.1'), '8.15.1');
    assert.deepEqual(elasticsearchUpgradeTarget(current, next), { cfg: { launcher: 'distribution', home: next }, version: '8.15.1' });
    assert.equal(elasticsearchUpgradeTarget(current, current).version, '8.14.3', 'the same version: a restart onto it');
    assert.throws(() => elasticsearchUpgradeTarget(current, esHome(join(dir, 'es-8.13.4'), '8.13.4')), refused(/is Elasticsearch 8\.13\.4, older than the 8\.14\.3 running/));
    assert.throws(() => elasticsearchUpgradeTarget(current, esHome(join(dir, 'es-9.0.0'), '9.0.0')), refused(/is Elasticsearch 9\.0\.0 and 8\.14\.3 runs here: hasup upgrades within a major version/));
    assert.throws(() => elasticsearchUpgradeTarget(current, 'es-8.15.1'), refused(/--to must be the absolute path of an Elasticsearch home/));
    assert.throws(() => elasticsearchUpgradeTarget(current, join(dir, 'nothing')), refused(/bin\/elasticsearch does not exist on this member/));
    mkdirSync(join(dir, 'empty', 'bin'), { recursive: true });
    writeFileSync(join(dir, 'empty', 'bin', 'elasticsearch'), '');
    assert.throws(() => elasticsearchUpgradeTarget(current, join(dir, 'empty')), refused(/has no lib\/elasticsearch-VERSION\.jar: not an Elasticsearch home/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
