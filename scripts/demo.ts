/**
 * `npm run demo`: the whole local cluster, made the production way and left
 * running in the background. Three members on 127.0.0.1-3, prepared with
 * `hasup cluster create` / `hasup cluster join` and run with `hasup run
 * --config`, each running PostgreSQL, etcd and Elasticsearch; HAProxy in
 * front, configured by `hasup gen-frontend-config --haproxy`. Waits until
 * there is one PostgreSQL leader with two streaming replicas behind HAProxy,
 * then prints each member's `hasup status` and how to connect and stop.
 *
 *   npm run demo              start (the previous demo's data is kept)
 *   npm run demo -- fresh     start over with new data
 *   npm run demo -- stop      stop everything the demo started
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSecretsFile } from '../src/supervisor/secrets.js';
import { CLUSTER_NAME, hasup, markUp, prepareCluster, readMarker } from './demo-cluster.js';
import { DemoLayout, ES_HEAP, HAPROXY, HASUP_NODE_ARGS, MEMBER_PORTS, MEMBERS, memberAddress } from './demo-layout.js';
import { busyPorts, haproxyBinary, missingPieces } from './demo-preflight.js';
import { DemoError, runningFromPidFile, sleep, startDetached, stopOrphan, stopRecorded, survivingChildren, tail } from './demo-procs.js';
import { memberCheck, observe, sessionThrough, summary, unmet, type Snapshot } from './demo-watch.js';

const layout = new DemoLayout();

function timeoutFromEnv(name: string, fallbackS: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallbackS;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new DemoError(`${name} must be a number of seconds, got "${text}"`);
  return seconds;
}

/**
 * Bounded, with room: first starts (initdb, two base backups, three JVMs) took 30-49 s, restarts 24-46 s, on a
 * 2-core machine shared with other clusters, Elasticsearch being the last to be healthy.
 */
const DEFAULT_START_TIMEOUT_S = 480;
/** A member stops PostgreSQL and Elasticsearch (each up to 60 s by their plans) before it exits. */
const MEMBER_STOP_TIMEOUT_MS = 150_000;
const PROGRESS_REPEAT_MS = 30_000;

/**
 * Stops what the demo started, by recorded pid. The followers go first and the
 * leader last, so no follower takes over (and starts a new timeline) while the
 * cluster is being shut down; each hasup stops its own children on SIGTERM.
 * HAProxy goes last. Returns how many processes were running.
 */
async function stopDemo(): Promise<number> {
  const running = MEMBERS.filter((i) => runningFromPidFile(layout.pidFile(i)));
  const codes = await Promise.all(running.map((i) => memberCheck(i, '/primary')));
  const leaders = running.filter((_, n) => codes[n] === 200);
  const followers = running.filter((i) => !leaders.includes(i));
  let count = 0;
  for (const batch of [followers, leaders]) {
    await Promise.all(
      batch.map(async (i) => {
        const record = runningFromPidFile(layout.pidFile(i));
        if (!record) return;
        const started = Date.now();
        console.log(`stopping member ${i} (${memberAddress(i)}, hasup pid ${record.pid}${leaders.includes(i) ? ', the PostgreSQL leader' : ''})`);
        const waiting = setInterval(() => console.log(`  member ${i} is still stopping its services after ${Math.round((Date.now() - started) / 1000)} s (each gets up to 60 s before hasup kills it; see ${layout.show(layout.logFile(i))})`), 15_000);
        const outcome = await stopRecorded(layout.pidFile(i), MEMBER_STOP_TIMEOUT_MS).finally(() => clearInterval(waiting));
        count++;
        console.log(`  member ${i} ${outcome === 'killed' ? `did not stop within ${MEMBER_STOP_TIMEOUT_MS / 1000} s and was killed` : `stopped in ${((Date.now() - started) / 1000).toFixed(1)} s`}`);
      }),
    );
  }
  // Children a killed daemon left behind: found through hasup's own pidfiles, stopped by their recorded pids.
  for (const i of MEMBERS) {
    for (const orphan of survivingChildren(layout.memberDir(i))) {
      console.log(`  stopping ${orphan.service} (pid ${orphan.record.pid}) left running by member ${i}`);
      await stopOrphan(orphan.record, 60_000);
      count++;
    }
  }
  const haproxy = runningFromPidFile(layout.haproxyPidFile);
  if (haproxy) {
    console.log(`stopping HAProxy (pid ${haproxy.pid})`);
    await stopRecorded(layout.haproxyPidFile, 5000);
    count++;
  }
  return count;
}

