import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalRing, generateRingKey, randomPortBase, type MemberProc } from '../support/member-procs.js';

const base = mkdtempSync(join(tmpdir(), 'hasup-ring-'));
const port = randomPortBase();
const ring = new LocalRing({ baseDir: base, gossipPort: port, httpPort: port + 1, keyFile: join(base, 'ring.key') });

async function aliveCount(m: MemberProc): Promise<number> {
  const view = await m.butterfly();
  return view.members.filter((x) => x.state === 'alive').length;
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

before(async () => {
  generateRingKey(join(base, 'ring.key'));
  ring.spawn(1);
  await ring.ready([1]);
  for (const i of [2, 3, 4, 5]) ring.spawn(i, { peers: [1] });
  await ring.ready([2, 3, 4, 5]);
});

after(async () => {
  await ring.stopAll();
  rmSync(base, { recursive: true, force: true });
});

test('five real members on 127.0.0.1-5 converge to five alive', async () => {
  for (const m of ring.members.values()) {
    await eventually(async () => (await aliveCount(m)) === 5, 10_000, `member ${m.index} to see 5 alive`);
  }
});

test('a member with the wrong ring key never joins, and its packets are counted as unauthenticated', async () => {
  const intruderKey = join(base, 'other.key');
  generateRingKey(intruderKey);
  const intruder = ring.spawn(6, { peers: [1], keyFile: intruderKey });
  await ring.ready([6]);
  await intruder.waitForEvent((e) => e.event === 'join_retry', 10_000, 'a failed join');
  await new Promise((r) => setTimeout(r, 3000));
  for (const i of [1, 2, 3, 4, 5]) {
    const view = await ring.members.get(i)!.butterfly();
    assert.equal(view.members.length, 5, `member ${i} must not list the intruder`);
  }
  const first = await ring.members.get(1)!.butterfly();
  assert.ok((first.stats.dropped.auth_failed ?? 0) > 0, 'the join attempt must have been rejected as unauthenticated');
  const own = await intruder.butterfly();
  assert.equal(own.members.length, 1, 'the intruder sees only itself');
  await intruder.stop();
  ring.members.delete(6);
});

test('kill -9 of one member: every other member marks it dead', async () => {
  const victim = ring.members.get(5)!;
  const victimId = (await victim.butterfly()).self.id;
  victim.kill9();
  await victim.exited;
  const killedAt = Date.now();
  const seen = await Promise.all(
    [1, 2, 3, 4].map((i) =>
      ring.members.get(i)!.waitForEvent((e) => e.event === 'member' && e.peer === victimId && e.state === 'dead', 30_000, 'the victim dead'),
    ),
  );
  const slowest = Math.max(...seen.map((e) => e.time)) - killedAt;
  assert.ok(slowest < 30_000, `all saw the death within ${slowest} ms`);
  ring.members.delete(5);
});

test('a graceful stop is seen as a departure (left), not a death', async () => {
  const leaver = ring.members.get(4)!;
  const leaverId = (await leaver.butterfly()).self.id;
  await leaver.stop();
  ring.members.delete(4);
  await Promise.all(
    [1, 2, 3].map((i) =>
      ring.members.get(i)!.waitForEvent((e) => e.event === 'member' && e.peer === leaverId && e.state === 'left', 10_000, 'the leaver left'),
    ),
  );
  for (const i of [1, 2, 3]) {
    const dead = ring.members.get(i)!.events.find((e) => e.event === 'member' && e.peer === leaverId && e.state === 'dead');
    assert.equal(dead, undefined, `member ${i} must not have declared the leaver dead`);
  }
});
