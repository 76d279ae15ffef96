/**
 * GET /supervisor and POST /supervisor/restart (hasup upgrade hasup's step):
 * the view, a refusal that changes nothing (409), a restart that is answered
 * first and carried out after the answer, once, and the token required.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { supervisorRoutes, type SupervisorRouteDeps } from '../../src/plugins/http/supervisor-routes.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { createLogger } from '../../src/supervisor/log.js';

const TOKEN = 'test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

async function server(over: Partial<SupervisorRouteDeps> = {}) {
  const calls: string[] = [];
  let installed = '1.0.0';
  const deps: SupervisorRouteDeps = {
    pid: 4242,
    startedAt: 1_000,
    runningVersion: '1.0.0',
    installedVersion: () => installed,
    restartRefusal: () => undefined,
    restart: () => calls.push('restart'),
    ...over,
  };
  const app = await createHttpServer({ log: createLogger({ level: 'silent' }), token: TOKEN, plugins: [{ plugin: supervisorRoutes, options: deps }] });
  return { app, calls, install: (v: string) => (installed = v) };
}

test('GET /supervisor: pid, start, the running version and the one on disk now', async () => {
  const { app, install } = await server();
  install('1.1.0');
  const r = await app.inject({ method: 'GET', url: '/supervisor', headers: auth });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), { pid: 4242, started_at: 1000, version: '1.0.0', installed_version: '1.1.0', restart_refused: null });
  assert.equal((await app.inject({ method: 'GET', url: '/supervisor' })).statusCode, 401);
  await app.close();
});

test('POST /supervisor/restart: answered 202, then the restart, once; a second ask while it runs is refused', async () => {
  const { app, calls } = await server();
  const r = await app.inject({ method: 'POST', url: '/supervisor/restart', headers: auth });
  assert.equal(r.statusCode, 202);
  assert.equal((r.json() as { pid: number }).pid, 4242);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls, ['restart']);
  const again = await app.inject({ method: 'POST', url: '/supervisor/restart', headers: auth });
  assert.equal(again.statusCode, 409);
  assert.match((again.json() as { error: string }).error, /a restart is already under way/);
  assert.deepEqual(calls, ['restart']);
  await app.close();
});

test('POST /supervisor/restart refused (the leader, nothing to start it again): 409 with the reason, no restart', async () => {
  const { app, calls } = await server({ restartRefusal: () => 'this member holds the PostgreSQL leader lease' });
  const r = await app.inject({ method: 'POST', url: '/supervisor/restart', headers: auth });
  assert.equal(r.statusCode, 409);
  assert.equal((r.json() as { error: string }).error, 'hasup on this member will not restart: this member holds the PostgreSQL leader lease');
  assert.equal((await app.inject({ method: 'POST', url: '/supervisor/restart' })).statusCode, 401);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls, []);
  await app.close();
});
