/**
 * `hasup gen-systemd-unit`: what the unit says (KillMode=process, restarts,
 * ExecStart and its quoting), what it refuses, the command's --output, and
 * that systemd accepts the text (`systemd-analyze verify`, where installed).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execWord, renderSystemdUnit, type SystemdUnitOptions } from '../../src/cli/systemd-unit.js';
import { HASUP_BIN, HASUP_NODE_ARGS } from '../support/member-procs.js';

const systemdAnalyzeMissing = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { stdio: 'ignore' }).status === 0 ? null : 'systemd-analyze is not installed (apt-get install -y --no-install-recommends systemd)';
const work = mkdtempSync(join(tmpdir(), 'hasup-systemd-'));
after(() => rmSync(work, { recursive: true, force: true }));

const base: SystemdUnitOptions = {
  nodePath: '/usr/bin/node',
  nodeArgs: ['--max-semi-space-size=2', '--v8-pool-size=1'],
  cliPath: '/opt/hasup/dist/src/cli/main.js',
};

/** The value of `key=` in one section; fails unless it occurs exactly once there. */
function setting(text: string, section: string, key: string): string {
  const lines = text.split('\n');
  const start = lines.indexOf(`[${section}]`);
  assert.ok(start >= 0, `section [${section}] present`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('['));
  const found = lines.slice(start + 1, end < 0 ? undefined : end).filter((l) => l.startsWith(`${key}=`));
  assert.equal(found.length, 1, `${key}= once in [${section}]`);
  return found[0]!.slice(key.length + 1);
}

function cli(args: string[]) {
  return spawnSync(process.execPath, [HASUP_BIN, 'gen-systemd-unit', ...args], { encoding: 'utf8' });
}

