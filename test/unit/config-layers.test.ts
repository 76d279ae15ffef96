import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changedKeys, LayerError, mergeLayers, needsRestart } from '../../src/supervisor/config-layers.js';

const defaults = { port: 5432, work_mem: '4MB', logging: { level: 'info', collector: false }, extra: {} };

test('later layers win over earlier ones and over the defaults', () => {
  const merged = mergeLayers(defaults, [
    { name: 'user', data: { work_mem: '8MB', logging: { level: 'debug' } } },
    { name: 'gossip v3', data: { work_mem: '16MB' } },
  ]);
  assert.deepEqual(merged, { port: 5432, work_mem: '16MB', logging: { level: 'debug', collector: false }, extra: {} });
  assert.equal(defaults.work_mem, '4MB', 'the defaults are not modified');
});

test('unknown settings and wrong types are refused, naming the layer', () => {
  assert.throws(() => mergeLayers(defaults, [{ name: 'user', data: { wrok_mem: '8MB' } }]), (e: LayerError) => /user: unknown key "wrok_mem"/.test(e.message));
  assert.throws(() => mergeLayers(defaults, [{ name: 'gossip v2', data: { port: '5433' } }]), /gossip v2: "port" must be a number, got string "5433"/);
  assert.throws(() => mergeLayers(defaults, [{ name: 'user', data: { logging: { level: 3 } } }]), /"logging.level" must be a string/);
});

test('a setting whose default is "auto" also takes true or false, and nothing else', () => {
  const d = { ha: { synchronous_mode: 'auto' } };
  assert.deepEqual(mergeLayers(d, [{ name: 'apply', data: { ha: { synchronous_mode: true } } }]), { ha: { synchronous_mode: true } });
  assert.deepEqual(mergeLayers(d, [{ name: 'apply', data: { ha: { synchronous_mode: false } } }]), { ha: { synchronous_mode: false } });
  assert.throws(() => mergeLayers(d, [{ name: 'apply', data: { ha: { synchronous_mode: 1 } } }]), (e: LayerError) => /"ha.synchronous_mode" must be true, false or "auto", got number 1/.test(e.message));
});

test('an empty table in the defaults takes any keys', () => {
  const merged = mergeLayers(defaults, [{ name: 'user', data: { extra: { anything: 1, nested: { x: 'y' } } } }]);
  assert.deepEqual(merged.extra, { anything: 1, nested: { x: 'y' } });
});

test('changed keys and restart decisions', () => {
  const a = mergeLayers(defaults, []);
  const b = mergeLayers(defaults, [{ name: 'u', data: { work_mem: '8MB', logging: { collector: true } } }]);
  assert.deepEqual(changedKeys(a, b).sort(), ['logging.collector', 'work_mem']);
  assert.equal(needsRestart(['work_mem'], ['port', 'logging']), false);
  assert.equal(needsRestart(['logging.collector'], ['port', 'logging']), true);
  assert.equal(needsRestart(['portal'], ['port']), false);
});
