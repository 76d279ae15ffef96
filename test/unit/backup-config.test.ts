import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { changedKeys, LayerError, mergeLayers, needsRestart, renderTemplates } from '../../src/supervisor/config-layers.js';
import type { DriverContext, ServicePaths } from '../../src/supervisor/driver.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import { findPlan } from '../../src/supervisor/plan.js';
import { checkSecrets, generateSecrets, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';
import { PostgresqlDriver } from '../../src/plugins/postgresql/driver.js';
import { pgbackrestPaths, preparePgBackRestFiles } from '../../src/plugins/backup/files.js';
import { backupSettingsFrom, checkBackupSettings } from '../../src/plugins/backup/settings.js';

const plan = findPlan('postgresql', [shippedPlansDir()]);
const root = '/var/lib/hasup/svc/postgresql';
const paths: ServicePaths = { root, data: `${root}/data`, config: `${root}/config`, run: `${root}/run`, logs: `${root}/logs` };

function cfgWith(backup: TomlTable, more: TomlTable = {}): TomlTable {
  return mergeLayers(plan.defaults, [{ name: 'test', data: { backup, ...more } }]);
}

/** What the supervisor renders: the paths and the driver's template values. */
function render(cfg: TomlTable, sysExtra: Record<string, string> = {}): Map<string, string> {
  const driver = new PostgresqlDriver();
  const ctx = { paths, cfg } as DriverContext;
  const svc = { data_dir: paths.data, config_dir: paths.config, run_dir: paths.run, logs_dir: paths.logs, ...driver.templateValues(ctx) };
  return renderTemplates(plan, { cfg, svc, sys: { ip: '10.0.0.5', member_id: 'a1b2c3d4e5f60718', ...sysExtra } });
}

/** pgBackRest's ini format: [section] then key=value; a key may repeat in another section. */
function ini(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const header = /^\[(.+)\]$/.exec(line.trim());
    if (header) out.set(header[1]!, (section = new Map()));
    const kv = /^([a-z0-9-]+)=(.*)$/.exec(line.trim());
    if (kv) {
      assert.ok(section, `${line} is outside a section`);
      assert.ok(!section.has(kv[1]!), `${kv[1]} is set twice`);
      section.set(kv[1]!, kv[2]!);
    }
  }
  return out;
}

