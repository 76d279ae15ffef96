/**
 * The HAProxy config renderer and `hasup gen-frontend-config --haproxy`:
 * what the text says, that HAProxy accepts it (`haproxy -c`), and that a real
 * HAProxy run with it sends writes only to the member answering 200 on
 * /primary, cuts sessions to a member that stops answering, and spreads
 * read-only sessions over the members answering 200 on /replica.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createConnection, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderHaproxyConfig, serverName, type HaproxyConfigInput } from '../../src/plugins/haproxy/config.js';
import { parseMembersFlag } from '../../src/cli/frontend-config.js';
import { writeApiEndpoint } from '../../src/node/api-endpoint.js';
import { createCa, issueMemberCert, type KeyPairPem } from '../../src/supervisor/pki/issue.js';
import { generateSecrets, writeSecretsFile } from '../../src/supervisor/secrets.js';
import { HASUP_BIN } from '../support/member-procs.js';

const haproxyMissing = spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed (apt-get install -y --no-install-recommends haproxy)';
const work = mkdtempSync(join(tmpdir(), 'hasup-haproxy-'));
after(() => rmSync(work, { recursive: true, force: true }));

const threeMembers: HaproxyConfigInput = {
  members: [
    { host: '10.0.0.11', pgPort: 5432, checkPort: 9631 },
    { host: '10.0.0.12', pgPort: 5432, checkPort: 9631 },
    { name: 'member-3', host: '10.0.0.13', pgPort: 6432, checkPort: 9700 },
  ],
  listen: { host: '0.0.0.0', port: 5432 },
  replicaListen: { host: '0.0.0.0', port: 5433 },
};

/** Lines of one section (from its header to the next blank line). */
function section(text: string, header: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(header);
  assert.ok(start >= 0, `section "${header}" present`);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end < 0 ? undefined : end).map((l) => l.trim());
}