function startMembers(): void {
  for (const i of MEMBERS) {
    const args = ['run', '--config', layout.configFile(i)];
    const record = startDetached(process.execPath, [...HASUP_NODE_ARGS, layout.hasupBin, ...args], { logFile: layout.logFile(i), pidFile: layout.pidFile(i), cwd: layout.root });
    console.log(`$ hasup ${args.map((a) => layout.show(a)).join(' ')} &    # member ${i}, pid ${record.pid}, log ${layout.show(layout.logFile(i))}`);
  }
}

function startHaproxy(): void {
  mkdirSync(layout.haproxyDir, { recursive: true });
  const config = hasup(
    layout,
    ['gen-frontend-config', '--haproxy', '--state-dir', layout.memberDir(1), '--listen', `${HAPROXY.host}:${HAPROXY.writePort}`, '--replica-listen', `${HAPROXY.host}:${HAPROXY.readOnlyPort}`, '--stats', `${HAPROXY.host}:${HAPROXY.statsPort}`],
    'command',
  );
  writeFileSync(layout.haproxyConfig, config);
  console.log(`    written to ${layout.show(layout.haproxyConfig)}`);
  const haproxy = haproxyBinary() ?? 'haproxy';
  const check = spawnSync(haproxy, ['-c', '-f', layout.haproxyConfig], { encoding: 'utf8' });
  if (check.status !== 0) throw new DemoError(`HAProxy refuses ${layout.show(layout.haproxyConfig)}:\n${check.stdout}${check.stderr}`);
  // -db: stay in the foreground (no fork), so the pid recorded is HAProxy's own.
  const record = startDetached(haproxy, ['-db', '-f', layout.haproxyConfig], { logFile: layout.haproxyLog, pidFile: layout.haproxyPidFile, cwd: layout.root });
  console.log(`$ haproxy -db -f ${layout.show(layout.haproxyConfig)} &    # pid ${record.pid}, log ${layout.show(layout.haproxyLog)}`);
}

/** A process the demo started that has exited: the demo cannot go on. */
function deadProcess(haproxyStarted: boolean): string | undefined {
  for (const i of MEMBERS) {
    if (!runningFromPidFile(layout.pidFile(i))) return `member ${i}'s hasup exited. The end of ${layout.show(layout.logFile(i))}:\n${tail(layout.logFile(i), 15)}`;
  }
  if (haproxyStarted && !runningFromPidFile(layout.haproxyPidFile)) return `HAProxy exited. The end of ${layout.show(layout.haproxyLog)}:\n${tail(layout.haproxyLog, 15)}`;
  return undefined;
}

let interrupted = false;

async function waitUntilUp(secrets: { token: string; password: string }, timeoutMs: number): Promise<Snapshot> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let haproxyStarted = false;
  let lastLine = '';
  let lastPrinted = 0;
  let snapshot: Snapshot | undefined;
  console.log(`\nwaiting for the cluster (at most ${timeoutMs / 1000} s; Elasticsearch is the slowest, often a minute on a small machine):`);
  while (!interrupted) {
    const dead = deadProcess(haproxyStarted);
    if (dead) throw new DemoError(dead);
    snapshot = await observe({ ...secrets, haproxyRunning: haproxyStarted });
    const line = summary(snapshot);
    if (line !== lastLine || Date.now() - lastPrinted >= PROGRESS_REPEAT_MS) {
      console.log(`[${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s] ${line}`);
      lastLine = line;
      lastPrinted = Date.now();
    }
    // HAProxy lists the members the ring knows, so it starts once the ring has all of them.
    if (!haproxyStarted && snapshot.ringAlive === MEMBERS.length) {
      startHaproxy();
      haproxyStarted = true;
      continue;
    }
    const missing = unmet(snapshot, layout);
    if (missing.length === 0) {
      console.log(`the cluster is up after ${Math.round((Date.now() - started) / 1000)} s`);
      return snapshot;
    }
    if (Date.now() > deadline) throw new DemoError(`the cluster is not up after ${timeoutMs / 1000} s (HASUP_DEMO_TIMEOUT_S sets the limit). Not ready:\n${missing.map((m) => `  - ${m}`).join('\n')}`);
    await sleep(1000);
  }
  throw new DemoError('interrupted (Ctrl-C)');
}

