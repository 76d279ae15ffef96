import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A cgroup (v2) per fenced service, so one write to its cgroup.kill ends the
 * postmaster and every backend it ever forked, even one forked while the
 * fence was killing the others. Made under the supervisor's own cgroup (a
 * systemd unit with Delegate=yes owns that subtree); absent when cgroup v2
 * is not mounted or not writable (not root): the fence then finds the
 * processes through /proc alone.
 */
const CGROUP_FS = '/sys/fs/cgroup';

/** The mount point of the unified (v2) hierarchy: pure v2, or the hybrid layout's `unified`. */
export function cgroupV2Mount(fsRoot = CGROUP_FS): string | undefined {
  if (existsSync(join(fsRoot, 'cgroup.controllers'))) return fsRoot;
  const hybrid = join(fsRoot, 'unified');
  if (existsSync(join(hybrid, 'cgroup.procs'))) return hybrid;
  return undefined;
}

/** This process's cgroup path in the v2 hierarchy (the "0::" line of /proc/self/cgroup). */
export function ownCgroupPath(procSelfCgroup = '/proc/self/cgroup'): string | undefined {
  try {
    const line = readFileSync(procSelfCgroup, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line?.slice(3) || undefined;
  } catch {
    return undefined;
  }
}

/** Creates (if needed) the cgroup for `service` of `memberId`; its directory, or undefined when cgroups cannot be used. */
export function ensureServiceCgroup(memberId: string, service: string, fsRoot = CGROUP_FS): string | undefined {
  const mount = cgroupV2Mount(fsRoot);
  const own = ownCgroupPath();
  if (!mount || own === undefined) return undefined;
  const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
  // A cgroup that holds processes may not have children with controllers; ours enables none.
  const dir = join(mount, own, 'hasup', safe(memberId), safe(service));
  try {
    mkdirSync(dir, { recursive: true });
  } catch {
    return undefined;
  }
  return existsSync(join(dir, 'cgroup.kill')) ? dir : undefined;
}

/** Removes an empty service cgroup (on member shutdown); a busy one stays. */
export function removeServiceCgroup(dir: string): void {
  try {
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() === '' && readdirSync(dir).length > 0) rmdirSync(dir);
  } catch {
    // busy or gone: nothing to do
  }
}