function haproxyCheck(config: string): { ok: boolean; output: string } {
  const file = join(work, `check-${Math.random().toString(16).slice(2)}.cfg`);
  writeFileSync(file, config);
  const r = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

describe('renderHaproxyConfig', () => {
  const text = renderHaproxyConfig(threeMembers);

  test('primary backend: TCP, checks /primary on each member\'s API port, cuts sessions of a member marked down', () => {
    assert.ok(section(text, 'defaults').includes('mode tcp'));
    assert.deepEqual(section(text, 'frontend postgresql_primary'), ['bind 0.0.0.0:5432', 'default_backend postgresql_primary']);
    assert.deepEqual(section(text, 'backend postgresql_primary'), [
      'option httpchk GET /primary',
      'http-check expect status 200',
      'default-server inter 1s fastinter 500ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions',
      'server 10.0.0.11_5432 10.0.0.11:5432 check port 9631',
      'server 10.0.0.12_5432 10.0.0.12:5432 check port 9631',
      'server member-3 10.0.0.13:6432 check port 9700',
    ]);
  });

  test('read-only listener checks /replica; leaving it out removes both its sections', () => {
    const replicas = section(text, 'backend postgresql_replicas');
    assert.ok(replicas.includes('option httpchk GET /replica'));
    assert.ok(replicas.includes('http-check expect status 200'));
    assert.equal(replicas.filter((l) => l.startsWith('server ')).length, 3);
    assert.deepEqual(section(text, 'frontend postgresql_replicas'), ['bind 0.0.0.0:5433', 'default_backend postgresql_replicas']);
    const noReplicas = renderHaproxyConfig({ ...threeMembers, replicaListen: null });
    assert.doesNotMatch(noReplicas, /replica/);
  });

  test('IPv6 members and listeners are bracketed; odd characters in names are replaced', () => {
    const v6 = renderHaproxyConfig({
      members: [{ name: 'a b/c', host: 'fd00::11', pgPort: 5432, checkPort: 9631 }],
      listen: { host: '::', port: 5432 },
      replicaListen: null,
    });
    assert.match(v6, /^ {4}bind \[::\]:5432$/m);
    assert.match(v6, /^ {4}server a_b_c \[fd00::11\]:5432 check port 9631$/m);
    assert.equal(serverName({ host: 'fd00::11', pgPort: 5432, checkPort: 1 }), 'fd00::11_5432');
  });

  test('refuses what HAProxy would reject or misroute', () => {
    const base = threeMembers;
    assert.throws(() => renderHaproxyConfig({ ...base, members: [] }), /no members/);
    assert.throws(() => renderHaproxyConfig({ ...base, members: [{ host: 'db1.example', pgPort: 5432, checkPort: 9631 }] }), /not an IP address/);
    assert.throws(() => renderHaproxyConfig({ ...base, members: [{ host: '10.0.0.1', pgPort: 0, checkPort: 9631 }] }), /PostgreSQL port/);
    assert.throws(() => renderHaproxyConfig({ ...base, members: [{ host: '10.0.0.1', pgPort: 5432, checkPort: 70000 }] }), /HTTP API port/);
    assert.throws(
      () => renderHaproxyConfig({ ...base, members: [{ name: 'x', host: '10.0.0.1', pgPort: 1, checkPort: 2 }, { name: 'x', host: '10.0.0.2', pgPort: 1, checkPort: 2 }] }),
      /share the HAProxy server name "x"/,
    );
    assert.throws(() => renderHaproxyConfig({ ...base, replicaListen: base.listen }), /two listeners share 0.0.0.0:5432/);
  });

  test('HAProxy accepts the rendered config (haproxy -c)', { skip: haproxyMissing ?? false }, () => {
    for (const input of [threeMembers, { ...threeMembers, replicaListen: null, statsListen: { host: '127.0.0.1', port: 7000 } }]) {
      const result = haproxyCheck(renderHaproxyConfig(input));
      assert.ok(result.ok, result.output);
      assert.doesNotMatch(result.output, /WARNING/, 'no warnings either');
    }
    assert.equal(haproxyCheck('backend x\n    option httpchk GET /primary\n    server a 10.0.0.1:notaport\n').ok, false, 'the check itself can fail');
  });
});

describe('TLS checks (docs/tls.md)', () => {
  test('check-ssl with verify required and the CA file; a member known by id is held to <id>.member.hasup', () => {
    const text = renderHaproxyConfig({ ...threeMembers, members: [...threeMembers.members, { name: '0123456789abcdef', host: '10.0.0.14', pgPort: 5432, checkPort: 9631 }], checkCaFile: '/etc/haproxy/hasup-ca.pem' });
    const servers = section(text, 'backend postgresql_primary').filter((l) => l.startsWith('server '));
    assert.deepEqual(servers, [
      'server 10.0.0.11_5432 10.0.0.11:5432 check port 9631 check-ssl verify required ca-file /etc/haproxy/hasup-ca.pem',
      'server 10.0.0.12_5432 10.0.0.12:5432 check port 9631 check-ssl verify required ca-file /etc/haproxy/hasup-ca.pem',
      'server member-3 10.0.0.13:6432 check port 9700 check-ssl verify required ca-file /etc/haproxy/hasup-ca.pem',
      'server 0123456789abcdef 10.0.0.14:5432 check port 9631 check-ssl verify required ca-file /etc/haproxy/hasup-ca.pem verifyhost 0123456789abcdef.member.hasup',
    ]);
    assert.match(text, /checks go over TLS/);
    assert.match(renderHaproxyConfig(threeMembers), /checks go in clear text/);
    assert.throws(() => renderHaproxyConfig({ ...threeMembers, checkCaFile: 'relative/ca.pem' }), /CA file for the checks must be an absolute path/);
    assert.throws(() => renderHaproxyConfig({ ...threeMembers, checkCaFile: '/a b/ca.pem' }), /without blanks/);
  });

  test('HAProxy accepts the TLS checks', { skip: haproxyMissing ?? false }, async () => {
    const ca = join(work, 'ca.pem');
    writeFileSync(ca, (await createCa({ name: 'haproxy-test' })).cert);
    const r = haproxyCheck(renderHaproxyConfig({ ...threeMembers, checkCaFile: ca }));
    assert.ok(r.ok, r.output);
  });

  test('the CLI: --members needs --check-ca or --no-check-ssl (the API serves HTTPS by default); --check-ca and --no-check-ssl contradict', () => {
    const env = { ...process.env, HASUP_STATE_DIR: join(work, 'no-such-state') };
    const base = ['gen-frontend-config', '--haproxy', '--members', '10.0.0.11:9631', '--no-replicas'];
    const none = spawnSync(process.execPath, [HASUP_BIN, ...base], { encoding: 'utf8', env });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /serves HTTPS by default but there is no CA bundle at .*no-such-state\/tls\/ca.pem; pass --check-ca FILE/);
    const withCa = spawnSync(process.execPath, [HASUP_BIN, ...base, '--check-ca', '/etc/haproxy/hasup-ca.pem'], { encoding: 'utf8', env });
    assert.equal(withCa.status, 0, withCa.stderr);
    assert.match(withCa.stdout, /check port 9631 check-ssl verify required ca-file \/etc\/haproxy\/hasup-ca.pem$/m);
    const both = spawnSync(process.execPath, [HASUP_BIN, ...base, '--check-ca', '/x.pem', '--no-check-ssl'], { encoding: 'utf8', env });
    assert.equal(both.status, 1);
    assert.match(both.stderr, /contradict/);
  });
});

