/**
 * The Elasticsearch plan's [snapshot] table (snapshot-settings.ts): its
 * defaults, values refused with the key, and path.repo in elasticsearch.yml
 * only when a repository is set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ElasticsearchDriver } from '../../src/plugins/elasticsearch/driver.js';
import { elasticsearchSettings } from '../../src/plugins/elasticsearch/settings.js';
import { checkSnapshotSettings, pathRepoValue, snapshotSettingsFrom, snapshotsEnabled } from '../../src/plugins/elasticsearch/snapshot-settings.js';
import { mergeLayers, renderTemplates } from '../../src/supervisor/config-layers.js';
import type { DriverContext, ServicePaths } from '../../src/supervisor/driver.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import { findPlan } from '../../src/supervisor/plan.js';
import { generateSecrets } from '../../src/supervisor/secrets.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';

test('[snapshot] defaults: off, 7 kept, every index', () => {
  const s = snapshotSettingsFrom({});
  assert.deepEqual(s, { repoPath: '', retention: 7, indices: '*', invalid: [] });
  assert.equal(snapshotsEnabled(s), false);
  assert.equal(pathRepoValue({}), '');
  const on = snapshotSettingsFrom({ snapshot: { repo_path: '/srv/es-snapshots', retention: 3, indices: 'hasup-logs-*,hasup-metrics-*' } });
  assert.deepEqual(on, { repoPath: '/srv/es-snapshots', retention: 3, indices: 'hasup-logs-*,hasup-metrics-*', invalid: [] });
  assert.equal(pathRepoValue({ snapshot: { repo_path: '/srv/es "snaps"' } }), '["/srv/es \\"snaps\\""]', 'JSON, which YAML reads as it is');
});

test('[snapshot] bad values are refused naming the key', () => {
  const refused = (snapshot: unknown, reason: RegExp) => {
    const cfg = { snapshot } as TomlTable;
    assert.match(checkSnapshotSettings(snapshotSettingsFrom(cfg)) ?? '', reason);
    assert.throws(() => pathRepoValue(cfg), reason);
  };
  refused({ repo_path: 'relative/dir' }, /"snapshot\.repo_path": must be an absolute path or "" \(got "relative\/dir"\)/);
  refused({ repo_path: '/a\nb' }, /"snapshot\.repo_path": must be one line/);
  refused({ retention: 0 }, /"snapshot\.retention" must be at least 1, got 0/);
  refused({ retention: 2.5 }, /"snapshot\.retention" must be an integer/);
  refused({ retention: '3' }, /"snapshot\.retention" must be an integer, got string "3"/);
  refused({ indices: 'hasup-*, other' }, /"snapshot\.indices": must be comma-separated index names or patterns/);
  refused({ indices: '' }, /"snapshot\.indices"/);
  refused({ repo_paht: '/x' }, /unknown key "snapshot\.repo_paht"/);
  refused('on', /"snapshot" must be a table/);
});

test('elasticsearch.yml: path.repo only when [snapshot] repo_path is set; a bad table fails the render; [extra] may not set it', () => {
  const plan = findPlan('elasticsearch', [shippedPlansDir()]);
  const root = mkdtempSync(join(tmpdir(), 'hasup-es-snap-'));
  try {
    const render = (layer: TomlTable) => {
      const paths: ServicePaths = { root, data: join(root, 'data'), config: join(root, 'config'), run: join(root, 'run'), logs: join(root, 'logs') };
      const ctx: DriverContext = { plan, paths, cfg: mergeLayers(plan.defaults, [{ name: 'hasup.toml', data: layer }]), memberId: 'aaaaaaaaaaaaaaaa', ip: '10.0.0.7', secrets: generateSecrets(), log: pino({ level: 'silent' }) };
      const driver = new ElasticsearchDriver();
      const svc = { data_dir: paths.data, config_dir: paths.config, logs_dir: paths.logs, run_dir: paths.run, ...driver.templateValues(ctx) };
      return renderTemplates(plan, { cfg: ctx.cfg, svc, sys: { ip: ctx.ip, member_id: ctx.memberId } }).get('elasticsearch.yml')!;
    };
    assert.doesNotMatch(render({}), /^path\.repo/m);
    assert.match(render({ snapshot: { repo_path: '/srv/es-snapshots' } }), /^path\.repo: \["\/srv\/es-snapshots"\]$/m);
    assert.throws(() => render({ snapshot: { repo_path: 'snapshots' } }), /elasticsearch: "snapshot\.repo_path": must be an absolute path/);
    assert.throws(() => render({ snapshot: { retention: 2.5 } }), /elasticsearch: "snapshot\.retention" must be an integer/, 'the layer takes a number, the table wants a whole one');
    assert.throws(() => render({ snapshot: { retention: '3' } }), /hasup\.toml: "snapshot\.retention" must be a number/, 'the layer check, from the plan default');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const input = { memberId: 'aaaa', ip: '10.0.0.7', dataDir: '/d', logsDir: '/l', discovery: { kind: 'census' as const, initialMasterNodes: null }, maxMapCount: 262144 };
  const cfg = (extra: TomlTable): TomlTable => ({ cluster_name: 'hasup', http_port: 9200, transport_port: 9300, heap: '512m', allow_mmap: 'auto', auto_create_index: 'true', extra });
  assert.throws(() => elasticsearchSettings({ ...input, cfg: cfg({ path: { repo: ['/x'] } }) }), /extra\.path\.repo is written by hasup/);
  assert.equal(elasticsearchSettings({ ...input, cfg: cfg({}) }).es_path_repo, '');
});
