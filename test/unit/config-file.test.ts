import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configReference, parseNodeConfig } from '../../src/supervisor/config-file.js';
import { installRoot } from '../../src/supervisor/install-paths.js';

test('a full hasup.toml parses with defaults filled in', () => {
  const cfg = parseNodeConfig(
    ['[member]', 'advertise = "10.0.0.11"', 'peers = ["10.0.0.12:9638"]', '[services]', 'load = ["postgresql"]', '[service.postgresql]', 'work_mem = "8MB"'].join('\n'),
    'hasup.toml',
  );
  assert.equal(cfg.member.advertise, '10.0.0.11');
  assert.equal(cfg.member.state_dir, '/var/lib/hasup');
  assert.equal(cfg.gossip.profile, 'lan');
  assert.deepEqual(JSON.parse(JSON.stringify(cfg.service)), { postgresql: { work_mem: '8MB' } });
});

test('bad hasup.toml: unknown key, wrong type, names instead of addresses', () => {
  assert.throws(() => parseNodeConfig('[member]\nadvertize = "10.0.0.1"\n', 'hasup.toml'), /hasup\.toml:2: unknown key "member\.advertize"/);
  assert.throws(() => parseNodeConfig('[http]\nenabled = "yes"\n', 'hasup.toml'), /hasup\.toml:2: "http\.enabled" must be true or false/);
  assert.throws(() => parseNodeConfig('[member]\npeers = ["db1.example"]\n', 'hasup.toml'), /hasup\.toml:2: "member\.peers": "db1\.example" must be a literal IP address/);
  assert.throws(() => parseNodeConfig('service = 3\n', 'hasup.toml'), /hasup\.toml:1: "service" must be a table/);
});

test('docs/config.md is the generated reference of the schema', () => {
  const committed = readFileSync(join(installRoot(), 'docs', 'config.md'), 'utf8');
  assert.equal(committed.trim(), configReference().trim(), 'regenerate with: node dist/src/cli/main.js config reference > docs/config.md');
});
