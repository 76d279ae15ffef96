/**
 * Prepares the demo's three members the way an operator prepares three
 * hosts: `hasup cluster create` on the first, `hasup cluster join` on the
 * others, each writing that member's hasup.toml; the demo then adds its one
 * local setting (a small Elasticsearch heap) to each file.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadNodeConfig } from '../src/supervisor/config-file.js';
import { resolveServiceUser } from '../src/supervisor/process-runner.js';
import { DemoError } from './demo-procs.js';
import { ES_HEAP, HASUP_NODE_ARGS, LAYOUT_VERSION, MEMBERS, memberAddress, type DemoLayout } from './demo-layout.js';

/** The services each member loads at its first start; etcd is not listed: the supervisors form it from the ring. */
export const DEMO_SERVICES = ['postgresql', 'elasticsearch'];
export const CLUSTER_NAME = 'demo';

export interface Marker {
  layout: number;
  created_at: string;
  /**
   * Set once the cluster has been up completely. A first start cut short
   * (Ctrl-C, a timeout) can leave members that are etcd voters on record but
   * never cloned PostgreSQL, which hasup does not recover from on its own
   * yet; such a directory is started afresh rather than restarted.
   */
  up_once: boolean;
}

export function readMarker(layout: DemoLayout): Marker | undefined {
  try {
    const marker = JSON.parse(readFileSync(layout.markerFile, 'utf8')) as Marker;
    return marker.layout === LAYOUT_VERSION ? marker : undefined;
  } catch {
    return undefined;
  }
}

function writeMarker(layout: DemoLayout, marker: Marker): void {
  writeFileSync(layout.markerFile, `${JSON.stringify(marker, null, 2)}\n`);
}

/** Records that the cluster in .demo has been up: from now on `npm run demo` restarts it with its data. */
export function markUp(layout: DemoLayout): void {
  const marker = readMarker(layout);
  if (marker && !marker.up_once) writeMarker(layout, { ...marker, up_once: true });
}

/**
 * Runs the hasup CLI of this build. `echo` prints the command as an operator
 * would type it ("command") and also its output, indented ("all").
 */
export function hasup(layout: DemoLayout, args: string[], echo: 'all' | 'command' | 'none' = 'all'): string {
  if (echo !== 'none') console.log(`$ hasup ${args.map((a) => layout.show(a)).join(' ')}`);
  const run = spawnSync(process.execPath, [...HASUP_NODE_ARGS, layout.hasupBin, ...args], { cwd: layout.root, encoding: 'utf8' });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`.trimEnd();
  if (run.status !== 0) throw new DemoError(`hasup ${args.slice(0, 2).join(' ')} failed (exit ${run.status ?? run.signal}):\n${output}`);
  if (echo === 'all' && output) console.log(output.replace(/^/gm, '    '));
  return run.stdout;
}

/** Member i's prepare flags: its own address, state directory and hasup.toml. */
function nodeFlags(layout: DemoLayout, i: number): string[] {
  return ['--advertise', memberAddress(i), '--state-dir', layout.memberDir(i), '--config', layout.configFile(i), ...DEMO_SERVICES.flatMap((s) => ['--service', s])];
}

export async function prepareCluster(layout: DemoLayout): Promise<void> {
  mkdirSync(layout.dir, { recursive: true, mode: 0o755 });
  // The backup repository: writable by the user PostgreSQL runs as (hasup's service user when run as root).
  mkdirSync(layout.backupRepo, { mode: 0o750 });
  if (process.getuid?.() === 0) {
    const user = await resolveServiceUser('hasup');
    chownSync(layout.backupRepo, user.uid, user.gid);
  }
  const [first, ...others] = MEMBERS;
  hasup(layout, ['cluster', 'create', ...nodeFlags(layout, first), '--secrets', layout.secretsFile, '--name', CLUSTER_NAME]);
  for (const i of others) hasup(layout, ['cluster', 'join', memberAddress(first), '--secrets', layout.secretsFile, ...nodeFlags(layout, i)]);
  for (const i of MEMBERS) {
    appendFileSync(
      layout.configFile(i),
      [
        '',
        '# Added by `npm run demo`: three Elasticsearch JVMs share one small machine with PostgreSQL and etcd.',
        '[service.elasticsearch]',
        `heap = "${ES_HEAP}"`,
        '',
        '# Added by `npm run demo`: WAL archiving and backups with pgBackRest into a repository the members share,',
        '# a full backup every night and an incremental one every hour (UTC), whichever member leads.',
        '[service.postgresql.backup]',
        `repo_path = ${JSON.stringify(layout.backupRepo)}`,
        'schedule_full = "0 3 * * *"',
        'schedule_incr = "0 * * * *"',
        '',
      ].join('\n'),
    );
    // A file `hasup run` would refuse is better caught here, with its name, than in a daemon's log.
    loadNodeConfig(layout.configFile(i));
  }
  writeMarker(layout, { layout: LAYOUT_VERSION, created_at: new Date().toISOString(), up_once: false });
}
