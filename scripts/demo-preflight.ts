/**
 * What the demo needs before it starts anything, each missing piece named
 * with the way to get it: failing here takes a second, failing later means
 * digging through three members' logs for the same answer.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { HAPROXY, MEMBER_PORTS, MEMBERS, memberAddress, type DemoLayout } from './demo-layout.js';

const BOOTSTRAP_HINT = 'run `npm run bootstrap` as root (it installs what is missing), or';
const PG_BIN = '/usr/lib/postgresql/15/bin';
/** Where `npm run bootstrap` unpacks the development Elasticsearch (the plan's default `launcher = "maven"`). */
const VENDORED_HOME = join('vendor', 'elasticsearch', 'home');

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** HAProxy's binary: from PATH, else where Debian puts it (root's PATH does not always hold /usr/sbin). */
export function haproxyBinary(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  return existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : undefined;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Problems that stop the demo before it starts anything; empty when it can go. */
export function missingPieces(layout: DemoLayout): string[] {
  const problems: string[] = [];
  if (process.platform !== 'linux') return ['the demo runs on Linux only (it uses 127.0.0.2 and 127.0.0.3, /proc and Debian\'s packages)'];
  if (!existsSync(layout.hasupBin)) problems.push(`hasup is not built (${layout.show(layout.hasupBin)} is missing): run \`npm run build\` (\`npm run demo\` does)`);
  const uid = process.getuid?.();
  const hasUser = spawnSync('getent', ['passwd', 'hasup'], { stdio: 'ignore' }).status === 0;
  if (uid !== 0) {
    problems.push('the demo must run as root: hasup runs PostgreSQL and Elasticsearch as the user `hasup` (both refuse root), and only root can switch to it (sudo npm run demo)');
  } else if (!hasUser) {
    problems.push(`the system user \`hasup\` is missing (PostgreSQL and Elasticsearch run as it): ${BOOTSTRAP_HINT} useradd --system --user-group --home-dir /var/lib/hasup --create-home --shell /usr/sbin/nologin hasup`);
  }
  for (const tool of ['postgres', 'initdb', 'pg_basebackup', 'pg_rewind']) {
    if (!executable(join(PG_BIN, tool))) {
      problems.push(`PostgreSQL 15 is not installed (${PG_BIN}/${tool} is missing): ${BOOTSTRAP_HINT} apt-get install postgresql-15`);
      break;
    }
  }
  if (!executable('/usr/bin/etcd')) problems.push(`etcd is not installed (/usr/bin/etcd is missing): ${BOOTSTRAP_HINT} apt-get install etcd-server`);
  if (!onPath('haproxy')) problems.push(`HAProxy is not installed (no \`haproxy\` on PATH): ${BOOTSTRAP_HINT} apt-get install haproxy`);
  const esBin = join(layout.root, VENDORED_HOME, 'bin', 'elasticsearch');
  if (!executable(esBin)) problems.push(`Elasticsearch is not installed (${layout.show(esBin)} is missing): run \`npm run bootstrap\`, which fetches it from Maven Central`);
  if (!onPath('java')) problems.push(`Java is not installed (no \`java\` on PATH; Elasticsearch needs 17+): ${BOOTSTRAP_HINT} apt-get install openjdk-17-jre-headless`);
  if (uid === 0 && hasUser && problems.length === 0) {
    // The children run as `hasup`: a checkout under a private folder (say /root, mode 700) is out of their reach.
    const unreadable = [layout.root, join(layout.root, VENDORED_HOME, 'lib')].filter((dir) => spawnSync('setpriv', ['--reuid=hasup', '--regid=hasup', '--init-groups', 'test', '-x', dir], { stdio: 'ignore' }).status !== 0);
    if (unreadable.length > 0) problems.push(`the user \`hasup\` cannot reach ${unreadable.join(' and ')}, where the demo keeps its state and Elasticsearch: make the checkout's parent folders world-executable (chmod o+x), or clone it elsewhere`);
  }
  return problems;
}

function tcpFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}

/** Addresses and ports the demo is about to listen on that something else holds (run after the previous demo is stopped). */
export async function busyPorts(): Promise<string[]> {
  const wanted: Array<{ host: string; port: number; what: string; udp?: boolean }> = [];
  for (const i of MEMBERS) {
    for (const [what, port] of Object.entries(MEMBER_PORTS)) {
      wanted.push({ host: memberAddress(i), port, what: `member ${i}'s ${what}` });
      if (what.startsWith('gossip')) wanted.push({ host: memberAddress(i), port, what: `member ${i}'s ${what}`, udp: true });
    }
  }
  wanted.push({ host: HAPROXY.host, port: HAPROXY.writePort, what: 'HAProxy\'s write listener' });
  wanted.push({ host: HAPROXY.host, port: HAPROXY.readOnlyPort, what: 'HAProxy\'s read-only listener' });
  wanted.push({ host: HAPROXY.host, port: HAPROXY.statsPort, what: 'HAProxy\'s stats page' });
  const busy: string[] = [];
  for (const w of wanted) {
    const free = w.udp ? await udpFree(w.host, w.port) : await tcpFree(w.host, w.port);
    if (!free) busy.push(`${w.host}:${w.port}${w.udp ? '/udp' : ''} (${w.what}) is in use: \`ss -lntup 'sport = :${w.port}'\` shows by what`);
  }
  return busy;
}