/** The cluster was just seen up, but a check can still meet a moment of change (HAProxy flips a server every second). */
async function withRetries<T>(fn: () => Promise<T>, withinMs: number, what: string): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline || interrupted) throw new DemoError(`${what} failed: ${(err as Error).message}`);
      await sleep(1000);
    }
  }
}

/** Shows that HAProxy's write listener reaches the leader and its read-only one a streaming follower. */
async function demonstrateSessions(password: string): Promise<string[]> {
  let rows = 0;
  const writer = await sessionThrough(HAPROXY.writePort, password, async (c) => {
    await c.query('CREATE TABLE IF NOT EXISTS hasup_demo (id bigserial PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(), written_on inet DEFAULT inet_server_addr())');
    await c.query('INSERT INTO hasup_demo DEFAULT VALUES');
    rows = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM hasup_demo')).rows[0]!.n;
  });
  const reader = await sessionThrough(HAPROXY.readOnlyPort, password);
  return [
    `a write through ${HAPROXY.host}:${HAPROXY.writePort} landed on ${writer.addr}${writer.standby ? ' (a standby!)' : ', the leader'}: table hasup_demo now holds ${rows} row${rows === 1 ? '' : 's'} (the demo adds one at every start)`,
    `a session through ${HAPROXY.host}:${HAPROXY.readOnlyPort} landed on ${reader.addr}${reader.standby ? ', a read-only streaming follower' : ' (not a standby!)'}`,
  ];
}

function printGuide(checked: string[]): void {
  const cli = layout.hasupCommand();
  const secrets = layout.secretsFile;
  const ca = layout.show(join(layout.memberDir(1), 'tls', 'ca.pem'));
  console.log(`
Checked: ${checked.join(';\n         ')}.

Connect with psql through HAProxy (writes go to the leader, whichever member holds the lease), with TLS
to the server end to end, verified against the cluster CA (docs/tls.md):
  psql "host=${HAPROXY.host} port=${HAPROXY.writePort} user=hasup dbname=postgres sslmode=verify-full sslrootcert=${ca}"      # read-write, the leader
  psql "host=${HAPROXY.host} port=${HAPROXY.readOnlyPort} user=hasup dbname=postgres sslmode=verify-full sslrootcert=${ca}"      # read-only, a streaming follower
The password is "postgresql.superuser_password" in the cluster secrets file ${secrets}
(mode 0600, with the ring key and API token: never paste it into a log). Without printing it:
  PGPASSWORD="$(node -p 'require("${secrets}").postgresql.superuser_password')" psql -h ${HAPROXY.host} -p ${HAPROXY.writePort} -U hasup postgres
HAProxy's own view of the servers: http://${HAPROXY.host}:${HAPROXY.statsPort}/

The console (docs/console.md), served by every member over TLS from the cluster CA (${ca}: import it into
the browser, or accept its warning once): https://${memberAddress(1)}:${MEMBER_PORTS['hasup API']}/ui
Log in with "viewer_token" (read only) or "api_token" (operations) from ${secrets}.

Backups: a full one every night at 03:00 UTC and an incremental one every hour, whichever member leads;
\`status\` says when the next runs, the last one, the archive and the recoverability window (docs/backup.md).

Look around (from ${layout.root}):
  ${cli} status --state-dir ${layout.show(layout.memberDir(2))}        # any member; \`census\` and \`ha\` too
  ${cli} switchover --state-dir ${layout.show(layout.memberDir(1))}    # move the leader; HAProxy follows within ~2 s
  ${cli} backup create --wait --state-dir ${layout.show(layout.memberDir(1))}   # a full backup, taken on a streaming follower (the leader when none can); then \`backup list\`, \`backup verify\`
  ${cli} restore --time "$(date -u -d '2 min ago' +%FT%TZ)" --yes --state-dir ${layout.show(layout.memberDir(2))}   # the whole cluster back to a moment (checked against \`backup list\`'s window first)
  curl -s --cacert ${ca} https://${memberAddress(1)}:${MEMBER_PORTS['hasup API']}/primary
  curl -s --cacert ${ca} -u hasup_admin https://${memberAddress(1)}:${MEMBER_PORTS['Elasticsearch HTTP']}/_cluster/health   # Elasticsearch over TLS; its password: elasticsearch.admin_password in ${secrets}

State and logs, kept across \`npm run demo -- stop\` and the next \`npm run demo\` (\`npm run demo -- fresh\` starts over):
  ${layout.show(layout.dir)}/member-N/hasup.toml          written by \`hasup cluster create|join\` (plus the ES heap, ${ES_HEAP}, and the backup repository)
  ${layout.show(layout.dir)}/member-N/hasup.log           the daemon's JSON log
  ${layout.show(layout.dir)}/member-N/logs/services.log   PostgreSQL's, etcd's and Elasticsearch's output
  ${layout.show(layout.dir)}/member-N/svc/SERVICE/        each service's data, rendered config and own logs
  ${layout.show(layout.haproxyDir)}/                      haproxy.cfg (from gen-frontend-config), haproxy.log
  ${layout.show(layout.backupRepo)}/                  the pgBackRest repository (WAL archive and backups; docs/backup.md)

Stop everything: npm run demo -- stop`);
}

