import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { RestoreTarget } from '../ha/index.js';
import { describeTarget } from '../ha/index.js';
import { checkSetInRepository, checkTargetInWindow, parseRestoreTarget, restoreWindow, RestoreTargetRefused } from '../plugins/backup/restore-target.js';
import { SourceRepository, SourceRepoRefused, type SourceRepoPlace } from '../plugins/backup/source-repo.js';
import { backupListing } from '../plugins/backup/views.js';
import { dropAutoConfSettings } from '../plugins/postgresql/auto-conf.js';
import { RESTORED_FOR_NEW_CLUSTER } from '../plugins/postgresql/ha-node.js';
import { ensureOwnedDir, runTool, TOOL_ENV } from '../plugins/service-dirs.js';
import { readClusterState, writeClusterState } from '../supervisor/cluster-state.js';
import type { ServiceUser } from '../supervisor/driver.js';
import { CA_DAYS } from '../supervisor/pki/issue.js';
import { withClusterCa } from '../supervisor/pki/provision.js';
import { resolveServiceUser } from '../supervisor/process-runner.js';
import { DEFAULT_CLUSTER_NAME, generateSecrets, loadSecretsFile, writeSecretsFile, type ClusterSecrets } from '../supervisor/secrets.js';
import { finish, memberTls, prepare, type PrepareFlags } from './cluster.js';

/**
 * `hasup restore --to-new-cluster`: the data of a cluster's backup
 * repository, to a point, as the database of a new cluster on this node,
 * beside the running one (to look at old data, or to rebuild elsewhere). It
 * never touches the running cluster (it talks to none of its members) nor
 * its repository (read with info, restore and archive-get only:
 * src/plugins/backup/source-repo.ts). On a node that belongs to no cluster
 * yet, in one command:
 *
 *  1. checked first, nothing written: the state directory is no member's,
 *     the repository exists and holds hasup's stanza, the target is inside
 *     its recoverability window (or the backup is there);
 *  2. a new cluster identity, as `hasup cluster create` makes it (ring key,
 *     API token, CA, etcd), with the source cluster's PostgreSQL passwords
 *     (the restored database has its roles) and a passphrase of its own;
 *  3. pgBackRest restores the backup that reaches the target into this
 *     node's empty data directory, and a PostgreSQL of its own (no TCP
 *     port, archiving off) replays the repository's WAL to the target and
 *     promotes on a new timeline, then stops;
 *  4. hasup.toml as `cluster create` writes it, with archiving off or into
 *     a new repository (--new-repo, never the source): `hasup run` starts
 *     the restored database as the new cluster's first leader, and `hasup
 *     cluster join` adds members that copy it.
 */
export interface NewClusterFlags extends PrepareFlags {
  repo: string;
  sourceSecrets: string;
  latest?: boolean;
  time?: string;
  lsn?: string;
  set?: string;
  secrets?: string;
  name: string;
  etcdVoters: string;
  caDays: string;
  newRepo?: string;
  pgBinDir: string;
  pgbackrestBin: string;
  serviceUser: string;
  recoveryTimeout: string;
}

const POLL_MS = 1000;

