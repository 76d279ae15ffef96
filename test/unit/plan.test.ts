import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPlan, loadPlan, preloadPlans } from '../../src/supervisor/plan.js';
import { compilerRuns, compileTemplate } from '../../src/supervisor/templates.js';
import { mergeLayers, renderTemplates, RenderError } from '../../src/supervisor/config-layers.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';

const plansDir = shippedPlansDir();

test('the shipped PostgreSQL plan loads and renders a config with the layered values', () => {
  const plan = findPlan('postgresql', [plansDir]);
  assert.equal(plan.manifest.driver, 'postgresql');
  assert.equal(plan.manifest.topology, 'leader');
  assert.ok(plan.manifest.config.restart_keys.includes('shared_buffers'));
  const cfg = mergeLayers(plan.defaults, [{ name: 'user', data: { work_mem: '16MB', hba: { allowed_cidrs: ['10.1.0.0/16'] }, extra: { jit: 'off' } } }]);
  const files = renderTemplates(plan, { cfg, svc: { data_dir: '/d', config_dir: '/c', run_dir: '/r' }, sys: { ip: '10.1.0.5', member_id: 'm1' } });
  const conf = files.get('postgresql.conf')!;
  assert.match(conf, /^work_mem = '16MB'$/m);
  assert.match(conf, /^listen_addresses = '10\.1\.0\.5'$/m);
  assert.match(conf, /^jit = 'off'$/m);
  assert.match(files.get('pg_hba.conf')!, /host +replication +all +10\.1\.0\.0\/16 +scram-sha-256/);
});

test('the shipped etcd plan renders its yaml', () => {
  const plan = findPlan('etcd', [plansDir]);
  const files = renderTemplates(plan, {
    cfg: plan.defaults,
    svc: { data_dir: '/d', config_dir: '/c', logs_dir: '/l', etcd_initial_cluster: 'm1=http://10.0.0.1:2380', etcd_initial_cluster_state: 'new', etcd_cluster_token: 't' },
    sys: { ip: '10.0.0.1', member_id: 'm1' },
  });
  assert.match(files.get('etcd.yml')!, /^listen-client-urls: 'http:\/\/10\.0\.0\.1:2379'$/m);
  assert.match(files.get('etcd.yml')!, /^log-outputs: \['\/l\/etcd\.log'\]$/m, 'etcd logs to the file hasup follows, not to its stderr pipe');
  assert.equal(plan.manifest.run.log_file, '{{svc.logs_dir}}/etcd.log');
});

test('a template that uses a missing value fails to render instead of writing a broken config', () => {
  const plan = findPlan('postgresql', [plansDir]);
  assert.throws(() => renderTemplates(plan, { cfg: plan.defaults, svc: {}, sys: { ip: '1.2.3.4' } }), RenderError);
});

test('a broken plan is refused with the file and reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-plan-'));
  writeFileSync(join(dir, 'plan.toml'), 'name = "x"\nversion = "1"\n[run]\ncommand = "/bin/true"\nuser = 7\n');
  assert.throws(() => loadPlan(dir), /plan\.toml:5: "run\.user" must be a string/);
  writeFileSync(join(dir, 'plan.toml'), 'name = "x"\nversion = "1"\n[run]\ncommand = "/bin/true"\n');
  mkdirSync(join(dir, 'hooks'));
  writeFileSync(join(dir, 'hooks', 'init'), '#!/bin/sh\n');
  chmodSync(join(dir, 'hooks', 'init'), 0o644);
  assert.throws(() => loadPlan(dir), /hooks\/init: hook must be an executable file/);
  chmodSync(join(dir, 'hooks', 'init'), 0o755);
  assert.equal(loadPlan(dir).hooks.init, join(dir, 'hooks', 'init'));
  assert.throws(() => findPlan('nope', [dir]), /no plan named "nope"/);
  rmSync(dir, { recursive: true, force: true });
});

test('preloading compiles every shipped plan, run line included, so starting a service later starts no compiler child', () => {
  assert.equal(preloadPlans([plansDir]), 3);
  const before = compilerRuns();
  for (const name of ['postgresql', 'etcd', 'elasticsearch']) {
    const { manifest } = findPlan(name, [plansDir]);
    for (const text of [manifest.run.command, ...manifest.run.args, ...Object.values(manifest.run.env), manifest.run.log_file].filter(Boolean)) compileTemplate(text);
  }
  assert.equal(compilerRuns(), before, 'no compiler child after the preload');
});
