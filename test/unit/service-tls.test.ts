import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import type { DriverContext, ServiceDriver } from '../../src/supervisor/driver.js';
import { installRoot } from '../../src/supervisor/install-paths.js';
import { MultiSink } from '../../src/supervisor/log-sink.js';
import { memberTlsFiles } from '../../src/supervisor/pki/member-files.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls, withClusterCa } from '../../src/supervisor/pki/provision.js';
import { generateSecrets } from '../../src/supervisor/secrets.js';
import { StateDir } from '../../src/supervisor/state-dir.js';
import { Supervisor } from '../../src/supervisor/supervisor.js';

/**
 * Each service gets its own copy of the member's certificate (docs/tls.md),
 * sees it in its driver context and templates, and takes up a new one
 * through its driver's reloadTls without a restart.
 */
const root = mkdtempSync(join(tmpdir(), 'hasup-svc-tls-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('a service\'s copy of the member files, and a new certificate taken up without a restart', async () => {
  const state = new StateDir(root);
  state.ensure();
  const secrets = await withClusterCa(generateSecrets());
  const o = { stateRoot: root, memberId: state.memberId(), addresses: ['127.0.0.1'], secrets, secretsFile: join(root, 'secrets.json'), settings: DEFAULT_TLS_SETTINGS };
  assert.ok((await ensureMemberTls(o)).on);
  const reloads: Array<DriverContext['tls']> = [];
  const driver: ServiceDriver = {
    prepare: async () => undefined,
    health: async () => ({ status: 'ok' }),
    reloadTls: async (ctx) => void reloads.push(ctx.tls),
  };
  const supervisor = new Supervisor({
    stateDir: state,
    memberId: state.memberId(),
    ip: '127.0.0.1',
    dropPrivileges: false,
    secrets,
    tls: memberTlsFiles(root),
    planPath: [join(installRoot(), 'test', 'fixtures', 'plans')],
    group: 'default',
    userLayers: { chatter: { lines: 1 } },
    logSink: new MultiSink(),
    log: pino({ level: 'silent' }),
    driverFor: () => driver,
  });
  try {
    await supervisor.start(['chatter']);
    const ctx = supervisor.get('chatter')!.driverContext();
    const copy = join(root, 'svc', 'chatter', 'tls');
    assert.deepEqual(ctx.tls, { ca: join(copy, 'ca.pem'), cert: join(copy, 'member.pem'), key: join(copy, 'member.key') });
    assert.equal(statSync(ctx.tls!.key).mode & 0o777, 0o600);
    assert.equal(readFileSync(ctx.tls!.cert, 'utf8'), readFileSync(memberTlsFiles(root).cert, 'utf8'));
    const pid = supervisor.get('chatter')!.status().pid;

    const renewed = await ensureMemberTls({ ...o, renew: 'test' });
    assert.ok(renewed.on);
    await supervisor.refreshTls();
    assert.equal(new X509Certificate(readFileSync(ctx.tls!.cert)).fingerprint256, renewed.cert.fingerprint, 'the copy holds the new certificate');
    assert.deepEqual(reloads, [ctx.tls], 'the driver was told once');
    assert.equal(supervisor.get('chatter')!.status().pid, pid, 'no restart');
  } finally {
    await supervisor.stopAll();
  }
});