export async function restoreToNewCluster(flags: NewClusterFlags, say: (line: string) => void = (l) => console.log(l)): Promise<void> {
  // ---- 1. checks: nothing is written until they pass ----
  const target = parseRestoreTarget({ ...(flags.latest ? { latest: true } : {}), ...(flags.time !== undefined ? { time: flags.time } : {}), ...(flags.lsn !== undefined ? { lsn: flags.lsn } : {}), ...(flags.set !== undefined ? { set: flags.set } : {}) });
  const stateDir = resolve(flags.stateDir);
  const claimed = readClusterState(stateDir);
  if (claimed) throw new Error(`this node already belongs to cluster ${claimed.cluster_name ?? '?'} (state directory ${stateDir}): a restore into a new cluster runs on a node of no cluster (or give another --state-dir)`);
  const repo = resolve(flags.repo).replace(/\/+$/, '') || '/';
  const newRepo = flags.newRepo === undefined ? undefined : resolve(flags.newRepo).replace(/\/+$/, '');
  if (newRepo !== undefined && (`${newRepo}/`.startsWith(`${repo}/`) || `${repo}/`.startsWith(`${newRepo}/`))) {
    throw new Error(`--new-repo ${newRepo} must not be the source repository ${repo}, nor inside or around it: the restored cluster never writes there`);
  }
  const svcRoot = join(stateDir, 'svc', 'postgresql');
  const dataDir = join(svcRoot, 'data');
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new Error(`${dataDir} is not empty: a restore into a new cluster needs an empty data directory`);
  const source = loadSecretsFile(resolve(flags.sourceSecrets));
  const user = process.getuid?.() === 0 ? await resolveServiceUser(flags.serviceUser) : undefined;
  const check = await scratchDir(user);
  try {
    const probe = new SourceRepository(placeOf(flags, repo, check, join(check, 'logs'), join(check, 'data'), source, user));
    say(`reading the repository ${repo}`);
    const info = await probe.info();
    const listing = backupListing({ member: 'restore', repoPath: repo, info, archive: null });
    if (target.kind === 'set') checkSetInRepository(target.label, listing);
    else {
      const w = restoreWindow(listing);
      checkTargetInWindow(target, w, listing, Date.now());
      say(`  recoverable from ${w.from} (backup ${w.from_backup}) to the end of WAL ${w.to_wal}; restoring to ${describeTarget(target)}`);
    }
  } catch (err) {
    if (err instanceof RestoreTargetRefused || err instanceof SourceRepoRefused) throw new Error(err.message);
    throw err;
  } finally {
    await rm(check, { recursive: true, force: true });
  }

  // ---- 2. the new cluster's identity (prepare() refuses a claimed state directory too) ----
  const voters = Number(flags.etcdVoters);
  const fresh = await withClusterCa(generateSecrets({ name: flags.name, etcdVoters: voters === 5 ? 5 : 3 }), { days: Number(flags.caDays) });
  const p = prepare({ ...flags, service: flags.service.length > 0 ? flags.service : ['postgresql'] }, voters === 5 ? 5 : 3);
  const secretsFile = resolve(flags.secrets ?? join(p.stateDir, 'secrets.json'));
  if (existsSync(secretsFile)) throw new Error(`${secretsFile} already exists; refusing to overwrite cluster secrets`);
  // The restored database's roles are the source cluster's: its passwords. Everything else is new, the repository passphrase included.
  const secrets: ClusterSecrets = { ...fresh, postgresql: source.postgresql };

  // ---- 3. the data: restored, replayed to the target, promoted ----
  await ensureOwnedDir(svcRoot, 0o750, user);
  await ensureOwnedDir(dataDir, 0o700, user);
  await ensureOwnedDir(join(svcRoot, 'logs'), 0o750, user);
  const repoRead = new SourceRepository(placeOf(flags, repo, join(svcRoot, 'pgbackrest', 'source'), join(svcRoot, 'logs'), dataDir, source, user));
  await ensureOwnedDir(join(svcRoot, 'pgbackrest'), 0o700, user);
  const started = Date.now();
  say(`restoring the backup that reaches ${describeTarget(target)} into ${dataDir}`);
  try {
    await repoRead.restoreTo(target);
  } catch (err) {
    await emptyDir(dataDir);
    throw new Error(`the restore failed, nothing of the new cluster was written (the data directory is empty again): ${(err as Error).message}`);
  }
  say(`  files restored in ${((Date.now() - started) / 1000).toFixed(1)} s; replaying the repository's WAL to the target`);
  try {
    await recover({ dataDir, binDir: flags.pgBinDir, user, restoreCommand: repoRead.restoreCommand(), timeoutMs: Number(flags.recoveryTimeout) * 1000, say });
  } catch (err) {
    await emptyDir(dataDir);
    throw new Error(`${(err as Error).message}; nothing of the new cluster was written (the data directory is empty again)`);
  }
  // pgBackRest's recovery settings were for that one start; hasup's own restore_command (or none) from here on.
  await dropAutoConfSettings(dataDir, ['restore_command', 'recovery_target\\w*']);
  await writeFile(join(svcRoot, RESTORED_FOR_NEW_CLUSTER), `${JSON.stringify({ repo, target, restored_at: new Date().toISOString() })}\n`, { mode: 0o644 });

  // ---- 4. the cluster's files ----
  mkdirSync(dirname(secretsFile), { recursive: true, mode: 0o700 });
  writeSecretsFile(secretsFile, secrets);
  writeClusterState(p.stateDir, { cluster_id: secrets.cluster_id!, cluster_name: flags.name, founder: true, created_at: Date.now() });
  const config = finish(p, { ...flags, service: flags.service.length > 0 ? flags.service : ['postgresql'] }, { clusterName: flags.name, peers: [], secrets: secretsFile, ...(newRepo ? { backupRepo: newRepo } : {}), writtenBy: 'restore --to-new-cluster' });
  const tls = await memberTls(p, secrets, secretsFile);
  p.say(`cluster ${flags.name} (id ${secrets.cluster_id}) created from ${repo} at ${describeTarget(target)} in ${((Date.now() - started) / 1000).toFixed(1)} s; this node is member ${p.memberId}, the etcd founder`);
  p.say(`  PostgreSQL: the restored database ended recovery at the target on a new timeline; ${newRepo ? `it archives into ${newRepo} (a new repository)` : 'archiving is off (set [service.postgresql.backup] repo_path to a new repository to turn it on)'}; the source repository ${repo} is never written`);
  p.say(`  secrets: ${secretsFile} (mode 0600; new ring key, API token and CA; the source cluster's PostgreSQL passwords)`);
  p.say(`  config:  ${config}`);
  p.say(`  tls:     ${tls}`);
  p.say(`next: hasup run --config ${flags.printConfig ? 'FILE' : config}   (this member leads with the restored database)`);
  p.say(`then on every other node: hasup cluster join ${p.advertise} --secrets secrets.json --advertise ITS_ADDRESS (they copy it)`);
}

