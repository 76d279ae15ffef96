import type { HaContext } from './context.js';
import type { DatabaseStatus, PeerEndpoint } from './database.js';
import type { LeaseKeeper } from './lease.js';
import type { HaSettings } from './settings.js';

/**
 * The leader of a standby cluster ([ha] standby_of = "HOST:PORT"): it holds
 * the leader key like any leader (so the cluster's members agree on whom
 * to cascade from, and a new one is elected when it dies), but it never
 * promotes: its PostgreSQL streams from the primary cluster through
 * `standby_of`, which reaches that cluster's leader wherever it is (its
 * HAProxy write port), so the spare follows the primary cluster through
 * its failovers. When streaming is cut, restore_command (the shared
 * backup repository) keeps it replaying.
 *
 * Setting standby_of on a primary cluster demotes it: its leader stops
 * taking writes, rewinds and follows the new primary cluster. Clearing it
 * promotes the standby leader, and the cluster takes writes.
 */

/** The name a standby leader's upstream goes by (it is no member of this cluster). */
export const PRIMARY_CLUSTER = 'primary-cluster';

/** How long a standby leader may not stream before it re-points its PostgreSQL (it may be catching up from the archive). */
const NOT_STREAMING_RECHECK_MS = 10_000;

export class StandbyLeader {
  private notStreamingSince: number | null = null;

  constructor(
    private readonly ctx: HaContext,
    private readonly lease: LeaseKeeper,
  ) {}

  async turn(db: DatabaseStatus, up: NonNullable<HaSettings['standbyOf']>): Promise<void> {
    const ctx = this.ctx;
    const endpoint: PeerEndpoint = { member: PRIMARY_CLUSTER, ...up };
    const where = `${up.host.includes(':') ? `[${up.host}]` : up.host}:${up.port}`;
    if (db.inRecovery === false) {
      // A primary told to follow another cluster (cluster demote): no writes from here on, whether or
      // not that cluster takes writes yet (in a planned switch, this one is demoted before the other is
      // promoted). Stopped at once and back read-only; the next turns follow the other cluster once it
      // is a primary, rewinding first if this one wrote past the fork.
      ctx.log.warn({ event: 'ha_standby_cluster', upstream: where }, `this cluster becomes a standby of ${where}: the leader stops taking writes and follows it`);
      ctx.appliedSync = undefined;
      ctx.deps.leadership.update({ primaryWritable: false, reason: `standby leader of ${where}` });
      try {
        await ctx.deps.db.demote(`this cluster becomes a standby of ${where}`);
      } catch (err) {
        ctx.decide(`cannot stop the primary to become a standby of ${where}: ${(err as Error).message}`, 'warn');
        return;
      }
      await this.lease.disarmFence();
      ctx.decide(`standby leader: no longer takes writes; follows the primary cluster at ${where} once it takes writes`);
      return;
    }
    let needed: string | undefined;
    const now = ctx.clock.now();
    if (!db.running) needed = `PostgreSQL is not running (${db.reason ?? 'no reason known'})`;
    else if (db.upstream !== PRIMARY_CLUSTER) needed = `it follows ${db.upstream ?? 'nobody'}`;
    else if (!db.streaming) {
      this.notStreamingSince ??= now;
      if (now - this.notStreamingSince > NOT_STREAMING_RECHECK_MS) needed = 'it does not stream from the primary cluster';
    } else this.notStreamingSince = null;
    if (needed) {
      ctx.log.info({ event: 'ha_follow', leader: PRIMARY_CLUSTER, upstream: where, reason: needed }, `standby leader: following the primary cluster at ${where} (${needed})`);
      this.notStreamingSince = null;
      await this.follow(endpoint, where);
      return;
    }
    ctx.decide(`standby leader: ${db.streaming ? 'streaming' : 'replaying from the archive'} from the primary cluster at ${where}`);
  }

  /**
   * The leader of a warm spare kept current from a copy of the primary
   * cluster's repository ([ha] standby_of_repo): no upstream to stream
   * from; its PostgreSQL replays the WAL archived there (restore_command,
   * read only) and the other members cascade from it. The re-base on the
   * newest backup at each schedule slot is the spare keeper's
   * (src/node/spare.ts), which stops the database meanwhile (db.busy).
   */
  async turnFromRepo(db: DatabaseStatus, repo: string): Promise<void> {
    const ctx = this.ctx;
    if (db.busy) {
      ctx.decide(`standby leader: ${db.busy}`);
      return;
    }
    if (db.inRecovery === false) {
      // A primary told to become a spare of a repository copy: no writes from here on; the next re-base makes it one.
      ctx.log.warn({ event: 'ha_standby_cluster', repo }, `this cluster becomes a warm spare of the repository copy ${repo}: the leader stops taking writes`);
      ctx.appliedSync = undefined;
      ctx.deps.leadership.update({ primaryWritable: false, reason: `standby leader of the repository copy ${repo}` });
      try {
        await ctx.deps.db.demote(`this cluster becomes a warm spare of the repository copy ${repo}`);
      } catch (err) {
        ctx.decide(`cannot stop the primary to become a warm spare of ${repo}: ${(err as Error).message}`, 'warn');
        return;
      }
      await this.lease.disarmFence();
      ctx.decide(`standby leader: no longer takes writes; replays the repository copy ${repo} (its next re-base makes it follow the primary cluster's history)`);
      return;
    }
    if (!db.running || db.upstream !== null) {
      const why = !db.running ? `PostgreSQL is not running (${db.reason ?? 'no reason known'})` : `it follows ${db.upstream}`;
      if (!ctx.deps.db.replayArchive) {
        ctx.decide(`standby leader: cannot replay the repository copy ${repo} on this database`, 'warn');
        return;
      }
      ctx.log.info({ event: 'ha_follow', leader: 'repository', repo, reason: why }, `standby leader: replaying the repository copy ${repo} (${why})`);
      try {
        await ctx.deps.db.replayArchive(ctx.stop.signal);
        ctx.decide(`standby leader: replays the WAL archived in the repository copy ${repo}`);
      } catch (err) {
        ctx.decide(`standby leader: cannot replay the repository copy ${repo} yet: ${(err as Error).message}`, 'warn');
      }
      return;
    }
    ctx.decide(`standby leader: replays the WAL archived in the repository copy ${repo}`);
  }

  private async follow(endpoint: PeerEndpoint, where: string): Promise<void> {
    const ctx = this.ctx;
    try {
      await ctx.deps.db.follow(endpoint, { leaderIsPrimary: true }, ctx.stop.signal);
      ctx.decide(`standby leader: following the primary cluster at ${where}`);
    } catch (err) {
      ctx.decide(`standby leader: cannot follow the primary cluster at ${where} yet: ${(err as Error).message}`, 'warn');
    }
  }
}
