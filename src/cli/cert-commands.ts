import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { certificateInfo, parseCertificates, readCertificateFile } from '../supervisor/pki/inspect.js';
import { CA_DAYS } from '../supervisor/pki/issue.js';
import { memberTlsFiles } from '../supervisor/pki/member-files.js';
import { withClusterCa } from '../supervisor/pki/provision.js';
import type { ClusterView, MemberTlsView } from '../plugins/http/cluster-view.js';
import { certFileView, certView, table, tlsStatusLines, WARN_DAYS, type TlsReport } from '../supervisor/pki/report.js';
import { serviceTlsFiles } from '../supervisor/pki/service-copy.js';
import { loadSecretsFile, writeSecretsFile } from '../supervisor/secrets.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import { formatHostPort, parsePeerAddress } from '../gossip/index.js';
import { ApiClient } from './api-client.js';
import { readApiEndpoint } from '../node/api-endpoint.js';
import { createCa } from '../supervisor/pki/issue.js';
import type { CaChange, CaChangeResult } from '../supervisor/pki/ca-change.js';
import type { ClusterSecrets } from '../supervisor/secrets.js';
import { publishedPorts } from './frontend-config.js';

/**
 * `hasup cert status`: this member's certificates (its own, each service's
 * copy, the CAs it trusts) with issuer, expiry and days left, a WARNING
 * within 30 days of an end, and the links in clear text. From the running
 * daemon (GET /tls) when it answers, else from the files in the state
 * directory. `hasup cert rotate`: a new certificate for every member, one
 * at a time. `hasup cert init-ca`: a cluster CA for a cluster created
 * before TLS (docs/tls.md).
 */
export function registerCertCommands(program: Command): void {
  const cert = program.command('cert').description('the cluster CA and the members\' certificates (docs/tls.md)');

  cert
    .command('status')
    .description("this member's certificates and its services' copies: issuer, expiry, days left; a WARNING within 30 days of expiry")
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .option('--json', 'print the report as JSON')
    .action(async (flags: { stateDir: string; api?: string; secrets?: string; json?: boolean }) => {
      const { report, from, api } = await memberReport(flags);
      // Every member's certificate, as the ring's TLS rumors say (a daemon from before them: none).
      const members = api ? (await api.request<ClusterView>('GET', '/cluster', undefined, { timeoutMs: 10_000 }).catch(() => undefined))?.members : undefined;
      if (flags.json) console.log(JSON.stringify({ from, ...report, ...(members ? { members: members.map((m) => ({ id: m.id, state: m.state, tls: m.tls })) } : {}) }, null, 2));
      else console.log([`(${from})`, ...tlsStatusLines(report), ...(members ? ['', ...clusterTlsLines(members, WARN_DAYS)] : [])].join('\n'));
    });

  cert
    .command('rotate')
    .description("issue every live member a new certificate from the cluster CA, one member at a time, the PostgreSQL leader last; each takes it up without a restart (its API, PostgreSQL and etcd)")
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .option('--new-ca', 'instead: make a new cluster CA and have every member trust it beside the old one (its secrets file and CA bundle; etcd restarts, one member at a time); then run cert rotate to move every member to it')
    .option('--drop-old-ca', 'instead: once every member has a certificate of the new CA, stop trusting the old one, one member at a time')
    .option('--ca-days <n>', 'with --new-ca: validity of the new CA in days', String(CA_DAYS))
    .option('--allow-down', 'with --new-ca or --drop-old-ca: go on without the members that are down (each needs a copy of the secrets file from a member before it starts again)')
    .action(async (flags: { stateDir: string; api?: string; secrets?: string; newCa?: boolean; dropOldCa?: boolean; caDays: string; allowDown?: boolean }) => {
      const api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
      const [ring, cluster] = await Promise.all([api.request<RingView>('GET', '/butterfly'), api.request<ClusterView>('GET', '/cluster')]);
      const leader = cluster.service_groups.find((g) => g.service_group.startsWith('postgresql.'))?.leader ?? null;
      const plan = rotationPlan(ring, leader, api.url);
      if (flags.newCa || flags.dropOldCa) {
        if (flags.newCa && flags.dropOldCa) throw new Error('--new-ca and --drop-old-ca are two steps of a CA change: run one, then cert rotate, then the other');
        const secretsFile = resolve(flags.secrets ?? readApiEndpoint(flags.stateDir).secrets ?? join(flags.stateDir, 'secrets.json'));
        await changeClusterCa({ api, plan, secretsFile, step: flags.newCa ? 'new' : 'drop', caDays: Number(flags.caDays), allowDown: flags.allowDown === true, print: (line) => console.log(line) });
        return;
      }
      for (const skipped of plan.skipped) console.log(`member ${skipped.id}: skipped (${skipped.why})`);
      for (const m of plan.order) {
        const answer = await api
          .at(m.url)
          .request<TlsReport>('POST', '/tls/renew', undefined, { timeoutMs: 60_000 })
          .catch((err: unknown) => {
            throw new Error(`member ${m.id} (${m.url}): ${(err as Error).message}; the members before it have their new certificates, the others keep theirs (run cert rotate again)`);
          });
        const own = answer.certificates.find((c) => c.what === 'member');
        const copies = answer.certificates.filter((c) => c.what !== 'member' && c.what !== 'CA');
        const stale = copies.filter((c) => c.fingerprint !== own?.fingerprint).map((c) => c.what);
        if (stale.length > 0) throw new Error(`member ${m.id}: ${stale.join(', ')} still hold${stale.length === 1 ? 's' : ''} the old certificate; stopping here`);
        console.log(`member ${m.id}${m.id === leader ? ' (leader)' : ''}: new certificate until ${own?.not_after?.slice(0, 10) ?? '?'}, fingerprint ${own?.fingerprint ?? '?'}${copies.length > 0 ? `; taken up by ${copies.map((c) => c.what).join(', ')}` : ''}`);
      }
      console.log(`${plan.order.length} member${plan.order.length === 1 ? '' : 's'} renewed`);
    });

  cert
    .command('init-ca')
    .description('add a cluster CA to a secrets file that has none (a cluster created before TLS); copy the file to every member, whose next start issues its certificate')
    .requiredOption('--secrets <file>', 'the cluster secrets file')
    .option('--ca-days <n>', 'validity of the CA in days', String(CA_DAYS))
    .action(async (flags: { secrets: string; caDays: string }) => {
      const file = resolve(flags.secrets);
      const secrets = loadSecretsFile(file);
      if (secrets.tls) throw new Error(`${file} already holds a cluster CA; nothing changed`);
      const updated = await withClusterCa(secrets, { days: Number(flags.caDays) });
      writeSecretsFile(file, updated, { force: true });
      const info = certificateInfo(parseCertificates(updated.tls!.ca_cert, file)[0]!);
      console.log(`cluster CA added to ${file}: ${info.subject}, until ${info.notAfter.toISOString().slice(0, 10)}, fingerprint ${info.fingerprint}`);
      console.log('next: copy the file to every member (replacing its STATE_DIR/secrets.json) and restart them one at a time, followers first; each issues its certificate at start');
    });
}

