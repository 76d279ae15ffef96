/**
 * The JVMs of a test's Elasticsearch nodes, found by their command lines in
 * /proc: the launcher names the node's config dir and the server its temp
 * dir, both under the node's service dir. Every JVM found is remembered, so
 * a test's end can stop, by pid, each one it saw that still runs.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface EsJvm {
  pid: number;
  ppid: number;
  role: 'launcher' | 'server';
  rssMiB: number;
}

/** A pid that still runs the very command line we saw (not a reused pid). */
export function stillRunning(pid: number, cmdline: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') === cmdline;
  } catch {
    return false;
  }
}

export class EsJvms {
  /** pid → command line of every JVM found so far. */
  readonly seen = new Map<number, string>();

  /** The JVMs running now for the node whose service dir is `serviceDir`. */
  find(serviceDir: string): EsJvm[] {
    const out: EsJvm[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (!argv[0]?.endsWith('/java') || !argv.some((a) => a.includes(`${serviceDir}/`))) continue;
        const status = readFileSync(`/proc/${entry}/status`, 'utf8');
        const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
        const rssMiB = Math.round(Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024);
        const role = argv.includes('org.elasticsearch.launcher.CliToolLauncher') ? ('launcher' as const) : ('server' as const);
        const pid = Number(entry);
        this.seen.set(pid, argv.join(' '));
        out.push({ pid, ppid, role, rssMiB });
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  /** The pids of find(serviceDir). */
  pids(serviceDir: string): number[] {
    return this.find(serviceDir).map((j) => j.pid);
  }

  /** Whatever a failed test left behind: SIGKILL to each JVM seen that still runs, by pid. */
  killLeftovers(): void {
    for (const [pid, cmdline] of this.seen) if (stillRunning(pid, cmdline)) process.kill(pid, 'SIGKILL');
  }
}
