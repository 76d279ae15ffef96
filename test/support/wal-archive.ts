/**
 * WAL as the pgBackRest integration tests make and watch it: rows written
 * and segments switched, PostgreSQL's archiver caught up, the segments still
 * waiting in pg_wal, a smaller archive-push queue, and the segments
 * pgBackRest said it dropped when that queue was full.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { query } from './postgresql-server.js';
import { installConfig, render, waitFor, type Harness } from './service-harness.js';

/** `times` rounds of 2000 rows into the test's table t (v text) and a WAL switch; the segments switched from, in order. */
export async function writeAndSwitch(h: Harness, times: number): Promise<string[]> {
  const switched: string[] = [];
  for (let i = 0; i < times; i++) {
    await query(h, "INSERT INTO t (v) SELECT repeat('x', 200) FROM generate_series(1, 2000)");
    switched.push((await query<{ seg: string }>(h, 'SELECT pg_walfile_name(pg_switch_wal()) AS seg'))[0]!.seg);
  }
  return switched;
}

/** Until pg_stat_archiver counts `seg` (or a later segment) as archived. */
export function archivedUpTo(h: Harness, seg: string, timeoutMs: number): Promise<true> {
  return waitFor(`PostgreSQL to count ${seg} as archived`, timeoutMs, async () => {
    const [a] = await query<{ last_archived_wal: string | null }>(h, 'SELECT last_archived_wal FROM pg_stat_archiver');
    return a?.last_archived_wal && a.last_archived_wal >= seg ? true : undefined;
  }, 500);
}

/** The segments waiting in pg_wal to be archived (their .ready files). */
export function walWaiting(h: Harness): string[] {
  return readdirSync(join(h.ctx.paths.data, 'pg_wal', 'archive_status')).filter((f) => f.endsWith('.ready'));
}

/** The service's config with pgBackRest's archive_push_queue_max at `size`, installed (PostgreSQL is not told). */
export function installArchiveQueueMax(h: Harness, size: string): void {
  installConfig(h, render(h, { ...h.ctx.cfg, backup: { ...(h.ctx.cfg.backup as object), archive_push_queue_max: size } }));
}

/** The segments archive-push said it dropped because its queue was full, from the server's output. */
export function droppedWal(output: string[]): string[] {
  return output.flatMap((l) => [...l.matchAll(/dropped WAL file '([0-9A-F]{24})' because archive queue exceeded/g)].map((m) => m[1]!));
}
