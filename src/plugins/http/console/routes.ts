import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { isSafeMethod, sameOrigin, tokenRole, CSRF_HEADER } from '../auth.js';
import { cookieValue, SESSION_COOKIE, type SessionStore } from '../sessions.js';
import { consoleAssets, type Asset } from './assets.js';
import { PAGE_HTML } from './page-html.js';

export interface ConsoleDeps {
  memberId: string;
  token: string;
  viewerToken?: string;
  sessions: SessionStore;
  /** Where the secrets file is, for the message when it has no viewer token. */
  secretsHint?: string;
}

/**
 * Only this page's own files, its API calls and its event stream: no
 * inline script, no outside host, never framed (its buttons act on the
 * cluster).
 */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const loginBody = {
  type: 'object',
  additionalProperties: false,
  required: ['token'],
  properties: { token: { type: 'string', minLength: 1, maxLength: 512, description: 'the viewer token or the operator token (the cluster secrets\' viewer_token or api_token)' } },
} as const;

/**
 * The operator's console at `/ui` (docs/console.md): the page and its
 * scripts (served from the package, gzipped once at start), and the login
 * that turns a token into a session cookie. The page itself holds no
 * secret: the token is typed in, checked here, and never sent back; the
 * cookie is HttpOnly; the CSRF token the page receives is good for its
 * session only.
 */
export const consoleRoutes: FastifyPluginAsync<ConsoleDeps> = async (app, deps) => {
  const assets = consoleAssets();
  const roleOf = tokenRole(deps);
  if (!deps.viewerToken) {
    app.log.warn({ event: 'console_no_viewer_token' }, `${noViewerToken(deps.secretsHint)}; the console's viewer login is off`);
  }

  const page: Asset = { type: 'text/html; charset=utf-8', ...assets.compress(PAGE_HTML) };
  app.get('/ui', { config: { access: 'public' }, schema: { description: 'The operator\'s console (an HTML page; its data comes from the API under a session).' } }, async (req, reply) => send(req, reply.header('content-security-policy', CSP), page));
  app.get('/ui/', { config: { access: 'public' }, schema: { description: 'Redirects to /ui.' } }, async (_req, reply) => reply.redirect('/ui'));
  app.get<{ Params: { name: string } }>(
    '/ui/assets/:name',
    { config: { access: 'public' }, schema: { description: 'The console\'s scripts and styles (and uPlot\'s), from the package.', params: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string', pattern: '^[a-z0-9-]+\\.(js|css)$' } } } } },
    async (req, reply) => {
      const asset = assets.get(req.params.name);
      if (!asset) return reply.code(404).send({ error: `no console asset ${req.params.name}` });
      return send(req, reply, asset);
    },
  );

  app.post<{ Body: { token: string } }>(
    '/ui/login',
    { config: { access: 'public' }, schema: { body: loginBody, description: 'Console login: a valid token gives a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) and the session\'s CSRF token; sessions end after 1 h idle or 12 h.' } },
    async (req, reply) => {
      if (!sameOrigin(req)) return reply.code(403).send({ error: 'login from another origin refused' });
      const role = roleOf(req.body.token.trim());
      if (!role) {
        req.log.warn({ event: 'console_login_refused', from: req.ip }, 'console login with a wrong token');
        return reply.code(403).send({ error: `wrong token${deps.viewerToken ? '' : ` (${noViewerToken(deps.secretsHint)}: only the operator token logs in)`}` });
      }
      const s = deps.sessions.open(role);
      req.log.info({ event: 'console_login', role, from: req.ip }, `console login as ${role}`);
      reply.header('set-cookie', sessionCookie(s.id, req.protocol === 'https'));
      return { role, csrf: s.csrf, member_id: deps.memberId, expires_at: deps.sessions.expiresAt(s), idle_ms: deps.sessions.idleMs, max_ms: deps.sessions.maxMs };
    },
  );

  // Public, so a viewer's session can end too; it still needs the session's CSRF token.
  app.post('/ui/logout', { config: { access: 'public' }, schema: { description: 'Ends the console session (X-CSRF-Token required) and clears its cookie.' } }, async (req, reply) => {
    const s = deps.sessions.use(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (s && (!sameOrigin(req) || req.headers[CSRF_HEADER] !== s.csrf)) return reply.code(403).send({ error: 'missing or wrong CSRF token (X-CSRF-Token)' });
    if (s) deps.sessions.close(s.id);
    return reply.header('set-cookie', sessionCookie('', req.protocol === 'https', 0)).send({ logged_out: true });
  });

  app.get('/ui/session', { schema: { description: 'Who the console is logged in as: role, the session\'s CSRF token and when it ends; this member\'s id.' } }, async (req) => {
    const caller = req.caller!;
    const s = caller.session;
    return {
      role: caller.role,
      member_id: deps.memberId,
      csrf: s?.csrf ?? null,
      expires_at: s ? deps.sessions.expiresAt(s) : null,
      idle_ms: deps.sessions.idleMs,
      max_ms: deps.sessions.maxMs,
      viewer_login: deps.viewerToken !== undefined,
    };
  });
};

function sessionCookie(value: string, secure: boolean, maxAgeS?: number): string {
  return [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : []), ...(maxAgeS !== undefined ? [`Max-Age=${maxAgeS}`] : [])].join('; ');
}

function noViewerToken(secrets: string | undefined): string {
  return `the cluster secrets file${secrets ? ` ${secrets}` : ''} holds no viewer_token (it predates viewer tokens); add "viewer_token": "<at least 16 random characters>" to it on every member and restart them`;
}

/** An asset, gzipped when the browser takes gzip; revalidated by its ETag. */
function send(req: FastifyRequest, reply: FastifyReply, asset: Asset) {
  if (!isSafeMethod(req.method)) return reply.code(405).send();
  reply.header('content-type', asset.type).header('etag', asset.etag).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').header('vary', 'accept-encoding');
  if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(asset.gzip);
  return reply.send(asset.body);
}
