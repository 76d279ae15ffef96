import { randomBytes } from 'node:crypto';

/**
 * The console's login sessions, in this member's memory: a browser logs in
 * at one member and talks to that member. A session is a random id (the
 * HttpOnly cookie), the role of the token it was opened with, and its CSRF
 * token (sent with every state-changing request, readable by the page, so
 * a forged cross-site form cannot carry it). Sessions end after `idleMs`
 * without a request or `maxMs` after login, whichever comes first, and on
 * logout or a restart of the member.
 */
export type Role = 'viewer' | 'operator';

export interface Session {
  id: string;
  csrf: string;
  role: Role;
  created: number;
  seen: number;
}

export interface SessionLimits {
  /** Default 1 h. */
  idleMs?: number;
  /** Default 12 h. */
  maxMs?: number;
  /** Sessions kept at most (the least recently used go first); default 1000. */
  maxSessions?: number;
}

export const SESSION_COOKIE = 'hasup_session';

export class SessionStore {
  readonly idleMs: number;
  readonly maxMs: number;
  private readonly maxSessions: number;
  /** In order of last use: Map keeps insertion order, and a use re-inserts. */
  private readonly sessions = new Map<string, Session>();

  constructor(limits: SessionLimits = {}, private readonly now: () => number = Date.now) {
    this.idleMs = limits.idleMs ?? 3_600_000;
    this.maxMs = limits.maxMs ?? 12 * 3_600_000;
    this.maxSessions = limits.maxSessions ?? 1000;
  }

  get size(): number {
    return this.sessions.size;
  }

  open(role: Role): Session {
    const now = this.now();
    const session: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), role, created: now, seen: now };
    this.sessions.set(session.id, session);
    for (const id of this.sessions.keys()) {
      if (this.sessions.size <= this.maxSessions) break;
      this.sessions.delete(id);
    }
    return session;
  }

  /** The live session with this id, marked as used now; undefined when unknown or expired. */
  use(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    const now = this.now();
    this.sessions.delete(id);
    if (now - s.seen > this.idleMs || now - s.created > this.maxMs) return undefined;
    s.seen = now;
    this.sessions.set(id, s);
    return s;
  }

  /** When the session ends unless used again (ms since the epoch). */
  expiresAt(s: Session): number {
    return Math.min(s.seen + this.idleMs, s.created + this.maxMs);
  }

  close(id: string): void {
    this.sessions.delete(id);
  }
}

/** One cookie's value from a Cookie header; undefined when absent. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