/** The uncommented settings of a postgresql.conf, the last one winning (as PostgreSQL reads it). */
function pgSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([a-z_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

test('backups off (the default): no archiving, and the pgBackRest file says so', () => {
  const files = render(plan.defaults);
  const conf = pgSettings(files.get('postgresql.conf')!);
  assert.equal(conf.get('archive_mode'), 'off');
  assert.equal(conf.has('archive_command'), false);
  assert.equal(conf.has('restore_command'), false);
  assert.equal(ini(files.get('pgbackrest.conf')!).size, 0);
  assert.match(files.get('pgbackrest.conf')!, /Backups are off/);
});

test('backups on: pgbackrest.conf holds the settings, and every path pgBackRest writes is the member\'s own', () => {
  const cfg = cfgWith({ repo_path: '/mnt/backups', retention_full: 3, compress_type: 'lz4', compress_level: 2, process_max: 2, archive_push_queue_max: '512MB' }, { port: 5544, superuser: 'boss' });
  const conf = ini(render(cfg).get('pgbackrest.conf')!);
  const global = conf.get('global')!;
  assert.equal(global.get('repo1-path'), '/mnt/backups');
  assert.equal(global.get('repo1-retention-full'), '3');
  assert.equal(global.get('repo1-retention-full-type'), 'count');
  assert.equal(global.has('repo1-retention-diff'), false, '0 leaves pgBackRest\'s rule: differentials go with their full backup');
  assert.equal(global.get('compress-type'), 'lz4');
  assert.equal(global.get('compress-level'), '2');
  assert.equal(global.get('process-max'), '2');
  assert.equal(global.get('archive-async'), 'y');
  assert.equal(global.get('archive-push-queue-max'), '512MB');
  assert.equal(global.get('start-fast'), 'y');
  for (const key of ['spool-path', 'lock-path', 'log-path']) {
    assert.ok(global.get(key)!.startsWith(`${root}/`), `${key} = ${global.get(key)} is under the service's directory`);
  }
  assert.equal(new Set(['spool-path', 'lock-path', 'log-path'].map((k) => global.get(k))).size, 3);
  assert.equal([...global.keys()].some((k) => k.startsWith('repo2-') || k.includes('cipher')), false);
  const stanza = conf.get('hasup')!;
  assert.deepEqual(Object.fromEntries(stanza), { 'pg1-path': paths.data, 'pg1-port': '5544', 'pg1-socket-path': paths.run, 'pg1-user': 'boss' });
});

test('backups on: postgresql.conf archives and restores through pgBackRest with that file', () => {
  const cfg = cfgWith({ repo_path: '/mnt/backups' });
  const conf = pgSettings(render(cfg).get('postgresql.conf')!);
  const p = pgbackrestPaths(paths);
  assert.equal(conf.get('archive_mode'), 'on');
  const base = `/usr/bin/pgbackrest --config=${p.conf} --config-include-path=${p.includeDir} --stanza=hasup`;
  assert.equal(conf.get('archive_command'), `'${base} archive-push %p'`);
  assert.equal(conf.get('restore_command'), `'${base} archive-get %f "%p"'`);
  // The file the command names is the one the plan renders.
  assert.ok(p.conf === join(paths.config, 'pgbackrest.conf') && plan.templates.has('pgbackrest.conf'));
});

test('a second repository and encryption: both repositories get the cipher type, no file gets the passphrase', () => {
  const secrets = generateSecrets();
  const cfg = cfgWith({ repo_path: '/mnt/a', repo2_path: '/mnt/b', cipher: true, retention_diff: 4, retention_full: 30, retention_full_type: 'time' });
  const files = render(cfg);
  const global = ini(files.get('pgbackrest.conf')!).get('global')!;
  // Retention by age: 30 days in both repositories.
  assert.equal(global.get('repo1-retention-full'), '30');
  assert.equal(global.get('repo1-retention-full-type'), 'time');
  assert.equal(global.get('repo2-retention-full-type'), 'time');
  assert.equal(global.get('repo2-path'), '/mnt/b');
  assert.equal(global.get('repo1-cipher-type'), 'aes-256-cbc');
  assert.equal(global.get('repo2-cipher-type'), 'aes-256-cbc');
  assert.equal(global.get('repo1-retention-diff'), '4');
  assert.equal(global.get('repo2-retention-diff'), '4');
  for (const [name, text] of files) assert.ok(!text.includes(secrets.backup!.repo_cipher_pass), `${name} holds no passphrase`);
  assert.equal(checkBackupSettings(backupSettingsFrom(cfg), secrets), undefined);
});

test('bad backup settings are refused naming the key', () => {
  const secrets = generateSecrets();
  const problem = (backup: TomlTable, s: ClusterSecrets = secrets) => checkBackupSettings(backupSettingsFrom(cfgWith(backup)), s);
  assert.match(problem({ repo_path: 'backups' })!, /"backup\.repo_path": must be an absolute path/);
  assert.match(problem({ repo_path: '/a\nrepo1-cipher-type=none' })!, /"backup\.repo_path": must be one line/);
  assert.match(problem({ repo_path: '/a', compress_type: 'xz' })!, /"backup\.compress_type" must be one of zst, lz4, gz, bz2, none, got "xz"/);
  assert.match(problem({ repo_path: '/a', compress_type: 'gz', compress_level: 12 })!, /backup\.compress_level must be at most 9 for gz \(got 12\)/);
  assert.match(problem({ repo_path: '/a', compress_type: 'none', compress_level: 1 })!, /backup\.compress_level must be 0 with compress_type = "none"/);
  assert.equal(problem({ repo_path: '/a', compress_type: 'zst', compress_level: 1 }), undefined);
  assert.match(problem({ repo_path: '/a', archive_push_queue_max: 'lots' })!, /"backup\.archive_push_queue_max": must be a size/);
  assert.match(problem({ repo_path: '/a', process_max: 1.5 })!, /"backup\.process_max" must be an integer/);
  assert.match(problem({ repo_path: '/a', retention_full: 0 })!, /"backup\.retention_full" must be at least 1/);
  assert.match(problem({ repo_path: '/a', schedule_incr: '0 25 * * *' })!, /"backup\.schedule_incr": is not a valid cron expression \(Invalid value for hour: 25\)/);
  assert.match(problem({ repo2_path: '/b' })!, /repo2_path is set but backup\.repo_path is empty/);
  assert.match(problem({ repo_path: '/a/', repo2_path: '/a' })!, /must differ/);
  const old: ClusterSecrets = { api_token: 't', postgresql: { superuser_password: 's', replication_password: 'r' } };
  assert.match(problem({ repo_path: '/a', cipher: true }, old)!, /backup\.cipher = true needs the cluster secret backup\.repo_cipher_pass/);
  assert.equal(problem({ repo_path: '/a', cipher: false }, old), undefined);
  for (const ok of ['1GiB', '512MB', '64mb', '1024', '2tib']) assert.equal(problem({ repo_path: '/a', archive_push_queue_max: ok }), undefined, ok);
  // A value of the wrong type never gets this far: the config layers refuse it.
  assert.throws(() => cfgWith({ retention_full: '2' }), (err: Error) => err instanceof LayerError && /"backup\.retention_full" must be a number/.test(err.message));
});

test('turning archiving on or off restarts PostgreSQL; the other backup keys are a reload', () => {
  const restartKeys = plan.manifest.config.restart_keys;
  const off = cfgWith({});
  const on = cfgWith({ repo_path: '/a' });
  assert.equal(needsRestart(changedKeys(off, on), restartKeys), true);
  assert.equal(needsRestart(changedKeys(on, cfgWith({ repo_path: '/a', compress_type: 'gz', retention_full: 5, cipher: true })), restartKeys), false);
  assert.equal(needsRestart(changedKeys(on, cfgWith({ repo_path: '/a', schedule_full: '0 1 * * 0', schedule_incr: '0 * * * *', retention_full_type: 'time' })), restartKeys), false);
});

test('new cluster secrets hold a repository passphrase; a malformed one is refused without showing it', () => {
  const a = generateSecrets().backup!.repo_cipher_pass;
  assert.ok(a.length >= 64 && /^[A-Za-z0-9_-]+$/.test(a), 'long, and nothing pgBackRest\'s config format treats specially');
  assert.notEqual(generateSecrets().backup!.repo_cipher_pass, a);
  const base = { api_token: 't', postgresql: { superuser_password: 's', replication_password: 'r' } };
  assert.throws(() => checkSecrets({ ...base, backup: { repo_cipher_pass: 'short-secret' } }, 'f.json'), (err: Error) => /backup\.repo_cipher_pass must be/.test(err.message) && !err.message.includes('short-secret'));
  assert.equal(checkSecrets(base, 'f.json').backup, undefined, 'files from before it still load');
});

test('preparing pgBackRest files: private directories, the passphrase in a 0600 include, and no include without one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-backup-files-'));
  try {
    const p: ServicePaths = { root: dir, data: join(dir, 'data'), config: join(dir, 'config'), run: join(dir, 'run'), logs: join(dir, 'logs') };
    const secrets = generateSecrets();
    const ctx = { paths: p, cfg: cfgWith({ repo_path: '/a' }), secrets, log: pino({ level: 'silent' }) } as DriverContext;
    const made = await preparePgBackRestFiles(ctx);
    for (const d of [made.dir, made.spool, made.lock, made.includeDir]) assert.equal(statSync(d).mode & 0o777, 0o700, d);
    assert.equal(statSync(made.cipherFile).mode & 0o777, 0o600);
    const include = ini(readFileSync(made.cipherFile, 'utf8')).get('global')!;
    assert.equal(include.get('repo1-cipher-pass'), secrets.backup!.repo_cipher_pass);
    assert.equal(include.get('repo2-cipher-pass'), secrets.backup!.repo_cipher_pass);
    const passfile = join(p.run, 'pgpass');
    assert.equal(statSync(passfile).mode & 0o777, 0o600);
    assert.match(readFileSync(passfile, 'utf8'), new RegExp(`:${String(ctx.cfg.superuser)}:`));
    // Run again with secrets that hold no passphrase: the stale include goes.
    const { backup: _dropped, ...older } = secrets;
    await preparePgBackRestFiles({ ...ctx, secrets: older });
    assert.equal(existsSync(made.cipherFile), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("listen_addresses: the member's address; every address with a leader VIP (it comes and goes after the start); the operator's when set", () => {
  const listen = (cfg: TomlTable, sys: Record<string, string> = {}) => /^listen_addresses = '(.*)'$/m.exec(render(cfg, sys).get('postgresql.conf')!)?.[1];
  assert.equal(listen(cfgWith({})), '10.0.0.5');
  assert.equal(listen(cfgWith({}), { vip: '10.0.0.100' }), '*');
  assert.equal(listen(cfgWith({}, { listen_addresses: '10.0.0.5,127.0.0.1' }), { vip: '10.0.0.100' }), '10.0.0.5,127.0.0.1');
});