async function startDemo(fresh: boolean): Promise<void> {
  const timeoutMs = timeoutFromEnv('HASUP_DEMO_TIMEOUT_S', DEFAULT_START_TIMEOUT_S) * 1000;
  const problems = missingPieces(layout);
  if (problems.length > 0) throw new DemoError(`cannot start:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  if ((await stopDemo()) > 0) console.log('stopped the previous demo\n');
  const busy = await busyPorts();
  if (busy.length > 0) throw new DemoError(`cannot start, ports it needs are taken:\n${busy.map((b) => `  - ${b}`).join('\n')}`);

  const marker = readMarker(layout);
  if (fresh || !marker?.up_once) {
    if (existsSync(layout.dir)) {
      const why = fresh ? 'fresh start' : marker ? 'its first start did not complete' : 'it is from an older or interrupted demo';
      console.log(`removing ${layout.show(layout.dir)} (${why})`);
      rmSync(layout.dir, { recursive: true, force: true });
    }
    console.log(`preparing cluster "${CLUSTER_NAME}" on ${MEMBERS.map(memberAddress).join(', ')}:`);
    await prepareCluster(layout);
  } else {
    console.log(`restarting the demo cluster created ${marker.created_at}, with its data (\`npm run demo -- fresh\` starts over)`);
  }
  const secrets = loadSecretsFile(layout.secretsFile);

  console.log('\nstarting the members:');
  startMembers();
  await waitUntilUp({ token: secrets.api_token, password: secrets.postgresql.superuser_password }, timeoutMs);
  markUp(layout);
  const checked = await withRetries(() => demonstrateSessions(secrets.postgresql.superuser_password), 30_000, 'the sessions through HAProxy');

  for (const i of MEMBERS) {
    console.log('');
    try {
      hasup(layout, ['status', '--state-dir', layout.memberDir(i)]);
    } catch (err) {
      // The cluster is up; a status that fails to print is worth showing, not worth tearing it down.
      console.log(`    ${(err as Error).message.replace(/\n/g, '\n    ')}`);
    }
  }
  printGuide(checked);
}

const USAGE = 'usage: npm run demo [-- start | fresh | stop]';

async function main(): Promise<number> {
  const command = process.argv[2] ?? 'start';
  if (command === 'stop') {
    const n = await stopDemo();
    console.log(n > 0 ? 'the demo is stopped (its data is kept in .demo; `npm run demo` starts it again)' : 'no demo process was running');
    return 0;
  }
  if (command !== 'start' && command !== 'fresh') {
    console.error(USAGE);
    return 2;
  }
  // Ctrl-C while starting: stop what was started rather than leave half a cluster behind.
  process.on('SIGINT', () => {
    interrupted = true;
  });
  try {
    await startDemo(command === 'fresh');
    return 0;
  } catch (err) {
    const message = err instanceof DemoError ? err.message : (err as Error).stack ?? String(err);
    console.error(`\nnpm run demo: ${message}`);
    if (process.env.HASUP_DEMO_KEEP_ON_FAILURE === '1') {
      console.error('\nleft running for inspection (HASUP_DEMO_KEEP_ON_FAILURE=1); stop it with: npm run demo -- stop');
    } else if (runningFromPidFile(layout.haproxyPidFile) || MEMBERS.some((i) => runningFromPidFile(layout.pidFile(i)))) {
      console.error('\nstopping what the demo started (logs stay in .demo; HASUP_DEMO_KEEP_ON_FAILURE=1 leaves it running):');
      await stopDemo();
    }
    return interrupted ? 130 : 1;
  }
}

process.exitCode = await main();
