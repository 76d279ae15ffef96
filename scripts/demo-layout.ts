/**
 * Where `npm run demo` puts things and which addresses and ports it uses:
 * one place, so the start, the stop, the checks and the printed help agree.
 */
import { join, relative } from 'node:path';
import { installRoot } from '../src/supervisor/install-paths.js';
import { shebangNodeArgs } from '../src/cli/shebang.js';

/** Member i runs on 127.0.0.i: Linux routes all of 127/8 to lo, so no setup is needed and Elasticsearch accepts the bind. */
export const MEMBERS = [1, 2, 3] as const;
export const memberAddress = (i: number): string => `127.0.0.${i}`;

/**
 * Every member keeps hasup's production defaults: each has its own address,
 * so the same port on 127.0.0.1, .2 and .3 does not clash.
 */
export const MEMBER_PORTS = {
  'gossip (UDP and TCP)': 9638,
  'hasup API': 9631,
  PostgreSQL: 5432,
  'etcd client': 2379,
  'etcd peer': 2380,
  'Elasticsearch HTTP': 9200,
  'Elasticsearch transport': 9300,
} as const;

/** HAProxy on 127.0.0.1, on ports none of member 1's services uses there. */
export const HAPROXY = { host: '127.0.0.1', writePort: 15432, readOnlyPort: 15433, statsPort: 17000 } as const;

/** Three JVMs share a small machine with PostgreSQL and etcd: a small heap each (the plan's default is 512m). */
export const ES_HEAP = '384m';

/** The flags hasup's own shebang runs node with, for the daemons the demo starts with `node`. */
const HASUP_BIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.js');
export const HASUP_NODE_ARGS = shebangNodeArgs(HASUP_BIN);

/** Bumped when the demo's directory layout changes, so an older .demo is started afresh instead of misread. */
export const LAYOUT_VERSION = 3;

export class DemoLayout {
  readonly root = installRoot();
  readonly dir = join(this.root, '.demo');
  /** The pgBackRest repository the members share (on one machine a directory; in production a shared mount). */
  readonly backupRepo = join(this.dir, 'backup-repo');
  /** The cluster secrets file `hasup cluster create` writes (ring key, API token, PostgreSQL passwords). */
  readonly secretsFile = join(this.dir, 'secrets.json');
  /** Written once every member is prepared; its absence means the directory is from an older or interrupted demo. */
  readonly markerFile = join(this.dir, 'demo.json');
  readonly haproxyDir = join(this.dir, 'haproxy');
  readonly haproxyConfig = join(this.haproxyDir, 'haproxy.cfg');
  readonly haproxyLog = join(this.haproxyDir, 'haproxy.log');
  readonly haproxyPidFile = join(this.haproxyDir, 'haproxy.pid');
  /** The CLI of this build (dist/ for `npm run demo`, or whichever output directory this script was compiled into). */
  readonly hasupBin = HASUP_BIN;

  memberDir(i: number): string {
    return join(this.dir, `member-${i}`);
  }

  configFile(i: number): string {
    return join(this.memberDir(i), 'hasup.toml');
  }

  /** The daemon's stdout and stderr: its JSON log. */
  logFile(i: number): string {
    return join(this.memberDir(i), 'hasup.log');
  }

  pidFile(i: number): string {
    return join(this.memberDir(i), 'hasup.pid');
  }

  /** How to type the CLI from the checkout, for the printed help. */
  hasupCommand(): string {
    return `node ${relative(this.root, this.hasupBin)}`;
  }

  /** A path as printed: relative to the checkout when inside it (shorter), else absolute. */
  show(path: string): string {
    const rel = relative(this.root, path);
    return rel.startsWith('..') ? path : rel;
  }
}