describe('gen-frontend-config CLI', () => {
  test('--members: ADDR[:HTTPPORT] list, HTTP port defaults to 9631', () => {
    assert.deepEqual(parseMembersFlag('10.0.0.11:9700, 10.0.0.12', 5433), [
      { host: '10.0.0.11', pgPort: 5433, checkPort: 9700 },
      { host: '10.0.0.12', pgPort: 5433, checkPort: 9631 },
    ]);
    assert.throws(() => parseMembersFlag(' , ', 5432), /empty/);
    assert.throws(() => parseMembersFlag('db1:9631', 5432), /not an IP address/);
  });

  test('prints the config for --members; refuses without --haproxy', () => {
    const ok = spawnSync(process.execPath, [HASUP_BIN, 'gen-frontend-config', '--haproxy', '--members', '10.0.0.11:9631,10.0.0.12:9631', '--pg-port', '5444', '--listen', '127.0.0.1:6000', '--no-replicas', '--no-check-ssl'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^ {4}server 10\.0\.0\.12_5444 10\.0\.0\.12:5444 check port 9631$/m);
    assert.match(ok.stdout, /^ {4}bind 127\.0\.0\.1:6000$/m);
    assert.doesNotMatch(ok.stdout, /replica/);
    const refused = spawnSync(process.execPath, [HASUP_BIN, 'gen-frontend-config', '--members', '10.0.0.11'], { encoding: 'utf8' });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /--haproxy/);
  });

  test('without --members: every member the local daemon knows, except departed ones, checked on its API port', async () => {
    const stateDir = mkdtempSync(join(work, 'state-'));
    const secrets = generateSecrets();
    writeSecretsFile(join(stateDir, 'secrets.json'), secrets);
    const requests: string[] = [];
    const api = createHttpServer((req, res) => {
      requests.push(`${req.method} ${req.url} ${req.headers.authorization === `Bearer ${secrets.api_token}` ? 'token' : 'no-token'}`);
      const member = (id: string, address: string, state: string) => ({ id, address, state, incarnation: 1 });
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          self: member('m1', '10.9.0.11:9638', 'alive'),
          members: [member('m1', '10.9.0.11:9638', 'alive'), member('m2', '10.9.0.12:9638', 'dead'), member('m3', '10.9.0.13:9638', 'departed'), member('m10', '10.9.0.110:9638', 'suspect')],
        }),
      );
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const port = (api.address() as { port: number }).port;
    writeApiEndpoint(stateDir, { url: `http://127.0.0.1:${port}`, secrets: join(stateDir, 'secrets.json') });
    try {
      const { code, stdout, stderr } = await runCli(['gen-frontend-config', '--haproxy', '--state-dir', stateDir]);
      assert.equal(code, 0, stderr);
      const servers = section(stdout, 'backend postgresql_primary').filter((l) => l.startsWith('server '));
      assert.deepEqual(servers, [`server m1 10.9.0.11:5432 check port ${port}`, `server m2 10.9.0.12:5432 check port ${port}`, `server m10 10.9.0.110:5432 check port ${port}`]);
      assert.deepEqual(requests, ['GET /butterfly token']);
    } finally {
      api.close();
    }
  });
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HASUP_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * A stand-in member: an HTTP API whose /primary and /replica answers the
 * test sets, and a "PostgreSQL" TCP port that greets with the member's name.
 */
class FakeMember {
  primary = false;
  replica = false;
  readonly sockets = new Set<Socket>();
  private readonly api: HttpServer | HttpsServer;
  private readonly pg: TcpServer;

  constructor(
    readonly name: string,
    readonly host: string,
    readonly pgPort: number,
    readonly apiPort: number,
    /** Serve the API over HTTPS with this certificate, as a member does (docs/tls.md). */
    tls?: KeyPairPem,
  ) {
    const answer = (req: { url?: string }, res: { statusCode: number; end(): void }) => {
      const up = req.url === '/primary' ? this.primary : req.url === '/replica' ? this.replica : false;
      res.statusCode = up ? 200 : 503;
      res.end();
    };
    this.api = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, answer) : createHttpServer(answer);
    this.pg = createTcpServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      s.write(`${name}\n`);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.api.listen(this.apiPort, this.host, r));
    await new Promise<void>((r) => this.pg.listen(this.pgPort, this.host, r));
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.api.close();
    this.pg.close();
  }
}

