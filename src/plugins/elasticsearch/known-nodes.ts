import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * SVC_ROOT/known-nodes.json: every Elasticsearch node this member has seen
 * in the cluster, node name (member id) → node id. A node's id is made once
 * with its data and is what the voting configuration holds; once a member
 * is dead its node is no longer in the cluster to be asked, so its id is
 * remembered while it is (voting-exclusions.ts needs it after `hasup
 * depart`). Kept across restarts of the supervisor.
 */
export class KnownNodes {
  private readonly ids = new Map<string, string>();

  constructor(private readonly file: string) {
    if (!existsSync(file)) return;
    try {
      const data = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (typeof data !== 'object' || data === null) return;
      for (const [name, id] of Object.entries(data)) if (typeof id === 'string') this.ids.set(name, id);
    } catch {
      // A damaged memory is relearned from the cluster; only the ids of nodes gone meanwhile are lost.
    }
  }

  get map(): ReadonlyMap<string, string> {
    return this.ids;
  }

  /** Records the nodes of one look at the cluster; writes the file when something is new. Returns the names learned. */
  learn(nodes: Array<{ id: string; name: string }>): string[] {
    const learned: string[] = [];
    for (const n of nodes) {
      if (!n.id || !n.name || this.ids.get(n.name) === n.id) continue;
      this.ids.set(n.name, n.id);
      learned.push(n.name);
    }
    if (learned.length > 0) this.save();
    return learned;
  }

  private save(): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o750 });
    const tmp = `${this.file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(Object.fromEntries(this.ids), null, 2)}\n`, { mode: 0o640 });
    renameSync(tmp, this.file);
  }
}