/** The running daemon's report, or what the files in the state directory say when it does not answer. */
async function memberReport(flags: { stateDir: string; api?: string; secrets?: string }): Promise<{ report: TlsReport; from: string; api?: ApiClient }> {
  let api: ApiClient | undefined;
  try {
    api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
  } catch {
    api = undefined;
  }
  if (api) {
    try {
      return { report: await api.request<TlsReport>('GET', '/tls', undefined, { timeoutMs: 10_000 }), from: `the daemon at ${api.url}`, api };
    } catch (err) {
      if (flags.api) throw err;
      console.error(`(the daemon does not answer: ${(err as Error).message}; reading the files instead)`);
    }
  }
  return { report: reportFromFiles(resolve(flags.stateDir), new Date()), from: `the files in ${resolve(flags.stateDir)}` };
}

interface RingView {
  self: { id: string; address: string; state: string };
  members: Array<{ id: string; address: string; state: string }>;
  rumors?: Array<{ kind: string; key: string; payload: string }>;
}

/**
 * Which members `cert rotate` renews and in what order: every alive member
 * whose API port the ring knows, one at a time, followers first and the
 * PostgreSQL leader last (a renewal restarts nothing, but a leader whose
 * renewal went wrong is the worst place to find out). The local member is
 * reached at `localUrl`; the others at their address with the same scheme.
 */
export function rotationPlan(ring: RingView, leader: string | null, localUrl: string): { order: Array<{ id: string; url: string }>; skipped: Array<{ id: string; why: string }> } {
  const ports = publishedPorts(ring.rumors);
  const scheme = new URL(localUrl).protocol;
  const seen = new Set<string>();
  const order: Array<{ id: string; url: string }> = [];
  const skipped: Array<{ id: string; why: string }> = [];
  for (const m of [ring.self, ...ring.members]) {
    if (seen.has(m.id)) continue;
    seen.add(m.id);
    if (m.state !== 'alive') {
      if (m.state !== 'departed' && m.state !== 'left') skipped.push({ id: m.id, why: `${m.state}: it renews at its next start only if its certificate is within 30 days of its end` });
      continue;
    }
    if (m.id === ring.self.id) {
      order.push({ id: m.id, url: localUrl });
      continue;
    }
    const port = ports.get(m.id)?.apiPort;
    if (port === undefined) {
      skipped.push({ id: m.id, why: 'its API port is not in the ring' });
      continue;
    }
    order.push({ id: m.id, url: `${scheme}//${formatHostPort(parsePeerAddress(m.address).addr, port)}` });
  }
  order.sort((a, b) => Number(a.id === leader) - Number(b.id === leader) || a.id.localeCompare(b.id));
  return { order, skipped };
}