/** Connects through HAProxy; resolves with the greeting and the open socket. */
function connectThrough(host: string, port: number): Promise<{ name: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    socket.setEncoding('utf8');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no greeting within 2 s'));
    }, 2000);
    socket.once('data', (d: string) => {
      clearTimeout(timer);
      resolve({ name: d.trim(), socket });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('closed before the greeting'));
    });
  });
}

async function greetingThrough(host: string, port: number): Promise<string | null> {
  try {
    const { name, socket } = await connectThrough(host, port);
    socket.destroy();
    return name;
  } catch {
    return null;
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

test('a real HAProxy with the rendered config follows /primary and /replica', { skip: haproxyMissing ?? false }, async () => {
  // A /24 of loopback per run, so a parallel run never shares addresses.
  const net = `127.77.${1 + Math.floor(Math.random() * 250)}`;
  const base = 20_000 + Math.floor(Math.random() * 20_000);
  const members = [1, 2, 3].map((i) => new FakeMember(`member${i}`, `${net}.${10 + i}`, base + i, base + 10 + i));
  const front = `${net}.1`;
  const config = renderHaproxyConfig({
    members: members.map((m) => ({ name: m.name, host: m.host, pgPort: m.pgPort, checkPort: m.apiPort })),
    listen: { host: front, port: base },
    replicaListen: { host: front, port: base + 100 },
  });
  const file = join(work, 'live.cfg');
  writeFileSync(file, config);
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  try {
    for (const m of members) await m.start();
    members[1]!.primary = true;
    members[0]!.replica = true;
    members[2]!.replica = true;
    haproxy = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    const primaryOnly = async (want: string) => {
      for (let k = 0; k < 4; k++) if ((await greetingThrough(front, base)) !== want) return false;
      return true;
    };
    await until(() => primaryOnly('member2'), 10_000, `writes to reach member2 only; haproxy: ${haproxyLog}`);

    // HAProxy 2.6 counts every server up until its first check (spread over the first `inter`), so poll.
    await until(
      async () => {
        const seen = new Set<string | null>();
        for (let k = 0; k < 8; k++) seen.add(await greetingThrough(front, base + 100));
        return [...seen].sort().join() === 'member1,member3';
      },
      10_000,
      'read-only sessions spread over the two replicas only',
    );

    // Leadership moves: the session open to the old leader is cut and new ones go to the new leader.
    const held = await connectThrough(front, base);
    assert.equal(held.name, 'member2');
    const closed = new Promise<number>((r) => held.socket.once('close', () => r(Date.now())));
    held.socket.on('error', () => undefined);
    const moved = Date.now();
    members[1]!.primary = false;
    members[2]!.primary = true;
    members[2]!.replica = false;
    let giveUp: NodeJS.Timeout | undefined;
    const cutAt = await Promise.race([closed, new Promise<number>((r) => (giveUp = setTimeout(() => r(-1), 8000)))]);
    clearTimeout(giveUp);
    const cutAfter = cutAt - moved;
    console.log(`# session to the old leader cut ${cutAfter} ms after it stopped answering 200 on /primary`);
    assert.ok(cutAfter > 0, 'HAProxy closed the session to the member that stopped answering /primary');
    assert.ok(cutAfter < 5000, `the session was cut ${cutAfter} ms after the move (checks: inter 1s, fastinter 500ms, fall 2)`);
    await until(() => primaryOnly('member3'), 5000, 'writes to reach member3 only');
  } finally {
    haproxy?.kill('SIGKILL');
    for (const m of members) m.close();
  }
});

test('a real HAProxy checks over TLS: only a member whose certificate the cluster CA signed for its own id takes writes', { skip: haproxyMissing ?? false }, async () => {
  const net = `127.78.${1 + Math.floor(Math.random() * 250)}`;
  const base = 20_000 + Math.floor(Math.random() * 20_000);
  const ca = await createCa({ name: 'haproxy-live' });
  const other = await createCa({ name: 'other' });
  const ids = ['1111111111111111', '2222222222222222', '3333333333333333'];
  const host = (i: number) => `${net}.${10 + i}`;
  const certs = [
    await issueMemberCert({ ca, memberId: ids[0]!, addresses: [host(1)] }),
    // Another CA's certificate, for the right id.
    await issueMemberCert({ ca: other, memberId: ids[1]!, addresses: [host(2)] }),
    // The cluster CA's certificate, but for another member's id.
    await issueMemberCert({ ca, memberId: '4444444444444444', addresses: [host(3)] }),
  ];
  const members = [1, 2, 3].map((i) => new FakeMember(ids[i - 1]!, host(i), base + i, base + 10 + i, certs[i - 1]));
  const caFile = join(work, 'live-ca.pem');
  writeFileSync(caFile, ca.cert);
  const front = `${net}.1`;
  const config = renderHaproxyConfig({
    members: members.map((m) => ({ name: m.name, host: m.host, pgPort: m.pgPort, checkPort: m.apiPort })),
    listen: { host: front, port: base },
    replicaListen: null,
    checkCaFile: caFile,
  });
  const file = join(work, 'live-tls.cfg');
  writeFileSync(file, config);
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  try {
    for (const m of members) {
      m.primary = true;
      await m.start();
    }
    haproxy = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyLog += d.toString()));
    // Every server counts as up until its first check: wait until only the first one takes sessions.
    await until(
      async () => {
        for (let k = 0; k < 6; k++) if ((await greetingThrough(front, base)) !== ids[0]) return false;
        return true;
      },
      10_000,
      `writes to reach the member with the right certificate only; haproxy: ${haproxyLog}`,
    );
  } finally {
    haproxy?.kill('SIGKILL');
    for (const m of members) m.close();
  }
});
