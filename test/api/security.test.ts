/**
 * Token, TLS (with client certificates) and bad input against real
 * `hasup run` members without services: who gets in, who does not, and
 * that every bad request is a 4xx naming the field while the member lives on.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { request } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { HASUP_BIN } from '../support/member-procs.js';
import { freePort } from '../support/service-harness.js';
import { ApiNode } from './api-node.js';

const plain = new ApiNode({ index: 33, extraConfig: '[http]\nmetrics_need_token = true' });
const certs = mkdtempSync(join(tmpdir(), 'hasup-api-certs-'));
const TLS_ADDR = '127.0.0.34';
let tls: ApiNode;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: certs, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and a certificate it signs for `name` (with an IP SAN for servers). */
function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2');
}
function makeCert(name: string, ca: string, san?: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  const ext = join(certs, `${name}.ext`);
  writeFileSync(ext, san ? `subjectAltName=${san}\n` : 'extendedKeyUsage=clientAuth\n');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext);
}
const pem = (name: string) => readFileSync(join(certs, name));

function httpsGet(path: string, opts: { client?: string; token?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: TLS_ADDR,
        port: tls.httpPort,
        path,
        ca: pem('ca.crt'),
        ...(opts.client ? { cert: pem(`${opts.client}.crt`), key: pem(`${opts.client}.key`) } : {}),
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

before(async () => {
  makeCa('ca');
  makeCa('other-ca');
  makeCert('server', 'ca', `IP:${TLS_ADDR}`);
  makeCert('client', 'ca');
  makeCert('stranger', 'other-ca');
  tls = new ApiNode({
    index: 34,
    extraConfig: ['[http]', `tls_cert = "${join(certs, 'server.crt')}"`, `tls_key = "${join(certs, 'server.key')}"`, `tls_client_ca = "${join(certs, 'ca.crt')}"`].join('\n'),
  });
  await Promise.all([plain.start(), tls.start()]);
});

after(async () => {
  await Promise.all([plain.stop(), tls?.stop()]);
  rmSync(certs, { recursive: true, force: true });
});

test('the bearer token: 401 without, 403 when wrong, on every route but the checks (and /metrics unless configured)', async () => {
  for (const path of ['/cluster', '/census', '/butterfly', '/services', '/openapi.json', '/services/postgresql/default']) {
    const missing = await plain.call(path, { token: null });
    assert.equal(missing.status, 401, path);
    assert.match(missing.text, /missing bearer token/);
    assert.equal((await plain.call(path, { token: 'not-the-token' })).status, 403, path);
  }
  assert.equal((await plain.call('/cluster')).status, 200);
  assert.equal((await plain.call('/switchover', { method: 'POST', token: null, body: {} })).status, 401);
  assert.equal((await plain.call('/config', { method: 'POST', token: 'wrong', body: {} })).status, 403, 'the token is checked before the body');
  for (const path of ['/primary', '/replica', '/read-only', '/health', '/liveness', '/readiness']) {
    assert.notEqual(await plain.status(path), 401, `${path} answers a load balancer without a token`);
  }
  assert.equal(await plain.status('/metrics'), 401, 'metrics_need_token = true');
  assert.equal((await plain.call('/metrics')).status, 200);

  const ws = new WebSocket(`ws://${plain.addr}:${plain.httpPort}/events`);
  const refusal = await new Promise<number>((resolve) =>
    ws.on('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    }),
  );
  assert.equal(refusal, 401);
});

test('bad input: 4xx naming the field, size limits, honest 501; the member lives on', async () => {
  const post = (path: string, body: unknown, contentType?: string) =>
    fetch(`${plain.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${plain.token}`, 'content-type': contentType ?? 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, error: ((await r.json()) as { error: string }).error }));

  const cases: Array<[string, unknown, number, RegExp, string?]> = [
    ['/config', { service_group: 'postgresql.default', toml: '' }, 400, /missing field "version"/],
    ['/config', { service_group: 'postgresql.default', version: 'seven', toml: '' }, 400, /body\/version must be integer/],
    ['/config', { service_group: 'postgresql.default', version: 2, toml: '', force: true }, 400, /unknown field "force"/],
    ['/config', { service_group: 'Postgres!', version: 2, toml: '' }, 400, /body\/service_group must match pattern/],
    ['/config', { service_group: 'postgresql.default', version: 2, toml: 'work_mem = ' }, 400, /document/],
    ['/config', '{"service_group": ', 400, /JSON/],
    ['/config', 'service_group=x', 415, /content-type|Unsupported Media Type/i, 'application/x-www-form-urlencoded'],
    ['/config', { service_group: 'postgresql.default', version: 2, toml: 'x'.repeat(2 * 1024 * 1024) }, 413, /too large/i],
    ['/switchover', { to: 'somebody' }, 400, /body\/to must match pattern/],
    ['/switchover', {}, 501, /HA election/], // a member without the election says so, never a pretended success
    ['/services/Bad_Name/default/restart', undefined, 400, /params\/svc must match pattern/],
    ['/services/postgresql/default/restart', undefined, 404, /no service group postgresql\.default on this member/],
  ];
  for (const [path, body, status, message, type] of cases) {
    const res = await post(path, body ?? {}, type);
    assert.equal(res.status, status, `${path} ${JSON.stringify(body)?.slice(0, 80)}: ${res.error}`);
    assert.match(res.error, message);
  }
  const lag = await plain.call('/replica?lag=16parsecs', { token: null });
  assert.equal(lag.status, 400);
  assert.match(lag.text, /querystring\/lag must match pattern/);
  const extra = await plain.call('/primary?verbose=1', { token: null });
  assert.equal(extra.status, 400);
  assert.match(extra.text, /unknown field \\"verbose\\"/);
  const missing = await plain.call('/no/such/route');
  assert.equal(missing.status, 404);

  assert.equal(await plain.status('/liveness'), 200, 'the member lives on');
  assert.equal(plain.node!.child.exitCode, null);
  assert.ok(!plain.node!.events.some((e) => e.level >= 50), 'no error logged for bad input');
});

test('TLS with client certificates: a client signed by the CA gets in, anyone else is refused at the handshake', async () => {
  const ok = await httpsGet('/health', { client: 'client' });
  assert.equal(ok.status, 200);
  assert.match(ok.body, /"check":"health"/);
  assert.equal((await httpsGet('/cluster', { client: 'client' })).status, 401, 'a certificate does not replace the token');
  assert.equal((await httpsGet('/cluster', { client: 'client', token: tls.token })).status, 200);
  await assert.rejects(httpsGet('/health', {}), 'no client certificate');
  await assert.rejects(httpsGet('/health', { client: 'stranger' }), 'a certificate from another CA');
  await assert.rejects(fetch(`http://${TLS_ADDR}:${tls.httpPort}/health`, { signal: AbortSignal.timeout(5000) }), 'plain HTTP on the TLS port');
  const recorded = JSON.parse(readFileSync(join(tls.stateDir, 'api.json'), 'utf8')) as { url: string };
  assert.match(recorded.url, /^https:\/\//, 'the CLI is told to use https');
});

test('a half TLS config stops hasup run with the reason', () => {
  const file = join(certs, 'half.toml');
  writeFileSync(file, `[http]\ntls_cert = "${join(certs, 'server.crt')}"\n`);
  const dir = mkdtempSync(join(certs, 'state-'));
  const run = spawnSync(process.execPath, [HASUP_BIN, 'run', '--config', file, '--advertise', '127.0.0.35:1', '--ring-key', plain.keyFile, '--state-dir', dir], { encoding: 'utf8', timeout: 20_000 });
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /"http\.tls_cert" and "http\.tls_key" go together/);
});

test('the CLI says clearly when the daemon is down', async () => {
  const port = await freePort();
  const census = plain.cli('census', '--api', `http://127.0.0.33:${port}`);
  assert.notEqual(census.status, 0);
  assert.match(census.stderr, /cannot reach the hasup daemon at http:\/\/127\.0\.0\.33:\d+ \(ECONNREFUSED\); is `hasup run` running\?/);
  const status = plain.cli('status', '--api', `http://127.0.0.33:${port}`);
  assert.match(status.stderr, /cannot reach the hasup daemon/);
  const nowhere = spawnSync(process.execPath, [HASUP_BIN, 'census', '--state-dir', join(certs, 'never-ran')], { encoding: 'utf8' });
  assert.match(nowhere.stderr, /no hasup daemon has run with state directory/);
});
