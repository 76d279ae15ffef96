import { certificateInfo, daysLeft, readCertificateFile, type CertificateInfo } from './inspect.js';
import type { MemberTls } from './provision.js';

/**
 * What `hasup cert status`, `hasup status` and GET /tls say about a
 * member's certificates: the member's own, each service's copy, the CAs it
 * trusts, and which links still run in clear text. A certificate within
 * WARN_DAYS of its end is a warning.
 */
export const WARN_DAYS = 30;

export interface CertView {
  /** "member", "CA", or a service's name. */
  what: string;
  file: string;
  subject?: string;
  issuer?: string;
  not_before?: string;
  not_after?: string;
  days_left?: number;
  fingerprint?: string;
  sans?: string[];
  /** Why the file could not be read (a service copy not yet made, a corrupt file). */
  error?: string;
}

export interface TlsReport {
  on: boolean;
  /** Where the member's certificate comes from: the cluster CA (issued here) or the operator's files. */
  source?: 'cluster-ca' | 'operator';
  /** Why TLS is off. */
  reason?: string;
  certificates: CertView[];
  /** Links that run in clear text, each with why: said in hasup status. */
  clear_text: string[];
}

export function certView(what: string, file: string, info: CertificateInfo, now: Date): CertView {
  return {
    what,
    file,
    subject: info.subject,
    issuer: info.issuer,
    not_before: info.notBefore.toISOString(),
    not_after: info.notAfter.toISOString(),
    days_left: daysLeft(info, now),
    fingerprint: info.fingerprint,
    sans: [...info.sans.ip, ...info.sans.dns, ...info.sans.uri],
  };
}

/** The certificate of a file as a view, or the reason it cannot be read. */
export function certFileView(what: string, file: string, now: Date): CertView {
  try {
    return certView(what, file, certificateInfo(readCertificateFile(file)[0]!), now);
  } catch (err) {
    return { what, file, error: (err as Error).message };
  }
}

export function tlsReport(tls: MemberTls, o: { services: Array<{ name: string; certFile: string }>; clearText: string[]; now: Date }): TlsReport {
  if (!tls.on) return { on: false, reason: tls.reason, certificates: [], clear_text: o.clearText };
  const certificates = [
    certView('member', tls.files.cert, tls.cert, o.now),
    ...o.services.map((s) => certFileView(s.name, s.certFile, o.now)),
    ...tls.cas.map((ca) => certView('CA', tls.files.ca, ca, o.now)),
  ];
  return { on: true, source: tls.source, certificates, clear_text: o.clearText };
}

/** Lines for `hasup cert status`: one per certificate, then a WARNING for each near its end, then the clear-text links. */
export function tlsStatusLines(report: TlsReport, member?: string): string[] {
  const head = member ? `member ${member}: ` : '';
  if (!report.on) return [`${head}TLS is OFF: every link in clear text (${report.reason ?? 'no reason given'})`];
  const lines = [`${head}TLS on, certificates from ${report.source === 'operator' ? "the operator's CA ([tls] in hasup.toml)" : 'the cluster CA'}`];
  const rows = report.certificates.map((c) =>
    c.error ? [c.what, 'ERROR', c.error, ''] : [c.what, c.not_after!.slice(0, 10), `${c.days_left} days left`, c.issuer!],
  );
  lines.push(...table([['WHAT', 'EXPIRES', 'LEFT', 'ISSUER'], ...rows]));
  lines.push(...tlsWarnings(report));
  for (const link of report.clear_text) lines.push(`clear text: ${link}`);
  return lines;
}

/** A WARNING line for every certificate that expires within WARN_DAYS, has expired, or cannot be read. */
export function tlsWarnings(report: TlsReport): string[] {
  const out: string[] = [];
  for (const c of report.certificates) {
    if (c.error) out.push(`WARNING: ${c.what} certificate ${c.file}: ${c.error}`);
    else if (c.days_left! < 0) out.push(`WARNING: ${c.what} certificate ${c.file} expired on ${c.not_after}`);
    else if (c.days_left! < WARN_DAYS) out.push(`WARNING: ${c.what} certificate ${c.file} expires in ${c.days_left} days (${c.not_after})`);
  }
  return out;
}

/** The `tls:` line of hasup status (and any warnings below it). */
export function tlsSummaryLines(report: TlsReport): string[] {
  if (!report.on) return [`tls: OFF, every link in clear text (${report.reason ?? 'no reason given'})`];
  const member = report.certificates.find((c) => c.what === 'member');
  const expiry = member?.not_after ? `, member certificate until ${member.not_after.slice(0, 10)} (${member.days_left} days)` : '';
  const clear = report.clear_text.length > 0 ? `; clear text: ${report.clear_text.join('; ')}` : '';
  return [`tls: on (${report.source === 'operator' ? "operator's CA" : 'cluster CA'})${expiry}${clear}`, ...tlsWarnings(report)];
}

/** Rows as aligned columns (the last one unpadded), as the CLI prints its tables. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}
