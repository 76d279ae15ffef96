import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { cookieValue, SESSION_COOKIE, type Role, type Session, type SessionStore } from './sessions.js';

/** Who is asking, once the request passed the check. */
export interface Caller {
  role: Role;
  via: 'bearer' | 'session';
  session?: Session;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

export interface ApiCredentials {
  /** The operator token (the cluster's api_token): everything. */
  token: string;
  /** The viewer token: reading only. Absent where the secrets file predates it. */
  viewerToken?: string;
  /** The console's login sessions (cookie); absent: bearer tokens only. */
  sessions?: SessionStore;
}

export const CSRF_HEADER = 'x-csrf-token';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A request that reads only: what a viewer may make, and what needs no CSRF token. */
export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method);
}

/** The role a token gives, compared in constant time (both sides hashed first, whatever the lengths); undefined for neither. */
export function tokenRole(creds: Pick<ApiCredentials, 'token' | 'viewerToken'>): (presented: string) => Role | undefined {
  const operator = digest(creds.token);
  const viewer = creds.viewerToken ? digest(creds.viewerToken) : undefined;
  return (presented) => {
    const d = digest(presented);
    // Both compared every time: which one matched must not show in the timing.
    const isOperator = timingSafeEqual(d, operator);
    const isViewer = viewer !== undefined && timingSafeEqual(d, viewer);
    return isOperator ? 'operator' : isViewer ? 'viewer' : undefined;
  };
}

/**
 * The check for every route that is not open: a bearer token (401 without
 * one, 403 when wrong), or else the console's session cookie. The viewer
 * token and a viewer's session may only read (GET, HEAD, OPTIONS; the event
 * stream is a GET). A session's state-changing request must carry the
 * session's CSRF token in the X-CSRF-Token header, and a request whose
 * Origin is another site is refused, so a page elsewhere cannot act with
 * the operator's cookie (SameSite=Strict already keeps it from being sent).
 */
export function apiAuth(creds: ApiCredentials) {
  const roleOf = tokenRole(creds);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const header = req.headers.authorization;
    const sessionId = creds.sessions && cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (header || !sessionId) {
      if (!header || !header.startsWith('Bearer ')) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'missing bearer token' });
      }
      const role = roleOf(header.slice(7).trim());
      if (!role) return reply.code(403).send({ error: 'wrong bearer token' });
      if (role === 'viewer' && !isSafeMethod(req.method)) return reply.code(403).send({ error: 'the viewer token may only read; this needs the operator token' });
      req.caller = { role, via: 'bearer' };
      return;
    }
    const session = creds.sessions!.use(sessionId);
    if (!session) return reply.code(401).send({ error: 'the console session has expired or is unknown here; log in again' });
    if (!sameOrigin(req)) return reply.code(403).send({ error: 'request from another origin refused' });
    if (!isSafeMethod(req.method)) {
      if (session.role !== 'operator') return reply.code(403).send({ error: 'a viewer may only read; log in with the operator token for operations' });
      const csrf = req.headers[CSRF_HEADER];
      if (typeof csrf !== 'string' || !timingSafeEqual(digest(csrf), digest(session.csrf))) return reply.code(403).send({ error: 'missing or wrong CSRF token (X-CSRF-Token)' });
    }
    req.caller = { role: session.role, via: 'session', session };
  };
}

/** No Origin header (not a cross-origin browser request), or one naming this host. */
export function sameOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
