import type { FastifyPluginAsync } from 'fastify';
import type { Memberlist } from '../../gossip/index.js';
import type { Leadership } from '../../supervisor/leadership.js';
import type { BackupReport } from '../../supervisor/rumors/backup.js';
import type { ServiceStatus } from '../../supervisor/service.js';
import { buildCensus, buildClusterView, type CensusInput } from './cluster-view.js';

export interface ViewDeps {
  memberId: string;
  ring: Pick<Memberlist, 'members' | 'rumors'>;
  services: { list(): ServiceStatus[] };
  leadership: Leadership;
  /** This member's backup report (undefined where PostgreSQL is not loaded); peers' come from their rumors. */
  backup?: () => BackupReport | undefined;
  /** A warm spare kept current by restores: its record as this member knows it (src/node/spare.ts); undefined elsewhere. */
  spare?: () => unknown;
}

/** What the census is built from, read now. */
export function censusInput(deps: ViewDeps): CensusInput {
  return {
    memberId: deps.memberId,
    members: deps.ring.members(),
    rumors: (kind) => deps.ring.rumors(kind),
    localServices: deps.services.list(),
    leadership: deps.leadership.state(),
    localBackup: deps.backup?.(),
  };
}

/**
 * `/census` (Habitat's name: every member, its services, their health and
 * role, the leader of each service group) and `/cluster` (the same, one line
 * per member and per service group: what `hasup status` shows).
 */
export const viewRoutes: FastifyPluginAsync<ViewDeps> = async (app, deps) => {
  const input = () => censusInput(deps);
  app.get('/census', { schema: { description: 'Every member with its services, health and role; the leader of each service group.' } }, async () => buildCensus(input()));
  app.get('/cluster', { schema: { description: 'The whole cluster in one answer: members, gossip states, clock drift, per service group the leader, roles, lag, timeline and health, backups as the leader reports them (repository, stanza, archiving, last full backup, the running job), and on a warm spare kept current by restores its last restore, replay and schedule (spare).' } }, async () => {
    const spare = deps.spare?.();
    return { ...buildClusterView(input()), ...(spare ? { spare } : {}) };
  });
};
