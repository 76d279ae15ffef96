import type { FastifyPluginAsync } from 'fastify';
import type { TlsReport } from '../../supervisor/pki/report.js';

/**
 * `GET /tls` (`hasup cert status`, the tls line of `hasup status`): this
 * member's certificates (its own, each service's copy, the CAs it trusts),
 * their issuer and expiry, and the links that still run in clear text.
 * Certificates are public; no key, and nothing of the secrets file, is
 * ever part of the answer. Needs the token, as every view does.
 */
export const tlsRoutes: FastifyPluginAsync<{ report: () => TlsReport }> = async (app, { report }) => {
  app.get('/tls', { schema: { description: "This member's TLS: its certificates and the services' copies with issuer, expiry and days left, the CAs it trusts, and the links in clear text (none unless TLS is off)." } }, async () => report());
};