function placeOf(flags: NewClusterFlags, repo: string, dir: string, logs: string, pgData: string, source: ClusterSecrets, user: ServiceUser | undefined): SourceRepoPlace {
  const pass = source.backup?.repo_cipher_pass;
  return {
    repo,
    dir,
    logs,
    pgData,
    pgPort: 5432,
    pgSocket: dir,
    pgUser: 'postgres',
    bin: flags.pgbackrestBin,
    ...(user ? { user } : {}),
    ...(typeof pass === 'string' && pass !== '' ? { cipherPass: pass } : {}),
  };
}

async function scratchDir(user: ServiceUser | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hasup-restore-check-'));
  if (user) await chown(dir, user.uid, user.gid);
  await ensureOwnedDir(join(dir, 'logs'), 0o750, user);
  return dir;
}

async function emptyDir(dir: string): Promise<void> {
  for (const name of existsSync(dir) ? readdirSync(dir) : []) await rm(join(dir, name), { recursive: true, force: true });
}

/**
 * PostgreSQL on the restored data, on its own: no TCP port (a socket in
 * a private directory), archiving off, the repository's WAL through
 * restore_command. pgBackRest's recovery.signal and target make it replay
 * to the target and promote; this waits for the server to say it accepts
 * connections and pg_controldata to say "in production", then stops it (fast shutdown: a clean checkpoint).
 */
