import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { UpgradeRefused, type DriverContext, type UpgradeTarget } from '../supervisor/driver.js';
import { runTool } from './service-dirs.js';

/**
 * What `hasup upgrade postgresql|etcd --to TO` means on one member: which
 * program TO names, checked before anything changes (it exists here, it
 * runs, it says which version it is, and that version can run this
 * member's data). The drivers' upgradeTarget hooks call these; the
 * rollout (src/cli/rollout/) asks every member before it touches one.
 */

const VERSION_TIMEOUT_MS = 15_000;

/** `PROGRAM --version`'s first line; refused when it does not run. */
async function versionLine(program: string, ctx: DriverContext, signal: AbortSignal): Promise<string> {
  if (!existsSync(program)) throw new UpgradeRefused(`${program} does not exist on this member`);
  const r = await runTool(program, ['--version'], { cwd: '/', timeoutMs: VERSION_TIMEOUT_MS, signal, ...(ctx.user ? { user: ctx.user } : {}) }).catch((err: Error) => {
    throw new UpgradeRefused(`${program} --version did not run: ${err.message}`);
  });
  const line = r.stdout.split('\n')[0]?.trim() ?? '';
  if (r.code !== 0 || line === '') throw new UpgradeRefused(`${program} --version failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 200)}`);
  return line;
}

/** "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" → "15.14"; "postgres (PostgreSQL) 16beta1" → "16beta1". */
export function parsePostgresVersion(line: string): { version: string; major: string } | undefined {
  const m = /\(PostgreSQL\)\s+(\d+)((?:\.\d+)?[a-z0-9]*)/.exec(line);
  return m ? { version: `${m[1]}${m[2]}`, major: m[1]! } : undefined;
}

/**
 * PostgreSQL: TO is a major version ("15": Debian's /usr/lib/postgresql/15/bin),
 * an exact version ("15.14": that directory, whose postgres must say so), or
 * an absolute path (a bin directory, or its postgres). Its major version
 * must be the data directory's: a new major needs pg_upgrade, which a
 * restart cannot do.
 */
export async function postgresqlUpgradeTarget(ctx: DriverContext, to: string, signal: AbortSignal): Promise<UpgradeTarget> {
  const exact = /^(\d+)\.(\d+)$/.exec(to);
  const major = /^(\d+)$/.exec(to);
  let binDir: string;
  if (exact || major) binDir = `/usr/lib/postgresql/${(exact ?? major)![1]}/bin`;
  else if (isAbsolute(to)) binDir = isDirectory(to) ? to : basename(to) === 'postgres' ? dirname(to) : to;
  else throw new UpgradeRefused(`--to must be a PostgreSQL version (15, 15.14) or the absolute path of a bin directory, got "${to}"`);
  const postgres = join(binDir, 'postgres');
  const line = await versionLine(postgres, ctx, signal);
  const found = parsePostgresVersion(line);
  if (!found) throw new UpgradeRefused(`${postgres} --version printed "${line.slice(0, 120)}", not a PostgreSQL version`);
  if (exact && found.version !== to) throw new UpgradeRefused(`PostgreSQL ${to} is not installed on this member (${postgres} is ${found.version})`);
  const dataMajor = readDataMajor(ctx);
  if (dataMajor !== undefined && dataMajor !== found.major) {
    throw new UpgradeRefused(`${postgres} is PostgreSQL ${found.version}, and this member's data directory is PostgreSQL ${dataMajor}: a new major version needs pg_upgrade, not a restart`);
  }
  return { cfg: { bin_dir: binDir }, version: found.version };
}

function readDataMajor(ctx: DriverContext): string | undefined {
  try {
    return readFileSync(join(ctx.paths.data, 'PG_VERSION'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** "etcd Version: 3.4.23" → [3, 4, 23]. */
export function parseEtcdVersion(line: string): number[] | undefined {
  const m = /etcd Version:\s*(\d+)\.(\d+)\.(\d+)/.exec(line);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/**
 * etcd: TO is the absolute path of an etcd binary (or of its directory), or a
 * version ("3.4.23") that the configured binary must already be. A lower
 * minor version than the one running is refused: etcd does not take its
 * cluster's data back to an older minor.
 */
export async function etcdUpgradeTarget(ctx: DriverContext, to: string, signal: AbortSignal): Promise<UpgradeTarget> {
  const current = String(ctx.cfg.bin);
  let bin: string;
  if (/^\d+\.\d+\.\d+$/.test(to)) bin = current;
  else if (isAbsolute(to)) bin = isDirectory(to) ? join(to, 'etcd') : to;
  else throw new UpgradeRefused(`--to must be an etcd version (3.4.23) or the absolute path of an etcd binary, got "${to}"`);
  const line = await versionLine(bin, ctx, signal);
  const found = parseEtcdVersion(line);
  if (!found) throw new UpgradeRefused(`${bin} --version printed "${line.slice(0, 120)}", not an etcd version`);
  const version = found.join('.');
  if (bin === current && /^\d/.test(to) && version !== to) throw new UpgradeRefused(`etcd ${to} is not installed on this member (${bin} is ${version}): give the path of its binary`);
  const running = parseEtcdVersion(await versionLine(current, ctx, signal).catch(() => ''));
  if (running && (found[0]! < running[0]! || (found[0] === running[0] && found[1]! < running[1]!))) {
    throw new UpgradeRefused(`${bin} is etcd ${version}, older than the ${running.join('.')} running: etcd does not go back to an older minor version`);
  }
  return { cfg: { bin }, version };
}

/** An Elasticsearch home's version, from its lib/elasticsearch-X.Y.Z.jar (no JVM to start); undefined when there is none. */
export function elasticsearchHomeVersion(home: string): number[] | undefined {
  let names: string[];
  try {
    names = readdirSync(join(home, 'lib'));
  } catch {
    return undefined;
  }
  for (const name of names) {
    const m = /^elasticsearch-(\d+)\.(\d+)\.(\d+)\.jar$/.exec(name);
    if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  }
  return undefined;
}

/**
 * Elasticsearch: TO is the absolute path of another Elasticsearch home (the
 * folder with bin/elasticsearch), run as an installed distribution from
 * then on. `currentHome` is the one running. Another major version is
 * refused (a rolling upgrade goes through the last minor of the previous
 * major, which a restart alone cannot check), and so is an older version
 * (Elasticsearch does not read data a newer one wrote).
 */
export function elasticsearchUpgradeTarget(currentHome: string, to: string): UpgradeTarget {
  if (!isAbsolute(to)) throw new UpgradeRefused(`--to must be the absolute path of an Elasticsearch home (the folder with bin/elasticsearch), got "${to}"`);
  if (!existsSync(join(to, 'bin', 'elasticsearch'))) throw new UpgradeRefused(`${join(to, 'bin', 'elasticsearch')} does not exist on this member`);
  const found = elasticsearchHomeVersion(to);
  if (!found) throw new UpgradeRefused(`${to} has no lib/elasticsearch-VERSION.jar: not an Elasticsearch home`);
  const version = found.join('.');
  const running = elasticsearchHomeVersion(currentHome);
  if (running) {
    if (found[0] !== running[0]) throw new UpgradeRefused(`${to} is Elasticsearch ${version} and ${running.join('.')} runs here: hasup upgrades within a major version`);
    if (found[1]! < running[1]! || (found[1] === running[1] && found[2]! < running[2]!)) {
      throw new UpgradeRefused(`${to} is Elasticsearch ${version}, older than the ${running.join('.')} running: Elasticsearch does not read data a newer version wrote`);
    }
  }
  return { cfg: { launcher: 'distribution', home: to }, version };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