/** One row per member of the ring with its certificate's end and issuer, then clusterTlsWarnings. */
export function clusterTlsLines(members: MemberTlsRow[], warnDays: number): string[] {
  const rows = members.map((m) => {
    const t = m.tls;
    if (!t) return [m.id, m.state, '?', 'no TLS rumor (an older hasup, or not yet)', ''];
    if (!t.on) return [m.id, m.state, 'OFF', `clear text: ${t.reason ?? ''}`, ''];
    return [m.id, m.state, t.not_after?.slice(0, 10) ?? '?', `${t.days_left} days left`, t.issuer ?? ''];
  });
  return ['cluster members (from the ring):', ...table([['MEMBER', 'STATE', 'EXPIRES', 'LEFT', 'ISSUER'], ...rows]), ...clusterTlsWarnings(members, warnDays)];
}

type MemberTlsRow = { id: string; state: string; tls: MemberTlsView | null };

/** A WARNING for each member whose certificate ends within `warnDays` or has ended (cert status, and hasup status for the whole cluster). */
export function clusterTlsWarnings(members: MemberTlsRow[], warnDays: number = WARN_DAYS): string[] {
  return members.flatMap((m) => {
    const left = m.tls?.on ? m.tls.days_left : null;
    if (left === null || left === undefined || left >= warnDays) return [];
    return [left < 0 ? `WARNING: member ${m.id}'s certificate expired on ${m.tls!.not_after}` : `WARNING: member ${m.id}'s certificate expires in ${left} days (${m.tls!.not_after})`];
  });
}

/** The state directory's own certificates (an operator's files named in hasup.toml are the daemon's to report). */
export function reportFromFiles(stateDir: string, now: Date): TlsReport {
  const files = memberTlsFiles(stateDir);
  if (!existsSync(files.cert)) return { on: false, reason: `no member certificate in ${join(stateDir, 'tls')}`, certificates: [], clear_text: [] };
  const svcRoot = join(stateDir, 'svc');
  const services = existsSync(svcRoot) ? readdirSync(svcRoot).filter((name) => existsSync(serviceTlsFiles(join(svcRoot, name)).cert)) : [];
  let cas: TlsReport['certificates'];
  try {
    cas = readCertificateFile(files.ca, 'CA bundle').map((c) => certView('CA', files.ca, certificateInfo(c), now));
  } catch (err) {
    cas = [{ what: 'CA', file: files.ca, error: (err as Error).message }];
  }
  return {
    on: true,
    source: 'cluster-ca',
    certificates: [certFileView('member', files.cert, now), ...services.map((name) => certFileView(name, serviceTlsFiles(join(svcRoot, name)).cert, now)), ...cas],
    clear_text: [],
  };
}

/** The part of ApiClient a CA change uses (a fake in unit tests). */
export interface MemberApi {
  at(url: string): { request<T>(method: 'GET' | 'POST', path: string, body?: unknown, o?: { timeoutMs?: number }): Promise<T> };
}

type CaChangeAnswer = TlsReport & { ca_change: CaChangeResult };

/**
 * What every member is sent for a step of a CA change (docs/tls.md, "A new
 * CA"), from the local secrets file: `new` makes the new CA unless a change
 * is under way (tls.trusted not empty: the same CA again, so an interrupted
 * step is only run again); `drop` keeps the CA and trusts nothing beside it,
 * sending no key.
 */
export async function caChangeFor(tls: NonNullable<ClusterSecrets['tls']>, step: 'new' | 'drop', o: { name: string; clusterId?: string; caDays: number; now?: Date }): Promise<{ change: CaChange; made: boolean }> {
  const underWay = (tls.trusted ?? []).length > 0;
  if (step === 'drop') {
    if (!underWay) throw new Error('the cluster trusts one CA only (the secrets file has no tls.trusted): there is no old CA to drop; nothing changed');
    return { change: { ca_cert: tls.ca_cert, trusted: [] }, made: false };
  }
  if (underWay) return { change: { ca_cert: tls.ca_cert, ca_key: tls.ca_key, trusted: tls.trusted! }, made: false };
  const now = o.now ?? new Date();
  const ca = await createCa({ name: o.name, clusterId: o.clusterId, days: o.caDays, now, label: `from ${now.toISOString().slice(0, 10)}` });
  return { change: { ca_cert: ca.cert, ca_key: ca.key, trusted: [tls.ca_cert] }, made: true };
}

