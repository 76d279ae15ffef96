/**
 * A rollout's progress on /events: the route takes a line (and refuses a
 * bad body, changing nothing), the rumor carries it (cut to fit a packet;
 * a malformed one is dropped), and watchRing turns it into a `rollout` event
 * naming the member the command ran on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { MemberlistEvents, StoredRumor } from '../../src/gossip/index.js';
import { watchRing, type ApiEvent } from '../../src/plugins/http/events.js';
import { rolloutRoutes } from '../../src/plugins/http/rollout-routes.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { createLogger } from '../../src/supervisor/log.js';
import { decodeRolloutProgress, ROLLOUT_LINE_MAX, rolloutRumorFor, type RolloutProgress } from '../../src/supervisor/rumors/rollout.js';

const TOKEN = 'test-token';
const MEMBER = '00000000000000aa';
const progress: RolloutProgress = { id: 'mi1x-a1b2c3', command: 'upgrade', service_group: 'postgresql.default', to: '/opt/pg/bin', line: '[1/4] switching to /opt/pg/bin and restarting postgresql on m2', state: 'running', at: 1000 };

test('the route publishes a line; a bad body is refused and nothing is published; the token is needed', async () => {
  const published: RolloutProgress[] = [];
  const app = await createHttpServer({ log: createLogger({ level: 'silent' }), token: TOKEN, plugins: [{ plugin: rolloutRoutes, options: { publish: (p: RolloutProgress) => published.push(p) } }] });
  const post = (body: unknown, token: string | null = TOKEN) => app.inject({ method: 'POST', url: '/rollouts/progress', payload: body as object, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const { at: _at, ...body } = progress;
  assert.equal((await post(body)).statusCode, 202);
  assert.equal(published.length, 1);
  assert.equal(published[0]!.line, progress.line);
  assert.ok(published[0]!.at > 1000, 'stamped by the member');
  for (const bad of [{ ...body, state: 'maybe' }, { ...body, command: 'rm -rf' }, { ...body, id: 'a b' }, { ...body, extra: 1 }, { ...body, service_group: 'postgresql' }]) {
    assert.equal((await post(bad)).statusCode, 400, JSON.stringify(bad));
  }
  assert.equal((await post(body, null)).statusCode, 401);
  assert.equal(published.length, 1);
  await app.close();
});

test('the rumor round-trips, cuts a long line, and a malformed payload decodes to nothing', () => {
  const r = rolloutRumorFor(MEMBER, progress, 7);
  assert.equal(r.key, `${MEMBER}/rollout`);
  assert.deepEqual(decodeRolloutProgress(r.payload), progress);
  assert.equal(decodeRolloutProgress(rolloutRumorFor(MEMBER, { ...progress, line: 'x'.repeat(5000) }, 8).payload)?.line.length, ROLLOUT_LINE_MAX);
  for (const bad of ['nope', '[]', JSON.stringify({ ...progress, state: 'odd' }), JSON.stringify({ ...progress, at: 'then' }), JSON.stringify({ ...progress, to: 3 })]) {
    assert.equal(decodeRolloutProgress(Buffer.from(bad)), undefined, bad);
  }
});

test('watchRing: a rollout rumor is a rollout event naming the member it came from', () => {
  const ring = new EventEmitter<MemberlistEvents>();
  const events: ApiEvent[] = [];
  const stop = watchRing(ring, (e) => events.push(e));
  const r = rolloutRumorFor(MEMBER, progress, 7);
  ring.emit('rumor', { ...r, originId: MEMBER } as unknown as StoredRumor);
  ring.emit('rumor', { ...r, payload: Buffer.from('{}'), originId: MEMBER } as unknown as StoredRumor);
  stop();
  assert.deepEqual(events, [{ ...progress, type: 'rollout', time: 1000, by: MEMBER }]);
});
