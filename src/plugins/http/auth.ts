import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Bearer-token check for mutating and sensitive routes: 401 without a
 * token, 403 with a wrong one. Both sides are hashed first so the
 * comparison is constant-time whatever the lengths.
 */
export function bearerAuth(token: string) {
  const expected = digest(token);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const header = req.headers.authorization;
    if (!header || !header.startsWith('Bearer ')) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'missing bearer token' });
    }
    if (!timingSafeEqual(digest(header.slice(7).trim()), expected)) {
      return reply.code(403).send({ error: 'wrong bearer token' });
    }
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
