import type { FastifyPluginAsync } from 'fastify';
import type { Memberlist } from '../../gossip/index.js';
import { DepartRefused, type EtcdMembershipStatus, type RemovedVoter, type VotersSet } from '../etcd/membership.js';
import { postgresDepartRefusal } from '../etcd/seats.js';

/**
 * Cluster membership operations: `POST /members/:id/depart` (`hasup depart`)
 * permanently removes a dead member, from the ring and from etcd's voting
 * members, so a replacement can take its place (refused when it would
 * leave etcd without a quorum, or take the last PostgreSQL member, or the
 * leader before a follower took over); `GET /etcd` shows this member's etcd
 * role and the voters the census knows; `POST /etcd/voters` sets the
 * cluster's wanted voter count (`hasup cluster set etcd_voters N`). All
 * need the token (the server's check).
 */
export interface MembershipOps {
  status(): EtcdMembershipStatus;
  /** Throws DepartRefused when the removal would be unsafe for etcd. */
  removeVoter(memberId: string): Promise<RemovedVoter>;
  setVoters(n: number): Promise<VotersSet>;
}

const idParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'member id' } },
} as const;

export const memberRoutes: FastifyPluginAsync<{ ring: Pick<Memberlist, 'self' | 'member' | 'depart' | 'members' | 'rumors'>; etcd: MembershipOps }> = async (app, { ring, etcd }) => {
  app.post<{ Params: { id: string } }>(
    '/members/:id/depart',
    {
      schema: {
        params: idParams,
        description: 'Permanently remove a dead member: refused while it is alive or suspect; removed from etcd\'s voting members first, then marked departed in the ring.',
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (id === ring.self().id) return reply.code(409).send({ error: `member ${id} is this member; depart it from another member after stopping it` });
      const m = ring.member(id);
      if (!m) return reply.code(404).send({ error: `no member ${id} in the ring` });
      if (m.state === 'alive' || m.state === 'suspect') {
        return reply.code(409).send({ error: `member ${id} is ${m.state}; only a dead or left member can be departed (stop it first, and wait until the ring sees it dead)` });
      }
      const database = postgresDepartRefusal(ring, id);
      if (database) return reply.code(409).send({ error: `member ${id} is not departed: ${database}` });
      // etcd first: if it cannot be told, the member stays as it is and the operator can retry.
      let removed: RemovedVoter;
      try {
        removed = await etcd.removeVoter(id);
      } catch (err) {
        if (err instanceof DepartRefused) return reply.code(409).send({ error: `member ${id} is not departed: ${err.message}` });
        return reply.code(503).send({ error: `could not remove member ${id} from etcd (${(err as Error).message}); it was not departed: retry when etcd has a quorum` });
      }
      ring.depart(id);
      req.log.warn({ event: 'member_departed', peer: id, etcd_voter: removed.was_voter }, `member ${id} departed`);
      return { member: id, departed: true, etcd: removed };
    },
  );

  app.post<{ Body: { voters: number } }>(
    '/etcd/voters',
    {
      schema: {
        body: { type: 'object', required: ['voters'], additionalProperties: false, properties: { voters: { type: 'integer', enum: [3, 5], description: 'etcd voting members wanted: 3 or 5' } } },
        description: "The cluster's wanted etcd voter count, kept in etcd: raising it lets etcd clients and the next joiners take the new seats; lowering it demotes nobody.",
      },
    },
    async (req, reply) => {
      try {
        return await etcd.setVoters(req.body.voters);
      } catch (err) {
        return reply.code(503).send({ error: `could not set etcd_voters (${(err as Error).message}); nothing changed: retry when etcd has a quorum` });
      }
    },
  );

  app.get('/etcd', { schema: { description: 'This member\'s etcd role (voter, client, joining) and the etcd voters in the census, healthy first.' } }, async () => etcd.status());
};
