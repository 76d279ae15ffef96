import type { HaContext } from './context.js';
import type { BootstrapPlan } from './database.js';
import { sleep } from './clock.js';
import { PRIMARY_CLUSTER } from './standby-cluster.js';

const BOOTSTRAP_POLL_MS = 500;

/**
 * How a member with an empty data directory gets its data (called from the
 * database's prepare): the first to claim the initialize key creates the
 * database; everyone else waits for a healthy leader and copies it. A
 * cluster restore that names this member restores it from the repository.
 *
 * The member that claimed the initialize key creates the database again
 * only while the cluster has never run a primary (no optime): once it has,
 * a member whose data is gone must not start an empty database that the
 * others could then follow. It waits for a leader to copy, or, when every
 * member lost its data, for the operator's `hasup restore`.
 */
export async function bootstrapPlan(ctx: HaContext, signal: AbortSignal): Promise<BootstrapPlan> {
  const { store } = ctx.deps;
  let told = '';
  const tell = (msg: string) => {
    if (msg !== told) ctx.log.info({ event: 'ha_bootstrap_wait' }, msg);
    told = msg;
  };
  while (!signal.aborted && !ctx.closed) {
    try {
      const snap = await store.snapshot({ signal });
      const leader = snap.leader;
      const restore = snap.restore;
      if (restore && restore.member === ctx.memberId && restore.state === 'restoring') {
        ctx.log.warn({ event: 'ha_bootstrap', plan: 'restore', id: restore.id }, `restoring the database from the backup repository (cluster restore ${restore.id})`);
        return { kind: 'restore', target: restore.target };
      }
      if (leader && leader.member !== ctx.memberId) {
        const report = snap.members.get(leader.member)?.report;
        if (report && (report.role === 'leader' || report.role === 'standby_leader') && report.healthy) {
          ctx.log.info({ event: 'ha_bootstrap', plan: 'clone', from: leader.member }, `copying the database from leader ${leader.member}`);
          return { kind: 'clone', leader: { member: leader.member, host: report.host, port: report.port } };
        }
        tell(`waiting for leader ${leader.member} to be healthy before copying its database`);
      } else if (!snap.initialize) {
        const standbyOf = ctx.settings().standbyOf;
        const repo = ctx.settings().standbyOfRepo;
        if (repo && (await store.claimInitialize(ctx.memberId, { signal }))) {
          // A warm spare's first member restores the newest backup of the repository copy as a standby; the others copy it.
          ctx.log.info({ event: 'ha_bootstrap', plan: 'standby-restore', repo }, `restoring the newest backup of the repository copy ${repo} as a standby (a warm spare)`);
          return { kind: 'standby-restore', repo };
        }
        if (repo) {
          await sleep(ctx.clock, BOOTSTRAP_POLL_MS, signal);
          continue;
        }
        if (standbyOf && (await store.claimInitialize(ctx.memberId, { signal }))) {
          // A standby cluster's first member copies the primary cluster; the others copy it.
          ctx.log.info({ event: 'ha_bootstrap', plan: 'clone', from: PRIMARY_CLUSTER }, `copying the database from the primary cluster at ${standbyOf.host}:${standbyOf.port}`);
          return { kind: 'clone', leader: { member: PRIMARY_CLUSTER, ...standbyOf } };
        }
        if (!standbyOf && (await store.claimInitialize(ctx.memberId, { signal }))) {
          ctx.log.info({ event: 'ha_bootstrap', plan: 'init' }, 'this member creates the database');
          return { kind: 'init' };
        }
      } else if ((leader?.member === ctx.memberId || (snap.initialize.member === ctx.memberId && !leader)) && ctx.settings().standbyOfRepo) {
        // A warm spare's standby leader (or its first member) whose data is gone: restore the repository copy's newest backup again.
        const repo = ctx.settings().standbyOfRepo!;
        ctx.log.info({ event: 'ha_bootstrap', plan: 'standby-restore', repo }, `restoring the newest backup of the repository copy ${repo} as a standby (this member ${leader ? 'leads the spare' : 'claimed it earlier'})`);
        return { kind: 'standby-restore', repo };
      } else if (leader?.member === ctx.memberId && ctx.settings().standbyOf) {
        // A standby leader whose copy could not be rewound (it was set aside): copy the primary cluster again.
        const up = ctx.settings().standbyOf!;
        ctx.log.info({ event: 'ha_bootstrap', plan: 'clone', from: PRIMARY_CLUSTER }, `copying the database from the primary cluster at ${up.host}:${up.port} (this member leads the standby cluster)`);
        return { kind: 'clone', leader: { member: PRIMARY_CLUSTER, ...up } };
      } else if (snap.initialize.member === ctx.memberId && !leader && ctx.settings().standbyOf) {
        const up = ctx.settings().standbyOf!;
        ctx.log.info({ event: 'ha_bootstrap', plan: 'clone', from: PRIMARY_CLUSTER }, `copying the database from the primary cluster at ${up.host}:${up.port} (claimed earlier)`);
        return { kind: 'clone', leader: { member: PRIMARY_CLUSTER, ...up } };
      } else if (snap.initialize.member === ctx.memberId && !leader && !snap.optime) {
        // We claimed it before and never finished (crash during initdb, wiped data dir before any primary ran).
        ctx.log.info({ event: 'ha_bootstrap', plan: 'init' }, 'this member creates the database (claimed earlier)');
        return { kind: 'init' };
      } else if (snap.initialize.member === ctx.memberId) {
        tell(
          leader && leader.member !== ctx.memberId
            ? `this member's data is gone; waiting for leader ${leader.member} to be healthy before copying its database`
            : "this member's data is gone and the cluster's database exists: waiting for a leader to copy it from (if every member lost its data, restore it: hasup restore --latest)",
        );
      } else {
        tell(`waiting for member ${snap.initialize.member} to create the database`);
      }
    } catch (err) {
      tell(`waiting for etcd: ${(err as Error).message}`);
    }
    await sleep(ctx.clock, BOOTSTRAP_POLL_MS, signal);
  }
  throw new Error('bootstrap cancelled');
}
