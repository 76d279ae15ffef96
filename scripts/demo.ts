/**
 * `npm run demo`: a local 3-member hasup ring on 127.0.0.1-3, left running in
 * the background. Prints the membership as each member sees it and where to
 * look. `npm run demo -- stop` stops it (by the PIDs it recorded).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const demoDir = join(root, '.demo');
const bin = join(root, 'dist', 'src', 'cli', 'main.js');
const GOSSIP_PORT = 19638;
const HTTP_PORT = 19631;
const MEMBERS = [1, 2, 3];
const addr = (i: number) => `127.0.0.${i}`;
const pidFile = (i: number) => join(demoDir, `member-${i}`, 'demo.pid');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopDemo(): Promise<number> {
  let stopped = 0;
  for (const i of MEMBERS) {
    if (!existsSync(pidFile(i))) continue;
    const pid = Number(readFileSync(pidFile(i), 'utf8'));
    rmSync(pidFile(i));
    if (!Number.isInteger(pid) || !alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    for (let t = 0; t < 50 && alive(pid); t++) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    stopped++;
  }
  return stopped;
}

async function butterfly(i: number): Promise<{ self: { id: string }; members: Array<{ id: string; address: string; state: string; incarnation: number }> }> {
  const res = await fetch(`http://${addr(i)}:${HTTP_PORT}/butterfly`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as Awaited<ReturnType<typeof butterfly>>;
}

async function startDemo(): Promise<void> {
  const previous = await stopDemo();
  if (previous > 0) console.log(`stopped ${previous} member(s) of a previous demo`);
  mkdirSync(demoDir, { recursive: true });
  const keyFile = join(demoDir, 'ring.key');
  if (!existsSync(keyFile)) {
    const gen = spawnSync(process.execPath, [bin, 'ring-key', 'generate', keyFile], { stdio: 'inherit' });
    if (gen.status !== 0) throw new Error('could not generate the ring key');
  }
  for (const i of MEMBERS) {
    const stateDir = join(demoDir, `member-${i}`);
    mkdirSync(stateDir, { recursive: true });
    const logFile = join(stateDir, 'hasup.log');
    const out = openSync(logFile, 'a');
    const peers = i === 1 ? [] : ['--peer', `${addr(1)}:${GOSSIP_PORT}`];
    const child = spawn(
      process.execPath,
      ['--max-semi-space-size=2', bin, 'run', '--advertise', `${addr(i)}:${GOSSIP_PORT}`, '--listen-http', `${addr(i)}:${HTTP_PORT}`, '--ring-key', keyFile, '--state-dir', stateDir, ...peers],
      { detached: true, stdio: ['ignore', out, out] },
    );
    child.unref();
    writeFileSync(pidFile(i), String(child.pid));
  }
  console.log('waiting for the ring to converge...');
  const deadline = Date.now() + 20_000;
  let views: Array<Awaited<ReturnType<typeof butterfly>> | undefined> = [];
  while (Date.now() < deadline) {
    views = await Promise.all(MEMBERS.map((i) => butterfly(i).catch(() => undefined)));
    if (views.every((v) => v && v.members.filter((m) => m.state === 'alive').length === MEMBERS.length)) break;
    await sleep(200);
  }
  for (const [n, view] of views.entries()) {
    const i = MEMBERS[n]!;
    if (!view) {
      console.log(`\nmember ${i} (${addr(i)}) is not answering; see ${join(demoDir, `member-${i}`, 'hasup.log')}`);
      continue;
    }
    console.log(`\nmember ${i} (${addr(i)}, id ${view.self.id}) sees:`);
    for (const m of view.members) console.log(`  ${m.id}  ${m.address.padEnd(22)} ${m.state.padEnd(8)} incarnation ${m.incarnation}`);
  }
  console.log(`
The ring keeps running in the background.
  state and logs:   ${demoDir}/member-N/ (hasup.log is each member's JSON log)
  gossip state:     curl http://${addr(1)}:${HTTP_PORT}/butterfly
  stop it:          npm run demo -- stop`);
}

if (process.argv[2] === 'stop') {
  const n = await stopDemo();
  console.log(n > 0 ? `stopped ${n} demo member(s)` : 'no demo members were running');
} else {
  await startDemo();
}