async function recover(o: { dataDir: string; binDir: string; user: ServiceUser | undefined; restoreCommand: string; timeoutMs: number; say: (l: string) => void }): Promise<void> {
  const run = await mkdtemp(join(tmpdir(), 'hasup-restore-pg-'));
  try {
    if (o.user) await chown(run, o.user.uid, o.user.gid);
    const q = (v: string) => `'${v.replace(/'/g, "''")}'`;
    await writeFile(join(run, 'pg_hba.conf'), 'local all all peer\n');
    await writeFile(join(run, 'pg_ident.conf'), '');
    await writeFile(
      join(run, 'postgresql.conf'),
      [
        "listen_addresses = ''",
        `unix_socket_directories = ${q(run)}`,
        'archive_mode = off',
        `hba_file = ${q(join(run, 'pg_hba.conf'))}`,
        `ident_file = ${q(join(run, 'pg_ident.conf'))}`,
        `restore_command = ${q(o.restoreCommand)}`,
        // Not a hot standby: nobody reads it while it replays, and a hot standby must have at least the source's
        // max_connections, max_wal_senders, ... or PostgreSQL aborts the recovery ("insufficient parameter settings").
        'hot_standby = off',
        'max_connections = 20',
        'logging_collector = off',
        '',
      ].join('\n'),
    );
    const child = spawn(join(o.binDir, 'postgres'), ['-D', o.dataDir, '-c', `config_file=${join(run, 'postgresql.conf')}`], {
      cwd: run,
      env: { ...TOOL_ENV, ...(o.user ? { USER: o.user.name } : {}) },
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(o.user ? { uid: o.user.uid, gid: o.user.gid } : {}),
    });
    const log: string[] = [];
    let exited: number | null | undefined;
    child.on('exit', (code) => (exited = code));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim() !== '') log.push(line.trim());
      if (log.length > 200) log.splice(0, log.length - 200);
    });
    const deadline = Date.now() + o.timeoutMs;
    let said = '';
    try {
      for (;;) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (exited !== undefined) {
          const why = log.filter((l) => /FATAL|PANIC|ERROR/.test(l)).slice(-3).join(' | ') || log.slice(-3).join(' | ');
          throw new Error(`PostgreSQL stopped before it reached the target (exit code ${exited}): ${why}`);
        }
        // The backup's own pg_control says "in production" until the startup process rewrites it: the promotion is
        // what the server says once recovery ended (not "read-only connections", which a hot standby says meanwhile).
        if (log.some((l) => /database system is ready to accept connections/.test(l)) && (await clusterState(o.binDir, o.dataDir, o.user)) === 'in production') break;
        const last = [...log].reverse().find((l) => /restored log file "([0-9A-F]{24})"/.test(l));
        const seg = last ? /restored log file "([0-9A-F]{24})"/.exec(last)![1]! : null;
        if (seg && seg !== said) o.say(`  replaying: restored WAL segment ${seg} from the repository`);
        if (seg) said = seg;
        if (Date.now() > deadline) throw new Error(`recovery did not end within ${o.timeoutMs / 1000} s (--recovery-timeout)`);
      }
      const promoted = log.find((l) => /selected new timeline ID: (\d+)/.test(l));
      o.say(`  recovery ended at the target${promoted ? ` on timeline ${/selected new timeline ID: (\d+)/.exec(promoted)![1]}` : ''}; stopping the restore's PostgreSQL`);
    } finally {
      if (exited === undefined) {
        child.kill('SIGINT');
        for (let i = 0; i < 600 && exited === undefined; i++) await new Promise((r) => setTimeout(r, 100));
        if (exited === undefined) child.kill('SIGKILL');
      }
    }
  } finally {
    await rm(run, { recursive: true, force: true });
  }
}

async function clusterState(binDir: string, dataDir: string, user: ServiceUser | undefined): Promise<string | null> {
  const r = await runTool(join(binDir, 'pg_controldata'), [dataDir], { ...(user ? { user } : {}), cwd: '/', timeoutMs: 10_000 });
  return /Database cluster state:\s*(.+)/.exec(r.stdout)?.[1]?.trim() ?? null;
}

/** For tests: what the marker written beside the restored data says. */
export async function readRestoredMarker(svcRoot: string): Promise<{ repo: string; target: RestoreTarget } | null> {
  try {
    return JSON.parse(await readFile(join(svcRoot, RESTORED_FOR_NEW_CLUSTER), 'utf8')) as { repo: string; target: RestoreTarget };
  } catch {
    return null;
  }
}

export const NEW_CLUSTER_DEFAULTS = { name: DEFAULT_CLUSTER_NAME, caDays: String(CA_DAYS) };
