/**
 * Which harness run owns which namespaces and links. Every run writes a
 * marker (its pid and that process's start time) under the OS temp dir
 * before it creates anything, so a resource carrying the harness prefix that
 * no live run claims was left by a run that crashed or was SIGKILLed, and can
 * be removed without touching a parallel run's.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { runCommandSync, runCommandSyncQuiet } from './commands.js';

export interface RunMarker {
  pid: number;
  /** Start time of `pid` in clock ticks since boot: tells a reused pid from the owner. */
  startTime: string;
  prefix: string;
  runId: string;
  subnet: string;
  /** State directory the run created itself (removed with its namespaces), if any. */
  ownedDir?: string;
}

export const MARKER_DIR = join(tmpdir(), 'hasup-netns');

function markerFile(prefix: string, runId: string): string {
  return join(MARKER_DIR, `${prefix}${runId}.json`);
}

export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) may contain spaces, so count from its closing paren.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

export function writeMarker(marker: RunMarker): void {
  mkdirSync(MARKER_DIR, { recursive: true });
  writeFileSync(markerFile(marker.prefix, marker.runId), JSON.stringify(marker));
}

export function removeMarker(prefix: string, runId: string): void {
  rmSync(markerFile(prefix, runId), { force: true });
}

function ownerAlive(m: RunMarker): boolean {
  return processStartTime(m.pid) === m.startTime;
}

export function readMarkers(prefix: string): RunMarker[] {
  let names: string[];
  try {
    names = readdirSync(MARKER_DIR);
  } catch {
    return [];
  }
  const out: RunMarker[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(readFileSync(join(MARKER_DIR, name), 'utf8')) as RunMarker);
    } catch {
      // A marker being written right now or truncated by a crash: no owner to protect.
    }
  }
  return out;
}

export function liveMarkers(prefix: string): RunMarker[] {
  return readMarkers(prefix).filter(ownerAlive);
}

export function listNamespaces(): string[] {
  const text = runCommandSync('ip', ['-j', 'netns', 'list']).trim();
  return text ? (JSON.parse(text) as Array<{ name: string }>).map((n) => n.name) : [];
}

export function listLinks(): string[] {
  return (JSON.parse(runCommandSync('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname);
}

export function namespacePids(ns: string): number[] {
  try {
    return runCommandSync('ip', ['netns', 'pids', ns])
      .split('\n')
      .filter((s) => s.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Run id embedded in a harness resource name: PREFIX + RUNID + '-' + role. */
function runIdOf(prefix: string, name: string): string | null {
  if (!name.startsWith(prefix)) return null;
  const rest = name.slice(prefix.length);
  const dash = rest.indexOf('-');
  return dash > 0 ? rest.slice(0, dash) : null;
}

/**
 * Removes namespaces and links with `prefix` whose run has no live owner,
 * killing whatever still runs inside those namespaces, and their markers.
 * Returns the names removed.
 */
export function sweepOrphans(prefix: string, killSignal: NodeJS.Signals = 'SIGKILL'): string[] {
  const live = new Set(liveMarkers(prefix).map((m) => m.runId));
  const orphan = (name: string) => {
    const id = runIdOf(prefix, name);
    return id !== null && !live.has(id);
  };
  const removed: string[] = [];
  const namespaces = listNamespaces().filter(orphan);
  for (const ns of namespaces) {
    for (const pid of namespacePids(ns)) {
      try {
        process.kill(pid, killSignal);
      } catch {
        // already gone
      }
    }
  }
  // Links first (a veth's host end takes its peer along), then the namespaces.
  for (const link of listLinks().filter(orphan)) {
    if (runCommandSyncQuiet('ip', ['link', 'delete', link])) removed.push(link);
  }
  for (const ns of namespaces) {
    if (runCommandSyncQuiet('ip', ['netns', 'delete', ns])) removed.push(ns);
  }
  for (const m of readMarkers(prefix)) {
    if (live.has(m.runId)) continue;
    // Only a directory the harness itself made under the temp dir, whatever a marker says.
    if (m.ownedDir && dirname(m.ownedDir) === tmpdir() && basename(m.ownedDir).startsWith('hasup-cluster-')) {
      rmSync(m.ownedDir, { recursive: true, force: true });
      removed.push(m.ownedDir);
    }
    removeMarker(prefix, m.runId);
  }
  return removed;
}