/**
 * One step of a CA change over every member: refused unless every member
 * is alive and reachable (a member left out would distrust the others'
 * certificates); each member is first asked whether it would take the
 * change (check_only: a member whose certificate the new bundle would not
 * trust refuses, and nothing has changed anywhere), then the members one at
 * a time, followers first, the PostgreSQL leader last, each answering once
 * its services took the bundle up (etcd restarted and healthy again), so no
 * two members restart at once.
 */
export async function changeClusterCa(o: {
  api: MemberApi;
  plan: ReturnType<typeof rotationPlan>;
  secretsFile: string;
  step: 'new' | 'drop';
  caDays: number;
  /** Go on without the members that are down (--allow-down): each is told to take a copy of the secrets file. */
  allowDown?: boolean;
  print: (line: string) => void;
  now?: Date;
}): Promise<void> {
  if (o.plan.skipped.length > 0) {
    const list = o.plan.skipped.map((m) => `${m.id}: ${m.why.split(':')[0]}`).join('; ');
    if (!o.allowDown) throw new Error(`every member must be alive and reachable for a CA change (one left out would not trust the others' new certificates); ${list}; nothing changed (--allow-down goes on without them)`);
    for (const m of o.plan.skipped) o.print(`member ${m.id}: left out (${m.why.split(':')[0]}); before it starts again, give it a copy of ${o.secretsFile} from a member that took the change`);
  }
  const secrets = loadSecretsFile(o.secretsFile);
  if (!secrets.tls) throw new Error(`${o.secretsFile} holds no cluster CA (TLS is off or the certificates are the operator's); nothing changed`);
  const { change, made } = await caChangeFor(secrets.tls, o.step, { name: secrets.cluster_name ?? 'hasup', clusterId: secrets.cluster_id, caDays: o.caDays, ...(o.now ? { now: o.now } : {}) });
  const newCa = certificateInfo(parseCertificates(change.ca_cert, 'the new CA')[0]!);
  if (o.step === 'new') o.print(made ? `new cluster CA: ${newCa.subject}, until ${newCa.notAfter.toISOString().slice(0, 10)}, fingerprint ${newCa.fingerprint}` : `a CA change is under way (${newCa.subject}, fingerprint ${newCa.fingerprint}): continuing it`);
  for (const m of o.plan.order) {
    await o.api
      .at(m.url)
      .request<CaChangeAnswer>('POST', '/tls/ca', { ...change, check_only: true }, { timeoutMs: 30_000 })
      .catch((err: unknown) => {
        throw new Error(`member ${m.id} (${m.url}) would not take the change: ${(err as Error).message}; nothing changed on any member`);
      });
  }
  // Kept before any member trusts it, so an interrupted change continues with the same CA.
  if (made) writeSecretsFile(o.secretsFile, { ...secrets, tls: { ca_cert: change.ca_cert, ca_key: change.ca_key!, trusted: change.trusted } }, { force: true });
  let done = 0;
  for (const m of o.plan.order) {
    const answer = await o.api
      .at(m.url)
      .request<CaChangeAnswer>('POST', '/tls/ca', change, { timeoutMs: 150_000 })
      .catch((err: unknown) => {
        throw new Error(`member ${m.id} (${m.url}): ${(err as Error).message}; ${done} member${done === 1 ? '' : 's'} before it took the change, the others not yet (run the same command again)`);
      });
    done++;
    const r = answer.ca_change;
    o.print(`member ${m.id}: ${r.changed ? 'trusts' : 'already trusted'} ${r.trusted.length} CA${r.trusted.length === 1 ? '' : 's'}${r.restarted.length > 0 ? `; restarted ${r.restarted.join(', ')} (healthy again)` : ''}`);
  }
  if (o.step === 'drop') {
    // The local file, when the daemon keeps its secrets elsewhere.
    const after = loadSecretsFile(o.secretsFile);
    if (after.tls && (after.tls.trusted ?? []).length > 0) writeSecretsFile(o.secretsFile, { ...after, tls: { ca_cert: after.tls.ca_cert, ca_key: after.tls.ca_key } }, { force: true });
    o.print(`${done} member${done === 1 ? ' trusts' : 's trust'} the new CA only`);
    o.print(`next: clients that kept the old bundle (HAProxy's check ca-file, psql's sslrootcert) need the new CA: ${newCa.fingerprint}; hosts that will join take a copy of the secrets file now`);
  } else {
    o.print(`${done} member${done === 1 ? ' trusts' : 's trust'} both CAs and still present${done === 1 ? 's' : ''} certificates of the old one`);
    o.print('next: give clients outside the cluster the new bundle (STATE_DIR/tls/ca.pem) and reload HAProxy (its check ca-file); then run `hasup cert rotate` (a certificate of the new CA for every member), then `hasup cert rotate --drop-old-ca`');
  }
}
