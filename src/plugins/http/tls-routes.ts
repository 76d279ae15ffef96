import type { FastifyPluginAsync } from 'fastify';
import type { TlsReport } from '../../supervisor/pki/report.js';

/**
 * `GET /tls` (`hasup cert status`, the tls line of `hasup status`): this
 * member's certificates (its own, each service's copy, the CAs it trusts),
 * their issuer and expiry, and the links that still run in clear text.
 * Certificates are public; no key, and nothing of the secrets file, is
 * ever part of the answer. Needs the token, as every view does; so does
 * `POST /tls/renew`, a new certificate for this member (hasup cert rotate).
 */
export const tlsRoutes: FastifyPluginAsync<{ report: () => TlsReport; renew: () => Promise<TlsReport> }> = async (app, { report, renew }) => {
  app.get('/tls', { schema: { description: "This member's TLS: its certificates and the services' copies with issuer, expiry and days left, the CAs it trusts, and the links in clear text (none unless TLS is off)." } }, async () => report());
  app.post(
    '/tls/renew',
    {
      schema: {
        description:
          "Issue this member a new certificate from the cluster CA and have its API, PostgreSQL and etcd take it up without a restart (hasup cert rotate calls it on one member at a time). 409 when TLS is off, the certificate is the operator's, or a renewal is under way.",
      },
    },
    async () => renew(),
  );
};

/** A renewal this member cannot do; the answer's status is 409 with this message. */
export class TlsRenewRefused extends Error {
  readonly statusCode = 409;
}