describe('renderSystemdUnit', () => {
  test('a supervisor that systemd restarts at once and never kills the services of', () => {
    const text = renderSystemdUnit({ ...base, stateDir: '/var/lib/hasup', config: '/etc/hasup/hasup.toml' });
    assert.equal(setting(text, 'Service', 'KillMode'), 'process');
    assert.match(text, /KillMode=process\n# makes systemd signal only hasup itself/, 'the unit says why');
    assert.equal(setting(text, 'Service', 'Restart'), 'always');
    assert.equal(setting(text, 'Service', 'Delegate'), 'yes');
    assert.equal(setting(text, 'Service', 'RestartSec'), '1');
    assert.equal(setting(text, 'Unit', 'StartLimitIntervalSec'), '0');
    assert.equal(setting(text, 'Service', 'Type'), 'simple');
    assert.equal(setting(text, 'Service', 'TimeoutStopSec'), '120');
    assert.equal(setting(text, 'Service', 'LimitNOFILE'), '65536');
    assert.equal(setting(text, 'Service', 'LimitMEMLOCK'), 'infinity');
    assert.equal(setting(text, 'Service', 'OOMScoreAdjust'), '-900');
    assert.equal(setting(text, 'Unit', 'After'), 'network-online.target');
    assert.equal(setting(text, 'Unit', 'Wants'), 'network-online.target');
    assert.equal(setting(text, 'Install', 'WantedBy'), 'multi-user.target');
    assert.equal(
      setting(text, 'Service', 'ExecStart'),
      '/usr/bin/node --max-semi-space-size=2 --v8-pool-size=1 /opt/hasup/dist/src/cli/main.js run --state-dir /var/lib/hasup --config /etc/hasup/hasup.toml',
    );
    assert.doesNotMatch(text, /^User=/m, 'root by default: no User=');
  });

  test('ExecStart quotes paths with spaces and escapes what systemd would expand', () => {
    const text = renderSystemdUnit({ ...base, nodePath: '/opt/node 20/bin/node', stateDir: '/srv/hasup data', config: '/etc/ha"sup/100%$x\\.toml' });
    assert.equal(
      setting(text, 'Service', 'ExecStart'),
      '"/opt/node 20/bin/node" --max-semi-space-size=2 --v8-pool-size=1 /opt/hasup/dist/src/cli/main.js run --state-dir "/srv/hasup data" --config "/etc/ha\\"sup/100%%$$x\\\\.toml"',
    );
    assert.equal(execWord(''), '""');
    assert.equal(execWord(';'), '";"');
  });

  test('--state-dir and --config are left out unless given', () => {
    assert.match(setting(renderSystemdUnit(base), 'Service', 'ExecStart'), / run$/);
  });

  test('refuses relative paths, newlines and control characters, bad user names', () => {
    assert.throws(() => renderSystemdUnit({ ...base, stateDir: 'var/lib/hasup' }), /--state-dir must be an absolute path/);
    assert.throws(() => renderSystemdUnit({ ...base, config: './hasup.toml' }), /--config must be an absolute path/);
    assert.throws(() => renderSystemdUnit({ ...base, stateDir: '/var/lib/hasup\nExecStartPre=/bin/sh' }), /--state-dir contains a newline/);
    assert.throws(() => renderSystemdUnit({ ...base, config: '/etc/hasup\r.toml' }), /--config contains a newline or another control character/);
    assert.throws(() => renderSystemdUnit({ ...base, description: 'hasup\n[Service]' }), /--description contains a newline/);
    assert.throws(() => renderSystemdUnit({ ...base, description: 'hasup \\' }), /backslash/);
    assert.throws(() => renderSystemdUnit({ ...base, description: '  ' }), /--description is empty/);
    assert.throws(() => renderSystemdUnit({ ...base, user: 'postgres\nUser=root' }), /--user must be a user name/);
    assert.throws(() => renderSystemdUnit({ ...base, user: 'a b' }), /--user must be a user name/);
    assert.throws(() => renderSystemdUnit({ ...base, nodePath: 'node' }), /node executable path must be an absolute path/);
    assert.throws(() => renderSystemdUnit({ ...base, nodePath: '/opt/$HOME/node' }), /"\$"/);
  });

  test('User= for another user; % in the description is escaped', () => {
    const text = renderSystemdUnit({ ...base, user: 'hasup', description: 'hasup 100% up' });
    assert.equal(setting(text, 'Service', 'User'), 'hasup');
    assert.equal(setting(text, 'Unit', 'Description'), 'hasup 100%% up');
    assert.doesNotMatch(renderSystemdUnit({ ...base, user: 'root' }), /^User=/m);
  });

  test('systemd accepts the unit (systemd-analyze verify)', { skip: systemdAnalyzeMissing ?? false }, () => {
    // verify checks that the executable exists: name the real node through a directory with a space.
    const bin = join(work, 'node dir');
    mkdirSync(bin, { recursive: true });
    symlinkSync(process.execPath, join(bin, 'node'));
    for (const [name, extra] of [
      ['hasup-plain.service', {}],
      ['hasup-quoted.service', { stateDir: join(work, 'state dir'), config: '/etc/ha"sup/100%$x\\.toml', user: 'hasup-test-user', description: 'hasup 100% test' }],
    ] as const) {
      const file = join(work, name);
      writeFileSync(file, renderSystemdUnit({ nodePath: join(bin, 'node'), nodeArgs: HASUP_NODE_ARGS, cliPath: HASUP_BIN, ...extra }));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      // Unknown keys and bad values are only warnings (exit 0): none may name this file.
      assert.deepEqual(r.stderr.split('\n').filter((l) => l.includes(name)), [], r.stderr);
    }
  });
});

describe('gen-systemd-unit CLI', () => {
  test('prints the unit for this installation', () => {
    const r = cli(['--state-dir', '/var/lib/hasup']);
    assert.equal(r.status, 0, r.stderr);
    const exec = setting(r.stdout, 'Service', 'ExecStart');
    assert.equal(exec, [execWord(process.execPath), ...HASUP_NODE_ARGS, execWord(HASUP_BIN), 'run', '--state-dir', '/var/lib/hasup', '--config', '/etc/hasup/hasup.toml'].join(' '));
  });

  test('--output writes the file with mode 0644', () => {
    const file = join(work, 'out', 'hasup.service');
    mkdirSync(join(work, 'out'), { recursive: true });
    const r = cli(['--output', file, '--config', '/etc/hasup/other.toml', '--user', 'hasup']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o644);
    const text = readFileSync(file, 'utf8');
    assert.match(setting(text, 'Service', 'ExecStart'), / run --config \/etc\/hasup\/other\.toml$/);
    assert.equal(setting(text, 'Service', 'User'), 'hasup');
  });

  test('bad arguments: exit 1, a message, nothing written', () => {
    const file = join(work, 'refused.service');
    for (const args of [
      ['--state-dir', 'relative/dir'],
      ['--config', '/etc/hasup/a\nb.toml'],
      ['--user', '-x'],
    ]) {
      const r = cli([...args, '--output', file]);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^hasup: --(state-dir|config|user) /);
      assert.equal(r.stdout, '');
      assert.equal(existsSync(file), false);
    }
  });
});
