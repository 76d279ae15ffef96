import type { FastifyPluginAsync } from 'fastify';
import type { TlsReport } from '../../supervisor/pki/report.js';
import type { CaChangeResult } from '../../supervisor/pki/ca-change.js';

/**
 * `GET /tls` (`hasup cert status`, the tls line of `hasup status`): this
 * member's certificates (its own, each service's copy, the CAs it trusts),
 * their issuer and expiry, and the links that still run in clear text.
 * Certificates are public; no key, and nothing of the secrets file, is
 * ever part of the answer. Needs the token, as every view does; so does
 * `POST /tls/renew`, a new certificate for this member (hasup cert rotate).
 */
export const tlsRoutes: FastifyPluginAsync<{ report: () => TlsReport; renew: () => Promise<TlsReport>; changeCa?: (body: unknown) => Promise<TlsReport & { ca_change: CaChangeResult }> }> = async (
  app,
  { report, renew, changeCa },
) => {
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
  if (changeCa) {
    app.post(
      '/tls/ca',
      {
        // The body may carry a CA key: never logged (fastify logs no bodies), never answered.
        schema: {
          description:
            "The cluster CA this member issues from and the CAs it trusts beside it ({ca_cert, ca_key when it is a new CA, trusted: [...], check_only}): its secrets file and CA bundle are rewritten, its services reload (etcd, which reads its bundle only at start, restarts and is healthy again before the answer). hasup cert rotate --new-ca and --drop-old-ca call it on one member at a time. 409 when the member's own certificate would not be trusted by the new bundle, TLS is off, or its certificate is the operator's; 400 for a bad CA or key.",
        },
      },
      async (req) => changeCa(req.body),
    );
  }
};

/** A renewal this member cannot do; the answer's status is 409 with this message. */
export class TlsRenewRefused extends Error {
  readonly statusCode = 409;
}
